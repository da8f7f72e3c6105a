//! Errors returned by [`CancelOnDrop`](crate::CancelOnDrop)'s response future.

use std::fmt;
use std::time::Duration;

use crate::operation::OperationName;
use crate::protocol::WireStatus;

/// A boxed, thread-safe error: what the inner service's errors are turned into.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The error of a call through [`CancelOnDrop`](crate::CancelOnDrop).
///
/// `Display` never repeats [`source`](std::error::Error::source): print the
/// chain (e.g. with `anyhow`'s `{:#}`) to see the cause.
///
/// Every variant that concerns a tracked operation names it, so that a log line
/// says which operation was given up on. Where the layer gave up on an operation
/// that was not done (deadline, polling failure), it has already fired a
/// best-effort `CancelOperation` for it (AIP-151); see
/// [`CancelHandle::stats`](crate::CancelHandle::stats) for its outcome.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The inner service failed the original request (before any operation
    /// was known). Holds the inner service's error.
    Inner(BoxError),
    /// The layer's [`deadline`](crate::CancelOnDropLayer::deadline) passed before
    /// the operation was done. A cancel was fired if the name was known.
    DeadlineExceeded {
        /// The operation, if its name was known when the deadline passed.
        operation: Option<OperationName>,
        /// The configured deadline, measured from `call`.
        deadline: Duration,
    },
    /// A `GetOperation` poll was answered with a status that is not retried
    /// (over REST anything but 2xx, 429, 502, 503 and 504), or the transient
    /// failures ran out ([`PollPolicy::max_transient_failures`](crate::PollPolicy::max_transient_failures)).
    /// A cancel was fired.
    Poll {
        /// The operation being polled.
        operation: OperationName,
        /// The status of the last poll (an HTTP status, or a gRPC code),
        /// `None` when it failed in transport.
        status: Option<WireStatus>,
        /// The transport error of the last poll, if that is how it failed.
        source: Option<BoxError>,
    },
    /// A `GetOperation` poll answered 2xx with a body that is not an AIP-151
    /// `Operation` of that name (not JSON, wrong shape, larger than
    /// [`max_inspect_bytes`](crate::CancelOnDropLayer::max_inspect_bytes)).
    /// A cancel was fired.
    InvalidPollResponse {
        /// The operation being polled.
        operation: OperationName,
        /// What was wrong with the body.
        reason: String,
    },
    /// Reading a response body failed: the original response's while the layer
    /// inspected it (`operation` is `None`), or a poll's.
    Body {
        /// The operation being polled, if any.
        operation: Option<OperationName>,
        /// The body's error.
        source: BoxError,
    },
    /// [`CancelHandle::shutdown`](crate::CancelHandle::shutdown) ended the
    /// call while it waited on the operation. A cancel was fired unless the
    /// call's [`CancelOn`](crate::CancelOn) has the shutdown trigger off.
    Shutdown {
        /// The operation the call waited on.
        operation: OperationName,
    },
    /// A state the layer never reaches was reached: a bug in tower-lro, or a
    /// future polled after it completed. Holds what happened.
    Internal(&'static str),
}

impl Error {
    pub(crate) fn inner(e: impl Into<BoxError>) -> Self {
        Error::Inner(e.into())
    }

    pub(crate) fn internal(what: &'static str) -> Self {
        debug_assert!(
            what.contains("after completion"),
            "tower-lro internal error: {what}"
        );
        Error::Internal(what)
    }

    /// The operation this error concerns, if one was known.
    pub fn operation(&self) -> Option<&OperationName> {
        match self {
            Error::Inner(_) | Error::Internal(_) => None,
            Error::DeadlineExceeded { operation, .. } | Error::Body { operation, .. } => {
                operation.as_ref()
            }
            Error::Poll { operation, .. }
            | Error::InvalidPollResponse { operation, .. }
            | Error::Shutdown { operation } => Some(operation),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // The source is the inner error: reporters print the chain.
            Error::Inner(_) => f.write_str("inner service failed"),
            Error::Internal(what) => write!(f, "tower-lro internal error: {what}"),
            Error::DeadlineExceeded {
                operation: Some(op),
                deadline,
            } => write!(
                f,
                "operation {op} not done within the deadline of {} ms; cancel requested",
                deadline.as_millis()
            ),
            Error::DeadlineExceeded {
                operation: None,
                deadline,
            } => write!(
                f,
                "no response within the deadline of {} ms",
                deadline.as_millis()
            ),
            Error::Poll {
                operation,
                status: Some(status),
                ..
            } => write!(
                f,
                "polling operation {operation} failed with {status}; cancel requested"
            ),
            Error::Poll {
                operation,
                status: None,
                ..
            } => write!(
                f,
                "polling operation {operation} failed in transport; cancel requested"
            ),
            Error::InvalidPollResponse { operation, reason } => write!(
                f,
                "polling operation {operation} returned an invalid Operation ({reason}); cancel requested"
            ),
            Error::Body {
                operation: Some(op),
                ..
            } => write!(f, "reading the response body for operation {op} failed"),
            Error::Body {
                operation: None, ..
            } => f.write_str("reading the response body failed"),
            Error::Shutdown { operation } => write!(
                f,
                "shutting down: stopped waiting on operation {operation}"
            ),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Inner(e) | Error::Body { source: e, .. } => Some(&**e),
            Error::Poll {
                source: Some(e), ..
            } => Some(&**e),
            _ => None,
        }
    }
}
