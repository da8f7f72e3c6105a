//! Cancelling operations the caller gave up on (AIP-151 `CancelOperation`):
//! the policy, the counters and handle, delivery through one pool of
//! workers per layer, optional verification, and calls abandoned in flight.

mod attempt;
mod bounds;
mod deliver;
mod explicit;
mod in_flight;
mod job;
mod outcome;
mod policy;
mod pool;
mod shutdown;
mod stats;
mod verify;
mod waiting;
mod worker;

#[cfg(feature = "journal")]
pub(crate) use deliver::deliver_now;
pub(crate) use deliver::spawn_cancel;
pub(crate) use in_flight::spawn_in_flight;
pub(crate) use job::CancelJob;
pub use outcome::CancelOutcome;
pub use policy::CancelPolicy;
pub(crate) use policy::Reason;
pub(crate) use pool::Pool;
pub use shutdown::{NotAccepted, ShutdownReport};
pub(crate) use stats::Counters;
pub use stats::{CancelHandle, CancelStats, DrainReport};
pub(crate) use waiting::{Calls, Registration};
