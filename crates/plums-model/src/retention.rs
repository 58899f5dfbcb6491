//! Retention policies: which checkpoints of a collection to keep, and pruning the others.
//!
//! This module owns [`Retention`] (a policy), [`Selection`] (what a policy keeps and removes
//! in a collection, and why), [`KeepReason`], [`MetricMode`], and
//! [`CheckpointCollection::prune`]. It is read-only except for `prune`, which only changes the
//! collection in memory: a model's save then removes the files of the checkpoints it no longer
//! registers.
//!
//! # The rules
//!
//! A policy is the union of its rules: a checkpoint is kept when at least one rule keeps it,
//! and removed otherwise. Every checkpoint in a collection has an epoch (the collection
//! requires it).
//!
//! - **latest** (always): the collection's [`latest`](CheckpointCollection::latest) reference
//!   is never removed, so pruning never moves it.
//! - **pinned** ([`Retention::keep`]): every pinned reference that the collection holds. A
//!   pinned reference it does not hold is not an error: [`Selection::unknown_pins`] lists it
//!   (callers that want typo protection refuse it themselves, as `pmf checkpoint prune` does).
//! - **last** ([`Retention::last`]`(n)`): the `n` checkpoints with the highest epochs; among
//!   checkpoints with the same epoch the one added later wins.
//! - **every** ([`Retention::every`]`(k)`): every checkpoint whose epoch is a multiple of `k`
//!   (`epoch.rem_euclid(k) == 0`, so negative epochs work: -4 is a multiple of 2).
//! - **best** ([`Retention::best`]`(n, mode, metric)`): the `n` checkpoints with the best metric
//!   value, the smallest for [`MetricMode::Min`], the largest for [`MetricMode::Max`]; ties are
//!   broken by the higher epoch, then by the later addition. Infinities are values like any
//!   other. A checkpoint whose metric is `None` or NaN is not ranked and is **kept**
//!   ([`KeepReason::NoMetric`]): retention never removes what it cannot rank (as Orbax's
//!   `keep_checkpoints_without_metrics=True`, its default). It does not take one of the `n`
//!   places.
//!
//! A policy must have at least one rule (`last`, `every`, `best` or `keep`), and `n >= 1`,
//! `k >= 1`: [`Retention::check`] refuses anything else with an [`Error::InvalidRetention`]
//! naming the field, and [`Retention::select`] and [`CheckpointCollection::prune`] check first.
//!
//! ```
//! use plums_model::{Checkpoint, CheckpointCollection, KeepReason, Reference, Retention};
//! let h = "0123456789abcdef0123456789abcdef";
//! let ck = |epoch: i64| Checkpoint::new(epoch, None::<&std::path::Path>, Some(epoch), Some(h)).unwrap();
//! let mut c = CheckpointCollection::from_checkpoints((1..=10).map(ck)).unwrap();
//! let policy = Retention::new().last(2).every(5).keep([1]);
//! let selection = c.prune(&policy)?;
//! assert_eq!(c.keys().cloned().collect::<Vec<_>>(), [1, 5, 9, 10].map(Reference::Int));
//! assert_eq!(selection.reasons(&10.into()), Some(&[KeepReason::Latest, KeepReason::Last, KeepReason::Every][..]));
//! assert_eq!(selection.removed.len(), 6);
//! # Ok::<(), plums_model::Error>(())
//! ```

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use crate::checkpoint::Checkpoint;
use crate::collection::{CheckpointCollection, CollectionItem};
use crate::error::{Error, Result};
use crate::reference::Reference;

/// Whether a smaller or a larger metric is better (for [`Retention::best`]).
///
/// Parsed from and shown as `min` or `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricMode {
    /// The smaller the better (a loss).
    Min,
    /// The larger the better (an accuracy).
    Max,
}

impl MetricMode {
    /// `"min"` or `"max"`.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricMode::Min => "min",
            MetricMode::Max => "max",
        }
    }

    /// How `a` compares to `b` in this mode: `Less` when `a` is better. Neither is NaN.
    fn better(self, a: f64, b: f64) -> Ordering {
        let ordering = a.partial_cmp(&b).unwrap_or(Ordering::Equal);
        match self {
            MetricMode::Min => ordering,
            MetricMode::Max => ordering.reverse(),
        }
    }
}

impl fmt::Display for MetricMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for MetricMode {
    type Err = Error;

    /// `min` or `max`; anything else is an [`Error::InvalidRetention`] of the field `mode`.
    fn from_str(text: &str) -> Result<Self> {
        match text {
            "min" => Ok(MetricMode::Min),
            "max" => Ok(MetricMode::Max),
            other => {
                Err(Error::InvalidRetention { field: "mode", reason: format!("expected min or max, got {other:?}") })
            }
        }
    }
}

/// Why a checkpoint is kept (see the [rules](Retention#rules)).
///
/// Shown (and in JSON) as `latest`, `pinned`, `last`, `every`, `best`, `no_metric`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum KeepReason {
    /// It is the collection's latest checkpoint (always kept).
    Latest,
    /// It is pinned ([`Retention::keep`]).
    Pinned,
    /// It is one of the `n` with the highest epochs ([`Retention::last`]).
    Last,
    /// Its epoch is a multiple of `k` ([`Retention::every`]).
    Every,
    /// It is one of the `n` with the best metric ([`Retention::best`]).
    Best,
    /// The policy ranks by a metric and this checkpoint has none (`None` or NaN): it is not
    /// ranked, and kept.
    NoMetric,
}

impl KeepReason {
    /// `latest`, `pinned`, `last`, `every`, `best` or `no_metric`.
    pub fn as_str(self) -> &'static str {
        match self {
            KeepReason::Latest => "latest",
            KeepReason::Pinned => "pinned",
            KeepReason::Last => "last",
            KeepReason::Every => "every",
            KeepReason::Best => "best",
            KeepReason::NoMetric => "no_metric",
        }
    }
}

impl fmt::Display for KeepReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The metric of [`Retention::best`]: a checkpoint's value, or `None` when it has none.
type Metric<C> = Arc<dyn Fn(&C) -> Option<f64> + Send + Sync>;

/// A retention policy: the union of its rules; what no rule keeps is removed.
///
/// Built with [`Retention::new`] and the rule methods, which each return the policy (a rule
/// given twice replaces the first, except [`Retention::keep`], which adds pins). `C` is the
/// collection's item type ([`Checkpoint`] by default), which the metric of
/// [`Retention::best`] reads.
///
/// # Rules
///
/// A checkpoint is kept when at least one rule keeps it, and removed otherwise:
///
/// - **latest**, always: the collection's [`latest`](CheckpointCollection::latest) reference
///   is never removed, so pruning never moves it;
/// - **pinned** ([`Retention::keep`]): the pinned references the collection holds; the others
///   are reported in [`Selection::unknown_pins`], not refused;
/// - **last** `n`: the `n` checkpoints with the highest epochs (among equal epochs, the later
///   added wins);
/// - **every** `k`: the checkpoints whose epoch is a multiple of `k` (`epoch.rem_euclid(k) ==
///   0`: negative epochs work);
/// - **best** `n`: the `n` checkpoints with the best metric (smallest for
///   [`MetricMode::Min`], largest for [`MetricMode::Max`]; ties broken by the higher epoch,
///   then the later addition; infinities are ranked). A checkpoint whose metric is `None` or
///   NaN is not ranked and is **kept** ([`KeepReason::NoMetric`]): retention never removes
///   what it cannot rank (as Orbax's default `keep_checkpoints_without_metrics=True`).
///
/// A policy needs at least one rule (`last`, `every`, `best` or `keep`), with `n >= 1` and
/// `k >= 1` ([`Retention::check`]).
///
/// ```
/// use std::collections::HashMap;
/// use plums_model::{Checkpoint, MetricMode, Reference, Retention};
/// let losses: HashMap<Reference, f64> = HashMap::from([(1.into(), 0.9), (2.into(), 0.4)]);
/// let policy: Retention = Retention::new()
///     .last(3)
///     .best(1, MetricMode::Min, move |c: &Checkpoint| losses.get(&c.name).copied());
/// policy.check()?;
/// assert_eq!((policy.last_n(), policy.best_n(), policy.mode()), (Some(3), Some(1), Some(MetricMode::Min)));
/// # Ok::<(), plums_model::Error>(())
/// ```
pub struct Retention<C = Checkpoint> {
    last: Option<usize>,
    every: Option<i64>,
    best: Option<(usize, MetricMode, Metric<C>)>,
    keep: Vec<Reference>,
}

impl<C> Clone for Retention<C> {
    fn clone(&self) -> Self {
        Retention { last: self.last, every: self.every, best: self.best.clone(), keep: self.keep.clone() }
    }
}

impl<C> Default for Retention<C> {
    /// A policy with no rule yet (which [`Retention::check`] refuses until one is added).
    fn default() -> Self {
        Retention { last: None, every: None, best: None, keep: Vec::new() }
    }
}

impl<C> fmt::Debug for Retention<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Opaque;
        impl fmt::Debug for Opaque {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("<metric>")
            }
        }
        f.debug_struct("Retention")
            .field("last", &self.last)
            .field("every", &self.every)
            .field("best", &self.best.as_ref().map(|(n, mode, _)| (n, mode, Opaque)))
            .field("keep", &self.keep)
            .finish()
    }
}

impl<C: CollectionItem> Retention<C> {
    /// A policy with no rule yet: add at least one (`last`, `every`, `best` or `keep`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Keep the `n` checkpoints with the highest epochs (among equal epochs, the later added
    /// wins). `n` must be at least 1 (checked by [`Retention::check`]).
    pub fn last(mut self, n: usize) -> Self {
        self.last = Some(n);
        self
    }

    /// Keep every checkpoint whose epoch is a multiple of `k` (`epoch.rem_euclid(k) == 0`).
    /// `k` must be at least 1 (checked by [`Retention::check`]).
    pub fn every(mut self, k: i64) -> Self {
        self.every = Some(k);
        self
    }

    /// Keep the `n` checkpoints with the best `metric` (the smallest for [`MetricMode::Min`],
    /// the largest for [`MetricMode::Max`]; ties broken by the higher epoch, then the later
    /// addition). A checkpoint whose metric is `None` or NaN is not ranked and is kept
    /// ([`KeepReason::NoMetric`]). `n` must be at least 1 (checked by [`Retention::check`]).
    pub fn best(
        mut self,
        n: usize,
        mode: MetricMode,
        metric: impl Fn(&C) -> Option<f64> + Send + Sync + 'static,
    ) -> Self {
        self.best = Some((n, mode, Arc::new(metric)));
        self
    }

    /// Pin `references`: they are kept when the collection holds them (added to the pins
    /// already given; a reference pinned twice counts once). Pins the collection does not hold
    /// are reported in [`Selection::unknown_pins`], not refused.
    pub fn keep(mut self, references: impl IntoIterator<Item = impl Into<Reference>>) -> Self {
        for reference in references {
            let reference = reference.into();
            if !self.keep.contains(&reference) {
                self.keep.push(reference);
            }
        }
        self
    }

    /// Whether the policy can be used: an [`Error::InvalidRetention`] naming the field when
    /// `last` or `best` keeps 0 checkpoints, when `every` is not at least 1, or when the policy
    /// has no rule at all (field `rules`).
    pub fn check(&self) -> Result<()> {
        let refuse = |field, reason: String| Err(Error::InvalidRetention { field, reason });
        if self.last == Some(0) {
            return refuse(
                "last",
                "must be at least 1 (the number of checkpoints with the highest epochs to keep)".into(),
            );
        }
        if let Some(k) = self.every.filter(|k| *k <= 0) {
            return refuse(
                "every",
                format!("must be at least 1, got {k} (keeps the checkpoints whose epoch is a multiple of it)"),
            );
        }
        if matches!(self.best, Some((0, ..))) {
            return refuse(
                "best",
                "must be at least 1 (the number of checkpoints with the best metric to keep)".into(),
            );
        }
        if self.last.is_none() && self.every.is_none() && self.best.is_none() && self.keep.is_empty() {
            return refuse("rules", "a retention policy needs at least one of last, every, best or keep".into());
        }
        Ok(())
    }

    /// What the policy keeps and removes in `collection`, and why; the collection is not
    /// changed. The policy is checked first ([`Retention::check`]).
    pub fn select(&self, collection: &CheckpointCollection<C>) -> Result<Selection> {
        self.check()?;
        let items: Vec<(&Reference, Option<i64>)> = collection.iter().map(|(r, c)| (r, c.epoch())).collect();
        let count = items.len();
        let mut reasons: Vec<Vec<KeepReason>> = vec![Vec::new(); count];

        let latest = collection.latest();
        let mut last = vec![false; count];
        if let Some(n) = self.last {
            // Highest epoch first; among equal epochs, the later added first.
            let mut order: Vec<usize> = (0..count).collect();
            order.sort_by(|&a, &b| items[b].1.cmp(&items[a].1).then(b.cmp(&a)));
            for &i in order.iter().take(n) {
                last[i] = true;
            }
        }
        let mut best = vec![false; count];
        let mut unranked = vec![false; count];
        if let Some((n, mode, metric)) = &self.best {
            let mut ranked: Vec<(usize, f64)> = Vec::with_capacity(count);
            for (i, checkpoint) in collection.values().enumerate() {
                match metric(checkpoint) {
                    Some(value) if !value.is_nan() => ranked.push((i, value)),
                    _ => unranked[i] = true,
                }
            }
            ranked.sort_by(|&(a, va), &(b, vb)| mode.better(va, vb).then(items[b].1.cmp(&items[a].1)).then(b.cmp(&a)));
            for &(i, _) in ranked.iter().take(*n) {
                best[i] = true;
            }
        }

        let mut selection = Selection { kept: Vec::new(), removed: Vec::new(), unknown_pins: Vec::new() };
        for (i, (reference, epoch)) in items.iter().enumerate() {
            let why = &mut reasons[i];
            if latest == Some(*reference) {
                why.push(KeepReason::Latest);
            }
            if self.keep.contains(reference) {
                why.push(KeepReason::Pinned);
            }
            if last[i] {
                why.push(KeepReason::Last);
            }
            if let (Some(k), Some(epoch)) = (self.every, epoch) {
                if epoch.rem_euclid(k) == 0 {
                    why.push(KeepReason::Every);
                }
            }
            if best[i] {
                why.push(KeepReason::Best);
            }
            if unranked[i] {
                why.push(KeepReason::NoMetric);
            }
            if why.is_empty() {
                selection.removed.push((*reference).clone());
            } else {
                selection.kept.push(((*reference).clone(), std::mem::take(why)));
            }
        }
        selection.unknown_pins = self.keep.iter().filter(|r| !collection.contains(r)).cloned().collect();
        Ok(selection)
    }

    /// `n` of [`Retention::last`], if given.
    pub fn last_n(&self) -> Option<usize> {
        self.last
    }

    /// `k` of [`Retention::every`], if given.
    pub fn every_k(&self) -> Option<i64> {
        self.every
    }

    /// `n` of [`Retention::best`], if given.
    pub fn best_n(&self) -> Option<usize> {
        self.best.as_ref().map(|(n, ..)| *n)
    }

    /// The mode of [`Retention::best`], if given.
    pub fn mode(&self) -> Option<MetricMode> {
        self.best.as_ref().map(|(_, mode, _)| *mode)
    }

    /// The pinned references ([`Retention::keep`]), in the order given.
    pub fn pins(&self) -> &[Reference] {
        &self.keep
    }
}

/// What a [`Retention`] policy keeps and removes in a collection ([`Retention::select`],
/// [`CheckpointCollection::prune`]).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Selection {
    /// The kept references, in the collection's order, each with every reason that keeps it
    /// (never empty; in the order latest, pinned, last, every, best, no_metric).
    pub kept: Vec<(Reference, Vec<KeepReason>)>,
    /// The removed references, in the collection's order.
    pub removed: Vec<Reference>,
    /// The pinned references the collection does not hold, in the order pinned.
    pub unknown_pins: Vec<Reference>,
}

impl Selection {
    /// Whether `reference` is kept.
    pub fn is_kept(&self, reference: &Reference) -> bool {
        self.reasons(reference).is_some()
    }

    /// Why `reference` is kept; `None` when it is removed or not in the collection.
    pub fn reasons(&self, reference: &Reference) -> Option<&[KeepReason]> {
        self.kept.iter().find(|(r, _)| r == reference).map(|(_, why)| why.as_slice())
    }
}

impl<C: CollectionItem> CheckpointCollection<C> {
    /// Apply `policy`: remove the checkpoints it does not keep, and return the
    /// [`Selection`] (see the [rules](Retention#rules)). The kept checkpoints keep
    /// their order; `latest` is never removed, so it does not move. An unusable policy is an
    /// [`Error::InvalidRetention`] and nothing is removed.
    ///
    /// Only the collection changes: saving the model then removes the files of the
    /// checkpoints it no longer registers.
    pub fn prune(&mut self, policy: &Retention<C>) -> Result<Selection> {
        let selection = policy.select(self)?;
        if !selection.removed.is_empty() {
            let removed: std::collections::HashSet<&Reference> = selection.removed.iter().collect();
            self.retain_references(|r| !removed.contains(r));
        }
        Ok(selection)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::path::Path;

    use KeepReason::*;

    fn ck(name: impl Into<Reference>, epoch: i64) -> Checkpoint {
        Checkpoint::new(name, None::<&Path>, Some(epoch), Some(&"a".repeat(32))).unwrap()
    }

    /// Checkpoints named after their epochs `epochs`, added in order.
    fn epochs(epochs: impl IntoIterator<Item = i64>) -> CheckpointCollection {
        CheckpointCollection::from_checkpoints(epochs.into_iter().map(|e| ck(e, e))).unwrap()
    }

    fn refs(items: impl IntoIterator<Item = impl Into<Reference>>) -> Vec<Reference> {
        items.into_iter().map(Into::into).collect()
    }

    fn kept(selection: &Selection) -> Vec<Reference> {
        selection.kept.iter().map(|(r, _)| r.clone()).collect()
    }

    /// A metric read from a table of the checkpoints' names.
    fn table(values: &[(i64, Option<f64>)]) -> impl Fn(&Checkpoint) -> Option<f64> + Send + Sync + 'static {
        let map: HashMap<Reference, Option<f64>> = values.iter().map(|(r, v)| (Reference::Int(*r), *v)).collect();
        move |c: &Checkpoint| map.get(&c.name).copied().flatten()
    }

    fn refusal(policy: &Retention) -> (&'static str, String, String) {
        match policy.check() {
            Err(e @ Error::InvalidRetention { .. }) => {
                let Error::InvalidRetention { field, reason } = &e else { unreachable!() };
                (*field, reason.clone(), e.to_string())
            }
            other => panic!("expected InvalidRetention, got {other:?}"),
        }
    }

    #[test]
    fn last_keeps_the_highest_epochs_and_the_later_added_among_equals() {
        let c = CheckpointCollection::from_checkpoints([ck(1, 1), ck(2, 3), ck(3, 3), ck(4, 2), ck(5, 3)]).unwrap();
        let s = Retention::new().last(2).select(&c).unwrap();
        // Epoch 3 three times: 5 (latest) and 3 are the later added.
        assert_eq!(s.kept, vec![(3.into(), vec![Last]), (5.into(), vec![Latest, Last])]);
        assert_eq!(s.removed, refs([1, 2, 4]));
        assert!(s.unknown_pins.is_empty());
        let all = Retention::new().last(10).select(&c).unwrap();
        assert!(all.removed.is_empty() && all.kept.len() == 5);
    }

    #[test]
    fn every_keeps_multiples_also_of_negative_epochs() {
        let c = epochs(-5..=6);
        let s = Retention::new().every(3).select(&c).unwrap();
        assert_eq!(kept(&s), refs([-3, 0, 3, 6]));
        assert_eq!(s.reasons(&6.into()), Some(&[Latest, Every][..]));
        assert_eq!(s.reasons(&(-3).into()), Some(&[Every][..]));
        let s = Retention::new().every(1).select(&c).unwrap();
        assert!(s.removed.is_empty());
    }

    #[test]
    fn latest_is_always_kept_even_when_it_is_not_the_last_added() {
        let mut c = epochs(1..=5);
        c.set_latest(&2.into()).unwrap();
        let s = Retention::new().last(1).select(&c).unwrap();
        assert_eq!(s.kept, vec![(2.into(), vec![Latest]), (5.into(), vec![Last])]);
        let removed = c.prune(&Retention::new().last(1)).unwrap().removed;
        assert_eq!(removed, refs([1, 3, 4]));
        assert_eq!(c.latest(), Some(&2.into()), "latest does not move");
        assert_eq!(c.keys().cloned().collect::<Vec<_>>(), refs([2, 5]));
    }

    #[test]
    fn pins_keep_what_the_collection_holds_and_report_the_others() {
        let mut c = epochs(1..=4);
        c.add(ck("best", 2)).unwrap();
        c.add(ck(5, 5)).unwrap();
        let s = Retention::new().keep([Reference::from("best"), 1.into(), "nope".into(), 1.into()]).select(&c).unwrap();
        assert_eq!(s.kept, vec![(1.into(), vec![Pinned]), ("best".into(), vec![Pinned]), (5.into(), vec![Latest])]);
        assert_eq!(s.removed, refs([2, 3, 4]));
        assert_eq!(s.unknown_pins, refs(["nope"]));
        // A string pin never matches an int reference.
        let s = Retention::new().keep(["2"]).select(&c).unwrap();
        assert_eq!(s.unknown_pins, refs(["2"]));
        assert!(!s.is_kept(&2.into()));
    }

    #[test]
    fn best_ranks_by_the_metric_then_epoch_then_insertion() {
        let c = CheckpointCollection::from_checkpoints([ck(1, 1), ck(2, 2), ck(3, 2), ck(4, 3), ck(5, 4), ck(6, 5)])
            .unwrap();
        let metric = [(1, Some(0.1)), (2, Some(0.5)), (3, Some(0.5)), (4, Some(0.9)), (5, Some(0.5)), (6, Some(2.0))];
        let s = Retention::new().best(1, MetricMode::Min, table(&metric)).select(&c).unwrap();
        assert_eq!(kept(&s), refs([1, 6]));
        assert_eq!(s.reasons(&1.into()), Some(&[Best][..]));
        // 0.5 three times: 5 has the highest epoch, then 3 (added after 2 at the same epoch).
        let s = Retention::new().best(3, MetricMode::Min, table(&metric)).select(&c).unwrap();
        assert_eq!(kept(&s), refs([1, 3, 5, 6]));
        let s = Retention::new().best(2, MetricMode::Max, table(&metric)).select(&c).unwrap();
        assert_eq!(s.kept, vec![(4.into(), vec![Best]), (6.into(), vec![Latest, Best])]);
        let inf = [(1, Some(f64::NEG_INFINITY)), (2, Some(f64::INFINITY)), (3, Some(0.0))];
        let s = Retention::new().best(1, MetricMode::Max, table(&inf)).select(&c).unwrap();
        assert_eq!(s.reasons(&2.into()), Some(&[Best][..]), "infinities are ranked");
    }

    #[test]
    fn best_keeps_what_it_cannot_rank() {
        let c = epochs(1..=5);
        let metric = [(1, Some(0.3)), (2, None), (3, Some(f64::NAN)), (4, Some(0.1)), (5, Some(0.2))];
        let s = Retention::new().best(1, MetricMode::Min, table(&metric)).select(&c).unwrap();
        assert_eq!(
            s.kept,
            vec![
                (2.into(), vec![NoMetric]),
                (3.into(), vec![NoMetric]),
                (4.into(), vec![Best]),
                (5.into(), vec![Latest])
            ]
        );
        assert_eq!(s.removed, refs([1]));
        // Without a best rule, no checkpoint is kept for lacking a metric.
        let s = Retention::new().last(1).select(&c).unwrap();
        assert!(s.kept.iter().all(|(_, why)| !why.contains(&NoMetric)));
    }

    #[test]
    fn rules_are_a_union_with_every_reason() {
        let c = epochs(1..=10);
        let policy = Retention::new()
            .last(3)
            .every(5)
            .keep([2])
            .best(1, MetricMode::Max, |c: &Checkpoint| c.epoch.map(|e| -((e - 8) as f64).abs()));
        let s = policy.select(&c).unwrap();
        assert_eq!(
            s.kept,
            vec![
                (2.into(), vec![Pinned]),
                (5.into(), vec![Every]),
                (8.into(), vec![Last, Best]),
                (9.into(), vec![Last]),
                (10.into(), vec![Latest, Last, Every]),
            ]
        );
        assert_eq!(s.removed, refs([1, 3, 4, 6, 7]));
    }

    #[test]
    fn prune_removes_the_rest_in_order_and_is_idempotent() {
        let mut c = epochs(1..=10);
        let policy = Retention::new().last(3).every(4);
        let s = c.prune(&policy).unwrap();
        assert_eq!(c.keys().cloned().collect::<Vec<_>>(), refs([4, 8, 9, 10]));
        assert_eq!(kept(&s), refs([4, 8, 9, 10]));
        assert_eq!(c.latest(), Some(&10.into()));
        let again = c.prune(&policy).unwrap();
        assert!(again.removed.is_empty());
        assert_eq!(again.kept, s.kept);
        // An empty collection: nothing to keep or remove; the pins are unknown.
        let mut empty = CheckpointCollection::<Checkpoint>::new();
        let s = empty.prune(&Retention::new().keep([1])).unwrap();
        assert_eq!((s.kept.len(), s.removed.len(), s.unknown_pins.clone()), (0, 0, refs([1])));
    }

    #[test]
    fn refusals_name_the_field_and_what_would_be_right() {
        let (field, _, message) = refusal(&Retention::new().last(0));
        assert_eq!(field, "last");
        assert!(message.starts_with("invalid retention policy: `last`: must be at least 1"), "{message}");
        let (field, reason, message) = refusal(&Retention::new().every(0));
        assert_eq!(field, "every");
        assert!(reason.starts_with("must be at least 1, got 0"), "{reason}");
        assert!(message.starts_with("invalid retention policy: `every`: must be at least 1, got 0"), "{message}");
        let (field, _, message) = refusal(&Retention::new().every(-3).last(2));
        assert_eq!(field, "every");
        assert!(message.contains("got -3"), "{message}");
        let (field, _, message) = refusal(&Retention::new().best(0, MetricMode::Min, |_: &Checkpoint| None));
        assert_eq!(field, "best");
        assert!(message.starts_with("invalid retention policy: `best`: must be at least 1"), "{message}");
        let (field, reason, message) = refusal(&Retention::new());
        assert_eq!(field, "rules");
        assert_eq!(reason, "a retention policy needs at least one of last, every, best or keep");
        assert_eq!(
            message,
            "invalid retention policy: `rules`: a retention policy needs at least one of last, every, best or keep"
        );
        let e = Retention::<Checkpoint>::new().check().unwrap_err();
        assert_eq!((e.code(), e.category()), ("invalid_retention", crate::error::Category::Value));
        // select and prune check first, and prune then changes nothing.
        let mut c = epochs(1..=3);
        assert!(matches!(Retention::new().last(0).select(&c), Err(Error::InvalidRetention { field: "last", .. })));
        assert!(matches!(c.prune(&Retention::new()), Err(Error::InvalidRetention { field: "rules", .. })));
        assert_eq!(c.len(), 3);
        // Pins alone are a policy.
        assert!(Retention::<Checkpoint>::new().keep([1]).check().is_ok());
    }

    #[test]
    fn modes_parse_and_show() {
        assert_eq!("min".parse::<MetricMode>().unwrap(), MetricMode::Min);
        assert_eq!("max".parse::<MetricMode>().unwrap(), MetricMode::Max);
        assert_eq!(MetricMode::Max.to_string(), "max");
        let e = "Max".parse::<MetricMode>().unwrap_err();
        assert!(matches!(e, Error::InvalidRetention { field: "mode", .. }), "{e}");
        assert_eq!(e.to_string(), "invalid retention policy: `mode`: expected min or max, got \"Max\"");
        assert_eq!(NoMetric.to_string(), "no_metric");
        assert_eq!(
            [Latest, Pinned, Last, Every, Best].map(KeepReason::as_str),
            ["latest", "pinned", "last", "every", "best"]
        );
    }

    #[test]
    fn accessors_and_debug() {
        let p: Retention =
            Retention::new().last(3).every(5).keep([1]).keep(["best"]).best(2, MetricMode::Max, |_| None);
        assert_eq!((p.last_n(), p.every_k(), p.best_n(), p.mode()), (Some(3), Some(5), Some(2), Some(MetricMode::Max)));
        assert_eq!(p.pins(), refs([Reference::Int(1), "best".into()]).as_slice());
        let debug = format!("{:?}", p.clone());
        assert!(debug.contains("<metric>") && debug.contains("last: Some(3)"), "{debug}");
        let empty: Retention = Retention::default();
        assert_eq!((empty.last_n(), empty.every_k(), empty.best_n(), empty.mode()), (None, None, None, None));
        assert!(empty.pins().is_empty());
    }
}
