//! Waiting for an operation: the [`PollPolicy`], the per-operation
//! schedule, and the WaitOperation fallback (AIP-151).

mod policy;
mod schedule;
mod wait;

pub use policy::PollPolicy;
pub(crate) use schedule::Schedule;
pub(crate) use wait::next_rpc;
