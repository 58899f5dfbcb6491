//! The checkpoint collection: an insertion-ordered mapping from reference to checkpoint, with
//! PMF's rules for `latest`, duplicates and epochs.
//!
//! The collection is generic over its items ([`CollectionItem`]), so that language bindings
//! keep their own checkpoint objects in it (Python's `Checkpoint` instances, whose identity
//! users see) under the same rules as the crate's [`Checkpoint`].
//!
//! Retention policies (which checkpoints to keep, [`CheckpointCollection::prune`]) are in
//! `retention`, a layer above this one.

use indexmap::IndexMap;

use crate::checkpoint::Checkpoint;
use crate::error::{Error, Result};
use crate::reference::Reference;

/// What a [`CheckpointCollection`] needs to know of a checkpoint.
pub trait CollectionItem: Clone {
    /// The checkpoint's own reference (its name).
    fn reference(&self) -> Reference;
    /// The epoch it was taken at, if known (required in a collection).
    fn epoch(&self) -> Option<i64>;
    /// A copy of the checkpoint named `reference` (what [`CheckpointCollection::insert`] stores).
    fn renamed(&self, reference: Reference) -> Self;
}

impl CollectionItem for Checkpoint {
    fn reference(&self) -> Reference {
        self.name.clone()
    }

    fn epoch(&self) -> Option<i64> {
        self.epoch
    }

    fn renamed(&self, reference: Reference) -> Self {
        let mut copy = self.clone();
        copy.name = reference;
        copy
    }
}

/// An insertion-ordered mapping of [`Reference`] to checkpoint, with a `latest` reference.
///
/// `latest` is the last added reference; replacing a checkpoint in place does not move it, and
/// removing one makes it the last remaining reference (or `None`).
///
/// ```
/// use plums_model::{Checkpoint, CheckpointCollection};
/// let h = "0123456789abcdef0123456789abcdef";
/// let ck = |name: i64, epoch| Checkpoint::new(name, None::<&std::path::Path>, Some(epoch), Some(h)).unwrap();
/// let mut c = CheckpointCollection::new();
/// c.add(ck(1, 1)).unwrap();
/// c.add(ck(2, 1)).unwrap();
/// assert!(c.add(ck(2, 2)).is_err()); // duplicate reference
/// assert_eq!(c.latest(), Some(&2.into()));
/// assert_eq!(c.by_epoch(1).len(), 2);
/// ```
#[derive(Debug, Clone)]
pub struct CheckpointCollection<C = Checkpoint> {
    checkpoints: IndexMap<Reference, C>,
    latest: Option<Reference>,
}

impl<C> Default for CheckpointCollection<C> {
    fn default() -> Self {
        CheckpointCollection { checkpoints: IndexMap::new(), latest: None }
    }
}

impl<C: CollectionItem> CheckpointCollection<C> {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// A collection of `checkpoints`, added in order (see [`CheckpointCollection::add`]).
    pub fn from_checkpoints(checkpoints: impl IntoIterator<Item = C>) -> Result<Self> {
        let mut c = Self::new();
        for ck in checkpoints {
            c.add(ck)?;
        }
        Ok(c)
    }

    /// Add a checkpoint under its own name; it becomes the latest.
    ///
    /// A name already registered is an [`Error::DuplicateReference`]; a checkpoint without an
    /// epoch is an [`Error::CheckpointWithoutEpoch`].
    pub fn add(&mut self, checkpoint: C) -> Result<()> {
        let reference = checkpoint.reference();
        if self.checkpoints.contains_key(&reference) {
            return Err(Error::DuplicateReference(reference));
        }
        if checkpoint.epoch().is_none() {
            return Err(Error::CheckpointWithoutEpoch { reference });
        }
        self.latest = Some(reference.clone());
        self.checkpoints.insert(reference, checkpoint);
        Ok(())
    }

    /// Store a copy of `checkpoint` named `reference`: added (and latest) if new, replaced in
    /// place otherwise (latest unchanged). A checkpoint without an epoch is refused.
    pub fn insert(&mut self, reference: impl Into<Reference>, checkpoint: &C) -> Result<()> {
        let reference = reference.into();
        if checkpoint.epoch().is_none() {
            return Err(Error::CheckpointWithoutEpoch { reference });
        }
        let copy = checkpoint.renamed(reference.clone());
        match self.checkpoints.get_mut(&reference) {
            Some(slot) => {
                *slot = copy;
                Ok(())
            }
            None => self.add(copy),
        }
    }

    /// Remove the checkpoint `reference` ([`Error::MissingReference`] if absent).
    pub fn remove(&mut self, reference: &Reference) -> Result<C> {
        let removed =
            self.checkpoints.shift_remove(reference).ok_or_else(|| Error::MissingReference(reference.clone()))?;
        if self.latest.as_ref() == Some(reference) {
            self.latest = self.checkpoints.keys().last().cloned();
        }
        Ok(removed)
    }

    /// Keep only the checkpoints whose reference `keep` accepts, in their order (one pass);
    /// `latest` moves to the last remaining reference if it is removed (as with
    /// [`CheckpointCollection::remove`]).
    pub(crate) fn retain_references(&mut self, mut keep: impl FnMut(&Reference) -> bool) {
        self.checkpoints.retain(|r, _| keep(r));
        if self.latest.as_ref().is_some_and(|l| !self.checkpoints.contains_key(l)) {
            self.latest = self.checkpoints.keys().last().cloned();
        }
    }

    /// The latest reference, if any.
    pub fn latest(&self) -> Option<&Reference> {
        self.latest.as_ref()
    }

    /// Make `reference` the latest; it must be registered.
    pub fn set_latest(&mut self, reference: &Reference) -> Result<()> {
        if !self.checkpoints.contains_key(reference) {
            return Err(Error::MissingReference(reference.clone()));
        }
        self.latest = Some(reference.clone());
        Ok(())
    }

    /// The checkpoint `reference`, if registered.
    pub fn get(&self, reference: &Reference) -> Option<&C> {
        self.checkpoints.get(reference)
    }

    /// Whether `reference` is registered.
    pub fn contains(&self, reference: &Reference) -> bool {
        self.checkpoints.contains_key(reference)
    }

    /// The number of checkpoints.
    pub fn len(&self) -> usize {
        self.checkpoints.len()
    }

    /// Whether the collection is empty.
    pub fn is_empty(&self) -> bool {
        self.checkpoints.is_empty()
    }

    /// The references, in insertion order.
    pub fn keys(&self) -> impl ExactSizeIterator<Item = &Reference> + DoubleEndedIterator {
        self.checkpoints.keys()
    }

    /// The checkpoints, in insertion order.
    pub fn values(&self) -> impl ExactSizeIterator<Item = &C> + DoubleEndedIterator {
        self.checkpoints.values()
    }

    /// The `(reference, checkpoint)` pairs, in insertion order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&Reference, &C)> + DoubleEndedIterator {
        self.checkpoints.iter()
    }

    /// The checkpoint at insertion index `index`.
    pub fn by_index(&self, index: usize) -> Option<(&Reference, &C)> {
        self.checkpoints.get_index(index)
    }

    /// A new collection of the checkpoints taken at `epoch`, in insertion order (maybe empty).
    pub fn by_epoch(&self, epoch: i64) -> Self {
        let mut out = Self::new();
        for (r, c) in self.checkpoints.iter().filter(|(_, c)| c.epoch() == Some(epoch)) {
            out.checkpoints.insert(r.clone(), c.clone());
            out.latest = Some(r.clone());
        }
        out
    }

    /// The same collection with each checkpoint mapped by `f` (same references and latest).
    pub fn try_map<D, E>(
        &self,
        mut f: impl FnMut(&Reference, &C) -> Result<D, E>,
    ) -> Result<CheckpointCollection<D>, E> {
        let mut checkpoints = IndexMap::with_capacity(self.checkpoints.len());
        for (r, c) in &self.checkpoints {
            checkpoints.insert(r.clone(), f(r, c)?);
        }
        Ok(CheckpointCollection { checkpoints, latest: self.latest.clone() })
    }
}

impl<C: PartialEq> PartialEq for CheckpointCollection<C> {
    /// Equal when the `(reference, checkpoint)` sets are equal (order does not matter).
    fn eq(&self, other: &Self) -> bool {
        self.checkpoints.len() == other.checkpoints.len()
            && self.checkpoints.iter().all(|(r, c)| other.checkpoints.get(r) == Some(c))
    }
}

impl<C: Eq> Eq for CheckpointCollection<C> {}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn ck(name: impl Into<Reference>, epoch: Option<i64>, h: char) -> Checkpoint {
        Checkpoint::new(name, None::<&Path>, epoch, Some(&h.to_string().repeat(32))).unwrap()
    }

    #[test]
    fn add_refuses_duplicates_and_missing_epochs() {
        let mut c = CheckpointCollection::new();
        c.add(ck(1, Some(1), 'a')).unwrap();
        c.add(ck("1", Some(1), 'a')).unwrap();
        assert_eq!(c.len(), 2);
        let err = c.add(ck(1, Some(2), 'b')).unwrap_err();
        assert!(matches!(err, Error::DuplicateReference(Reference::Int(1))), "{err}");
        assert_eq!(err.to_string(), "checkpoint reference 1 is already registered in the collection");
        let err = c.add(ck(5, None, 'b')).unwrap_err();
        assert!(matches!(err, Error::CheckpointWithoutEpoch { reference: Reference::Int(5) }), "{err}");
        assert!(err.to_string().contains("no epoch"), "{err}");
    }

    #[test]
    fn latest_follows_additions_and_removals_not_replacements() {
        let mut c =
            CheckpointCollection::from_checkpoints([ck(1, Some(1), 'a'), ck(2, Some(2), 'b'), ck(3, Some(3), 'c')])
                .unwrap();
        assert_eq!(c.latest(), Some(&Reference::Int(3)));
        c.insert(1, &ck("x", Some(9), 'd')).unwrap();
        assert_eq!(c.latest(), Some(&Reference::Int(3)));
        assert_eq!(c.get(&1.into()).unwrap().name, Reference::Int(1));
        assert_eq!(c.by_index(0).unwrap().1.epoch, Some(9));
        c.insert("new", &ck("x", Some(4), 'd')).unwrap();
        assert_eq!(c.latest(), Some(&Reference::from("new")));
        c.remove(&"new".into()).unwrap();
        assert_eq!(c.latest(), Some(&Reference::Int(3)));
        c.remove(&1.into()).unwrap();
        assert_eq!(c.latest(), Some(&Reference::Int(3)));
        assert!(matches!(c.remove(&1.into()), Err(Error::MissingReference(_))));
        c.remove(&3.into()).unwrap();
        c.remove(&2.into()).unwrap();
        assert_eq!(c.latest(), None);
    }

    #[test]
    fn by_epoch_and_equality() {
        let c = CheckpointCollection::from_checkpoints([ck(1, Some(1), 'a'), ck(2, Some(2), 'b'), ck(3, Some(1), 'c')])
            .unwrap();
        let e = c.by_epoch(1);
        assert_eq!(e.keys().cloned().collect::<Vec<_>>(), vec![Reference::Int(1), Reference::Int(3)]);
        assert!(c.by_epoch(7).is_empty());
        let d = CheckpointCollection::from_checkpoints([ck(3, Some(1), 'c'), ck(2, Some(2), 'b'), ck(1, Some(1), 'a')])
            .unwrap();
        assert_eq!(c, d);
        let f =
            CheckpointCollection::from_checkpoints([ck(3, Some(1), 'c'), ck(2, Some(2), 'b'), ck("1", Some(1), 'a')])
                .unwrap();
        assert_ne!(c, f);
    }
}
