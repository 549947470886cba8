//! Aggregation operators (`sum`, `avg`, ... `topk`, `quantile`,
//! `count_values`) with `by`/`without`, per step, as Prometheus 2.x computes them.

use super::eval::{labels_bytes, Ev, Grid, Result, Sv};
use super::functions::{kahan_inc, quantile, valid_label_name};
use super::value::QueryError;
use crate::gocompat::strconv::format_float;
use promql_parser::label::Labels as NameList;
use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMITK, T_LIMIT_RATIO, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, Expr, LabelModifier};
use sonde_engine::labels::{Labels, METRIC_NAME};
use std::collections::HashMap;

/// How the output labels of a group are derived.
struct Grouping<'a> {
    without: bool,
    names: &'a [String],
}

impl Grouping<'_> {
    fn key(&self, l: &Labels) -> Labels {
        if self.without {
            l.filter(|x| {
                x.name.as_ref() != METRIC_NAME && !self.names.iter().any(|n| n == x.name.as_ref())
            })
        } else if self.names.is_empty() {
            Labels::default()
        } else {
            l.filter(|x| self.names.iter().any(|n| n == x.name.as_ref()))
        }
    }
}

#[derive(Clone, Copy, Default)]
struct Acc {
    n: u32,
    a: f64,
    b: f64,
    /// `avg` only: the sum overflowed, `a` is now an incremental mean.
    incremental: bool,
}

/// Evaluates an aggregation over the grid.
pub(crate) fn eval_aggregate(ev: &Ev<'_>, a: &AggregateExpr, g: &Grid) -> Result<Vec<Sv>> {
    static EMPTY: Vec<String> = Vec::new();
    let (without, names): (bool, &[String]) = match &a.modifier {
        None => (false, &EMPTY),
        Some(LabelModifier::Include(NameList { labels })) => (false, labels),
        Some(LabelModifier::Exclude(NameList { labels })) => (true, labels),
    };
    let grouping = Grouping { without, names };
    let op = a.op.id();
    match op {
        T_TOPK | T_BOTTOMK | T_QUANTILE | T_LIMITK | T_LIMIT_RATIO => {
            let param = match &a.param {
                Some(p) => ev.eval_scalar(p, g)?,
                None => return Err(QueryError::Execution("missing parameter".into())),
            };
            let input = ev.eval_vector(&a.expr, g)?;
            match op {
                T_QUANTILE => {
                    if let Some(q) = param.iter().find(|q| !(0.0..=1.0).contains(*q)) {
                        ev.warn(super::functions::quantile_warning(*q));
                    }
                    Ok(quantile_agg(&grouping, &param, input, g))
                }
                T_TOPK | T_BOTTOMK => top_bottom(&grouping, op == T_TOPK, &param, input, g),
                _ => limit(ev, &grouping, op == T_LIMIT_RATIO, &param, input, g),
            }
        }
        T_COUNT_VALUES => {
            let label = match a.param.as_deref().map(super::functions::unparen) {
                Some(Expr::StringLiteral(s)) => s.val.clone(),
                _ => {
                    return Err(QueryError::Execution(
                        "count_values: the parameter must be a string".into(),
                    ))
                }
            };
            if !valid_label_name(&label) {
                return Err(QueryError::Execution(format!(
                    "invalid label name {label:?}"
                )));
            }
            count_values(ev, &grouping, &label, &a.expr, g)
        }
        T_SUM | T_AVG | T_MIN | T_MAX | T_COUNT | T_GROUP | T_STDDEV | T_STDVAR => {
            simple(ev, &grouping, op, &a.expr, g)
        }
        _ => Err(QueryError::Execution(format!(
            "aggregation {} is not supported",
            a.op
        ))),
    }
}

fn simple(ev: &Ev<'_>, grouping: &Grouping<'_>, op: u16, e: &Expr, g: &Grid) -> Result<Vec<Sv>> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<Acc>)> = Vec::new();
    let mut last_key: Option<(Labels, usize)> = None;
    ev.stream(e, g, &mut |s: Sv| {
        let key = grouping.key(&s.labels);
        let gi = match &last_key {
            Some((k, i)) if *k == key => *i,
            _ => {
                let i = match index.get(&key) {
                    Some(&i) => i,
                    None => {
                        ev.hold(g.n)?;
                        ev.hold_bytes(g.n * std::mem::size_of::<Acc>() + labels_bytes(&key))?;
                        index.insert(key.clone(), groups.len());
                        groups.push((key.clone(), vec![Acc::default(); g.n]));
                        groups.len() - 1
                    }
                };
                last_key = Some((key, i));
                i
            }
        };
        let accs = &mut groups[gi].1;
        if op == T_SUM {
            // The common case in its own tight loop (same arithmetic).
            for (acc, v) in accs.iter_mut().zip(&s.vals) {
                let Some(v) = *v else { continue };
                if acc.n == 0 {
                    (acc.a, acc.b) = (v, 0.0);
                } else {
                    (acc.a, acc.b) = kahan_inc(v, acc.a, acc.b);
                }
                acc.n += 1;
            }
            return Ok(());
        }
        for (acc, v) in accs.iter_mut().zip(&s.vals) {
            let Some(v) = *v else { continue };
            acc.n += 1;
            if acc.n == 1 {
                match op {
                    T_SUM | T_AVG => {
                        acc.a = v;
                        acc.b = 0.0;
                    }
                    T_STDDEV | T_STDVAR => {
                        acc.a = v;
                        acc.b = 0.0;
                    }
                    _ => acc.a = v,
                }
                continue;
            }
            match op {
                T_SUM => (acc.a, acc.b) = kahan_inc(v, acc.a, acc.b),
                T_AVG => {
                    // A compensated sum while it does not overflow, then an
                    // incremental mean (Prometheus' current avg).
                    let n = acc.n as f64;
                    if !acc.incremental {
                        let (ns, nc) = kahan_inc(v, acc.a, acc.b);
                        if !ns.is_infinite() {
                            (acc.a, acc.b) = (ns, nc);
                            continue;
                        }
                        acc.incremental = true;
                        acc.a /= n - 1.0;
                        acc.b /= n - 1.0;
                    }
                    if acc.a.is_infinite() {
                        if v.is_infinite() && (acc.a > 0.0) == (v > 0.0) {
                            continue;
                        }
                        if !v.is_infinite() && !v.is_nan() {
                            continue;
                        }
                    }
                    let corrected = acc.a + acc.b;
                    (acc.a, acc.b) = kahan_inc(v / n - corrected / n, acc.a, acc.b);
                }
                T_MIN if acc.a > v || acc.a.is_nan() => acc.a = v,
                T_MAX if acc.a < v || acc.a.is_nan() => acc.a = v,
                T_STDDEV | T_STDVAR => {
                    let delta = v - acc.a;
                    acc.a += delta / acc.n as f64;
                    acc.b += delta * (v - acc.a);
                }
                _ => {}
            }
        }
        Ok(())
    })?;
    Ok(groups
        .into_iter()
        .map(|(labels, accs)| Sv {
            labels,
            vals: accs
                .into_iter()
                .map(|acc| {
                    if acc.n == 0 {
                        return None;
                    }
                    Some(match op {
                        T_SUM => {
                            if acc.a.is_infinite() {
                                acc.a
                            } else {
                                acc.a + acc.b
                            }
                        }
                        T_AVG => {
                            if acc.incremental {
                                acc.a + acc.b
                            } else {
                                (acc.a + acc.b) / acc.n as f64
                            }
                        }
                        T_COUNT => acc.n as f64,
                        T_GROUP => 1.0,
                        T_STDVAR => acc.b / acc.n as f64,
                        T_STDDEV => (acc.b / acc.n as f64).sqrt(),
                        _ => acc.a,
                    })
                })
                .collect(),
        })
        .collect())
}

/// Groups the series, in order of first appearance.
fn group_members(grouping: &Grouping<'_>, input: &[Sv]) -> Vec<(Labels, Vec<usize>)> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut groups: Vec<(Labels, Vec<usize>)> = Vec::new();
    for (k, s) in input.iter().enumerate() {
        let key = grouping.key(&s.labels);
        match index.get(&key) {
            Some(&i) => groups[i].1.push(k),
            None => {
                index.insert(key.clone(), groups.len());
                groups.push((key, vec![k]));
            }
        }
    }
    groups
}

fn quantile_agg(grouping: &Grouping<'_>, q: &[f64], input: Vec<Sv>, g: &Grid) -> Vec<Sv> {
    let mut out = Vec::new();
    let mut buf = Vec::new();
    for (labels, members) in group_members(grouping, &input) {
        let mut vals = vec![None; g.n];
        for (i, o) in vals.iter_mut().enumerate() {
            buf.clear();
            buf.extend(members.iter().filter_map(|&k| input[k].vals[i]));
            if !buf.is_empty() {
                *o = Some(quantile(q[i], &mut buf));
            }
        }
        out.push(Sv { labels, vals });
    }
    out
}

/// Prometheus keeps the top (bottom) k in a Go `container/heap` min-heap
/// (max-heap) where NaN is "less" than everything; which of several equal
/// values survive depends on that heap's exact moves, so they are copied
/// here: ties then resolve as in Prometheus.
struct GoHeap {
    top: bool,
    h: Vec<(f64, usize)>,
}

impl GoHeap {
    fn less(&self, a: usize, b: usize) -> bool {
        let (x, y) = (self.h[a].0, self.h[b].0);
        if x.is_nan() {
            return true;
        }
        if self.top {
            x < y
        } else {
            x > y
        }
    }
    fn up(&mut self, mut j: usize) {
        while j > 0 {
            let i = (j - 1) / 2;
            if !self.less(j, i) {
                break;
            }
            self.h.swap(i, j);
            j = i;
        }
    }
    fn down(&mut self, i0: usize) -> bool {
        let n = self.h.len();
        let mut i = i0;
        loop {
            let j1 = 2 * i + 1;
            if j1 >= n {
                break;
            }
            let mut j = j1;
            if j1 + 1 < n && self.less(j1 + 1, j1) {
                j = j1 + 1;
            }
            if !self.less(j, i) {
                break;
            }
            self.h.swap(i, j);
            i = j;
        }
        i > i0
    }
    fn push(&mut self, v: (f64, usize)) {
        self.h.push(v);
        let j = self.h.len() - 1;
        self.up(j);
    }
    fn offer(&mut self, k: usize, v: (f64, usize)) {
        if self.h.len() < k {
            self.push(v);
            return;
        }
        let head = self.h[0].0;
        let better = if self.top { head < v.0 } else { head > v.0 };
        if better || (head.is_nan() && !v.0.is_nan()) {
            self.h[0] = v;
            if k > 1 && !self.down(0) {
                self.up(0);
            }
        }
    }
}

/// Output order: topk descending, bottomk ascending, NaN last.
fn rank_cmp(top: bool, x: f64, y: f64) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    match (x.is_nan(), y.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => {
            if top {
                y.total_cmp(&x)
            } else {
                x.total_cmp(&y)
            }
        }
    }
}

fn top_bottom(
    grouping: &Grouping<'_>,
    top: bool,
    param: &[f64],
    input: Vec<Sv>,
    g: &Grid,
) -> Result<Vec<Sv>> {
    let groups = group_members(grouping, &input);
    // In output order for an instant query.
    let mut kept = Kept::new(input.len(), g.n);
    let mut heap = GoHeap { top, h: Vec::new() };
    for (i, &p) in param.iter().enumerate().take(g.n) {
        let k = k_of(p)?;
        if k < 1 {
            continue;
        }
        let k = k.min(input.len() as i64) as usize;
        for (_, members) in &groups {
            heap.h.clear();
            for &m in members {
                if let Some(v) = input[m].vals[i] {
                    heap.offer(k, (v, m));
                }
            }
            heap.h.sort_by(|a, b| rank_cmp(top, a.0, b.0));
            for &(v, m) in &heap.h {
                kept.put(m, i, v);
            }
        }
    }
    Ok(kept.into_series(input))
}

/// The input series that `topk`/`bottomk`/`limitk`/`limit_ratio` keep, each
/// with its values at the steps where it was kept, in the order first kept.
struct Kept {
    /// By input position.
    vals: Vec<Option<Vec<Option<f64>>>>,
    order: Vec<usize>,
    steps: usize,
}

impl Kept {
    fn new(series: usize, steps: usize) -> Kept {
        Kept {
            vals: vec![None; series],
            order: Vec::new(),
            steps,
        }
    }

    /// Keeps input series `m` at step `i` with value `v`.
    fn put(&mut self, m: usize, i: usize, v: f64) {
        let (order, steps) = (&mut self.order, self.steps);
        let slot = self.vals[m].get_or_insert_with(|| {
            order.push(m);
            vec![None; steps]
        });
        slot[i] = Some(v);
    }

    fn into_series(mut self, input: Vec<Sv>) -> Vec<Sv> {
        let mut input: Vec<Option<Sv>> = input.into_iter().map(Some).collect();
        self.order
            .into_iter()
            .filter_map(|m| {
                let s = input[m].take()?;
                Some(Sv {
                    labels: s.labels,
                    vals: self.vals[m].take()?,
                })
            })
            .collect()
    }
}

/// Checks a `topk`/`bottomk`/`limitk` parameter as Prometheus converts it.
fn k_of(p: f64) -> Result<i64> {
    if p.is_nan() || !(-9.223372036854776e18..9.223372036854776e18).contains(&p) {
        return Err(QueryError::Execution(format!(
            "Scalar value {} overflows int64",
            crate::gocompat::format_value(p)
        )));
    }
    Ok(p as i64)
}

/// Prometheus' `labels.Hash`: xxhash64 of every name and value, each followed
/// by 0xff. `limit_ratio` keeps a series by this hash, so it keeps the same
/// series as Prometheus.
fn prometheus_hash(l: &Labels) -> u64 {
    let mut h = xxhash_rust::xxh64::Xxh64::new(0);
    for x in l.iter() {
        h.update(x.name.as_bytes());
        h.update(&[0xff]);
        h.update(x.value.as_bytes());
        h.update(&[0xff]);
    }
    h.digest()
}

/// `limitk(k, v)`: per step and group, the first `k` series with a value (in
/// input order); `limit_ratio(r, v)`: per step, the series whose label hash,
/// as a fraction of the largest hash, is below `r` (`r` >= 0) or at least
/// `1 + r` (`r` < 0), so the same series at every step. Both keep the input
/// series' labels and values (Prometheus 2.55, experimental there).
fn limit(
    ev: &Ev<'_>,
    grouping: &Grouping<'_>,
    ratio: bool,
    param: &[f64],
    input: Vec<Sv>,
    g: &Grid,
) -> Result<Vec<Sv>> {
    let groups = group_members(grouping, &input);
    let mut kept = Kept::new(input.len(), g.n);
    let offsets: Vec<f64> = if ratio {
        input
            .iter()
            .map(|s| prometheus_hash(&s.labels) as f64 / u64::MAX as f64)
            .collect()
    } else {
        Vec::new()
    };
    for (i, &p) in param.iter().enumerate().take(g.n) {
        if ratio {
            if p.is_nan() {
                return Err(QueryError::Execution("Ratio value NaN is NaN".into()));
            }
            if p == 0.0 {
                continue;
            }
            let r = p.clamp(-1.0, 1.0);
            if r != p {
                ev.warn(format!(
                    "PromQL warning: ratio value should be between -1 and 1, got {}, capping to {}",
                    format_float(p, 'g', -1),
                    format_float(r, 'g', -1)
                ));
            }
            for (_, members) in &groups {
                for &m in members {
                    let Some(v) = input[m].vals[i] else { continue };
                    let off = offsets[m];
                    if (r >= 0.0 && off < r) || (r < 0.0 && off >= 1.0 + r) {
                        kept.put(m, i, v);
                    }
                }
            }
        } else {
            let k = k_of(p)?;
            if k < 1 {
                continue;
            }
            let k = k.min(input.len() as i64) as usize;
            for (_, members) in &groups {
                let mut taken = 0;
                for &m in members {
                    if taken == k {
                        break;
                    }
                    if let Some(v) = input[m].vals[i] {
                        kept.put(m, i, v);
                        taken += 1;
                    }
                }
            }
        }
    }
    Ok(kept.into_series(input))
}

fn count_values(
    ev: &Ev<'_>,
    grouping: &Grouping<'_>,
    label: &str,
    e: &Expr,
    g: &Grid,
) -> Result<Vec<Sv>> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<(Labels, Vec<u32>)> = Vec::new();
    ev.stream(e, g, &mut |s: Sv| {
        let key = grouping.key(&s.labels);
        for (i, v) in s.vals.iter().enumerate() {
            let Some(v) = *v else { continue };
            let l = key.with(label, &format_float(v, 'f', -1));
            let gi = match index.get(&l) {
                Some(&gi) => gi,
                None => {
                    ev.hold(g.n)?;
                    ev.hold_bytes(g.n * 4 + labels_bytes(&l))?;
                    index.insert(l.clone(), out.len());
                    out.push((l, vec![0; g.n]));
                    out.len() - 1
                }
            };
            out[gi].1[i] += 1;
        }
        Ok(())
    })?;
    Ok(out
        .into_iter()
        .map(|(labels, counts)| Sv {
            labels,
            vals: counts
                .into_iter()
                .map(|c| if c == 0 { None } else { Some(c as f64) })
                .collect(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_g_formats_as_go() {
        for (v, want) in [
            (1.1, "1.1"),
            (-1.1, "-1.1"),
            (1.0, "1"),
            (-1.0, "-1"),
            (100000.0, "100000"),
            (1e6, "1e+06"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (-2.5e300, "-2.5e+300"),
            (f64::INFINITY, "+Inf"),
        ] {
            assert_eq!(format_float(v, 'g', -1), want, "{v}");
        }
    }

    #[test]
    fn prometheus_hash_is_xxhash64_of_names_and_values() {
        // xxhash64("a\xff1\xff") with seed 0, as Go's xxhash.Sum64 gives it.
        let l = Labels::new([("a", "1")]).unwrap_or_default();
        let mut b = Vec::new();
        b.extend_from_slice(b"a\xff1\xff");
        assert_eq!(prometheus_hash(&l), xxhash_rust::xxh64::xxh64(&b, 0));
        assert_eq!(
            xxhash_rust::xxh64::xxh64(b"", 0),
            0xef46_db37_51d8_e999,
            "the reference xxhash64 of nothing"
        );
    }
}
