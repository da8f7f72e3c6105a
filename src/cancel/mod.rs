//! Cancelling operations the caller gave up on (AIP-151 `CancelOperation`):
//! the policy, the counters and handle, delivery through one pool of
//! workers per layer (its state, [`Delivery`], owned by the handle). How an
//! accepted cancel is verified is handed in with each cancel
//! ([`VerifyFn`]): this module never polls.

mod attempt;
mod bounds;
mod deliver;
mod delivery;
mod job;
mod outcome;
mod policy;
mod pool;
mod shutdown;
mod stats;
mod waiting;
mod worker;

pub(crate) use deliver::{deliver_now, spawn_cancel};
pub(crate) use delivery::Delivery;
pub(crate) use job::{BoxFuture, CancelJob, VerifyFn};
pub use outcome::CancelOutcome;
pub use policy::CancelPolicy;
pub(crate) use policy::Reason;
pub use shutdown::{NotAccepted, ShutdownReport};
pub(crate) use stats::Counters;
pub use stats::{CancelHandle, CancelStats, DrainReport};
pub(crate) use waiting::Registration;
