//! The lock table's two low-level indexes: a slab that owns every lock request
//! and hands out small integer ids, and a segment map that finds the range
//! requests overlapping a key or a range without scanning them all.
//!
//! # The segment map
//!
//! Range requests overlap one another arbitrarily, so they cannot simply be
//! looked up by key. The segment map cuts the keyspace at every start and end
//! key of a range request into segments, and records for each segment the
//! (sorted) ids of the range requests that cover all of it:
//!
//! ```text
//! requests:  r1 = [b, f)   r2 = [d, +inf)
//! segments:  b → {r1}   d → {r1, r2}   f → {r2}
//! ```
//!
//! A segment starting at boundary `b` runs to the next boundary (or to the
//! end of the keyspace); keys before the first boundary are covered by
//! nothing. Then:
//!
//! - the range requests containing key `k` are the set of the last boundary
//!   `<= k`: one `O(log n)` lookup, on the hot path of every key request;
//! - the range requests overlapping `[s, e)` are the union of the sets of the
//!   segment containing `s` and of every boundary in `(s, e)`;
//! - inserting or removing `[s, e)` splits (or merges) at `s` and `e` and
//!   touches the segments in between.
//!
//! Invariant (checked by [`SegmentMap::check`] in tests): the set of the first
//! boundary is non-empty and adjacent boundaries have different sets, so the
//! map never holds more than two boundaries per range request.
//!
//! Left out: balancing by anything but `BTreeMap`, and sharing sets between
//! segments; sets are small (the range requests covering one key).

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::Arc;

/// A key as stored in the table: shared between the key index, the segment
/// map and the requests, so that a key is copied once, when first locked.
pub(super) type Key = Arc<[u8]>;

/// The id of a request: its index in the [`Slab`].
pub(super) type ReqId = usize;

/// A vector of optional entries with a free list: ids are reused, lookups are
/// an index. Ids are only handed out by `insert` and stay valid until `remove`.
#[derive(Debug)]
pub(super) struct Slab<T> {
    /// The entries; `None` marks a free slot.
    entries: Vec<Option<T>>,
    /// Free slots, reused last-in first-out.
    free: Vec<ReqId>,
    /// The number of occupied slots.
    len: usize,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            entries: Vec::new(),
            free: Vec::new(),
            len: 0,
        }
    }
}

impl<T> Slab<T> {
    /// Stores `value` and returns its id.
    pub(super) fn insert(&mut self, value: T) -> ReqId {
        self.len += 1;
        match self.free.pop() {
            Some(id) => {
                self.entries[id] = Some(value);
                id
            }
            None => {
                self.entries.push(Some(value));
                self.entries.len() - 1
            }
        }
    }

    /// The id the next `insert` will return.
    pub(super) fn next_id(&self) -> ReqId {
        self.free.last().copied().unwrap_or(self.entries.len())
    }

    /// Removes and returns the entry `id`. Panics if it is free: ids come
    /// from the table's own indexes, so a free one is a bug.
    pub(super) fn remove(&mut self, id: ReqId) -> T {
        let value = self.entries[id].take().expect("lock request id is live");
        self.free.push(id);
        self.len -= 1;
        value
    }

    /// The entry `id`, if live.
    pub(super) fn get(&self, id: ReqId) -> Option<&T> {
        self.entries.get(id).and_then(Option::as_ref)
    }

    /// The entry `id`, if live, mutably.
    pub(super) fn get_mut(&mut self, id: ReqId) -> Option<&mut T> {
        self.entries.get_mut(id).and_then(Option::as_mut)
    }

    /// The number of live entries.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Every live entry with its id, in id order.
    pub(super) fn iter(&self) -> impl Iterator<Item = (ReqId, &T)> {
        self.entries
            .iter()
            .enumerate()
            .filter_map(|(id, entry)| entry.as_ref().map(|value| (id, value)))
    }
}

impl<T> std::ops::Index<ReqId> for Slab<T> {
    type Output = T;

    fn index(&self, id: ReqId) -> &T {
        self.get(id).expect("lock request id is live")
    }
}

impl<T> std::ops::IndexMut<ReqId> for Slab<T> {
    fn index_mut(&mut self, id: ReqId) -> &mut T {
        self.get_mut(id).expect("lock request id is live")
    }
}

/// The range requests of the table, as segments of the keyspace each
/// labelled with the sorted ids of the range requests covering it.
#[derive(Debug, Default)]
pub(super) struct SegmentMap {
    /// Segment start → the requests covering `[start, next start)`.
    segments: BTreeMap<Key, Vec<ReqId>>,
}

/// The `(lower, upper)` bounds of `[start, end)` as `BTreeMap` range bounds.
fn bounds<'a>(start: Bound<&'a [u8]>, end: Option<&'a [u8]>) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    (start, end.map_or(Bound::Unbounded, Bound::Excluded))
}

impl SegmentMap {
    /// The range requests whose range contains `key`.
    pub(super) fn at(&self, key: &[u8]) -> &[ReqId] {
        self.segments
            .range::<[u8], _>((Bound::Unbounded, Bound::Included(key)))
            .next_back()
            .map_or(&[], |(_, ids)| ids.as_slice())
    }

    /// Calls `f` with every range request overlapping `[start, end)`. A
    /// request spanning several segments is passed once per segment.
    pub(super) fn for_each_overlapping<B>(
        &self,
        start: &[u8],
        end: Option<&[u8]>,
        mut f: impl FnMut(ReqId) -> std::ops::ControlFlow<B>,
    ) -> std::ops::ControlFlow<B> {
        for &id in self.at(start) {
            f(id)?;
        }
        for (_, ids) in self
            .segments
            .range::<[u8], _>(bounds(Bound::Excluded(start), end))
        {
            for &id in ids {
                f(id)?;
            }
        }
        std::ops::ControlFlow::Continue(())
    }

    /// Adds request `id` covering `[start, end)`.
    pub(super) fn insert(&mut self, start: &Key, end: Option<&Key>, id: ReqId) {
        self.split(start);
        if let Some(end) = end {
            self.split(end);
        }
        for (_, ids) in self
            .segments
            .range_mut::<[u8], _>(bounds(Bound::Included(start), end.map(|e| &e[..])))
        {
            if let Err(pos) = ids.binary_search(&id) {
                ids.insert(pos, id);
            }
        }
    }

    /// Removes request `id`, which covers `[start, end)`.
    pub(super) fn remove(&mut self, start: &[u8], end: Option<&[u8]>, id: ReqId) {
        for (_, ids) in self
            .segments
            .range_mut::<[u8], _>(bounds(Bound::Included(start), end))
        {
            if let Ok(pos) = ids.binary_search(&id) {
                ids.remove(pos);
            }
        }
        self.merge(start);
        if let Some(end) = end {
            self.merge(end);
        }
    }

    /// Makes `at` a boundary, its segment inheriting the covering set of the
    /// segment it splits.
    fn split(&mut self, at: &Key) {
        if self.segments.contains_key(&at[..]) {
            return;
        }
        let covering = self.at(at).to_vec();
        self.segments.insert(Key::clone(at), covering);
    }

    /// Removes boundary `at` if its segment has the same set as the one
    /// before it (nothing, before the first boundary).
    fn merge(&mut self, at: &[u8]) {
        let Some(ids) = self.segments.get(at) else {
            return;
        };
        let before = self
            .segments
            .range::<[u8], _>((Bound::Unbounded, Bound::Excluded(at)))
            .next_back()
            .map_or(&[][..], |(_, ids)| ids.as_slice());
        if ids == before {
            self.segments.remove(at);
        }
    }

    /// Asserts the map's invariant (sorted sets, minimal boundaries).
    #[cfg(test)]
    pub(super) fn check(&self) {
        let mut before: &[ReqId] = &[];
        for (key, ids) in &self.segments {
            assert!(
                ids.windows(2).all(|w| w[0] < w[1]),
                "unsorted set at {key:?}"
            );
            assert_ne!(ids.as_slice(), before, "redundant boundary at {key:?}");
            before = ids;
        }
    }

    /// The number of boundaries.
    #[cfg(test)]
    pub(super) fn boundaries(&self) -> usize {
        self.segments.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::ControlFlow;

    fn key(s: &str) -> Key {
        Key::from(s.as_bytes())
    }

    fn overlapping(map: &SegmentMap, start: &str, end: Option<&str>) -> Vec<ReqId> {
        let mut out = Vec::new();
        let _ = map.for_each_overlapping::<()>(start.as_bytes(), end.map(str::as_bytes), |id| {
            out.push(id);
            ControlFlow::Continue(())
        });
        out.sort_unstable();
        out.dedup();
        out
    }

    #[test]
    fn finds_ranges_by_key_and_by_range() {
        let mut map = SegmentMap::default();
        map.insert(&key("b"), Some(&key("f")), 1);
        map.insert(&key("d"), None, 2);
        map.check();
        assert_eq!(map.at(b"a"), &[] as &[ReqId]);
        assert_eq!(map.at(b"b"), &[1]);
        assert_eq!(map.at(b"d"), &[1, 2]);
        assert_eq!(map.at(b"f"), &[2]);
        assert_eq!(map.at(b"zzz"), &[2]);
        assert_eq!(overlapping(&map, "a", Some("b")), Vec::<ReqId>::new());
        assert_eq!(overlapping(&map, "a", Some("c")), vec![1]);
        assert_eq!(overlapping(&map, "a", None), vec![1, 2]);
        assert_eq!(overlapping(&map, "f", Some("g")), vec![2]);
        assert_eq!(overlapping(&map, "c", Some("d")), vec![1]);
    }

    #[test]
    fn removal_merges_back_to_nothing() {
        let mut map = SegmentMap::default();
        map.insert(&key("b"), Some(&key("f")), 1);
        map.insert(&key("d"), None, 2);
        map.insert(&key("b"), Some(&key("f")), 3);
        map.insert(&key("c"), Some(&key("d")), 4);
        map.check();
        map.remove(b"c", Some(b"d"), 4);
        map.check();
        assert_eq!(map.boundaries(), 3);
        map.remove(b"b", Some(b"f"), 1);
        map.remove(b"d", None, 2);
        map.check();
        assert_eq!(map.boundaries(), 2);
        map.remove(b"b", Some(b"f"), 3);
        map.check();
        assert_eq!(map.boundaries(), 0);
    }

    #[test]
    fn slab_reuses_ids() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        let b = slab.insert("b");
        assert_eq!(slab.remove(a), "a");
        let c = slab.insert("c");
        assert_eq!(c, a);
        assert_eq!(slab.len(), 2);
        assert_eq!(slab[b], "b");
        assert_eq!(
            slab.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            vec!["c", "b"]
        );
    }
}
