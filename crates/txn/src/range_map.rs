//! [`RangeMap`]: which group holds which part of the keyspace.
//!
//! The keyspace is cut at split keys into contiguous ranges; range `i`
//! covers `[start_i, start_{i+1})`, the first starts at the empty key and
//! the last runs to the end. A lookup is a binary search; a key range is
//! cut at the boundaries it crosses, so that each part goes to one group.

use std::ops::Bound;

use meridian_error::{Error, Result};
use meridian_storage::KeyRange;

use crate::api::RangeInfo;

/// Range starts and the group holding each range, in key order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RangeMap {
    /// `(start, group)`, sorted by start; the first start is empty.
    starts: Vec<(Vec<u8>, u64)>,
}

impl RangeMap {
    /// One range, the whole keyspace, held by `group`.
    pub fn single(group: u64) -> Self {
        RangeMap {
            starts: vec![(Vec::new(), group)],
        }
    }

    /// A map from range starts: the first must be the empty key, the rest
    /// strictly increasing.
    pub fn new(starts: Vec<(Vec<u8>, u64)>) -> Result<Self> {
        if starts.first().is_none_or(|(start, _)| !start.is_empty()) {
            return Err(Error::InvalidInput(
                "the first range must start at the beginning of the keyspace".into(),
            ));
        }
        if starts.windows(2).any(|w| w[0].0 >= w[1].0) {
            return Err(Error::InvalidInput(
                "range starts must be strictly increasing".into(),
            ));
        }
        Ok(RangeMap { starts })
    }

    /// The ranges: `(start, end, group)`, `end` `None` for the last.
    pub fn ranges(&self) -> impl Iterator<Item = (&[u8], Option<&[u8]>, u64)> {
        self.starts.iter().enumerate().map(|(i, (start, group))| {
            let end = self.starts.get(i + 1).map(|(end, _)| end.as_slice());
            (start.as_slice(), end, *group)
        })
    }

    /// The ranges as [`RangeInfo`]s, nothing known but bounds and groups.
    pub fn infos(&self) -> Vec<RangeInfo> {
        self.ranges()
            .map(|(start, end, group)| RangeInfo {
                start: start.to_vec(),
                end: end.map(<[u8]>::to_vec),
                group,
                ..RangeInfo::default()
            })
            .collect()
    }

    /// The index of the range holding `key`.
    fn index_of(&self, key: &[u8]) -> usize {
        // The last range whose start is <= key (the first starts at "").
        self.starts
            .partition_point(|(start, _)| start.as_slice() <= key)
            .saturating_sub(1)
    }

    /// The group holding `key`.
    pub fn group_of(&self, key: &[u8]) -> u64 {
        self.starts[self.index_of(key)].1
    }

    /// The parts of `range` in key order, each within one range, with the
    /// group holding it. Adjacent parts held by the same group are merged.
    pub fn locate(&self, range: &KeyRange) -> Vec<(u64, KeyRange)> {
        if range.is_empty() {
            return Vec::new();
        }
        let (lower, upper) = range.to_half_open();
        let first = self.index_of(lower.as_deref().unwrap_or_default());
        let mut parts: Vec<(u64, KeyRange)> = Vec::new();
        for i in first..self.starts.len() {
            let (start, group) = &self.starts[i];
            if i > first && upper.as_deref().is_some_and(|u| u <= start.as_slice()) {
                break;
            }
            let part_start = if i == first {
                range.start.clone()
            } else {
                Bound::Included(start.clone())
            };
            let next = self.starts.get(i + 1).map(|(s, _)| s);
            let part_end = match next {
                Some(next) if upper.as_ref().is_none_or(|u| u > next) => {
                    Bound::Excluded(next.clone())
                }
                _ => range.end.clone(),
            };
            match parts.last_mut() {
                Some((last_group, last)) if last_group == group => last.end = part_end,
                _ => parts.push((
                    *group,
                    KeyRange {
                        start: part_start,
                        end: part_end,
                    },
                )),
            }
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map() -> RangeMap {
        RangeMap::new(vec![
            (Vec::new(), 1),
            (b"g".to_vec(), 2),
            (b"p".to_vec(), 3),
            (b"t".to_vec(), 3),
        ])
        .unwrap()
    }

    #[test]
    fn keys_go_to_the_range_whose_start_is_at_or_below_them() {
        let map = map();
        assert_eq!(map.group_of(b""), 1);
        assert_eq!(map.group_of(b"f\xff"), 1);
        assert_eq!(map.group_of(b"g"), 2);
        assert_eq!(map.group_of(b"o"), 2);
        assert_eq!(map.group_of(b"p"), 3);
        assert_eq!(map.group_of(b"zzz"), 3);
    }

    #[test]
    fn a_key_range_is_cut_at_the_boundaries_it_crosses() {
        let map = map();
        let parts = map.locate(&KeyRange::new(b"c".to_vec(), b"r".to_vec()));
        assert_eq!(
            parts,
            vec![
                (1, KeyRange::new(b"c".to_vec(), b"g".to_vec())),
                (2, KeyRange::new(b"g".to_vec(), b"p".to_vec())),
                (3, KeyRange::new(b"p".to_vec(), b"r".to_vec())),
            ]
        );
        // Within one range: the range itself; adjacent ranges of one group merge.
        let inside = KeyRange {
            start: Bound::Excluded(b"h".to_vec()),
            end: Bound::Included(b"i".to_vec()),
        };
        assert_eq!(map.locate(&inside), vec![(2, inside.clone())]);
        assert_eq!(
            map.locate(&KeyRange {
                start: Bound::Included(b"q".to_vec()),
                end: Bound::Unbounded
            }),
            vec![(
                3,
                KeyRange {
                    start: Bound::Included(b"q".to_vec()),
                    end: Bound::Unbounded
                }
            )]
        );
        assert_eq!(map.locate(&KeyRange::all()).len(), 3);
        // An end exactly at a boundary does not reach the next range.
        assert_eq!(
            map.locate(&KeyRange::new(b"a".to_vec(), b"g".to_vec())),
            vec![(1, KeyRange::new(b"a".to_vec(), b"g".to_vec()))]
        );
        assert!(map
            .locate(&KeyRange::new(b"b".to_vec(), b"a".to_vec()))
            .is_empty());
    }

    #[test]
    fn malformed_maps_are_refused() {
        assert!(RangeMap::new(vec![(b"a".to_vec(), 1)]).is_err());
        assert!(RangeMap::new(vec![(Vec::new(), 1), (Vec::new(), 2)]).is_err());
    }
}
