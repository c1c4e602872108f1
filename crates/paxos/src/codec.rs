//! Byte encodings of messages and durable records, each with a checksum.
//!
//! Every encoding is one frame:
//!
//! ```text
//! [kind: u8][version: u8][payload: postcard][crc32 of kind..payload: u32 LE]
//! ```
//!
//! The payload is the [postcard](https://docs.rs/postcard) encoding of the
//! serde form of the type (varints, no field names: compact and stable for a
//! given type definition). The kind byte stops a record of one type from
//! being read as another; the version byte leaves room for a format change.
//!
//! Decoding checks the length, kind, version and checksum before it looks at
//! the payload, and rejects trailing bytes. A message that fails is refused
//! as malformed (see [`crate::RejectReason::Malformed`]); a durable record
//! that fails is [`Error::Corruption`], which stops the replica at restart
//! rather than apply damaged data.

use meridian_error::{Error, Result};
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::message::Envelope;
use crate::types::{Entry, HardState, Snapshot};

/// The format version written today.
const VERSION: u8 = 1;

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Kind {
    /// A network message ([`Envelope`]).
    Message = 1,
    /// A log entry record ([`Entry`]).
    Entry = 2,
    /// The hard state record ([`HardState`]).
    HardState = 3,
    /// A snapshot record ([`Snapshot`]).
    Snapshot = 4,
}

fn encode<T: Serialize>(kind: Kind, value: &T) -> Vec<u8> {
    let mut out = vec![kind as u8, VERSION];
    // Serializing these plain types into a Vec cannot fail.
    out = postcard::to_extend(value, out).expect("postcard encoding into a Vec");
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Decodes a frame, with `Err(reason)` on any damage.
fn decode<T: DeserializeOwned>(kind: Kind, bytes: &[u8]) -> std::result::Result<T, String> {
    if bytes.len() < 6 {
        return Err(format!("{} bytes is too short for a frame", bytes.len()));
    }
    let (body, crc) = bytes.split_at(bytes.len() - 4);
    let crc = u32::from_le_bytes(crc.try_into().expect("4 bytes"));
    let actual = crc32fast::hash(body);
    if crc != actual {
        return Err(format!(
            "checksum mismatch (stored {crc:08x}, computed {actual:08x})"
        ));
    }
    if body[0] != kind as u8 {
        return Err(format!("kind {} where {:?} was expected", body[0], kind));
    }
    if body[1] != VERSION {
        return Err(format!("unknown format version {}", body[1]));
    }
    match postcard::take_from_bytes::<T>(&body[2..]) {
        Ok((value, [])) => Ok(value),
        Ok((_, rest)) => Err(format!("{} trailing bytes", rest.len())),
        Err(e) => Err(format!("undecodable payload: {e}")),
    }
}

/// Encodes a message for the network.
pub fn encode_message(envelope: &Envelope) -> Vec<u8> {
    encode(Kind::Message, envelope)
}

/// Decodes a message from the network; `Err` says why it is malformed.
pub fn decode_message(bytes: &[u8]) -> std::result::Result<Envelope, String> {
    decode(Kind::Message, bytes)
}

/// Encodes a log entry for the durable log.
pub fn encode_entry(entry: &Entry) -> Vec<u8> {
    encode(Kind::Entry, entry)
}

/// Decodes a durable log entry; damage is [`Error::Corruption`].
pub fn decode_entry(bytes: &[u8]) -> Result<Entry> {
    decode(Kind::Entry, bytes).map_err(|why| Error::Corruption(format!("paxos log entry: {why}")))
}

/// Encodes the hard state for durable storage.
pub fn encode_hard_state(state: &HardState) -> Vec<u8> {
    encode(Kind::HardState, state)
}

/// Decodes the durable hard state; damage is [`Error::Corruption`].
pub fn decode_hard_state(bytes: &[u8]) -> Result<HardState> {
    decode(Kind::HardState, bytes)
        .map_err(|why| Error::Corruption(format!("paxos hard state: {why}")))
}

/// Encodes a snapshot for durable storage.
pub fn encode_snapshot(snapshot: &Snapshot) -> Vec<u8> {
    encode(Kind::Snapshot, snapshot)
}

/// Decodes a durable snapshot; damage is [`Error::Corruption`].
pub fn decode_snapshot(bytes: &[u8]) -> Result<Snapshot> {
    decode(Kind::Snapshot, bytes).map_err(|why| Error::Corruption(format!("paxos snapshot: {why}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use crate::types::{Ballot, Membership, Value};

    fn entry() -> Entry {
        Entry {
            slot: 7,
            ballot: Ballot::new(3, 2),
            value: Value::Command {
                id: 9,
                data: b"put a=1".to_vec(),
            },
        }
    }

    #[test]
    fn round_trips() {
        let e = entry();
        assert_eq!(decode_entry(&encode_entry(&e)).unwrap(), e);
        let h = HardState {
            promised: Ballot::new(4, 1),
            commit: 12,
        };
        assert_eq!(decode_hard_state(&encode_hard_state(&h)).unwrap(), h);
        let s = Snapshot {
            index: 5,
            membership: Membership::new([1, 2, 3]),
            membership_slot: 0,
            data: vec![1, 2, 3],
        };
        assert_eq!(decode_snapshot(&encode_snapshot(&s)).unwrap(), s);
        let m = Envelope {
            cluster: 1,
            group: 1,
            from: 2,
            to: 3,
            epoch: 0,
            message: Message::Accept {
                ballot: Ballot::new(3, 2),
                entries: vec![e],
                commit: 6,
            },
        };
        assert_eq!(decode_message(&encode_message(&m)).unwrap(), m);
    }

    #[test]
    fn every_flipped_bit_is_detected() {
        let bytes = encode_entry(&entry());
        for i in 0..bytes.len() * 8 {
            let mut damaged = bytes.clone();
            damaged[i / 8] ^= 1 << (i % 8);
            let err = decode_entry(&damaged).unwrap_err();
            assert!(matches!(err, Error::Corruption(_)), "bit {i}: {err}");
        }
    }

    #[test]
    fn truncation_kind_and_trailing_bytes_are_detected() {
        let bytes = encode_entry(&entry());
        for len in 0..bytes.len() {
            assert!(decode_entry(&bytes[..len]).is_err(), "length {len}");
        }
        // A valid hard-state frame is not an entry.
        let hs = encode_hard_state(&HardState::default());
        assert!(decode_entry(&hs).unwrap_err().to_string().contains("kind"));
        // A frame with extra payload bytes and a matching checksum.
        let mut extra = bytes[..bytes.len() - 4].to_vec();
        extra.push(0);
        let crc = crc32fast::hash(&extra);
        extra.extend_from_slice(&crc.to_le_bytes());
        assert!(decode_entry(&extra)
            .unwrap_err()
            .to_string()
            .contains("trailing"));
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64)) {
            let _ = decode_message(&bytes);
            let _ = decode_entry(&bytes);
        }
    }
}
