//! The WaitOperation fallback: long-poll where the policy asks for it and
//! the server has not said it does not implement it, else GetOperation.

use super::PollPolicy;
use crate::protocol::{Rpc, Target};

/// The next poll's RPC: `WaitOperation` if the policy long-polls, the
/// target has a wait route and its server has not answered a WaitOperation
/// as unimplemented (`no_wait`: the delivery's memo says whether); else
/// `GetOperation`.
pub(crate) fn next_rpc(
    policy: &PollPolicy,
    target: &Target,
    no_wait: impl Fn(&str) -> bool,
) -> Rpc {
    match policy.wait {
        Some(timeout) if target.can_wait() && !no_wait(target.authority()) => Rpc::Wait(timeout),
        _ => Rpc::Get,
    }
}
