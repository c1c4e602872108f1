//! Messages and gRPC services between Meridian nodes, generated at build time
//! from the `.proto` files in the top-level `proto/` directory (tonic + prost,
//! with a vendored `protoc`).
//!
//! - `common.proto`: shared value types (timestamps, key spans);
//! - `node.proto`: the `Node` service between nodes: Paxos traffic batched
//!   per peer, cluster bootstrap (`Hello`, `Init`, `Bootstrap`), operations
//!   of transactions routed to a group's leader, and status.

/// Version 1 of the node-to-node protocol (`package meridian.v1`).
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("meridian.v1");
}

#[cfg(test)]
mod tests {
    use super::v1;
    use prost::Message;

    #[test]
    fn messages_round_trip_through_protobuf() {
        let span = v1::KeySpan {
            start: b"a".to_vec(),
            end: b"b".to_vec(),
        };
        let bytes = span.encode_to_vec();
        assert_eq!(v1::KeySpan::decode(bytes.as_slice()).unwrap(), span);
        assert!(v1::Timestamp::decode(&[0xff][..]).is_err());
    }
}
