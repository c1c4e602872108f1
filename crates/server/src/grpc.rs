//! The node API over gRPC (tonic): [`serve`] exposes a node's [`NodeApi`]
//! as the `meridian.v1.Node` service, and [`GrpcConnector`] turns a peer's
//! address into a tonic client implementing the same trait.
//!
//! Errors cross the wire intact: a node API error travels as a gRPC status
//! whose details hold the postcard-encoded [`Error`], so the caller sees
//! the same variant (a `NotLeader` stays a `NotLeader`). A failure of the
//! transport itself (connection refused, reset, deadline) is
//! [`Error::Unavailable`].

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use meridian_error::{Error, Result};
use meridian_proto::v1;
use meridian_proto::v1::node_client::NodeClient;
use meridian_proto::v1::node_server::{Node as NodeService, NodeServer};
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status};

use crate::net::{ApiFuture, Connector, NodeApi};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The deadline of a Paxos delivery, status or hello call.
const SHORT_CALL: Duration = Duration::from_secs(2);
/// The deadline of a transaction operation (lock waits and commits included).
const TXN_CALL: Duration = Duration::from_secs(60);
/// The largest gRPC message either side accepts. Replies are bounded by
/// design (scans come in pages, Paxos batches have a count limit), but a
/// page of large rows or a snapshot may exceed tonic's default of 4 MiB.
const MAX_MESSAGE: usize = 256 << 20;

/// The deadline of `Init` and `AddNode` (they call every member),
/// `HostReplica` and `DropReplica` (which may ask the group's leader).
const INIT_CALL: Duration = Duration::from_secs(30);
/// The deadline of `MoveReplica`: the new replica catches up meanwhile
/// (a snapshot of the group's data, or its log).
const MOVE_CALL: Duration = Duration::from_secs(600);

/// Serves `api` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    api: Arc<dyn NodeApi>,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<()> {
    tonic::transport::Server::builder()
        .add_service(
            NodeServer::new(Service(api))
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        )
        .serve_with_incoming_shutdown(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
            shutdown,
        )
        .await
        .map_err(|e| Error::Io(format!("gRPC server: {e}")))
}

/// The tonic service forwarding to a node.
struct Service(Arc<dyn NodeApi>);

fn to_status(err: Error) -> Status {
    let code = match &err {
        Error::Unavailable(_) | Error::NotLeader { .. } => tonic::Code::Unavailable,
        Error::InvalidInput(_) => tonic::Code::InvalidArgument,
        _ => tonic::Code::Aborted,
    };
    let details = postcard::to_allocvec(&err).expect("errors always encode");
    Status::with_details(code, err.to_string(), details.into())
}

fn from_status(status: Status) -> Error {
    if !status.details().is_empty() {
        if let Ok(err) = postcard::from_bytes::<Error>(status.details()) {
            return err;
        }
    }
    match status.code() {
        // A message over the size limit is no outage: retrying cannot help.
        tonic::Code::ResourceExhausted | tonic::Code::OutOfRange => Error::Internal(format!(
            "a node-to-node message was refused: {}",
            status.message()
        )),
        _ => Error::Unavailable(format!("{}: {}", status.code(), status.message())),
    }
}

#[tonic::async_trait]
impl NodeService for Service {
    async fn deliver(
        &self,
        request: Request<v1::PaxosBatch>,
    ) -> std::result::Result<Response<v1::DeliverReply>, Status> {
        self.0
            .deliver(request.into_inner())
            .await
            .map(|()| Response::new(v1::DeliverReply {}))
            .map_err(to_status)
    }

    async fn hello(
        &self,
        request: Request<v1::HelloRequest>,
    ) -> std::result::Result<Response<v1::HelloReply>, Status> {
        self.0
            .hello(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn init(
        &self,
        request: Request<v1::InitRequest>,
    ) -> std::result::Result<Response<v1::InitReply>, Status> {
        self.0
            .init(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn bootstrap(
        &self,
        request: Request<v1::BootstrapRequest>,
    ) -> std::result::Result<Response<v1::BootstrapReply>, Status> {
        self.0
            .bootstrap(request.into_inner())
            .await
            .map(|()| Response::new(v1::BootstrapReply {}))
            .map_err(to_status)
    }

    async fn txn(
        &self,
        request: Request<v1::TxnRequest>,
    ) -> std::result::Result<Response<v1::TxnReply>, Status> {
        self.0
            .txn(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn status(
        &self,
        _request: Request<v1::StatusRequest>,
    ) -> std::result::Result<Response<v1::StatusReply>, Status> {
        self.0.status().await.map(Response::new).map_err(to_status)
    }

    async fn host_replica(
        &self,
        request: Request<v1::ReplicaRequest>,
    ) -> std::result::Result<Response<v1::ReplicaReply>, Status> {
        self.0
            .host_replica(request.into_inner())
            .await
            .map(|()| Response::new(v1::ReplicaReply {}))
            .map_err(to_status)
    }

    async fn drop_replica(
        &self,
        request: Request<v1::ReplicaRequest>,
    ) -> std::result::Result<Response<v1::ReplicaReply>, Status> {
        self.0
            .drop_replica(request.into_inner())
            .await
            .map(|()| Response::new(v1::ReplicaReply {}))
            .map_err(to_status)
    }

    async fn move_replica(
        &self,
        request: Request<v1::MoveReplicaRequest>,
    ) -> std::result::Result<Response<v1::MoveReplicaReply>, Status> {
        self.0
            .move_replica(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn add_node(
        &self,
        request: Request<v1::AddNodeRequest>,
    ) -> std::result::Result<Response<v1::AddNodeReply>, Status> {
        self.0
            .add_node(request.into_inner())
            .await
            .map(Response::new)
            .map_err(to_status)
    }

    async fn add_peer(
        &self,
        request: Request<v1::AddPeerRequest>,
    ) -> std::result::Result<Response<v1::AddPeerReply>, Status> {
        self.0
            .add_peer(request.into_inner())
            .await
            .map(|()| Response::new(v1::AddPeerReply {}))
            .map_err(to_status)
    }
}

/// Connects to peers over gRPC (lazily: a peer that is down fails calls,
/// and the channel reconnects when it is back).
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcConnector;

impl Connector for GrpcConnector {
    fn connect(&self, address: &str) -> Result<Arc<dyn NodeApi>> {
        Ok(Arc::new(GrpcPeer::connect(address)?))
    }
}

/// A peer's node API over gRPC.
#[derive(Clone, Debug)]
pub struct GrpcPeer {
    /// The client (cheap to clone: one shared channel).
    client: NodeClient<Channel>,
}

impl GrpcPeer {
    /// A client of the node at `address` (`host:port`), connecting lazily.
    pub fn connect(address: &str) -> Result<Self> {
        let endpoint = Endpoint::from_shared(format!("http://{address}"))
            .map_err(|e| Error::InvalidInput(format!("bad node address {address:?}: {e}")))?
            .connect_timeout(CONNECT_TIMEOUT)
            .tcp_nodelay(true);
        Ok(GrpcPeer {
            client: NodeClient::new(endpoint.connect_lazy())
                .max_decoding_message_size(MAX_MESSAGE)
                .max_encoding_message_size(MAX_MESSAGE),
        })
    }

    /// A client of the node at a socket address.
    pub fn at(address: SocketAddr) -> Result<Self> {
        GrpcPeer::connect(&address.to_string())
    }
}

fn with_deadline<T>(message: T, deadline: Duration) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(deadline);
    request
}

impl NodeApi for GrpcPeer {
    fn deliver(&self, batch: v1::PaxosBatch) -> ApiFuture<()> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .deliver(with_deadline(batch, SHORT_CALL))
                .await
                .map(drop)
                .map_err(from_status)
        })
    }

    fn hello(&self, request: v1::HelloRequest) -> ApiFuture<v1::HelloReply> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .hello(with_deadline(request, SHORT_CALL))
                .await
                .map(Response::into_inner)
                .map_err(from_status)
        })
    }

    fn init(&self, request: v1::InitRequest) -> ApiFuture<v1::InitReply> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .init(with_deadline(request, INIT_CALL))
                .await
                .map(Response::into_inner)
                .map_err(from_status)
        })
    }

    fn bootstrap(&self, request: v1::BootstrapRequest) -> ApiFuture<()> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .bootstrap(with_deadline(request, SHORT_CALL))
                .await
                .map(drop)
                .map_err(from_status)
        })
    }

    fn txn(&self, request: v1::TxnRequest) -> ApiFuture<v1::TxnReply> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .txn(with_deadline(request, TXN_CALL))
                .await
                .map(Response::into_inner)
                .map_err(from_status)
        })
    }

    fn status(&self) -> ApiFuture<v1::StatusReply> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .status(with_deadline(v1::StatusRequest {}, SHORT_CALL))
                .await
                .map(Response::into_inner)
                .map_err(from_status)
        })
    }

    fn host_replica(&self, request: v1::ReplicaRequest) -> ApiFuture<()> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .host_replica(with_deadline(request, INIT_CALL))
                .await
                .map(drop)
                .map_err(from_status)
        })
    }

    fn drop_replica(&self, request: v1::ReplicaRequest) -> ApiFuture<()> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .drop_replica(with_deadline(request, INIT_CALL))
                .await
                .map(drop)
                .map_err(from_status)
        })
    }

    fn move_replica(&self, request: v1::MoveReplicaRequest) -> ApiFuture<v1::MoveReplicaReply> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .move_replica(with_deadline(request, MOVE_CALL))
                .await
                .map(Response::into_inner)
                .map_err(from_status)
        })
    }

    fn add_node(&self, request: v1::AddNodeRequest) -> ApiFuture<v1::AddNodeReply> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .add_node(with_deadline(request, INIT_CALL))
                .await
                .map(Response::into_inner)
                .map_err(from_status)
        })
    }

    fn add_peer(&self, request: v1::AddPeerRequest) -> ApiFuture<()> {
        let mut client = self.client.clone();
        Box::pin(async move {
            client
                .add_peer(with_deadline(request, SHORT_CALL))
                .await
                .map(drop)
                .map_err(from_status)
        })
    }
}
