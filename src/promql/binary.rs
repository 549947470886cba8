//! Binary operators: arithmetic, comparison (with and without `bool`), set
//! operators, and vector matching (`on`/`ignoring`, `group_left`/`group_right`)
//! with Prometheus' errors for ambiguous matches. Matching is done per step.

use super::eval::{
    drop_name, dup_labelset, merge_same_labels, sv_bytes, Ev, Grid, Result, Sink, Sv, Val,
};
use super::value::QueryError;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};
use sonde_engine::labels::{Labels, METRIC_NAME};
use std::collections::{HashMap, HashSet};

/// `op(l, r)`: the value and whether a comparison keeps the element.
#[inline]
fn apply(op: u16, l: f64, r: f64) -> Result<(f64, bool)> {
    Ok(match op {
        T_ADD => (l + r, true),
        T_SUB => (l - r, true),
        T_MUL => (l * r, true),
        T_DIV => (l / r, true),
        T_MOD => (l % r, true),
        T_POW => (l.powf(r), true),
        T_ATAN2 => (l.atan2(r), true),
        T_EQLC => (l, l == r),
        T_NEQ => (l, l != r),
        T_GTR => (l, l > r),
        T_LSS => (l, l < r),
        T_GTE => (l, l >= r),
        T_LTE => (l, l <= r),
        _ => {
            return Err(QueryError::Execution(format!(
                "operator {op} not allowed here"
            )))
        }
    })
}

fn is_comparison(op: u16) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

fn return_bool(b: &BinaryExpr) -> bool {
    b.modifier.as_ref().is_some_and(|m| m.return_bool)
}

/// A vector with a scalar: handled series by series.
pub(crate) fn is_streamable(b: &BinaryExpr) -> bool {
    let (l, r) = (b.lhs.value_type(), b.rhs.value_type());
    !b.op.is_set_operator()
        && matches!(
            (l, r),
            (ValueType::Vector, ValueType::Scalar) | (ValueType::Scalar, ValueType::Vector)
        )
}

pub(crate) fn stream_scalar_binary(
    ev: &Ev<'_>,
    b: &BinaryExpr,
    g: &Grid,
    sink: &mut Sink<'_>,
) -> Result<()> {
    let op = b.op.id();
    let scalar_left = b.lhs.value_type() == ValueType::Scalar;
    let (sexpr, vexpr) = if scalar_left {
        (&b.lhs, &b.rhs)
    } else {
        (&b.rhs, &b.lhs)
    };
    let sv = ev.eval_scalar(sexpr, g)?;
    let rb = return_bool(b);
    let cmp = is_comparison(op);
    let mut err = None;
    ev.stream(vexpr, g, &mut |mut s: Sv| {
        let mut any = false;
        for (i, slot) in s.vals.iter_mut().enumerate() {
            let Some(x) = *slot else { continue };
            let (l, r) = if scalar_left { (sv[i], x) } else { (x, sv[i]) };
            let (mut v, keep) = match apply(op, l, r) {
                Ok(t) => t,
                Err(e) => {
                    err = Some(e);
                    return Ok(());
                }
            };
            if cmp && scalar_left {
                v = x;
            }
            *slot = if rb {
                Some(if keep { 1.0 } else { 0.0 })
            } else if keep {
                Some(v)
            } else {
                None
            };
            any |= slot.is_some();
        }
        if any {
            if rb || !cmp {
                s.labels = drop_name(&s.labels);
            }
            sink(s)?;
        }
        Ok(())
    })?;
    match err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

pub(crate) fn eval_binary(ev: &Ev<'_>, b: &BinaryExpr, g: &Grid) -> Result<Val> {
    let op = b.op.id();
    let (lt, rt) = (b.lhs.value_type(), b.rhs.value_type());
    if lt == ValueType::Scalar && rt == ValueType::Scalar {
        let l = ev.eval_scalar(&b.lhs, g)?;
        let r = ev.eval_scalar(&b.rhs, g)?;
        let rb = return_bool(b);
        let mut out = Vec::with_capacity(g.n);
        for (x, y) in l.into_iter().zip(r) {
            let (v, keep) = apply(op, x, y)?;
            out.push(if is_comparison(op) && rb {
                if keep {
                    1.0
                } else {
                    0.0
                }
            } else {
                v
            });
        }
        return Ok(Val::Scalar(out));
    }
    if is_streamable(b) {
        let mut out = Vec::new();
        stream_scalar_binary(ev, b, g, &mut |s: Sv| {
            ev.hold_bytes(sv_bytes(&s))?;
            out.push(s);
            Ok(())
        })?;
        return Ok(Val::Vector(merge_same_labels(out)?));
    }
    let lhs = ev.eval_vector(&b.lhs, g)?;
    let rhs = ev.eval_vector(&b.rhs, g)?;
    let (on, names): (bool, Vec<String>) =
        match b.modifier.as_ref().and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(l)) => (true, l.labels.clone()),
            Some(LabelModifier::Exclude(l)) => (false, l.labels.clone()),
            None => (false, Vec::new()),
        };
    let sigf = |l: &Labels| -> Labels {
        if on {
            l.filter(|x| names.iter().any(|n| n == x.name.as_ref()))
        } else {
            l.filter(|x| {
                x.name.as_ref() != METRIC_NAME && !names.iter().any(|n| n == x.name.as_ref())
            })
        }
    };
    let out = match op {
        T_LAND | T_LOR | T_LUNLESS => set_op(op, lhs, rhs, &sigf, g),
        _ => {
            let card = b
                .modifier
                .as_ref()
                .map(|m| m.card.clone())
                .unwrap_or(VectorMatchCardinality::OneToOne);
            let out = match_op(ev, op, return_bool(b), on, &names, card, lhs, rhs, &sigf, g)?;
            ev.hold_bytes(out.iter().map(sv_bytes).sum())?;
            out
        }
    };
    Ok(Val::Vector(merge_same_labels(out)?))
}

/// Interns signatures: series index → signature id.
fn sig_ids(
    series: &[Sv],
    sigf: &dyn Fn(&Labels) -> Labels,
    table: &mut HashMap<Labels, usize>,
    sigs: &mut Vec<Labels>,
) -> Vec<usize> {
    series
        .iter()
        .map(|s| {
            let k = sigf(&s.labels);
            match table.get(&k) {
                Some(&i) => i,
                None => {
                    table.insert(k.clone(), sigs.len());
                    sigs.push(k);
                    sigs.len() - 1
                }
            }
        })
        .collect()
}

fn set_op(
    op: u16,
    lhs: Vec<Sv>,
    rhs: Vec<Sv>,
    sigf: &dyn Fn(&Labels) -> Labels,
    g: &Grid,
) -> Vec<Sv> {
    let mut table = HashMap::new();
    let mut sigs = Vec::new();
    let lid = sig_ids(&lhs, sigf, &mut table, &mut sigs);
    let rid = sig_ids(&rhs, sigf, &mut table, &mut sigs);
    let nsig = sigs.len();
    // present[sig] at the current step, on the side that filters.
    let mut mark = vec![usize::MAX; nsig];
    let mut lhs = lhs;
    let mut rhs = rhs;
    for i in 0..g.n {
        match op {
            T_LAND | T_LUNLESS => {
                for (k, s) in rhs.iter().enumerate() {
                    if s.vals[i].is_some() {
                        mark[rid[k]] = i;
                    }
                }
                for (k, s) in lhs.iter_mut().enumerate() {
                    if s.vals[i].is_some() {
                        let hit = mark[lid[k]] == i;
                        if hit != (op == T_LAND) {
                            s.vals[i] = None;
                        }
                    }
                }
            }
            _ => {
                for (k, s) in lhs.iter().enumerate() {
                    if s.vals[i].is_some() {
                        mark[lid[k]] = i;
                    }
                }
                for (k, s) in rhs.iter_mut().enumerate() {
                    if s.vals[i].is_some() && mark[rid[k]] == i {
                        s.vals[i] = None;
                    }
                }
            }
        }
    }
    let keep = |s: &Sv| s.vals.iter().any(|v| v.is_some());
    let mut out: Vec<Sv> = lhs.into_iter().filter(keep).collect();
    if op == T_LOR {
        out.extend(rhs.into_iter().filter(keep));
    }
    out
}

#[allow(clippy::too_many_arguments)]
fn match_op(
    ev: &Ev<'_>,
    op: u16,
    rb: bool,
    on: bool,
    names: &[String],
    card: VectorMatchCardinality,
    lhs: Vec<Sv>,
    rhs: Vec<Sv>,
    sigf: &dyn Fn(&Labels) -> Labels,
    g: &Grid,
) -> Result<Vec<Sv>> {
    let (include, swapped, one_to_one): (Vec<String>, bool, bool) = match &card {
        VectorMatchCardinality::OneToOne => (Vec::new(), false, true),
        VectorMatchCardinality::ManyToOne(l) => (l.labels.clone(), false, false),
        VectorMatchCardinality::OneToMany(l) => (l.labels.clone(), true, false),
        VectorMatchCardinality::ManyToMany => {
            return Err(QueryError::Execution(
                "many-to-many only allowed for set operators".into(),
            ))
        }
    };
    // `many` is the side whose every element can match; `one` must be unique per signature.
    let (many, one) = if swapped { (rhs, lhs) } else { (lhs, rhs) };
    let mut table = HashMap::new();
    let mut sigs = Vec::new();
    let mid = sig_ids(&many, sigf, &mut table, &mut sigs);
    let oid = sig_ids(&one, sigf, &mut table, &mut sigs);
    let nsig = sigs.len();
    let mut slot_step = vec![usize::MAX; nsig];
    let mut slot = vec![0usize; nsig];
    let mut matched_step = vec![usize::MAX; nsig];
    let mut out_index: HashMap<(usize, usize), usize> = HashMap::new();
    let mut out_by_labels: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<Sv> = Vec::new();
    let mut seen_many: HashSet<(usize, usize)> = HashSet::new();
    let drop = !is_comparison(op) || rb;
    for i in 0..g.n {
        ev.check_deadline()?;
        for (k, s) in one.iter().enumerate() {
            if s.vals[i].is_none() {
                continue;
            }
            let sig = oid[k];
            if slot_step[sig] == i {
                let side = if swapped { "left" } else { "right" };
                return Err(QueryError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    sigs[sig], s.labels, one[slot[sig]].labels
                )));
            }
            slot_step[sig] = i;
            slot[sig] = k;
        }
        seen_many.clear();
        for (k, s) in many.iter().enumerate() {
            let Some(mv) = s.vals[i] else { continue };
            let sig = mid[k];
            if slot_step[sig] != i {
                continue;
            }
            let ok = slot[sig];
            let Some(ovv) = one[ok].vals[i] else { continue };
            let (fl, fr) = if swapped { (ovv, mv) } else { (mv, ovv) };
            let (v, keep) = apply(op, fl, fr)?;
            let v = if rb {
                if keep {
                    1.0
                } else {
                    0.0
                }
            } else if keep {
                v
            } else {
                continue;
            };
            let oi = match out_index.get(&(k, ok)) {
                Some(&oi) => oi,
                None => {
                    let labels = result_labels(
                        &s.labels,
                        &one[ok].labels,
                        drop,
                        on,
                        names,
                        one_to_one,
                        &include,
                    );
                    let oi = match out_by_labels.get(&labels) {
                        Some(&oi) => oi,
                        None => {
                            out_by_labels.insert(labels.clone(), out.len());
                            out.push(Sv {
                                labels,
                                vals: vec![None; g.n],
                            });
                            out.len() - 1
                        }
                    };
                    out_index.insert((k, ok), oi);
                    oi
                }
            };
            if one_to_one {
                if matched_step[sig] == i {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)".into(),
                    ));
                }
                matched_step[sig] = i;
            } else if !seen_many.insert((sig, oi)) {
                return Err(QueryError::Execution(
                    "multiple matches for labels: grouping labels must ensure unique results"
                        .into(),
                ));
            }
            let dst = &mut out[oi].vals[i];
            if dst.is_some() {
                return Err(dup_labelset());
            }
            *dst = Some(v);
        }
    }
    Ok(out)
}

fn result_labels(
    many: &Labels,
    one: &Labels,
    drop: bool,
    on: bool,
    names: &[String],
    one_to_one: bool,
    include: &[String],
) -> Labels {
    let mut l = if drop { drop_name(many) } else { many.clone() };
    if one_to_one {
        l = if on {
            l.filter(|x| names.iter().any(|n| n == x.name.as_ref()))
        } else {
            l.filter(|x| !names.iter().any(|n| n == x.name.as_ref()))
        };
    }
    for n in include {
        l = l.with(n, one.get(n).unwrap_or(""));
    }
    l
}
