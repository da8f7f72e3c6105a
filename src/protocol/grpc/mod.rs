//! gRPC: long-running methods answered with a `google.longrunning.Operation`
//! (AIP-151 over gRPC), and the unary `google.longrunning.Operations`
//! calls that wait on and cancel them.
//!
//! - [`frame`]: the gRPC Length-Prefixed-Message.
//! - [`messages`]: `google.longrunning` and `google.rpc` messages (prost).
//! - [`methods`]: the googleapis table of long-running methods and
//!   [`GrpcLroMethods`].
//! - [`recognise`]: candidate calls and answers; decoding the Operation.
//! - [`requests`]: GetOperation, WaitOperation, CancelOperation requests.
//! - [`status`]: reading `grpc-status` and RetryInfo.

pub(crate) mod frame;
pub(crate) mod messages;
pub(crate) mod methods;
pub(crate) mod recognise;
pub(crate) mod requests;
pub(crate) mod status;

pub use self::methods::{GrpcLroMethods, InvalidGrpcMethod};
