//! The evaluator: every expression is evaluated over a grid of steps at
//! once (an instant query is a grid of one step). Instant vectors are
//! dense per series (`Option<f64>` per step); series flow through
//! element-wise nodes one at a time ([`Ev::stream`]) so that an
//! aggregation over a function over a selector never holds all inputs.
//!
//! Semantics follow Prometheus 2.x: range windows and the lookback window
//! are closed at both ends ([`window_start`] is the one place that says so).

use super::parse;
use super::value::{is_stale, QueryError, QueryResult, RangeSeries, Sample, Value};
use super::{aggregate, binary, functions};
use promql_parser::label::MatchOp;
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{AtModifier, Expr, Offset, SubqueryExpr, VectorSelector};
use sonde_engine::db::Db;
use sonde_engine::labels::{Labels, MatchType, Matcher, METRIC_NAME};
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Maximum points per series a range query may ask for (Prometheus' limit).
pub const MAX_POINTS_PER_SERIES: i64 = 11_000;

/// Engine settings (from the `--query.*` flags).
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// How far back an instant selector looks for a sample (`--query.lookback-delta`).
    pub lookback_delta_ms: i64,
    /// Most samples a query may hold in memory at once (`--query.max-samples`).
    pub max_samples: usize,
    /// Most bytes a query's intermediate results may take
    /// (`--query.max-memory-per-query`): series are evaluated over the whole
    /// step grid, so sparse series over a long range cost memory that
    /// `max_samples`, which counts only present points, does not see.
    pub max_memory_bytes: usize,
    /// Longest a query may run (`--query.timeout`).
    pub timeout: Duration,
    /// Step of a subquery written without one (`[10m:]`): Prometheus uses the
    /// global evaluation interval, 1 m by default.
    pub default_subquery_step_ms: i64,
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            lookback_delta_ms: 5 * 60_000,
            max_samples: 50_000_000,
            max_memory_bytes: 1 << 30,
            timeout: Duration::from_secs(120),
            default_subquery_step_ms: 60_000,
        }
    }
}

/// The PromQL engine: stateless apart from its options; cheap to share.
#[derive(Debug, Clone, Default)]
pub struct Engine {
    opts: EngineOptions,
}

pub(crate) type Result<T> = std::result::Result<T, QueryError>;

/// The start of the window that ends at `end` and spans `range`: Prometheus
/// 2.x includes a sample exactly at `end - range` (3.x excludes it).
#[inline]
pub(crate) fn window_start(end: i64, range: i64) -> i64 {
    end - range
}

impl Engine {
    /// An engine with these options.
    pub fn new(opts: EngineOptions) -> Engine {
        Engine { opts }
    }

    /// Its options.
    pub fn options(&self) -> &EngineOptions {
        &self.opts
    }

    /// Evaluates `query` at `t_ms`.
    pub fn instant_query(&self, db: &Db, query: &str, t_ms: i64) -> Result<QueryResult> {
        self.instant_query_timeout(db, query, t_ms, self.opts.timeout)
    }

    /// Evaluates `query` from `start_ms` to `end_ms` every `step_ms`.
    pub fn range_query(
        &self,
        db: &Db,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
    ) -> Result<QueryResult> {
        self.range_query_timeout(db, query, start_ms, end_ms, step_ms, self.opts.timeout)
    }

    /// [`Engine::instant_query`] with a timeout (capped by the engine's).
    pub fn instant_query_timeout(
        &self,
        db: &Db,
        query: &str,
        t_ms: i64,
        timeout: Duration,
    ) -> Result<QueryResult> {
        let expr = parse::parse(query)?;
        self.exec(db, &expr, Grid::instant(t_ms), true, timeout, t_ms)
    }

    /// Evaluates an already parsed expression at `t_ms` (rule evaluation).
    pub fn instant_query_expr(&self, db: &Db, expr: &Expr, t_ms: i64) -> Result<QueryResult> {
        self.exec(db, expr, Grid::instant(t_ms), true, self.opts.timeout, t_ms)
    }

    /// [`Engine::range_query`] with a timeout (capped by the engine's).
    pub fn range_query_timeout(
        &self,
        db: &Db,
        query: &str,
        start_ms: i64,
        end_ms: i64,
        step_ms: i64,
        timeout: Duration,
    ) -> Result<QueryResult> {
        if step_ms <= 0 {
            return Err(QueryError::BadData(
                "zero or negative query resolution step widths are not accepted. Try a positive integer".into(),
            ));
        }
        if end_ms < start_ms {
            return Err(QueryError::BadData(
                "end timestamp must not be before start time".into(),
            ));
        }
        if (end_ms - start_ms) / step_ms > MAX_POINTS_PER_SERIES {
            return Err(QueryError::BadData(
                "exceeded maximum resolution of 11,000 points per timeseries. Try decreasing the query resolution (?step=XX)".into(),
            ));
        }
        let expr = parse::parse(query)?;
        match expr.value_type() {
            ValueType::Scalar | ValueType::Vector => {}
            t => {
                return Err(QueryError::BadData(format!(
                "invalid expression type \"{}\" for range query, must be Scalar or instant Vector",
                type_name(t)
            )))
            }
        }
        let n = ((end_ms - start_ms) / step_ms + 1) as usize;
        let grid = Grid {
            start: start_ms,
            end: start_ms + (n as i64 - 1) * step_ms,
            step: step_ms,
            n,
        };
        self.exec(db, &expr, grid, false, timeout, end_ms)
    }

    fn exec(
        &self,
        db: &Db,
        expr: &Expr,
        grid: Grid,
        instant: bool,
        timeout: Duration,
        end_ms: i64,
    ) -> Result<QueryResult> {
        let timeout = timeout.min(self.opts.timeout);
        let ev = Ev {
            db,
            lookback: self.opts.lookback_delta_ms,
            deadline: Instant::now() + timeout,
            timeout,
            max_samples: self.opts.max_samples,
            samples: Cell::new(0),
            max_bytes: self.opts.max_memory_bytes,
            bytes: Cell::new(0),
            sub_step: self.opts.default_subquery_step_ms.max(1),
            q_start: grid.start,
            // `@ end()` is the requested end, not the last step on the grid.
            q_end: end_ms,
            warnings: RefCell::new(Vec::new()),
        };
        let val = ev.eval(expr, &grid, true)?;
        let value = if instant {
            let t = grid.start;
            match val {
                Val::Scalar(v) => Value::Scalar { t_ms: t, v: v[0] },
                Val::Str(s) => Value::String { t_ms: t, s },
                Val::Vector(vs) => Value::Vector(
                    vs.into_iter()
                        .filter_map(|s| {
                            s.vals[0].map(|v| Sample {
                                labels: s.labels,
                                t_ms: t,
                                v,
                            })
                        })
                        .collect(),
                ),
                Val::Matrix(m) => Value::Matrix(m),
            }
        } else {
            let mut out =
                match val {
                    Val::Scalar(v) => vec![RangeSeries {
                        labels: Labels::default(),
                        points: v
                            .into_iter()
                            .enumerate()
                            .map(|(i, v)| (grid.ts(i), v))
                            .collect(),
                    }],
                    Val::Vector(vs) => vs
                        .into_iter()
                        .map(|s| RangeSeries {
                            labels: s.labels,
                            points: s
                                .vals
                                .iter()
                                .enumerate()
                                .filter_map(|(i, v)| v.map(|v| (grid.ts(i), v)))
                                .collect(),
                        })
                        .filter(|s| !s.points.is_empty())
                        .collect(),
                    Val::Str(_) | Val::Matrix(_) => return Err(QueryError::BadData(
                        "invalid expression type for range query, must be Scalar or instant Vector"
                            .into(),
                    )),
                };
            out.sort_by(|a, b| a.labels.cmp_labels(&b.labels));
            Value::Matrix(out)
        };
        Ok(QueryResult {
            value,
            warnings: ev.warnings.into_inner(),
        })
    }
}

pub(crate) fn type_name(t: ValueType) -> &'static str {
    match t {
        ValueType::Scalar => "scalar",
        ValueType::Vector => "instant vector",
        ValueType::Matrix => "range vector",
        ValueType::String => "string",
    }
}

/// The evaluation steps.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Grid {
    pub start: i64,
    pub end: i64,
    pub step: i64,
    pub n: usize,
}

impl Grid {
    pub fn instant(t: i64) -> Grid {
        Grid {
            start: t,
            end: t,
            step: 1,
            n: 1,
        }
    }
    #[inline]
    pub fn ts(&self, i: usize) -> i64 {
        self.start + i as i64 * self.step
    }
}

/// One series of an instant vector over the grid.
#[derive(Debug, Clone)]
pub(crate) struct Sv {
    pub labels: Labels,
    pub vals: Vec<Option<f64>>,
}

/// Queries refused by `--query.max-samples` since start.
pub static REFUSED_SAMPLES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Queries refused by `--query.max-memory-per-query` since start.
pub static REFUSED_MEMORY: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Bytes a label set takes, roughly (strings plus per-label overhead).
pub(crate) fn labels_bytes(l: &Labels) -> usize {
    l.iter()
        .map(|x| x.name.len() + x.value.len() + 32)
        .sum::<usize>()
        + 16
}

/// Bytes an evaluated series takes: one slot per step, present or not.
pub(crate) fn sv_bytes(s: &Sv) -> usize {
    s.vals.len() * std::mem::size_of::<Option<f64>>() + labels_bytes(&s.labels)
}

/// A value during evaluation.
#[derive(Debug)]
pub(crate) enum Val {
    Scalar(Vec<f64>),
    Str(String),
    Vector(Vec<Sv>),
    /// Only as the result of an instant query of a range selector or subquery.
    Matrix(Vec<RangeSeries>),
}

/// Where a range argument's windows end: fixed by `@`, or at each step; minus the offset.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Windows {
    pub at: Option<i64>,
    pub offset: i64,
    pub range: i64,
}

impl Windows {
    #[inline]
    pub fn end(&self, g: &Grid, i: usize) -> i64 {
        self.at.unwrap_or_else(|| g.ts(i)) - self.offset
    }
    /// Earliest and latest sample time any window needs.
    pub fn span(&self, g: &Grid) -> (i64, i64) {
        match self.at {
            Some(a) => (window_start(a - self.offset, self.range), a - self.offset),
            None => (
                window_start(g.start - self.offset, self.range),
                g.end - self.offset,
            ),
        }
    }
}

/// Evaluation state of one query.
pub(crate) struct Ev<'a> {
    db: &'a Db,
    pub lookback: i64,
    deadline: Instant,
    timeout: Duration,
    max_samples: usize,
    samples: Cell<usize>,
    max_bytes: usize,
    /// Bytes of intermediate results built so far (never given back: an
    /// upper bound of what is held at once).
    bytes: Cell<usize>,
    sub_step: i64,
    pub q_start: i64,
    pub q_end: i64,
    pub warnings: RefCell<Vec<String>>,
}

pub(crate) type Sink<'s> = dyn FnMut(Sv) -> Result<()> + 's;

/// Turns one stored series' points into a result (run on worker threads).
pub(crate) type SeriesMap<'s, T> = dyn Fn(Labels, &[i64], &[f64]) -> Result<Option<T>> + Sync + 's;

/// Receives one series' points (labels, times, values) of a range argument.
pub(crate) type PointsSink<'s> = dyn FnMut(Labels, &[i64], &[f64]) -> Result<()> + 's;

impl<'a> Ev<'a> {
    pub fn check_deadline(&self) -> Result<()> {
        if Instant::now() > self.deadline {
            return Err(QueryError::Timeout(format!("{:?}", self.timeout)));
        }
        Ok(())
    }

    /// Adds a warning (once).
    pub fn warn(&self, msg: String) {
        let mut w = self.warnings.borrow_mut();
        if !w.contains(&msg) {
            w.push(msg);
        }
    }

    /// Accounts for `n` more samples held in memory.
    pub fn hold(&self, n: usize) -> Result<()> {
        let c = self.samples.get() + n;
        self.samples.set(c);
        if c > self.max_samples {
            REFUSED_SAMPLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(QueryError::TooManySamples);
        }
        Ok(())
    }

    /// Accounts for `n` more bytes of intermediate results.
    pub fn hold_bytes(&self, n: usize) -> Result<()> {
        let c = self.bytes.get().saturating_add(n);
        self.bytes.set(c);
        if c > self.max_bytes {
            REFUSED_MEMORY.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(QueryError::TooMuchMemory(self.max_bytes as u64));
        }
        Ok(())
    }

    pub fn release(&self, n: usize) {
        self.samples.set(self.samples.get().saturating_sub(n));
    }

    pub fn at_ms(&self, at: &Option<AtModifier>) -> Option<i64> {
        at.as_ref().map(|a| match a {
            AtModifier::Start => self.q_start,
            AtModifier::End => self.q_end,
            AtModifier::At(st) => system_time_ms(*st),
        })
    }

    /// Evaluates `e` over `g`. `top` is true for the query's root (where a
    /// range vector may be returned by an instant query).
    pub fn eval(&self, e: &Expr, g: &Grid, top: bool) -> Result<Val> {
        self.check_deadline()?;
        match e {
            Expr::NumberLiteral(n) => Ok(Val::Scalar(vec![n.val; g.n])),
            Expr::StringLiteral(s) => Ok(Val::Str(s.val.clone())),
            Expr::Paren(p) => self.eval(&p.expr, g, top),
            Expr::Unary(u) => match self.eval(&u.expr, g, false)? {
                Val::Scalar(mut v) => {
                    v.iter_mut().for_each(|x| *x = -*x);
                    Ok(Val::Scalar(v))
                }
                Val::Vector(mut vs) => {
                    for s in &mut vs {
                        s.labels = drop_name(&s.labels);
                        s.vals.iter_mut().flatten().for_each(|x| *x = -*x);
                    }
                    Ok(Val::Vector(merge_same_labels(vs)?))
                }
                _ => Err(QueryError::Execution(
                    "unary expression only allowed on expressions of type scalar or instant vector"
                        .into(),
                )),
            },
            Expr::Binary(b) => binary::eval_binary(self, b, g),
            Expr::Aggregate(a) => Ok(Val::Vector(aggregate::eval_aggregate(self, a, g)?)),
            Expr::Call(c) if c.func.return_type == ValueType::Scalar => {
                Ok(Val::Scalar(functions::eval_scalar_call(self, c, g)?))
            }
            Expr::VectorSelector(_) | Expr::Call(_) => Ok(Val::Vector(self.eval_vector(e, g)?)),
            Expr::MatrixSelector(_) | Expr::Subquery(_) => {
                if !top || g.n != 1 {
                    return Err(QueryError::Execution(
                        "a range vector can only be the result of an instant query or a function argument"
                            .into(),
                    ));
                }
                let mut out = Vec::new();
                let w = self.range_arg(e, g, &mut |labels, ts, vs| {
                    self.hold(ts.len())?;
                    self.hold_bytes(ts.len() * 16 + labels_bytes(&labels))?;
                    out.push(RangeSeries {
                        labels,
                        points: ts.iter().copied().zip(vs.iter().copied()).collect(),
                    });
                    Ok(())
                })?;
                // Keep only the window of the (single) step.
                let end = w.end(g, 0);
                let start = window_start(end, w.range);
                for s in &mut out {
                    s.points.retain(|p| p.0 >= start && p.0 <= end);
                }
                out.retain(|s| !s.points.is_empty());
                out.sort_by(|a, b| a.labels.cmp_labels(&b.labels));
                Ok(Val::Matrix(out))
            }
            Expr::Extension(_) => Err(QueryError::Execution(
                "extension expressions are not supported".into(),
            )),
        }
    }

    /// Evaluates to a scalar per step.
    pub fn eval_scalar(&self, e: &Expr, g: &Grid) -> Result<Vec<f64>> {
        match self.eval(e, g, false)? {
            Val::Scalar(v) => Ok(v),
            other => Err(QueryError::Execution(format!(
                "expected scalar, got {}",
                val_name(&other)
            ))),
        }
    }

    /// Evaluates an instant-vector expression, merging series that end up
    /// with the same labels at different steps (an error at the same step).
    pub fn eval_vector(&self, e: &Expr, g: &Grid) -> Result<Vec<Sv>> {
        let mut out = Vec::new();
        self.stream(e, g, &mut |s: Sv| {
            self.hold(s.vals.iter().filter(|v| v.is_some()).count())?;
            self.hold_bytes(sv_bytes(&s))?;
            out.push(s);
            Ok(())
        })?;
        merge_same_labels(out)
    }

    /// Feeds the series of an instant-vector expression to `sink` one at a time.
    pub fn stream(&self, e: &Expr, g: &Grid, sink: &mut Sink<'_>) -> Result<()> {
        match e {
            Expr::Paren(p) => self.stream(&p.expr, g, sink),
            Expr::VectorSelector(vs) => self.vector_selector(vs, g, false, sink),
            Expr::Call(c) if c.func.return_type == ValueType::Vector => {
                functions::stream_call(self, c, g, sink)
            }
            Expr::Binary(b) if binary::is_streamable(b) => {
                binary::stream_scalar_binary(self, b, g, sink)
            }
            _ => match self.eval(e, g, false)? {
                Val::Vector(vs) => {
                    for s in vs {
                        sink(s)?;
                    }
                    Ok(())
                }
                other => Err(QueryError::Execution(format!(
                    "expected instant vector, got {}",
                    val_name(&other)
                ))),
            },
        }
    }

    /// When the query must stop.
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Like [`Ev::load`], but decodes the series and applies `map` on all
    /// cores, in batches; `each` then gets the results in series order.
    /// With `drop_stale`, staleness markers are removed before `map`.
    pub fn load_par<T: Send>(
        &self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        drop_stale: bool,
        map: &SeriesMap<'_, T>,
        each: &mut dyn FnMut(T) -> Result<()>,
    ) -> Result<()> {
        let matchers = to_matchers(vs)?;
        let q = self
            .db
            .querier(mint, maxt)
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let series = q
            .select(&matchers)
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(8);
        // Each thread decodes into its own vectors, reused from series to series.
        type Bufs = (Vec<i64>, Vec<f64>);
        let run = |s: &sonde_engine::query::Series, b: &mut Bufs| -> Result<(usize, Option<T>)> {
            let (ts, vals) = b;
            ts.clear();
            vals.clear();
            s.read_into(ts, vals)
                .map_err(|e| QueryError::Internal(e.to_string()))?;
            if drop_stale && any_stale(vals) {
                remove_stale(ts, vals);
            }
            let n = ts.len();
            Ok((n, map(s.labels.clone(), ts, vals)?))
        };
        // Results go to `each` in series order (sums must not depend on timing).
        let mut deliver = |r: Result<(usize, Option<T>)>| -> Result<()> {
            let (n, t) = r?;
            self.hold(n)?;
            self.release(n);
            match t {
                Some(t) => each(t),
                None => Ok(()),
            }
        };
        const CHUNK: usize = 64;
        if workers <= 1 || series.len() < 2 * CHUNK {
            let mut bufs = Bufs::default();
            for (i, s) in series.iter().enumerate() {
                if i % CHUNK == 0 {
                    self.check_deadline()?;
                }
                deliver(run(s, &mut bufs))?;
            }
            return Ok(());
        }
        // A pipeline: the workers take chunks in turn and keep going while
        // this thread feeds the finished ones, in order, to `each` (which
        // usually aggregates), so no core waits for the slowest of a batch.
        let next = std::sync::atomic::AtomicUsize::new(0);
        let stop = std::sync::atomic::AtomicBool::new(false);
        let (tx, rx) =
            std::sync::mpsc::sync_channel::<(usize, Vec<Result<(usize, Option<T>)>>)>(workers * 4);
        let series = &series;
        std::thread::scope(|sc| {
            for _ in 0..workers {
                let (tx, run, next, stop) = (tx.clone(), &run, &next, &stop);
                sc.spawn(move || {
                    use std::sync::atomic::Ordering::Relaxed;
                    let mut bufs = Bufs::default();
                    while !stop.load(Relaxed) {
                        let i = next.fetch_add(1, Relaxed);
                        let Some(part) = series.chunks(CHUNK).nth(i) else {
                            break;
                        };
                        let done = part.iter().map(|s| run(s, &mut bufs)).collect();
                        if tx.send((i, done)).is_err() {
                            break;
                        }
                    }
                });
            }
            drop(tx);
            let mut waiting = std::collections::BTreeMap::new();
            let mut want = 0usize;
            let mut result = Ok(());
            for (i, part) in rx.iter() {
                if result.is_err() {
                    continue; // draining until the workers see `stop`
                }
                waiting.insert(i, part);
                while let Some(part) = waiting.remove(&want) {
                    want += 1;
                    result = self
                        .check_deadline()
                        .and_then(|()| part.into_iter().try_for_each(&mut deliver));
                    if result.is_err() {
                        stop.store(true, std::sync::atomic::Ordering::Relaxed);
                        break;
                    }
                }
            }
            if result.is_ok() && want * CHUNK < series.len() {
                result = Err(QueryError::Internal("a query worker panicked".into()));
            }
            result
        })
    }

    /// Selects the series of `vs` with samples in `[mint, maxt]`, one at a time.
    pub fn load(
        &self,
        vs: &VectorSelector,
        mint: i64,
        maxt: i64,
        each: &mut dyn FnMut(Labels, Vec<i64>, Vec<f64>) -> Result<()>,
    ) -> Result<()> {
        let matchers = to_matchers(vs)?;
        let q = self
            .db
            .querier(mint, maxt)
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        let series = q
            .select(&matchers)
            .map_err(|e| QueryError::Internal(e.to_string()))?;
        for s in series {
            self.check_deadline()?;
            let (mut ts, mut vals) = (Vec::new(), Vec::new());
            s.read_into(&mut ts, &mut vals)
                .map_err(|e| QueryError::Internal(e.to_string()))?;
            let n = ts.len();
            self.hold(n)?;
            let r = each(s.labels, ts, vals);
            self.release(n);
            r?;
        }
        Ok(())
    }

    /// An instant selector over the grid; with `timestamps`, the value is the
    /// sample's own time in seconds and the name is dropped (`timestamp(x)`).
    pub fn vector_selector(
        &self,
        vs: &VectorSelector,
        g: &Grid,
        timestamps: bool,
        sink: &mut Sink<'_>,
    ) -> Result<()> {
        let at = self.at_ms(&vs.at);
        let off = offset_ms(&vs.offset);
        let (mint, maxt) = match at {
            Some(a) => (a - off - self.lookback, a - off),
            None => (g.start - off - self.lookback, g.end - off),
        };
        let lookback = self.lookback;
        let map = |labels: Labels, ts: &[i64], vals: &[f64]| -> Result<Option<Sv>> {
            let mut out = vec![None; g.n];
            let pick = |j: usize, rf: i64| -> Option<f64> {
                // j = number of samples at or before rf.
                if j == 0 {
                    return None;
                }
                let k = j - 1;
                if ts[k] < rf - lookback || is_stale(vals[k]) {
                    return None;
                }
                Some(if timestamps {
                    ts[k] as f64 / 1000.0
                } else {
                    vals[k]
                })
            };
            let mut any = false;
            if let Some(a) = at {
                let rf = a - off;
                let j = ts.partition_point(|&t| t <= rf);
                if let Some(v) = pick(j, rf) {
                    out.iter_mut().for_each(|o| *o = Some(v));
                    any = true;
                }
            } else {
                let mut j = 0;
                for (i, o) in out.iter_mut().enumerate() {
                    let rf = g.ts(i) - off;
                    while j < ts.len() && ts[j] <= rf {
                        j += 1;
                    }
                    *o = pick(j, rf);
                    any |= o.is_some();
                }
            }
            if !any {
                return Ok(None);
            }
            let labels = if timestamps {
                drop_name(&labels)
            } else {
                labels
            };
            Ok(Some(Sv { labels, vals: out }))
        };
        self.load_par(vs, mint, maxt, false, &map, &mut |s| sink(s))
    }

    /// The window geometry of a range argument (matrix selector or subquery).
    pub fn windows(&self, e: &Expr) -> Result<Windows> {
        match e {
            Expr::Paren(p) => self.windows(&p.expr),
            Expr::MatrixSelector(ms) => Ok(Windows {
                at: self.at_ms(&ms.vs.at),
                offset: offset_ms(&ms.vs.offset),
                range: ms.range.as_millis() as i64,
            }),
            Expr::Subquery(sq) => Ok(Windows {
                at: self.at_ms(&sq.at),
                offset: offset_ms(&sq.offset),
                range: sq.range.as_millis() as i64,
            }),
            _ => Err(QueryError::Execution(format!(
                "expected a range vector, got {}",
                type_name(e.value_type())
            ))),
        }
    }

    /// Feeds the points of a range argument (matrix selector or subquery,
    /// possibly in parentheses) to `each`, per series, covering every window
    /// of the grid; stale markers are left out. Returns the windows' geometry.
    pub fn range_arg(&self, e: &Expr, g: &Grid, each: &mut PointsSink<'_>) -> Result<Windows> {
        match e {
            Expr::Paren(p) => self.range_arg(&p.expr, g, each),
            Expr::MatrixSelector(ms) => {
                let w = self.windows(e)?;
                let (mint, maxt) = w.span(g);
                self.load(&ms.vs, mint, maxt, &mut |labels, mut ts, mut vals| {
                    if any_stale(&vals) {
                        remove_stale(&mut ts, &mut vals);
                    }
                    each(labels, &ts, &vals)
                })?;
                Ok(w)
            }
            Expr::Subquery(sq) => self.subquery(sq, g, each),
            _ => Err(QueryError::Execution(format!(
                "expected a range vector, got {}",
                type_name(e.value_type())
            ))),
        }
    }

    fn subquery(&self, sq: &SubqueryExpr, g: &Grid, each: &mut PointsSink<'_>) -> Result<Windows> {
        let w = Windows {
            at: self.at_ms(&sq.at),
            offset: offset_ms(&sq.offset),
            range: sq.range.as_millis() as i64,
        };
        let step = sq
            .step
            .map(|d| d.as_millis() as i64)
            .filter(|&s| s > 0)
            .unwrap_or(self.sub_step);
        let (lo, hi) = w.span(g);
        // First multiple of the step at or after the earliest window start.
        let start = lo.div_euclid(step) * step + if lo.rem_euclid(step) == 0 { 0 } else { step };
        if start > hi {
            return Ok(w);
        }
        let n = (hi - start) / step + 1;
        // The inner grid alone may be too big to hold.
        if n > self.max_samples as i64 {
            REFUSED_SAMPLES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(QueryError::TooManySamples);
        }
        let n = n as usize;
        let inner = Grid {
            start,
            end: start + (n as i64 - 1) * step,
            step,
            n,
        };
        let mut ts = Vec::with_capacity(n);
        let mut vs = Vec::with_capacity(n);
        match self.eval(&sq.expr, &inner, false)? {
            Val::Vector(series) => {
                for s in series {
                    ts.clear();
                    vs.clear();
                    for (i, v) in s.vals.iter().enumerate() {
                        if let Some(v) = v {
                            ts.push(inner.ts(i));
                            vs.push(*v);
                        }
                    }
                    if !ts.is_empty() {
                        each(s.labels, &ts, &vs)?;
                    }
                }
            }
            Val::Scalar(v) => {
                for (i, v) in v.iter().enumerate() {
                    ts.push(inner.ts(i));
                    vs.push(*v);
                }
                each(Labels::default(), &ts, &vs)?;
            }
            other => {
                return Err(QueryError::Execution(format!(
                    "subquery is only allowed on instant vector, got {}",
                    val_name(&other)
                )))
            }
        }
        Ok(w)
    }
}

/// Whether any value is a staleness marker. Markers are NaNs: the NaN test
/// runs branch-free (it vectorizes) and the exact test only if one is found.
fn any_stale(vals: &[f64]) -> bool {
    vals.iter().fold(false, |a, v| a | v.is_nan()) && vals.iter().any(|v| is_stale(*v))
}

/// Removes the staleness markers (and their timestamps) in place.
fn remove_stale(ts: &mut Vec<i64>, vals: &mut Vec<f64>) {
    let mut k = 0;
    for i in 0..ts.len() {
        if !is_stale(vals[i]) {
            ts[k] = ts[i];
            vals[k] = vals[i];
            k += 1;
        }
    }
    ts.truncate(k);
    vals.truncate(k);
}

pub(crate) fn val_name(v: &Val) -> &'static str {
    match v {
        Val::Scalar(_) => "scalar",
        Val::Str(_) => "string",
        Val::Vector(_) => "instant vector",
        Val::Matrix(_) => "range vector",
    }
}

pub(crate) fn offset_ms(o: &Option<Offset>) -> i64 {
    match o {
        None => 0,
        Some(Offset::Pos(d)) => d.as_millis() as i64,
        Some(Offset::Neg(d)) => -(d.as_millis() as i64),
    }
}

/// Milliseconds since the epoch (negative before it).
pub(crate) fn system_time_ms(st: SystemTime) -> i64 {
    match st.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_millis() as i64,
        Err(e) => -(e.duration().as_millis() as i64),
    }
}

/// The engine matchers of a selector (its name becomes a `__name__` matcher).
pub(crate) fn to_matchers(vs: &VectorSelector) -> Result<Vec<Matcher>> {
    if !vs.matchers.or_matchers.is_empty() {
        return Err(QueryError::Execution(
            "`or` inside a selector's braces is not supported (Prometheus 3 syntax)".into(),
        ));
    }
    let mut out = Vec::with_capacity(vs.matchers.matchers.len() + 1);
    if let Some(name) = &vs.name {
        out.push(Matcher::eq(METRIC_NAME, name.clone()));
    }
    for m in &vs.matchers.matchers {
        let kind = match &m.op {
            MatchOp::Equal => MatchType::Equal,
            MatchOp::NotEqual => MatchType::NotEqual,
            MatchOp::Re(_) => MatchType::Regex,
            MatchOp::NotRe(_) => MatchType::NotRegex,
        };
        out.push(
            Matcher::new(kind, m.name.clone(), m.value.clone())
                .map_err(|e| QueryError::BadData(e.to_string()))?,
        );
    }
    Ok(out)
}

/// Labels without `__name__`.
pub(crate) fn drop_name(l: &Labels) -> Labels {
    if l.get(METRIC_NAME).is_none() {
        return l.clone();
    }
    l.filter(|x| x.name.as_ref() != METRIC_NAME)
}

/// Merges series with equal labels whose steps do not overlap; overlapping
/// ones are Prometheus' "same labelset" error.
pub(crate) fn merge_same_labels(vs: Vec<Sv>) -> Result<Vec<Sv>> {
    if vs.len() < 2 {
        return Ok(vs);
    }
    let mut idx: HashMap<Labels, usize> = HashMap::with_capacity(vs.len());
    let mut out: Vec<Sv> = Vec::with_capacity(vs.len());
    for s in vs {
        match idx.get(&s.labels) {
            None => {
                idx.insert(s.labels.clone(), out.len());
                out.push(s);
            }
            Some(&i) => {
                let dst = &mut out[i];
                for (d, v) in dst.vals.iter_mut().zip(s.vals) {
                    if v.is_some() {
                        if d.is_some() {
                            return Err(dup_labelset());
                        }
                        *d = v;
                    }
                }
            }
        }
    }
    Ok(out)
}

pub(crate) fn dup_labelset() -> QueryError {
    QueryError::Execution("vector cannot contain metrics with the same labelset".into())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use sonde_engine::labels::Labels;

    /// `n` series, each with one sample, spread 10 s apart.
    fn sparse_store(dir: &std::path::Path, n: usize) -> Db {
        let db = Db::open(
            dir,
            sonde_engine::Options {
                background: false,
                retention_ms: None,
                max_future_ms: i64::MAX / 4,
                ..sonde_engine::Options::default()
            },
        )
        .unwrap();
        let mut a = db.appender();
        for i in 0..n {
            let l = Labels::new([("__name__", "sparse"), ("i", &i.to_string())]).unwrap();
            a.append(&l, i as i64 * 10_000, 1.0).unwrap();
        }
        a.commit().unwrap();
        db
    }

    #[test]
    fn sparse_series_over_a_long_range_hit_the_memory_limit_not_the_sample_limit() {
        let dir = tempfile::tempdir().unwrap();
        let db = sparse_store(dir.path(), 2_000);
        let engine = |max_memory_bytes| {
            Engine::new(EngineOptions {
                max_memory_bytes,
                ..EngineOptions::default()
            })
        };
        // 2,000 samples in all, but 2,000 series × 5,000 steps of slots.
        let q = |e: &Engine, query: &str| e.range_query(&db, query, 0, 50_000_000, 10_000);
        for query in [
            "sparse",
            "sparse * 2",
            "sparse * on(i) sparse",
            "sort(sparse)",
        ] {
            match q(&engine(16 << 20), query) {
                Err(QueryError::TooMuchMemory(limit)) => assert_eq!(limit, 16 << 20),
                other => panic!("{query}: expected the memory limit, got {other:?}"),
            }
        }
        assert!(REFUSED_MEMORY.load(std::sync::atomic::Ordering::Relaxed) >= 4);
        let msg = QueryError::TooMuchMemory(16 << 20).to_string();
        assert!(msg.contains("--query.max-memory-per-query"), "{msg}");
        // Aggregations hold one row per group, not per input series.
        let r = q(&engine(16 << 20), "sum(sparse)").unwrap();
        assert!(matches!(r.value, Value::Matrix(ref m) if m.len() == 1));
        // Under the limit the same query answers.
        let small = sparse_store(&dir.path().join("small"), 150);
        let r = engine(64 << 20)
            .range_query(&small, "sparse * 2", 0, 50_000_000, 10_000)
            .unwrap();
        assert!(matches!(r.value, Value::Matrix(ref m) if m.len() == 150));
    }
}
