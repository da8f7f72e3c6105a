//! The drop guard: what happens when the caller stops watching a call that
//! is not finished — a cancel if the operation is known, else the request
//! still in flight is detached so that a task can find the name and cancel.

use std::mem;
use std::pin::Pin;

use http::{Request, Response};
use tower_service::Service;

use super::state::{CallState, StateProj};
use super::track::Track;
use crate::cancel::Reason;
use crate::inspect::Collect;

/// Hands a call whose operation is not known yet to a detached task.
pub(crate) type DetachFn<S, ReqBody, ResBody> =
    fn(InFlight<<S as Service<Request<ReqBody>>>::Future, ResBody>, Track<S>, Reason);

/// The part of a call still running when its caller went away before the
/// operation's name was known.
pub(crate) enum InFlight<F, B> {
    /// The original request, not answered yet.
    Call(Pin<Box<F>>),
    /// The original response, its body being read.
    Body(Box<(Response<()>, Collect<B>)>),
}

/// Stops watching a call: cancels its operation if the name is known, or
/// detaches what is still in flight (a call dropped before its first
/// response is cancelled too, once the answer names the operation).
pub(crate) fn abandon<S, ReqBody, ResBody>(
    state: Pin<&mut CallState<S, ReqBody, ResBody>>,
    track: Track<S>,
    detach: Option<DetachFn<S, ReqBody, ResBody>>,
    reason: Reason,
) where
    S: Service<Request<ReqBody>>,
{
    if track.target.is_some() || !reason.fires(track.call.cancel_on) {
        return track.give_up(reason);
    }
    let in_flight = match state.project() {
        StateProj::TrackedCall { future } => future.take().map(InFlight::Call),
        StateProj::Inspect { head, collect } => {
            Some(InFlight::Body(Box::new((mem::take(head), collect.take()))))
        }
        _ => None,
    };
    let reason = match reason {
        Reason::Dropped => Reason::DroppedInFlight,
        other => other,
    };
    if let (Some(in_flight), Some(detach)) = (in_flight, detach) {
        detach(in_flight, track, reason);
    }
}
