//! PromQL functions (float samples), with Prometheus 2.x semantics: which
//! functions keep the metric name, how `rate` extrapolates, Kahan-compensated
//! sums, the classic-histogram quantile.

use super::eval::{drop_name, dup_labelset, Ev, Grid, Result, Sink, Sv, Windows};
use super::value::QueryError;
use promql_parser::parser::{Call, Expr, VectorSelector};
use sonde_engine::labels::{Labels, MatchType, Matcher, METRIC_NAME};
use std::collections::{HashMap, HashSet};

/// Functions over a range vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RangeFn {
    Rate,
    Increase,
    Delta,
    Irate,
    Idelta,
    Avg,
    Sum,
    Count,
    Min,
    Max,
    Last,
    First,
    Present,
    Stddev,
    Stdvar,
    Quantile,
    Mad,
    Changes,
    Resets,
    Deriv,
    PredictLinear,
    HoltWinters,
    AbsentOverTime,
}

fn range_fn(name: &str) -> Option<RangeFn> {
    Some(match name {
        "rate" => RangeFn::Rate,
        "increase" => RangeFn::Increase,
        "delta" => RangeFn::Delta,
        "irate" => RangeFn::Irate,
        "idelta" => RangeFn::Idelta,
        "avg_over_time" => RangeFn::Avg,
        "sum_over_time" => RangeFn::Sum,
        "count_over_time" => RangeFn::Count,
        "min_over_time" => RangeFn::Min,
        "max_over_time" => RangeFn::Max,
        "last_over_time" => RangeFn::Last,
        "first_over_time" => RangeFn::First,
        "present_over_time" => RangeFn::Present,
        "stddev_over_time" => RangeFn::Stddev,
        "stdvar_over_time" => RangeFn::Stdvar,
        "quantile_over_time" => RangeFn::Quantile,
        "mad_over_time" => RangeFn::Mad,
        "changes" => RangeFn::Changes,
        "resets" => RangeFn::Resets,
        "deriv" => RangeFn::Deriv,
        "predict_linear" => RangeFn::PredictLinear,
        "holt_winters" | "double_exponential_smoothing" => RangeFn::HoltWinters,
        "absent_over_time" => RangeFn::AbsentOverTime,
        _ => return None,
    })
}

/// Strips parentheses.
pub(crate) fn unparen(mut e: &Expr) -> &Expr {
    while let Expr::Paren(p) = e {
        e = &p.expr;
    }
    e
}

fn arg(c: &Call, i: usize) -> Result<&Expr> {
    c.args.args.get(i).map(|b| b.as_ref()).ok_or_else(|| {
        QueryError::Execution(format!("{}: missing argument {}", c.func.name, i + 1))
    })
}

fn string_arg(c: &Call, i: usize) -> Result<String> {
    match unparen(arg(c, i)?) {
        Expr::StringLiteral(s) => Ok(s.val.clone()),
        _ => Err(QueryError::Execution(format!(
            "{}: argument {} must be a string literal",
            c.func.name,
            i + 1
        ))),
    }
}

/// Functions that return a scalar.
pub(crate) fn eval_scalar_call(ev: &Ev<'_>, c: &Call, g: &Grid) -> Result<Vec<f64>> {
    match c.func.name {
        "time" => Ok((0..g.n).map(|i| g.ts(i) as f64 / 1000.0).collect()),
        "pi" => Ok(vec![std::f64::consts::PI; g.n]),
        "scalar" => {
            let mut count = vec![0u32; g.n];
            let mut val = vec![f64::NAN; g.n];
            ev.stream(arg(c, 0)?, g, &mut |s: Sv| {
                for (i, v) in s.vals.iter().enumerate() {
                    if let Some(v) = v {
                        count[i] += 1;
                        val[i] = *v;
                    }
                }
                Ok(())
            })?;
            Ok(val
                .into_iter()
                .zip(count)
                .map(|(v, n)| if n == 1 { v } else { f64::NAN })
                .collect())
        }
        other => Err(QueryError::Execution(format!(
            "function {other}() is not supported"
        ))),
    }
}

/// Functions that return an instant vector: feeds their series to `sink`.
pub(crate) fn stream_call(ev: &Ev<'_>, c: &Call, g: &Grid, sink: &mut Sink<'_>) -> Result<()> {
    let name = c.func.name;
    if let Some(f) = range_fn(name) {
        return range_call(ev, c, f, g, sink);
    }
    match name {
        "timestamp" => {
            let a = unparen(arg(c, 0)?);
            if let Expr::VectorSelector(vs) = a {
                return ev.vector_selector(vs, g, true, sink);
            }
            ev.stream(a, g, &mut |mut s: Sv| {
                for (i, v) in s.vals.iter_mut().enumerate() {
                    if v.is_some() {
                        *v = Some(g.ts(i) as f64 / 1000.0);
                    }
                }
                s.labels = drop_name(&s.labels);
                sink(s)
            })
        }
        "vector" => {
            let v = ev.eval_scalar(arg(c, 0)?, g)?;
            sink(Sv {
                labels: Labels::default(),
                vals: v.into_iter().map(Some).collect(),
            })
        }
        "absent" => {
            let a = unparen(arg(c, 0)?);
            let mut present = vec![false; g.n];
            ev.stream(a, g, &mut |s: Sv| {
                for (p, v) in present.iter_mut().zip(&s.vals) {
                    *p |= v.is_some();
                }
                Ok(())
            })?;
            emit_absent(a, &present, sink)
        }
        "sort" | "sort_desc" | "sort_by_label" | "sort_by_label_desc" => {
            let mut vs = ev.eval_vector(arg(c, 0)?, g)?;
            let by: Vec<String> = (1..c.args.args.len())
                .map(|i| string_arg(c, i))
                .collect::<Result<_>>()?;
            if g.n == 1 {
                sort_vector(name, &mut vs, &by);
            }
            for s in vs {
                sink(s)?;
            }
            Ok(())
        }
        "label_replace" => {
            let dst = string_arg(c, 1)?;
            let repl = string_arg(c, 2)?;
            let src = string_arg(c, 3)?;
            let re_s = string_arg(c, 4)?;
            let re = regex::Regex::new(&format!("^(?s:{re_s})$")).map_err(|e| {
                QueryError::Execution(format!(
                    "invalid regular expression in label_replace(): {re_s}: {e}"
                ))
            })?;
            if !valid_label_name(&dst) {
                return Err(QueryError::Execution(format!(
                    "invalid destination label name in label_replace(): {dst}"
                )));
            }
            ev.stream(arg(c, 0)?, g, &mut |mut s: Sv| {
                let v = s.labels.get(&src).unwrap_or("").to_string();
                if let Some(caps) = re.captures(&v) {
                    let mut res = String::new();
                    caps.expand(&repl, &mut res);
                    s.labels = s.labels.with(&dst, &res);
                }
                sink(s)
            })
        }
        "label_join" => {
            let dst = string_arg(c, 1)?;
            let sep = string_arg(c, 2)?;
            let srcs: Vec<String> = (3..c.args.args.len())
                .map(|i| string_arg(c, i))
                .collect::<Result<_>>()?;
            if !valid_label_name(&dst) {
                return Err(QueryError::Execution(format!(
                    "invalid destination label name in label_join(): {dst}"
                )));
            }
            for s in &srcs {
                if !valid_label_name(s) {
                    return Err(QueryError::Execution(format!(
                        "invalid source label name in label_join(): {s}"
                    )));
                }
            }
            ev.stream(arg(c, 0)?, g, &mut |mut s: Sv| {
                let joined = srcs
                    .iter()
                    .map(|n| s.labels.get(n).unwrap_or(""))
                    .collect::<Vec<_>>()
                    .join(&sep);
                s.labels = s.labels.with(&dst, &joined);
                sink(s)
            })
        }
        "histogram_quantile" => histogram_quantile(ev, c, g, sink),
        "histogram_count" | "histogram_sum" | "histogram_avg" | "histogram_stddev"
        | "histogram_stdvar" | "histogram_fraction" => {
            // Only native histograms have these; float samples are ignored.
            ev.stream(arg(c, 0)?, g, &mut |_s: Sv| Ok(()))
        }
        "round" => {
            let to = match c.args.args.get(1) {
                Some(e) => ev.eval_scalar(e, g)?,
                None => vec![1.0; g.n],
            };
            map_values(ev, arg(c, 0)?, g, sink, |i, v| {
                let inv = 1.0 / to[i];
                Some((v * inv + 0.5).floor() / inv)
            })
        }
        "clamp" => {
            let lo = ev.eval_scalar(arg(c, 1)?, g)?;
            let hi = ev.eval_scalar(arg(c, 2)?, g)?;
            map_values(ev, arg(c, 0)?, g, sink, |i, v| {
                if hi[i] < lo[i] {
                    None
                } else {
                    Some(go_max(lo[i], go_min(hi[i], v)))
                }
            })
        }
        "clamp_min" => {
            let lo = ev.eval_scalar(arg(c, 1)?, g)?;
            map_values(ev, arg(c, 0)?, g, sink, |i, v| Some(go_max(lo[i], v)))
        }
        "clamp_max" => {
            let hi = ev.eval_scalar(arg(c, 1)?, g)?;
            map_values(ev, arg(c, 0)?, g, sink, |i, v| Some(go_min(hi[i], v)))
        }
        "days_in_month" | "day_of_month" | "day_of_week" | "day_of_year" | "hour" | "minute"
        | "month" | "year" => {
            let f = date_fn(name);
            if c.args.args.is_empty() {
                return sink(Sv {
                    labels: Labels::default(),
                    vals: (0..g.n)
                        .map(|i| Some(f(g.ts(i).div_euclid(1000))))
                        .collect(),
                });
            }
            map_values(ev, arg(c, 0)?, g, sink, |_, v| {
                Some(if v.is_nan() || v.is_infinite() {
                    f64::NAN
                } else {
                    f(v as i64)
                })
            })
        }
        _ => {
            let f = simple_fn(name).ok_or_else(|| {
                QueryError::Execution(format!("function {name}() is not supported"))
            })?;
            map_values(ev, arg(c, 0)?, g, sink, |_, v| Some(f(v)))
        }
    }
}

/// Element-wise function of the values; drops the metric name.
fn map_values(
    ev: &Ev<'_>,
    a: &Expr,
    g: &Grid,
    sink: &mut Sink<'_>,
    f: impl Fn(usize, f64) -> Option<f64>,
) -> Result<()> {
    ev.stream(a, g, &mut |mut s: Sv| {
        let mut any = false;
        for (i, v) in s.vals.iter_mut().enumerate() {
            if let Some(x) = *v {
                *v = f(i, x);
                any |= v.is_some();
            }
        }
        if any {
            s.labels = drop_name(&s.labels);
            sink(s)?;
        }
        Ok(())
    })
}

fn simple_fn(name: &str) -> Option<fn(f64) -> f64> {
    Some(match name {
        "abs" => f64::abs,
        "ceil" => f64::ceil,
        "floor" => f64::floor,
        "exp" => f64::exp,
        "sqrt" => f64::sqrt,
        "ln" => f64::ln,
        "log2" => f64::log2,
        "log10" => f64::log10,
        "sin" => f64::sin,
        "cos" => f64::cos,
        "tan" => f64::tan,
        "asin" => f64::asin,
        "acos" => f64::acos,
        "atan" => f64::atan,
        "sinh" => f64::sinh,
        "cosh" => f64::cosh,
        "tanh" => f64::tanh,
        "asinh" => f64::asinh,
        "acosh" => f64::acosh,
        "atanh" => f64::atanh,
        "deg" => |v| v * 180.0 / std::f64::consts::PI,
        "rad" => |v| v * std::f64::consts::PI / 180.0,
        "sgn" => |v: f64| {
            if v < 0.0 {
                -1.0
            } else if v > 0.0 {
                1.0
            } else {
                v
            }
        },
        _ => return None,
    })
}

/// Go's `math.Max`: NaN if either is NaN.
pub(crate) fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Go's `math.Min`: NaN if either is NaN.
pub(crate) fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Prometheus' legacy label-name rule.
pub(crate) fn valid_label_name(s: &str) -> bool {
    crate::config::is_valid_label_name(s, crate::config::NameValidationScheme::Legacy)
}

/// The labels `absent(x{...})` reports: the selector's equality matchers
/// (a name matched twice, or matched otherwise, is left out), no name.
fn absent_labels(a: &Expr) -> Labels {
    let vs: &VectorSelector = match unparen(a) {
        Expr::VectorSelector(vs) => vs,
        Expr::MatrixSelector(ms) => &ms.vs,
        _ => return Labels::default(),
    };
    let mut set: Vec<(String, String)> = Vec::new();
    let mut has: HashSet<String> = HashSet::new();
    let ms = match super::eval::to_matchers(vs) {
        Ok(m) => m,
        Err(_) => return Labels::default(),
    };
    for m in ms.iter().filter(|m: &&Matcher| m.name != METRIC_NAME) {
        if m.kind == MatchType::Equal && !has.contains(&m.name) {
            set.push((m.name.clone(), m.value.clone()));
            has.insert(m.name.clone());
        } else {
            set.retain(|(n, _)| n != &m.name);
        }
    }
    Labels::new(set).unwrap_or_default()
}

fn emit_absent(a: &Expr, present: &[bool], sink: &mut Sink<'_>) -> Result<()> {
    if present.iter().all(|p| *p) {
        return Ok(());
    }
    sink(Sv {
        labels: absent_labels(a),
        vals: present
            .iter()
            .map(|p| if *p { None } else { Some(1.0) })
            .collect(),
    })
}

fn sort_vector(name: &str, vs: &mut [Sv], by: &[String]) {
    let val = |s: &Sv| s.vals[0].unwrap_or(f64::NAN);
    match name {
        "sort" => vs.sort_by(|a, b| {
            let (x, y) = (val(a), val(b));
            match (x.is_nan(), y.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ => x.total_cmp(&y),
            }
        }),
        "sort_desc" => vs.sort_by(|a, b| {
            let (x, y) = (val(a), val(b));
            match (x.is_nan(), y.is_nan()) {
                (true, true) => std::cmp::Ordering::Equal,
                (true, false) => std::cmp::Ordering::Greater,
                (false, true) => std::cmp::Ordering::Less,
                _ => y.total_cmp(&x),
            }
        }),
        _ => {
            // Ties keep the order of the full label sets (descending for _desc).
            if name == "sort_by_label_desc" {
                vs.sort_by(|a, b| b.labels.cmp_labels(&a.labels));
            } else {
                vs.sort_by(|a, b| a.labels.cmp_labels(&b.labels));
            }
            vs.sort_by(|a, b| {
                for l in by {
                    let (x, y) = (a.labels.get(l).unwrap_or(""), b.labels.get(l).unwrap_or(""));
                    let o = natural_cmp(x, y);
                    if o != std::cmp::Ordering::Equal {
                        return if name == "sort_by_label_desc" {
                            o.reverse()
                        } else {
                            o
                        };
                    }
                }
                std::cmp::Ordering::Equal
            });
        }
    }
}

/// Natural order: runs of digits compare by number.
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ab, bb) = (a.as_bytes(), b.as_bytes());
    let (mut i, mut j) = (0, 0);
    while i < ab.len() && j < bb.len() {
        if ab[i].is_ascii_digit() && bb[j].is_ascii_digit() {
            let si = i;
            while i < ab.len() && ab[i].is_ascii_digit() {
                i += 1;
            }
            let sj = j;
            while j < bb.len() && bb[j].is_ascii_digit() {
                j += 1;
            }
            let x = a[si..i].trim_start_matches('0');
            let y = b[sj..j].trim_start_matches('0');
            let o = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if o != Ordering::Equal {
                return o;
            }
        } else {
            let o = ab[i].cmp(&bb[j]);
            if o != Ordering::Equal {
                return o;
            }
            i += 1;
            j += 1;
        }
    }
    (ab.len() - i).cmp(&(bb.len() - j))
}

// ---------------------------------------------------------------- range functions

fn range_call(ev: &Ev<'_>, c: &Call, f: RangeFn, g: &Grid, sink: &mut Sink<'_>) -> Result<()> {
    // The range argument, and scalar parameters evaluated per step.
    let (marg, params): (&Expr, Vec<Vec<f64>>) = match f {
        RangeFn::Quantile => (arg(c, 1)?, vec![ev.eval_scalar(arg(c, 0)?, g)?]),
        RangeFn::PredictLinear => (arg(c, 0)?, vec![ev.eval_scalar(arg(c, 1)?, g)?]),
        RangeFn::HoltWinters => (
            arg(c, 0)?,
            vec![
                ev.eval_scalar(arg(c, 1)?, g)?,
                ev.eval_scalar(arg(c, 2)?, g)?,
            ],
        ),
        _ => (arg(c, 0)?, Vec::new()),
    };
    let w: Windows = ev.windows(marg)?;
    if f == RangeFn::Quantile {
        if let Some(q) = params[0].iter().find(|q| !(0.0..=1.0).contains(*q)) {
            ev.warn(quantile_warning(*q));
        }
    }
    let keep_name = matches!(f, RangeFn::Last | RangeFn::First);
    let mut seen: HashSet<Labels> = HashSet::new();
    let mut present = vec![false; g.n];
    let deadline = ev.deadline();
    let mut emit = |labels: Labels, out: Vec<Option<f64>>| -> Result<()> {
        if f == RangeFn::AbsentOverTime {
            for (p, o) in present.iter_mut().zip(&out) {
                *p |= o.is_some();
            }
            return Ok(());
        }
        let labels = if keep_name {
            labels
        } else {
            drop_name(&labels)
        };
        if !keep_name && !seen.insert(labels.clone()) {
            return Err(dup_labelset());
        }
        sink(Sv { labels, vals: out })
    };
    if let Expr::MatrixSelector(ms) = unparen(marg) {
        // Straight from storage: series are decoded and computed in parallel.
        let (mint, maxt) = w.span(g);
        let map = |labels: Labels,
                   ts: &[i64],
                   vs: &[f64]|
         -> Result<Option<(Labels, Vec<Option<f64>>)>> {
            let mut scratch = Vec::new();
            Ok(
                range_series(f, &w, g, &params, ts, vs, &mut scratch, deadline)?
                    .map(|o| (labels, o)),
            )
        };
        ev.load_par(&ms.vs, mint, maxt, true, &map, &mut |(labels, out)| {
            emit(labels, out)
        })?;
    } else {
        let mut scratch: Vec<f64> = Vec::new();
        ev.range_arg(marg, g, &mut |labels, ts, vs| match range_series(
            f,
            &w,
            g,
            &params,
            ts,
            vs,
            &mut scratch,
            deadline,
        )? {
            Some(out) => emit(labels, out),
            None => Ok(()),
        })?;
    }
    if f == RangeFn::AbsentOverTime {
        return emit_absent(marg, &present, sink);
    }
    Ok(())
}

/// Prefix sums over one series that answer some functions for any window in O(1).
struct Prefix {
    /// Counter-reset corrections: `reset[j]` = sum of the values before each drop up to `j`.
    reset: Vec<f64>,
    /// Number of value changes (`changes`) and drops (`resets`) up to `j`.
    changes: Vec<u32>,
    drops: Vec<u32>,
    /// Compensated running sum (hi, lo) of the values before `j` (len n+1).
    sum_hi: Vec<f64>,
    sum_lo: Vec<f64>,
}

impl Prefix {
    fn new(f: RangeFn, vs: &[f64]) -> Option<Prefix> {
        let n = vs.len();
        let mut p = Prefix {
            reset: Vec::new(),
            changes: Vec::new(),
            drops: Vec::new(),
            sum_hi: Vec::new(),
            sum_lo: Vec::new(),
        };
        match f {
            RangeFn::Rate | RangeFn::Increase => {
                // A +Inf before a drop makes the running correction +Inf, and
                // every later window's difference of two prefixes NaN where
                // Prometheus' per-window loop answers a number: series with
                // a non-finite value take the per-window kernel.
                if vs.iter().any(|v| !v.is_finite()) {
                    return None;
                }
                // Branch-free, so it vectorizes: any drop at all?
                let drops = vs
                    .iter()
                    .zip(vs.iter().skip(1))
                    .fold(false, |acc, (a, b)| acc | (b < a));
                if drops {
                    p.reset.reserve(n);
                    let mut acc = 0.0;
                    p.reset.push(0.0);
                    for w in vs.windows(2) {
                        if w[1] < w[0] {
                            acc += w[0];
                        }
                        p.reset.push(acc);
                    }
                }
            }
            RangeFn::Changes | RangeFn::Resets => {
                let (mut c, mut d) = (0u32, 0u32);
                p.changes.push(0);
                p.drops.push(0);
                for w in vs.windows(2) {
                    if w[1] != w[0] && !(w[1].is_nan() && w[0].is_nan()) {
                        c += 1;
                    }
                    if w[1] < w[0] {
                        d += 1;
                    }
                    p.changes.push(c);
                    p.drops.push(d);
                }
            }
            RangeFn::Sum | RangeFn::Avg => {
                // Only for finite, moderate values: otherwise the windowed
                // Kahan loop gives Prometheus' exact Inf/NaN behaviour.
                if vs.iter().any(|v| !v.is_finite() || v.abs() > 1e100) {
                    return None;
                }
                let (mut hi, mut lo) = (0.0f64, 0.0f64);
                p.sum_hi.reserve(n + 1);
                p.sum_lo.reserve(n + 1);
                p.sum_hi.push(0.0);
                p.sum_lo.push(0.0);
                for &v in vs {
                    // TwoSum: exact error of hi + v.
                    let s = hi + v;
                    let bp = s - hi;
                    let err = (hi - (s - bp)) + (v - bp);
                    hi = s;
                    lo += err;
                    p.sum_hi.push(hi);
                    p.sum_lo.push(lo);
                }
            }
            _ => return None,
        }
        Some(p)
    }

    fn window_sum(&self, lo: usize, hi: usize) -> f64 {
        (self.sum_hi[hi] - self.sum_hi[lo]) + (self.sum_lo[hi] - self.sum_lo[lo])
    }
}

/// One series' values of a range function at every step; `None` when no step has one.
#[allow(clippy::too_many_arguments)]
fn range_series(
    f: RangeFn,
    w: &Windows,
    g: &Grid,
    params: &[Vec<f64>],
    ts: &[i64],
    vs: &[f64],
    scratch: &mut Vec<f64>,
    deadline: std::time::Instant,
) -> Result<Option<Vec<Option<f64>>>> {
    let mut out: Vec<Option<f64>> = vec![None; g.n];
    let mut any = false;
    let (mut lo, mut hi) = (0usize, 0usize);
    // Fast paths need many windows over the same samples to pay off.
    let prefix = if g.n > 4 && w.at.is_none() {
        Prefix::new(f, vs)
    } else {
        None
    };
    if let (Some(p), RangeFn::Rate | RangeFn::Increase) = (&prefix, f) {
        return rate_steps(f == RangeFn::Rate, w, g, &p.reset, ts, vs, out, deadline);
    }
    let (mut hi_step, mut lo_step) = (0usize, 0usize);
    for i in 0..g.n {
        if i & 4095 == 4095 && std::time::Instant::now() > deadline {
            return Err(QueryError::Timeout("query execution".into()));
        }
        let end = w.end(g, i);
        let start = super::eval::window_start(end, w.range);
        // With `@` every window is the same; only predict_linear also
        // depends on the step's own time.
        if w.at.is_some() && i > 0 && f != RangeFn::PredictLinear {
            out[i] = out[0];
            continue;
        }
        // Windows usually move by the same number of samples each step.
        let (hi0, lo0) = (hi, lo);
        hi = first_after(ts, hi, hi_step, end);
        lo = first_after(&ts[..hi], lo, lo_step, start - 1);
        (hi_step, lo_step) = (hi - hi0, lo - lo0);
        if lo >= hi {
            continue;
        }
        let r = if f == RangeFn::AbsentOverTime {
            Some(1.0)
        } else if let Some(p) = &prefix {
            let n = hi - lo;
            // (rate and increase took `rate_steps` above.)
            match f {
                RangeFn::Changes => Some((p.changes[hi - 1] - p.changes[lo]) as f64),
                RangeFn::Resets => Some((p.drops[hi - 1] - p.drops[lo]) as f64),
                RangeFn::Sum => Some(p.window_sum(lo, hi)),
                _ => Some(p.window_sum(lo, hi) / n as f64),
            }
        } else {
            let p = |k: usize| params.get(k).map(|v| v[i]).unwrap_or(0.0);
            range_kernel(
                f,
                &ts[lo..hi],
                &vs[lo..hi],
                start,
                end,
                w.range,
                g.ts(i),
                p(0),
                p(1),
                scratch,
            )?
        };
        out[i] = r;
        any |= r.is_some();
    }
    Ok(if any { Some(out) } else { None })
}

/// `rate`/`increase` of one series at every step, from prefix sums of its
/// counter resets (`reset` empty: none): the loop of [`range_series`] without
/// its per-window dispatch, for the most common panel function.
#[allow(clippy::too_many_arguments)]
fn rate_steps(
    is_rate: bool,
    w: &Windows,
    g: &Grid,
    reset: &[f64],
    ts: &[i64],
    vs: &[f64],
    mut out: Vec<Option<f64>>,
    deadline: std::time::Instant,
) -> Result<Option<Vec<Option<f64>>>> {
    let mut any = false;
    let mut memo = ExtrapolationMemo::new(w.range, is_rate);
    let (mut lo, mut hi, mut lo_step, mut hi_step) = (0usize, 0usize, 0usize, 0usize);
    for (i, o) in out.iter_mut().enumerate() {
        if i & 4095 == 4095 && std::time::Instant::now() > deadline {
            return Err(QueryError::Timeout("query execution".into()));
        }
        let end = w.end(g, i);
        let start = super::eval::window_start(end, w.range);
        let (hi0, lo0) = (hi, lo);
        hi = first_after(ts, hi, hi_step, end);
        lo = first_after(&ts[..hi], lo, lo_step, start - 1);
        (hi_step, lo_step) = (hi - hi0, lo - lo0);
        if hi < lo + 2 {
            continue;
        }
        let last = hi - 1;
        let mut result = vs[last] - vs[lo];
        if !reset.is_empty() {
            result += reset[last] - reset[lo];
        }
        *o = Some(memo.extrapolate(result, ts[lo], ts[last], vs[lo], hi - lo, start, end, true));
        any = true;
    }
    Ok(if any { Some(out) } else { None })
}

/// The first index at or after `from` whose time is after `bound` (`ts` is
/// sorted); tries `from + guess` first.
#[inline]
fn first_after(ts: &[i64], from: usize, guess: usize, bound: i64) -> usize {
    let g = from + guess;
    if guess > 0 && g <= ts.len() && ts[g - 1] <= bound && ts.get(g).is_none_or(|&t| t > bound) {
        return g;
    }
    let mut i = from;
    while i < ts.len() && ts[i] <= bound {
        i += 1;
    }
    i
}

/// The mean with a compensated sum, switching to an incremental mean only
/// if the sum would overflow (Prometheus' current `avg`/`avg_over_time`).
pub(crate) fn kahan_mean(vals: impl Iterator<Item = f64>) -> f64 {
    let (mut sum, mut mean, mut c, mut count) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
    let mut incremental = false;
    for v in vals {
        count += 1.0;
        if !incremental {
            let (ns, nc) = kahan_inc(v, sum, c);
            if count == 1.0 || !ns.is_infinite() {
                sum = ns;
                c = nc;
                continue;
            }
            incremental = true;
            mean = sum / (count - 1.0);
            c /= count - 1.0;
        }
        if mean.is_infinite() {
            if v.is_infinite() && (mean > 0.0) == (v > 0.0) {
                continue;
            }
            if !v.is_infinite() && !v.is_nan() {
                continue;
            }
        }
        let corrected = mean + c;
        (mean, c) = kahan_inc(v / count - corrected / count, mean, c);
    }
    if incremental {
        mean + c
    } else {
        (sum + c) / count
    }
}

/// Neumaier-compensated summation step (Prometheus' `kahanSumInc`).
#[inline]
pub(crate) fn kahan_inc(inc: f64, sum: f64, c: f64) -> (f64, f64) {
    let t = sum + inc;
    let c = if t.is_infinite() {
        0.0
    } else if sum.abs() >= inc.abs() {
        c + ((sum - t) + inc)
    } else {
        c + ((inc - t) + sum)
    };
    (t, c)
}

#[allow(clippy::too_many_arguments)]
fn range_kernel(
    f: RangeFn,
    ts: &[i64],
    vs: &[f64],
    range_start: i64,
    range_end: i64,
    range_ms: i64,
    step_ts: i64,
    p0: f64,
    p1: f64,
    scratch: &mut Vec<f64>,
) -> Result<Option<f64>> {
    let n = vs.len();
    Ok(match f {
        RangeFn::Rate | RangeFn::Increase | RangeFn::Delta => extrapolated_rate(
            ts,
            vs,
            range_start,
            range_end,
            range_ms,
            f != RangeFn::Delta,
            f == RangeFn::Rate,
        ),
        RangeFn::Irate | RangeFn::Idelta => {
            if n < 2 {
                return Ok(None);
            }
            let (t1, v1) = (ts[n - 1], vs[n - 1]);
            let (t0, v0) = (ts[n - 2], vs[n - 2]);
            let is_rate = f == RangeFn::Irate;
            let mut r = if is_rate && v1 < v0 { v1 } else { v1 - v0 };
            let dt = t1 - t0;
            if dt == 0 {
                return Ok(None);
            }
            if is_rate {
                r /= dt as f64 / 1000.0;
            }
            Some(r)
        }
        RangeFn::Avg => Some(kahan_mean(vs.iter().copied())),
        RangeFn::Sum => {
            let (mut s, mut c) = (0.0, 0.0);
            for &v in vs {
                (s, c) = kahan_inc(v, s, c);
            }
            Some(if s.is_infinite() { s } else { s + c })
        }
        RangeFn::Count => Some(n as f64),
        RangeFn::Present => Some(1.0),
        RangeFn::Min => {
            let mut m = vs[0];
            for &v in &vs[1..] {
                if v < m || m.is_nan() {
                    m = v;
                }
            }
            Some(m)
        }
        RangeFn::Max => {
            let mut m = vs[0];
            for &v in &vs[1..] {
                if v > m || m.is_nan() {
                    m = v;
                }
            }
            Some(m)
        }
        RangeFn::Last => Some(vs[n - 1]),
        RangeFn::First => Some(vs[0]),
        RangeFn::Stddev | RangeFn::Stdvar => {
            let (mut count, mut mean, mut cm, mut aux, mut ca) = (0.0, 0.0, 0.0, 0.0, 0.0);
            for &v in vs {
                count += 1.0;
                let delta = v - (mean + cm);
                (mean, cm) = kahan_inc(delta / count, mean, cm);
                (aux, ca) = kahan_inc(delta * (v - (mean + cm)), aux, ca);
            }
            let var = (aux + ca) / count;
            Some(if f == RangeFn::Stddev {
                var.sqrt()
            } else {
                var
            })
        }
        RangeFn::Quantile => {
            scratch.clear();
            scratch.extend_from_slice(vs);
            Some(quantile(p0, scratch))
        }
        RangeFn::Mad => {
            scratch.clear();
            scratch.extend_from_slice(vs);
            let med = quantile(0.5, scratch);
            for x in scratch.iter_mut() {
                *x = (*x - med).abs();
            }
            Some(quantile(0.5, scratch))
        }
        RangeFn::Changes => {
            let mut k = 0.0;
            for w in vs.windows(2) {
                if w[1] != w[0] && !(w[1].is_nan() && w[0].is_nan()) {
                    k += 1.0;
                }
            }
            Some(k)
        }
        RangeFn::Resets => {
            let mut k = 0.0;
            for w in vs.windows(2) {
                if w[1] < w[0] {
                    k += 1.0;
                }
            }
            Some(k)
        }
        RangeFn::Deriv => {
            if n < 2 {
                return Ok(None);
            }
            Some(linear_regression(ts, vs, ts[0]).0)
        }
        RangeFn::PredictLinear => {
            if n < 2 {
                return Ok(None);
            }
            let (slope, intercept) = linear_regression(ts, vs, step_ts);
            Some(slope * p0 + intercept)
        }
        RangeFn::HoltWinters => {
            let (sf, tf) = (p0, p1);
            if sf <= 0.0 || sf >= 1.0 {
                return Err(QueryError::Execution(format!(
                    "invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:.6}"
                )));
            }
            if tf <= 0.0 || tf >= 1.0 {
                return Err(QueryError::Execution(format!(
                    "invalid trend factor. Expected: 0 < tf < 1, got: {tf:.6}"
                )));
            }
            if n < 2 {
                return Ok(None);
            }
            let (mut s0, mut s1) = (0.0, vs[0]);
            let mut b = vs[1] - vs[0];
            for (i, &v) in vs.iter().enumerate().skip(1) {
                let x = sf * v;
                if i > 1 {
                    b = tf * (s1 - s0) + (1.0 - tf) * b;
                }
                let y = (1.0 - sf) * (s1 + b);
                s0 = s1;
                s1 = x + y;
            }
            Some(s1)
        }
        RangeFn::AbsentOverTime => None,
    })
}

fn extrapolated_rate(
    ts: &[i64],
    vs: &[f64],
    range_start: i64,
    range_end: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let n = vs.len();
    if n < 2 {
        return None;
    }
    let mut result = vs[n - 1] - vs[0];
    if is_counter {
        let mut prev = vs[0];
        for &v in &vs[1..] {
            if v < prev {
                result += prev;
            }
            prev = v;
        }
    }
    extrapolate(
        result,
        ts[0],
        ts[n - 1],
        vs[0],
        n,
        range_start,
        range_end,
        range_ms,
        is_counter,
        is_rate,
    )
}

/// Prometheus' extrapolation of the increase `result` seen between the first
/// and last sample of a window to the window's edges (2.51+ order: the
/// threshold first, then the counter's zero point limits the start).
#[allow(clippy::too_many_arguments)]
fn extrapolate(
    result: f64,
    first_t: i64,
    last_t: i64,
    first_v: f64,
    n: usize,
    range_start: i64,
    range_end: i64,
    range_ms: i64,
    is_counter: bool,
    is_rate: bool,
) -> Option<f64> {
    let rate_s = is_rate.then(|| range_ms as f64 / 1000.0);
    let geo = Extrapolation::new(first_t, last_t, n, range_start, range_end, rate_s);
    Some(geo.apply(result, first_v, is_counter, rate_s))
}

/// The part of the extrapolation that depends only on a window's sample
/// times (most of its divisions): windows of regularly spaced samples share
/// it, so [`ExtrapolationMemo`] computes it once for all of them.
#[derive(Clone, Copy)]
struct Extrapolation {
    sampled: f64,
    /// Seconds from the window start to the first sample, after the threshold.
    to_start: f64,
    /// Seconds from the last sample to the window end, after the threshold.
    to_end: f64,
    /// The factor when the counter's zero point does not limit the start.
    factor: f64,
}

impl Extrapolation {
    fn new(
        first_t: i64,
        last_t: i64,
        n: usize,
        range_start: i64,
        range_end: i64,
        rate_s: Option<f64>,
    ) -> Extrapolation {
        let mut to_start = (first_t - range_start) as f64 / 1000.0;
        let mut to_end = (range_end - last_t) as f64 / 1000.0;
        let sampled = (last_t - first_t) as f64 / 1000.0;
        let avg = sampled / (n - 1) as f64;
        let threshold = avg * 1.1;
        if to_start >= threshold {
            to_start = avg / 2.0;
        }
        if to_end >= threshold {
            to_end = avg / 2.0;
        }
        let mut e = Extrapolation {
            sampled,
            to_start,
            to_end,
            factor: 0.0,
        };
        e.factor = e.factor_with(to_start, rate_s);
        e
    }

    fn factor_with(&self, to_start: f64, rate_s: Option<f64>) -> f64 {
        let mut extrapolate_to = self.sampled;
        extrapolate_to += to_start;
        extrapolate_to += self.to_end;
        let mut factor = extrapolate_to / self.sampled;
        if let Some(r) = rate_s {
            factor /= r;
        }
        factor
    }

    /// The extrapolated increase (per second of the range with `rate_s`).
    #[inline]
    fn apply(&self, result: f64, first_v: f64, is_counter: bool, rate_s: Option<f64>) -> f64 {
        // A window that starts on a sample (to_start 0, as with samples and
        // steps on the same grid) is never limited: to_zero >= 0.
        #[allow(clippy::neg_cmp_op_on_partial_ord)]
        if !is_counter || !(self.to_start > 0.0) {
            return result * self.factor;
        }
        if result > 0.0 && first_v >= 0.0 {
            // Clearly not limited (the margin dwarfs the products' rounding;
            // the normal-range check keeps it so): skip the division.
            let lhs = first_v * self.sampled;
            let rhs = self.to_start * result * (1.0 + 1e-9);
            if rhs >= f64::MIN_POSITIVE && lhs.is_finite() && lhs >= rhs {
                return result * self.factor;
            }
            let to_zero = self.sampled * (first_v / result);
            if to_zero < self.to_start {
                return result * self.factor_with(to_zero, rate_s);
            }
        }
        result * self.factor
    }
}

/// Remembers the last window geometry: with samples at a steady interval and
/// a step that is a multiple of it, every window of a series has the same
/// offsets, so the divisions are done once per series instead of per step.
/// The answers are bit for bit those of [`extrapolate`].
struct ExtrapolationMemo {
    key: (i64, i64, i64, usize),
    geo: Option<Extrapolation>,
    rate_s: Option<f64>,
}

impl ExtrapolationMemo {
    fn new(range_ms: i64, is_rate: bool) -> ExtrapolationMemo {
        ExtrapolationMemo {
            key: (0, 0, 0, 0),
            geo: None,
            rate_s: is_rate.then(|| range_ms as f64 / 1000.0),
        }
    }

    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn extrapolate(
        &mut self,
        result: f64,
        first_t: i64,
        last_t: i64,
        first_v: f64,
        n: usize,
        range_start: i64,
        range_end: i64,
        is_counter: bool,
    ) -> f64 {
        let key = (
            first_t - range_start,
            range_end - last_t,
            last_t - first_t,
            n,
        );
        let geo = match self.geo {
            Some(g) if self.key == key => g,
            _ => {
                let g = Extrapolation::new(first_t, last_t, n, range_start, range_end, self.rate_s);
                self.key = key;
                self.geo = Some(g);
                g
            }
        };
        geo.apply(result, first_v, is_counter, self.rate_s)
    }
}

/// Least squares with Kahan sums; x in seconds relative to `intercept_t`.
fn linear_regression(ts: &[i64], vs: &[f64], intercept_t: i64) -> (f64, f64) {
    let (mut n, mut sx, mut cx, mut sy, mut cy) = (0.0, 0.0, 0.0, 0.0, 0.0);
    let (mut sxy, mut cxy, mut sx2, mut cx2) = (0.0, 0.0, 0.0, 0.0);
    let init = vs[0];
    let mut const_y = true;
    for (i, (&t, &v)) in ts.iter().zip(vs).enumerate() {
        if const_y && i > 0 && v != init {
            const_y = false;
        }
        n += 1.0;
        let x = (t - intercept_t) as f64 / 1e3;
        (sx, cx) = kahan_inc(x, sx, cx);
        (sy, cy) = kahan_inc(v, sy, cy);
        (sxy, cxy) = kahan_inc(x * v, sxy, cxy);
        (sx2, cx2) = kahan_inc(x * x, sx2, cx2);
    }
    if const_y {
        if init.is_infinite() {
            return (f64::NAN, f64::NAN);
        }
        return (0.0, init);
    }
    sx += cx;
    sy += cy;
    sxy += cxy;
    sx2 += cx2;
    let cov = sxy - sx * sy / n;
    let var = sx2 - sx * sx / n;
    let slope = cov / var;
    (slope, sy / n - slope * sx / n)
}

/// Prometheus' warning for a quantile outside [0, 1].
pub(crate) fn quantile_warning(q: f64) -> String {
    format!(
        "PromQL warning: quantile value should be between 0 and 1, got {}",
        crate::gocompat::format_value(q).trim_start_matches('+')
    )
}

/// Prometheus' `quantile`: NaN sorts first; linear interpolation between ranks.
pub(crate) fn quantile(q: f64, vals: &mut [f64]) -> f64 {
    if vals.is_empty() || q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    vals.sort_by(|a, b| match (a.is_nan(), b.is_nan()) {
        (true, true) => std::cmp::Ordering::Equal,
        (true, false) => std::cmp::Ordering::Less,
        (false, true) => std::cmp::Ordering::Greater,
        _ => a.total_cmp(b),
    });
    let n = vals.len() as f64;
    let rank = q * (n - 1.0);
    let lower = rank.floor().max(0.0);
    let upper = (lower + 1.0).min(n - 1.0);
    let weight = rank - rank.floor();
    vals[lower as usize] * (1.0 - weight) + vals[upper as usize] * weight
}

// ---------------------------------------------------------------- histogram_quantile

fn histogram_quantile(ev: &Ev<'_>, c: &Call, g: &Grid, sink: &mut Sink<'_>) -> Result<()> {
    let q = ev.eval_scalar(arg(c, 0)?, g)?;
    let series = ev.eval_vector(arg(c, 1)?, g)?;
    let mut groups: Vec<(Labels, Vec<(f64, usize)>)> = Vec::new();
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut bad_le = false;
    for (k, s) in series.iter().enumerate() {
        let Some(le) = s.labels.get("le").and_then(parse_go_float) else {
            bad_le = true;
            continue;
        };
        // Grouped with the name (as Prometheus does); the name is dropped
        // from the output, so two histograms that differ only by name
        // collide there ("same labelset").
        let key = s.labels.filter(|l| l.name.as_ref() != "le");
        let gi = *index.entry(key.clone()).or_insert_with(|| {
            groups.push((drop_name(&key), Vec::new()));
            groups.len() - 1
        });
        groups[gi].1.push((le, k));
    }
    if bad_le {
        ev.warn("PromQL warning: bucket label \"le\" is missing or has a malformed value".into());
    }
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for (labels, members) in groups {
        let mut vals = vec![None; g.n];
        let mut any = false;
        for (i, out) in vals.iter_mut().enumerate() {
            buckets.clear();
            for &(le, k) in &members {
                if let Some(v) = series[k].vals[i] {
                    buckets.push((le, v));
                }
            }
            if buckets.is_empty() {
                continue;
            }
            *out = Some(bucket_quantile(q[i], &mut buckets));
            any = true;
        }
        if any {
            sink(Sv { labels, vals })?;
        }
    }
    Ok(())
}

/// Go's `strconv.ParseFloat` for the forms `le` labels use.
pub(crate) fn parse_go_float(s: &str) -> Option<f64> {
    let t = s.trim();
    if t.is_empty() {
        return None;
    }
    t.parse::<f64>().ok()
}

fn almost_equal(a: f64, b: f64, eps: f64) -> bool {
    const MIN_NORMAL: f64 = 2.2250738585072014e-308;
    if a == b {
        return true;
    }
    let sum = a.abs() + b.abs();
    let diff = (a - b).abs();
    if a == 0.0 || b == 0.0 || sum < MIN_NORMAL {
        return diff < eps * MIN_NORMAL;
    }
    diff / sum.min(f64::MAX) < eps
}

/// Quantile from classic cumulative buckets `(upper bound, count)`.
pub(crate) fn bucket_quantile(q: f64, buckets: &mut Vec<(f64, f64)>) -> f64 {
    if q.is_nan() {
        return f64::NAN;
    }
    if q < 0.0 {
        return f64::NEG_INFINITY;
    }
    if q > 1.0 {
        return f64::INFINITY;
    }
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    match buckets.last() {
        Some(b) if b.0 == f64::INFINITY => {}
        _ => return f64::NAN,
    }
    // Coalesce equal bounds.
    let mut k = 0;
    for i in 0..buckets.len() {
        if k > 0 && buckets[k - 1].0 == buckets[i].0 {
            buckets[k - 1].1 += buckets[i].1;
        } else {
            buckets[k] = buckets[i];
            k += 1;
        }
    }
    buckets.truncate(k);
    // Monotonic: ignore tiny float noise, flatten decreases.
    let mut prev = buckets[0].1;
    for b in buckets.iter_mut().skip(1) {
        let cur = b.1;
        if cur == prev {
            continue;
        }
        if almost_equal(prev, cur, 1e-12) || cur < prev {
            b.1 = prev;
            continue;
        }
        prev = cur;
    }
    if buckets.len() < 2 {
        return f64::NAN;
    }
    let observations = buckets[buckets.len() - 1].1;
    if observations == 0.0 {
        return f64::NAN;
    }
    let mut rank = q * observations;
    let nb = buckets.len();
    let b = buckets[..nb - 1].partition_point(|x| x.1 < rank);
    if b == nb - 1 {
        return buckets[nb - 2].0;
    }
    if b == 0 && buckets[0].0 <= 0.0 {
        return buckets[0].0;
    }
    let mut start = 0.0;
    let end = buckets[b].0;
    let mut count = buckets[b].1;
    if b > 0 {
        start = buckets[b - 1].0;
        count -= buckets[b - 1].1;
        rank -= buckets[b - 1].1;
    }
    start + (end - start) * (rank / count)
}

// ---------------------------------------------------------------- dates

fn date_fn(name: &str) -> fn(i64) -> f64 {
    match name {
        "days_in_month" => |s| {
            let (y, m, _) = civil(s);
            days_in_month(y, m) as f64
        },
        "day_of_month" => |s| civil(s).2 as f64,
        "day_of_week" => |s| (s.div_euclid(86_400) + 4).rem_euclid(7) as f64,
        "day_of_year" => |s| {
            let (y, m, d) = civil(s);
            (days_before_month(y, m) + d) as f64
        },
        "hour" => |s| (s.rem_euclid(86_400) / 3600) as f64,
        "minute" => |s| (s.rem_euclid(3600) / 60) as f64,
        "month" => |s| civil(s).1 as f64,
        _ => |s| civil(s).0 as f64,
    }
}

/// (year, month 1-12, day 1-31) of unix seconds, UTC (Hinnant's algorithm).
fn civil(secs: i64) -> (i64, i64, i64) {
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 => {
            if is_leap(y) {
                29
            } else {
                28
            }
        }
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

fn days_before_month(y: i64, m: i64) -> i64 {
    (1..m).map(|k| days_in_month(y, k)).sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Prometheus' extrapolation written out step by step, as in its
    /// `extrapolatedRate` (2.51+ order), without any shared geometry.
    #[allow(clippy::too_many_arguments)]
    fn reference_extrapolate(
        mut result: f64,
        first_t: i64,
        last_t: i64,
        first_v: f64,
        n: usize,
        range_start: i64,
        range_end: i64,
        range_ms: i64,
        is_counter: bool,
        is_rate: bool,
    ) -> f64 {
        let mut duration_to_start = (first_t - range_start) as f64 / 1000.0;
        let mut duration_to_end = (range_end - last_t) as f64 / 1000.0;
        let sampled = (last_t - first_t) as f64 / 1000.0;
        let avg = sampled / (n - 1) as f64;
        let threshold = avg * 1.1;
        let mut extrapolate_to = sampled;
        if duration_to_start >= threshold {
            duration_to_start = avg / 2.0;
        }
        if is_counter && result > 0.0 && first_v >= 0.0 {
            let duration_to_zero = sampled * (first_v / result);
            if duration_to_zero < duration_to_start {
                duration_to_start = duration_to_zero;
            }
        }
        extrapolate_to += duration_to_start;
        if duration_to_end >= threshold {
            duration_to_end = avg / 2.0;
        }
        extrapolate_to += duration_to_end;
        let mut factor = extrapolate_to / sampled;
        if is_rate {
            factor /= range_ms as f64 / 1000.0;
        }
        result *= factor;
        result
    }

    fn any_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            Just(0.0),
            Just(f64::INFINITY),
            Just(f64::MIN_POSITIVE),
            Just(5e-324),
            -1e6..1e6f64,
            0.0..1e-300f64,
            1e300..f64::MAX,
            any::<f64>(),
        ]
    }

    proptest! {
        /// The memoized geometry and the division-skipping check give bit
        /// for bit the reference's answers, also when windows repeat.
        #[test]
        fn extrapolation_memo_is_exact(
            windows in prop::collection::vec(
                (prop_oneof![Just(0i64), 0i64..400_000], 1i64..400_000, 2usize..60, prop_oneof![Just(0i64), 0i64..400_000], any_value(), any_value()),
                1..20,
            ),
            range_ms in 1i64..1_000_000,
            is_rate in any::<bool>(),
        ) {
            let mut memo = ExtrapolationMemo::new(range_ms, is_rate);
            for (i, &(lead, span, n, tail, result, first_v)) in windows.iter().enumerate() {
                // Every other window repeats its predecessor's geometry.
                let (lead, span, n, tail) = if i % 2 == 1 {
                    let p = windows[i - 1];
                    (p.0, p.1, p.2, p.3)
                } else {
                    (lead, span, n, tail)
                };
                let (start, first_t) = (1_000_000, 1_000_000 + lead);
                let last_t = first_t + span;
                let end = last_t + tail;
                let want = reference_extrapolate(
                    result, first_t, last_t, first_v, n, start, end, range_ms, true, is_rate,
                );
                let got = memo.extrapolate(result, first_t, last_t, first_v, n, start, end, true);
                prop_assert!(
                    want.to_bits() == got.to_bits() || (want.is_nan() && got.is_nan()),
                    "window {i}: want {want:?}, got {got:?}"
                );
                let plain = extrapolate(
                    result, first_t, last_t, first_v, n, start, end, range_ms, false, is_rate,
                );
                let want = reference_extrapolate(
                    result, first_t, last_t, first_v, n, start, end, range_ms, false, is_rate,
                );
                prop_assert!(
                    plain.is_some_and(|p| p.to_bits() == want.to_bits() || (want.is_nan() && p.is_nan()))
                );
            }
        }
    }

    fn series_value() -> impl Strategy<Value = f64> {
        prop_oneof![
            8 => 0.0..1000.0f64,
            1 => Just(f64::NAN),
            1 => Just(f64::INFINITY),
            1 => Just(f64::NEG_INFINITY),
            1 => Just(0.0),
        ]
    }

    proptest! {
        /// rate/increase/changes/resets/sum/avg over many steps (the prefix
        /// fast paths) answer bit for bit what the per-window kernel answers
        /// on jittered, irregular series with resets, NaN and ±Inf.
        #[test]
        fn prefix_paths_agree_with_the_window_kernel(
            samples in prop::collection::vec((1i64..40_000, series_value()), 2..80),
            range in 1_000i64..200_000,
            step in 1_000i64..60_000,
            f in prop_oneof![
                Just(RangeFn::Rate), Just(RangeFn::Increase), Just(RangeFn::Changes),
                Just(RangeFn::Resets), Just(RangeFn::Sum), Just(RangeFn::Avg),
            ],
        ) {
            let mut ts = Vec::new();
            let mut t = 0i64;
            for &(dt, _) in &samples {
                t += dt;
                ts.push(t);
            }
            let vs: Vec<f64> = samples.iter().map(|s| s.1).collect();
            let g = Grid { start: 0, end: t + range, step, n: ((t + range) / step + 1) as usize };
            let w = Windows { at: None, offset: 0, range };
            let far = std::time::Instant::now() + std::time::Duration::from_secs(60);
            let mut scratch = Vec::new();
            let fast = range_series(f, &w, &g, &[], &ts, &vs, &mut scratch, far).unwrap();
            for i in 0..g.n {
                let end = g.ts(i);
                let start = super::super::eval::window_start(end, range);
                // Prometheus 2.x windows are closed: [start, end].
                let lo = ts.partition_point(|&x| x < start);
                let hi = ts.partition_point(|&x| x <= end);
                let want = if lo >= hi {
                    None
                } else {
                    range_kernel(f, &ts[lo..hi], &vs[lo..hi], start, end, range, end, 0.0, 0.0, &mut scratch).unwrap()
                };
                let got = fast.as_ref().and_then(|o| o[i]);
                let same = match (want, got) {
                    (None, None) => true,
                    (Some(a), Some(b)) => a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
                        || (a - b).abs() <= 1e-9 * a.abs().max(1.0),
                    _ => false,
                };
                prop_assert!(same, "{f:?} step {i} (end {end}): kernel {want:?}, fast {got:?}");
            }
        }
    }

    #[test]
    fn calendar() {
        // 2006-01-02T22:04:05Z
        assert_eq!(civil(1136239445), (2006, 1, 2));
        assert_eq!(date_fn("hour")(1136239445), 22.0);
        assert_eq!(date_fn("minute")(1136239445), 4.0);
        assert_eq!(date_fn("day_of_week")(1136239445), 1.0);
        assert_eq!(date_fn("day_of_year")(1483191420), 366.0);
        assert_eq!(date_fn("days_in_month")(1454284800), 29.0);
    }

    #[test]
    fn quantiles() {
        let mut v = vec![4.0, 1.0, 3.0, 2.0];
        assert_eq!(quantile(0.5, &mut v), 2.5);
        let mut b = vec![(1.0, 1.0), (f64::INFINITY, 2.0), (0.5, 0.0)];
        assert_eq!(bucket_quantile(0.5, &mut b), 1.0);
        assert!(natural_cmp("a10", "a9").is_gt());
    }
}
