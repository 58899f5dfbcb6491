//! Retention policies against a plain model of their rules: random collections (increasing
//! epochs, some equal or skipped, a moved `latest`), random metrics (some missing or NaN) and
//! random policies; `select` keeps exactly what the rules keep, with every reason, and `prune`
//! leaves exactly that, in order, idempotently.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use plums_model::{Checkpoint, CheckpointCollection, Error, KeepReason, MetricMode, Reference, Retention, Selection};
use proptest::prelude::*;

fn ck(name: Reference, epoch: i64) -> Checkpoint {
    Checkpoint::new(name, None::<&Path>, Some(epoch), Some(&"0".repeat(32))).expect("checkpoint")
}

/// One generated case.
#[derive(Debug, Clone)]
struct Case {
    /// (reference, epoch, metric), in insertion order.
    items: Vec<(Reference, i64, Option<f64>)>,
    /// The index `latest` is set to, if moved from the last added.
    latest: Option<usize>,
    last: Option<usize>,
    every: Option<i64>,
    best: Option<(usize, MetricMode)>,
    /// Pinned references (some not in the collection).
    pins: Vec<Reference>,
}

fn metric() -> impl Strategy<Value = Option<f64>> {
    prop_oneof![
        3 => (0..6i32).prop_map(|v| Some(f64::from(v) / 2.0)),
        1 => Just(None),
        1 => Just(Some(f64::NAN)),
        1 => prop_oneof![Just(f64::INFINITY), Just(f64::NEG_INFINITY)].prop_map(Some),
    ]
}

fn case() -> impl Strategy<Value = Case> {
    let steps = prop::collection::vec((prop_oneof![Just(0i64), Just(1), Just(1), Just(2), Just(5)], metric()), 0..25);
    (
        -6..6i64,
        steps,
        any::<bool>(),
        any::<prop::sample::Index>(),
        prop::option::of(1..6usize),
        prop::option::of(1..6i64),
        prop::option::of((1..5usize, prop_oneof![Just(MetricMode::Min), Just(MetricMode::Max)])),
        prop::collection::vec(prop_oneof![(0..30i64).prop_map(Reference::Int), Just(Reference::from("x"))], 0..4),
    )
        .prop_map(|(start, steps, move_latest, latest, last, every, best, pins)| {
            let mut epoch = start;
            let items: Vec<(Reference, i64, Option<f64>)> = steps
                .into_iter()
                .enumerate()
                .map(|(i, (step, metric))| {
                    epoch += step;
                    // Mostly int references, some string ones; `"x"` is never one.
                    let reference = if i % 7 == 3 { Reference::Str(format!("s{i}")) } else { Reference::Int(i as i64) };
                    (reference, epoch, metric)
                })
                .collect();
            let latest = (move_latest && !items.is_empty()).then(|| latest.index(items.len()));
            Case { items, latest, last, every, best, pins }
        })
}

fn collection(case: &Case) -> CheckpointCollection {
    let mut c = CheckpointCollection::from_checkpoints(case.items.iter().map(|(r, e, _)| ck(r.clone(), *e)))
        .expect("collection");
    if let Some(i) = case.latest {
        c.set_latest(&case.items[i].0).expect("set latest");
    }
    c
}

fn policy(case: &Case) -> Retention {
    let mut p = Retention::new();
    if let Some(n) = case.last {
        p = p.last(n);
    }
    if let Some(k) = case.every {
        p = p.every(k);
    }
    if let Some((n, mode)) = case.best {
        let metrics: Arc<HashMap<Reference, Option<f64>>> =
            Arc::new(case.items.iter().map(|(r, _, m)| (r.clone(), *m)).collect());
        p = p.best(n, mode, move |c: &Checkpoint| metrics.get(&c.name).copied().flatten());
    }
    p.keep(case.pins.iter().cloned())
}

fn has_rule(case: &Case) -> bool {
    case.last.is_some() || case.every.is_some() || case.best.is_some() || !case.pins.is_empty()
}

/// The rules, written plainly: for each checkpoint, each reason by counting who beats it.
fn expected(case: &Case) -> (Vec<(Reference, Vec<KeepReason>)>, Vec<Reference>) {
    let items = &case.items;
    let latest = case.latest.or(items.len().checked_sub(1));
    let ranked = |m: Option<f64>| m.filter(|v| !v.is_nan());
    let mut kept = Vec::new();
    let mut removed = Vec::new();
    for (i, (reference, epoch, metric)) in items.iter().enumerate() {
        let mut why = Vec::new();
        if latest == Some(i) {
            why.push(KeepReason::Latest);
        }
        if case.pins.contains(reference) {
            why.push(KeepReason::Pinned);
        }
        if let Some(n) = case.last {
            // Those ahead of it: a higher epoch, or the same epoch added later.
            let ahead = items.iter().enumerate().filter(|(j, (_, e, _))| *e > *epoch || (*e == *epoch && *j > i));
            if ahead.count() < n {
                why.push(KeepReason::Last);
            }
        }
        if let Some(k) = case.every {
            if epoch.rem_euclid(k) == 0 {
                why.push(KeepReason::Every);
            }
        }
        if let Some((n, mode)) = case.best {
            match ranked(*metric) {
                Some(mine) => {
                    let better = |theirs: f64| match mode {
                        MetricMode::Min => theirs < mine,
                        MetricMode::Max => theirs > mine,
                    };
                    let ahead = items.iter().enumerate().filter(|(j, (_, e, m))| match ranked(*m) {
                        Some(theirs) if better(theirs) => true,
                        Some(theirs) if theirs == mine => *e > *epoch || (*e == *epoch && *j > i),
                        _ => false,
                    });
                    if ahead.count() < n {
                        why.push(KeepReason::Best);
                    }
                }
                None => why.push(KeepReason::NoMetric),
            }
        }
        if why.is_empty() {
            removed.push(reference.clone());
        } else {
            kept.push((reference.clone(), why));
        }
    }
    (kept, removed)
}

fn references(c: &CheckpointCollection) -> Vec<Reference> {
    c.keys().cloned().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn select_and_prune_keep_exactly_what_the_rules_keep(case in case()) {
        let mut c = collection(&case);
        let policy = policy(&case);
        if !has_rule(&case) {
            let refused = matches!(policy.select(&c), Err(Error::InvalidRetention { field: "rules", .. }));
            prop_assert!(refused);
            let refused = matches!(c.prune(&policy), Err(Error::InvalidRetention { .. }));
            prop_assert!(refused);
            prop_assert_eq!(c.len(), case.items.len());
            return Ok(());
        }
        let before = references(&c);
        let latest = c.latest().cloned();
        let selection: Selection = policy.select(&c).expect("select");
        prop_assert_eq!(references(&c), before.clone(), "select changes nothing");

        let (kept, removed) = expected(&case);
        prop_assert_eq!(&selection.kept, &kept);
        prop_assert_eq!(&selection.removed, &removed);
        let unknown: Vec<Reference> = case.pins.iter().filter(|p| !before.contains(p)).fold(Vec::new(), |mut u, p| {
            if !u.contains(p) { u.push(p.clone()); }
            u
        });
        prop_assert_eq!(&selection.unknown_pins, &unknown);

        // Invariants, independently of the model: latest and the known pins are kept; kept
        // and removed partition the collection, in its order.
        if let Some(l) = &latest {
            prop_assert!(selection.reasons(l).is_some_and(|why| why.contains(&KeepReason::Latest)));
        }
        for pin in case.pins.iter().filter(|p| before.contains(p)) {
            prop_assert!(selection.reasons(pin).is_some_and(|why| why.contains(&KeepReason::Pinned)));
        }
        prop_assert!(selection.kept.iter().all(|(_, why)| !why.is_empty()));
        let mut merged: Vec<Reference> =
            selection.kept.iter().map(|(r, _)| r.clone()).chain(selection.removed.iter().cloned()).collect();
        merged.sort_by_key(|r| before.iter().position(|b| b == r));
        prop_assert_eq!(&merged, &before);

        // Prune leaves exactly the kept ones, in the original order; latest does not move.
        let pruned = c.prune(&policy).expect("prune");
        prop_assert_eq!(&pruned, &selection);
        let left: Vec<Reference> = selection.kept.iter().map(|(r, _)| r.clone()).collect();
        prop_assert_eq!(references(&c), left);
        prop_assert_eq!(c.latest().cloned(), latest);
        // A second prune removes nothing, for the same reasons.
        let again = c.prune(&policy).expect("prune again");
        prop_assert!(again.removed.is_empty(), "{:?}", again);
        prop_assert_eq!(again.kept, selection.kept);
    }
}

#[test]
fn a_hundred_epoch_rotation_with_last_3_ends_with_exactly_3() {
    let policy = Retention::new().last(3);
    let mut c = CheckpointCollection::new();
    for epoch in 1..=100i64 {
        c.add(ck(Reference::Int(epoch), epoch)).expect("add");
        let selection = c.prune(&policy).expect("prune");
        assert_eq!(selection.removed.len(), usize::from(epoch > 3), "epoch {epoch}: {selection:?}");
        assert_eq!(c.len(), epoch.min(3) as usize);
        assert_eq!(c.latest(), Some(&Reference::Int(epoch)));
    }
    assert_eq!(references(&c), [98, 99, 100].map(Reference::Int));
}

#[test]
fn a_rotation_with_pins_and_a_metric_keeps_the_best_and_the_milestones() {
    // Loss falls to its minimum at epoch 40, then rises; every 25th epoch is a milestone.
    let loss = |e: i64| ((e - 40) as f64).abs();
    let policy: Retention =
        Retention::new().last(2).every(25).keep([7]).best(1, MetricMode::Min, move |c: &Checkpoint| c.epoch.map(loss));
    let mut c = CheckpointCollection::new();
    for epoch in 1..=100i64 {
        c.add(ck(Reference::Int(epoch), epoch)).expect("add");
        c.prune(&policy).expect("prune");
    }
    assert_eq!(references(&c), [7, 25, 40, 50, 75, 99, 100].map(Reference::Int));
}
