//! What each group serves, and the keys that change it.
//!
//! The placement (which group holds which range) is a routing table every
//! node caches; it may be stale. What a group actually serves is decided by
//! its own state machine: [`Spans`], changed only by log entries, so every
//! replica of the group agrees on it at every slot. A leader checks each
//! operation against it and answers [`Error::RangeMoved`] for keys it does
//! not serve; a stale cache therefore costs a retry, never a wrong answer.
//!
//! **Moves.** A range moves from group `g` to group `h` by one ordinary
//! distributed transaction (two-phase commit over `g`, `h` and the first
//! group, which holds the placement rows): it locks the range exclusively
//! at `g` (waiting for or wounding every transaction using it), the raw
//! versions of the range are copied into `h`'s log ([`Command::Ingest`]:
//! stored, not served), and it writes three rows: a [`SpanChange::Release`]
//! control key at `g`, a [`SpanChange::Adopt`] control key at `h` and the
//! range's placement row. Control keys are never stored as data: the state
//! machine applies them as the change of what the group serves, at the
//! commit timestamp, atomically with the rest of the transaction. `h` then
//! holds every version of the range, so it serves reads at any timestamp.
//! (A node's replicas share one data keyspace, so `g` cannot drop the
//! range's versions: `h`'s replica on the same node holds the same ones.
//! On a node without a replica of `h` they stay, unserved, apart from what
//! garbage collection trims.)
//!
//! [`Command::Ingest`]: crate::group::Command::Ingest

use std::ops::Bound;
use std::sync::{Arc, RwLock};

use meridian_error::{Error, Result};
use meridian_storage::{keycode, KeyRange};
use serde::{Deserialize, Serialize};

/// A set of half-open key intervals `[start, end)` (`end` `None`: to the end
/// of the keyspace), kept sorted, disjoint and merged.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet(Vec<(Vec<u8>, Option<Vec<u8>>)>);

/// Whether end `a` lies before end `b` (`None` is the end of the keyspace).
fn end_before(a: Option<&[u8]>, b: Option<&[u8]>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a < b,
        (Some(_), None) => true,
        (None, _) => false,
    }
}

/// Whether `[a, b)` and `[start, end)` share a key.
fn intersects(a: &[u8], b: Option<&[u8]>, start: &[u8], end: Option<&[u8]>) -> bool {
    end_before(Some(a), end) && end_before(Some(start), b)
}

impl KeySet {
    /// The set holding `ranges`.
    pub fn of(ranges: &[KeyRange]) -> Self {
        let mut set = KeySet::default();
        for range in ranges {
            let (start, end) = range.to_half_open();
            set.add(start.unwrap_or_default(), end);
        }
        set
    }

    /// Adds `[start, end)`.
    pub fn add(&mut self, start: Vec<u8>, end: Option<Vec<u8>>) {
        if !end_before(Some(&start), end.as_deref()) {
            return;
        }
        self.0.push((start, end));
        self.0.sort();
        let mut merged: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::with_capacity(self.0.len());
        for (start, end) in self.0.drain(..) {
            match merged.last_mut() {
                // Overlapping or adjacent: extend the last one.
                Some((_, last_end)) if !end_before(last_end.as_deref(), Some(&start)) => {
                    if end_before(last_end.as_deref(), end.as_deref()) {
                        *last_end = end;
                    }
                }
                _ => merged.push((start, end)),
            }
        }
        self.0 = merged;
    }

    /// Removes `[start, end)`.
    pub fn remove(&mut self, start: &[u8], end: Option<&[u8]>) {
        let mut kept = Vec::with_capacity(self.0.len() + 1);
        for (a, b) in self.0.drain(..) {
            if !intersects(&a, b.as_deref(), start, end) {
                kept.push((a, b));
                continue;
            }
            if a.as_slice() < start {
                kept.push((a, Some(start.to_vec())));
            }
            if let Some(end) = end {
                if end_before(Some(end), b.as_deref()) {
                    kept.push((end.to_vec(), b));
                }
            }
        }
        self.0 = kept;
    }

    /// Whether every key of `[start, end)` is in the set.
    pub fn covers(&self, start: &[u8], end: Option<&[u8]>) -> bool {
        self.0
            .iter()
            .any(|(a, b)| a.as_slice() <= start && !end_before(b.as_deref(), end))
    }

    /// Whether some key of `[start, end)` is in the set.
    pub fn overlaps(&self, start: &[u8], end: Option<&[u8]>) -> bool {
        self.0
            .iter()
            .any(|(a, b)| intersects(a, b.as_deref(), start, end))
    }

    /// The intervals as key ranges.
    pub fn ranges(&self) -> Vec<KeyRange> {
        self.0
            .iter()
            .map(|(start, end)| KeyRange {
                start: Bound::Included(start.clone()),
                end: end.clone().map_or(Bound::Unbounded, Bound::Excluded),
            })
            .collect()
    }
}

/// What a group serves, as its state machine says at the last applied
/// slot.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spans {
    /// The ranges it serves.
    pub owned: KeySet,
    /// Ranges it released, with the group each went to (latest last).
    pub moved: Vec<(Vec<u8>, Option<Vec<u8>>, u64)>,
    /// Ranges being copied in: stored here, not served yet.
    pub incoming: KeySet,
}

impl Spans {
    /// A group serving `ranges`.
    pub fn owning(ranges: &[KeyRange]) -> Self {
        Spans {
            owned: KeySet::of(ranges),
            ..Spans::default()
        }
    }

    /// `Ok` if `group` serves every key of `range`, else
    /// [`Error::RangeMoved`] (naming where it went, if it knows).
    pub fn check(&self, group: u64, range: &KeyRange) -> Result<()> {
        if range.is_empty() {
            return Ok(());
        }
        let (start, end) = range.to_half_open();
        let start = start.unwrap_or_default();
        // A group's own control keys (they sort after every data key).
        if self.owned.covers(&start, end.as_deref()) || control_group(&start) == Some(group) {
            return Ok(());
        }
        let moved_to = self
            .moved
            .iter()
            .rev()
            .find(|(a, b, _)| intersects(a, b.as_deref(), &start, end.as_deref()))
            .map(|&(_, _, to)| to);
        Err(Error::RangeMoved { group, moved_to })
    }

    /// `Ok` if `group` serves `key`.
    pub fn check_key(&self, group: u64, key: &[u8]) -> Result<()> {
        let mut end = key.to_vec();
        end.push(0);
        self.check(group, &KeyRange::new(key.to_vec(), end))
    }

    /// What the group's replicas store: what it serves and what is being
    /// copied in (a snapshot carries both).
    pub fn stored(&self) -> Vec<KeyRange> {
        let mut all = self.owned.clone();
        for range in self.incoming.ranges() {
            let (start, end) = range.to_half_open();
            all.add(start.unwrap_or_default(), end);
        }
        all.ranges()
    }

    /// Applies a change.
    pub fn apply(&mut self, change: &SpanChange) {
        match change {
            SpanChange::Release { start, end, to } => {
                self.owned.remove(start, end.as_deref());
                self.moved.push((start.clone(), end.clone(), *to));
            }
            SpanChange::Adopt { start, end, .. } => {
                self.incoming.remove(start, end.as_deref());
                self.moved
                    .retain(|(a, b, _)| !intersects(a, b.as_deref(), start, end.as_deref()));
                self.owned.add(start.clone(), end.clone());
            }
        }
    }
}

/// What a group serves, shared between its state machine (the only writer)
/// and the readers that must not serve outside it.
#[derive(Clone, Debug, Default)]
pub struct SharedSpans(Arc<RwLock<Spans>>);

impl SharedSpans {
    /// Shares `spans`.
    pub fn new(spans: Spans) -> Self {
        SharedSpans(Arc::new(RwLock::new(spans)))
    }

    /// A copy of what the group serves now.
    pub fn get(&self) -> Spans {
        self.0.read().expect("spans poisoned").clone()
    }

    /// Replaces what the group serves (its state machine applied a change).
    pub fn set(&self, spans: Spans) {
        *self.0.write().expect("spans poisoned") = spans;
    }

    /// [`Spans::check`] on what the group serves now.
    pub fn check(&self, group: u64, range: &KeyRange) -> Result<()> {
        self.0.read().expect("spans poisoned").check(group, range)
    }

    /// [`Spans::check_key`] on what the group serves now.
    pub fn check_key(&self, group: u64, key: &[u8]) -> Result<()> {
        self.0.read().expect("spans poisoned").check_key(group, key)
    }
}

/// A change of what a group serves, written as the value of a control key
/// of that group ([`control_key`]) by the transaction that moves a range.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SpanChange {
    /// The group stops serving `[start, end)`, which went to group `to`.
    Release {
        /// The first key.
        start: Vec<u8>,
        /// The end (`None`: the end of the keyspace).
        end: Option<Vec<u8>>,
        /// The group serving it from now on.
        to: u64,
    },
    /// The group serves `[start, end)` from now on (its versions were
    /// copied in).
    Adopt {
        /// The first key.
        start: Vec<u8>,
        /// The end.
        end: Option<Vec<u8>>,
        /// The group that served it.
        from: u64,
    },
}

impl SpanChange {
    /// The encoded value of the control key.
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("span changes always encode")
    }

    /// Decodes a control key's value.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        postcard::from_bytes(bytes)
            .map_err(|e| Error::Corruption(format!("undecodable span change: {e}")))
    }
}

/// Where control keys start: no row key does (it would need a table id of
/// at least `0xFF << 56`).
const CONTROL_PREFIX: [u8; 3] = [0xFF, 0xFF, 0x01];

/// The control key through which a transaction changes what `group` serves
/// (`start` keeps keys of two moves of one transaction apart). Routed to
/// `group` whatever the placement says.
pub fn control_key(group: u64, start: &[u8]) -> Vec<u8> {
    let mut key = CONTROL_PREFIX.to_vec();
    key.extend_from_slice(&group.to_be_bytes());
    key.extend_from_slice(start);
    key
}

/// The group a control key belongs to; `None` for any other key.
pub fn control_group(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(&CONTROL_PREFIX)?;
    let group = rest.get(..8)?;
    Some(u64::from_be_bytes(group.try_into().expect("eight bytes")))
}

/// The reserved table id of the placement rows (the catalog is table 0).
pub const PLACEMENT_TABLE: u64 = 1;

/// Where the placement rows start: `/1/<range start>` -> group, one row per
/// range, in the first group's system keys.
pub fn placement_prefix() -> Vec<u8> {
    let mut prefix = Vec::new();
    keycode::encode_u64(&mut prefix, PLACEMENT_TABLE);
    prefix
}

/// The placement row of the range starting at `start`.
pub fn placement_key(start: &[u8]) -> Vec<u8> {
    let mut key = placement_prefix();
    key.extend_from_slice(start);
    key
}

/// The value of a placement row: the group holding the range.
pub fn encode_placement(group: u64) -> Vec<u8> {
    group.to_be_bytes().to_vec()
}

/// Decodes a placement row into `(range start, group)`.
pub fn decode_placement(key: &[u8], value: &[u8]) -> Result<(Vec<u8>, u64)> {
    let prefix = placement_prefix();
    let start = key
        .strip_prefix(prefix.as_slice())
        .ok_or_else(|| Error::Corruption("a placement row outside the placement table".into()))?;
    let group: [u8; 8] = value
        .try_into()
        .map_err(|_| Error::Corruption(format!("a placement row of {} bytes", value.len())))?;
    Ok((start.to_vec(), u64::from_be_bytes(group)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(intervals: &[(&str, Option<&str>)]) -> KeySet {
        let mut set = KeySet::default();
        for (a, b) in intervals {
            set.add(a.as_bytes().to_vec(), b.map(|b| b.as_bytes().to_vec()));
        }
        set
    }

    #[test]
    fn intervals_merge_split_and_cover() {
        let mut s = set(&[("a", Some("c")), ("c", Some("e")), ("x", None)]);
        assert_eq!(s, set(&[("a", Some("e")), ("x", None)]));
        assert!(s.covers(b"b", Some(b"e")));
        assert!(!s.covers(b"b", Some(b"f")));
        assert!(s.covers(b"y", None));
        assert!(!s.covers(b"e", Some(b"f")));
        s.remove(b"b", Some(b"d"));
        assert_eq!(s, set(&[("a", Some("b")), ("d", Some("e")), ("x", None)]));
        assert!(s.overlaps(b"a", Some(b"z")));
        assert!(!s.overlaps(b"b", Some(b"d")));
        s.remove(b"w", None);
        assert_eq!(s, set(&[("a", Some("b")), ("d", Some("e"))]));
        // Empty and inverted intervals add nothing.
        s.add(b"q".to_vec(), Some(b"q".to_vec()));
        assert_eq!(s, set(&[("a", Some("b")), ("d", Some("e"))]));
    }

    #[test]
    fn a_released_range_is_refused_with_where_it_went_until_adopted_back() {
        let mut spans = Spans::owning(&[KeyRange::new(b"a".to_vec(), b"z".to_vec())]);
        spans.check_key(2, b"m").unwrap();
        spans.apply(&SpanChange::Release {
            start: b"k".to_vec(),
            end: Some(b"p".to_vec()),
            to: 3,
        });
        assert_eq!(
            spans.check_key(2, b"m"),
            Err(Error::RangeMoved {
                group: 2,
                moved_to: Some(3)
            })
        );
        spans.check_key(2, b"j").unwrap();
        assert_eq!(
            spans.check(2, &KeyRange::new(b"b".to_vec(), b"q".to_vec())),
            Err(Error::RangeMoved {
                group: 2,
                moved_to: Some(3)
            })
        );
        spans.apply(&SpanChange::Adopt {
            start: b"k".to_vec(),
            end: Some(b"p".to_vec()),
            from: 3,
        });
        spans
            .check(2, &KeyRange::new(b"b".to_vec(), b"q".to_vec()))
            .unwrap();
        assert!(spans.moved.is_empty());
        // Its own control keys are always its own.
        spans.check_key(2, &control_key(2, b"k")).unwrap();
        assert!(spans.check_key(2, &control_key(3, b"k")).is_err());
        // Never served: no destination known.
        assert_eq!(
            spans.check_key(2, b"zz"),
            Err(Error::RangeMoved {
                group: 2,
                moved_to: None
            })
        );
    }

    #[test]
    fn control_and_placement_keys_round_trip() {
        let key = control_key(7, b"/100");
        assert_eq!(control_group(&key), Some(7));
        assert_eq!(control_group(b"/100"), None);
        let change = SpanChange::Adopt {
            start: b"a".to_vec(),
            end: None,
            from: 2,
        };
        assert_eq!(SpanChange::decode(&change.encode()).unwrap(), change);
        let row = placement_key(b"\x64");
        assert_eq!(
            decode_placement(&row, &encode_placement(3)).unwrap(),
            (b"\x64".to_vec(), 3)
        );
        assert!(decode_placement(&row, b"x").is_err());
    }
}
