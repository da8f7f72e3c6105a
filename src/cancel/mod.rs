//! Cancelling operations the caller gave up on (AIP-151 `CancelOperation`):
//! the policy, the counters and handle, detached delivery with bounded
//! concurrency, optional verification, and calls abandoned in flight.

mod bounds;
mod deliver;
mod in_flight;
mod policy;
mod stats;
mod verify;

#[cfg(feature = "journal")]
pub(crate) use deliver::deliver_now;
pub use deliver::CancelOutcome;
pub(crate) use deliver::{spawn_cancel, CancelJob};
mod explicit;
pub(crate) use in_flight::spawn_in_flight;
pub use policy::CancelPolicy;
pub(crate) use policy::Reason;
pub(crate) use stats::Counters;
pub use stats::{CancelHandle, CancelStats, DrainReport};
