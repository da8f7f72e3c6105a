//! The callers: each one's plan (finish, or be dropped at a chosen point),
//! and driving its call to that point, read from the `ResponseFuture`'s
//! own state or the server's notice that its Start arrived.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use serde_json::Value;
use tokio::sync::oneshot;
use tower::{Service, ServiceExt};
use tower_lro::CancelOnDrop;
use tower_lro_testing::{Endpoint, OperationsServer, RecordedRequest};

use crate::observe::Observed;
use crate::{Chaos, RUNNING_MS};

/// The layer over the recording client: what every caller calls.
pub(crate) type Stack = CancelOnDrop<Observed>;
/// One call through [`Stack`].
type Call = Pin<Box<<Stack as Service<http::Request<Full<Bytes>>>>::Future>>;

/// Callers waiting for their Start to reach the server, by caller index.
#[derive(Clone, Default)]
pub(crate) struct Arrivals(Arc<Mutex<HashMap<usize, oneshot::Sender<()>>>>);

impl Arrivals {
    /// Has `server` tell each waiting caller when its Start is recorded.
    pub(crate) fn notify_from(&self, server: &OperationsServer) {
        let waiting = Arc::clone(&self.0);
        server.on_request(move |r| {
            if r.endpoint == Endpoint::Start {
                let caller = caller_of(r);
                if let Some(tx) = waiting.lock().unwrap().remove(&caller) {
                    let _ = tx.send(());
                }
            }
        });
    }
}

/// What one caller does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Plan {
    /// Waits for its operation (`duration_ms` long) to finish.
    Finish { duration_ms: u64 },
    /// Dropped with its Start in flight: right after the call was first
    /// polled (`at_server: false`; the answer cannot have come), or as soon
    /// as the server has recorded the Start (`at_server: true`; the server
    /// holds the answer for [`START_HOLD`] and creates the operation).
    InFlight { at_server: bool },
    /// Dropped while sleeping between polls, after `polls` polls.
    Waiting { polls: u32 },
    /// Dropped while poll number `polls + 1` is in flight.
    Polling { polls: u32 },
}

/// How one caller ended.
#[derive(Debug)]
pub(crate) enum Ended {
    /// `Finish`: the final response's Operation, or the error.
    Finished(Result<Value, String>),
    /// Dropped, in this state of the `ResponseFuture` (its `Debug`).
    Dropped(&'static str),
    /// A caller meant to be dropped whose call ended first.
    Unexpected(String),
}

/// The `state` in a `ResponseFuture`'s `Debug`: `call`, `inspect`, `sleep`,
/// `poll`, `read_poll`, `done`.
pub(crate) fn state_of(future: &impl Debug) -> &'static str {
    let debug = format!("{future:?}");
    let state = debug
        .split_once("state: \"")
        .and_then(|(_, rest)| rest.split_once('"'))
        .map_or("?", |(state, _)| state);
    match state {
        "call" => "call",
        "inspect" => "inspect",
        "sleep" => "sleep",
        "poll" => "poll",
        "read_poll" => "read_poll",
        "done" => "done",
        _ => "?",
    }
}

/// Drives `future` until `drop_now(state, polls started)` says to drop it
/// (`Ok(state)`), or it ends first (`Err(output)`).
async fn drive_until<F>(
    mut future: Pin<Box<F>>,
    drop_now: impl Fn(&'static str, u32) -> bool,
) -> Result<&'static str, F::Output>
where
    F: Future + Debug,
{
    let mut polls = 0;
    let mut in_poll = false;
    poll_fn(move |cx| {
        if let Poll::Ready(output) = future.as_mut().poll(cx) {
            return Poll::Ready(Err(output));
        }
        let state = state_of(&future);
        // Every GetOperation is in flight at least once when we look: the
        // request cannot be answered within the poll that sends it.
        let polling = matches!(state, "poll" | "read_poll");
        if polling && !in_poll {
            polls += 1;
        }
        in_poll = polling;
        if drop_now(state, polls) {
            Poll::Ready(Ok(state))
        } else {
            Poll::Pending
        }
    })
    .await
}

/// The plans, from the seed: 10 % finish, 30 % dropped in flight (a third
/// of them right after sending), 30 % while waiting, 30 % during a poll.
pub(crate) fn plans(chaos: &Chaos) -> Vec<Plan> {
    let mut rng = fastrand::Rng::with_seed(chaos.seed);
    (0..chaos.operations)
        .map(|_| match rng.u32(0..10) {
            0 => Plan::Finish {
                duration_ms: rng.u64(100..=800),
            },
            1 => Plan::InFlight { at_server: false },
            2..=3 => Plan::InFlight { at_server: true },
            4..=6 => Plan::Waiting {
                polls: rng.u32(0..=3),
            },
            _ => Plan::Polling {
                polls: rng.u32(0..=3),
            },
        })
        .collect()
}

/// The caller index a Start carries in `x-chaos-caller`.
pub(crate) fn caller_of(r: &RecordedRequest) -> usize {
    r.headers["x-chaos-caller"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap()
}

/// `POST {base}/v1/projects/{project}/locations/l/jobs` for caller `i`,
/// running `duration_ms`.
fn start_request(
    base: &str,
    project: &str,
    i: usize,
    duration_ms: u64,
) -> http::Request<Full<Bytes>> {
    http::Request::post(format!("{base}/v1/projects/{project}/locations/l/jobs"))
        .header("content-type", "application/json")
        .header("x-chaos-caller", i)
        .body(Full::from(format!(r#"{{"durationMs": {duration_ms}}}"#)))
        .unwrap()
}

/// Starts every caller at once, each following its plan, and waits for all:
/// how each ended (by caller index), and how many caller tasks panicked.
pub(crate) async fn run_all(
    chaos: &Chaos,
    plans: &[Plan],
    svc: &Stack,
    base: &str,
    arrivals: &Arrivals,
) -> (Vec<Option<Ended>>, usize) {
    let mut callers = tokio::task::JoinSet::new();
    for (i, plan) in plans.iter().copied().enumerate() {
        let mut svc = svc.clone();
        let duration_ms = match plan {
            Plan::Finish { duration_ms } => duration_ms,
            _ => RUNNING_MS,
        };
        let request = start_request(base, chaos.project, i, duration_ms);
        let (arrived_tx, arrived) = oneshot::channel::<()>();
        if let Plan::InFlight { at_server: true } = plan {
            arrivals.0.lock().unwrap().insert(i, arrived_tx);
        }
        callers.spawn(async move {
            let svc = svc.ready().await.unwrap();
            let future = Box::pin(svc.call(request));
            (i, follow(plan, future, arrived).await)
        });
    }
    let mut ended: Vec<Option<Ended>> = (0..chaos.operations).map(|_| None).collect();
    let mut caller_panics = 0;
    while let Some(joined) = callers.join_next().await {
        match joined {
            Ok((i, e)) => ended[i] = Some(e),
            Err(e) => {
                eprintln!("caller task failed: {e}");
                caller_panics += 1;
            }
        }
    }
    (ended, caller_panics)
}

/// One caller: drives `future` as `plan` says; `arrived` fires when the
/// server has recorded its Start.
async fn follow(plan: Plan, future: Call, arrived: oneshot::Receiver<()>) -> Ended {
    let dropped = |result: Result<&'static str, _>| match result {
        Ok(state) => Ended::Dropped(state),
        Err(output) => Ended::Unexpected(format!("{output:?}")),
    };
    match plan {
        Plan::Finish { .. } => Ended::Finished(finish(future).await),
        // Dropped as soon as the first poll returns pending.
        Plan::InFlight { at_server: false } => dropped(drive_until(future, |_, _| true).await),
        Plan::InFlight { at_server: true } => {
            let mut future = future;
            tokio::select! {
                output = &mut future => Ended::Unexpected(format!("{output:?}")),
                _ = arrived => Ended::Dropped(state_of(&future)),
            }
        }
        Plan::Waiting { polls } => {
            dropped(drive_until(future, |state, n| state == "sleep" && n == polls).await)
        }
        Plan::Polling { polls } => {
            let during = |state, n| matches!(state, "poll" | "read_poll") && n == polls + 1;
            dropped(drive_until(future, during).await)
        }
    }
}

/// Waits (up to 60 s) for the call to end: the final response's Operation,
/// or the error.
async fn finish(future: Call) -> Result<Value, String> {
    match tokio::time::timeout(Duration::from_secs(60), future).await {
        Err(_) => Err("not done within 60 s".to_owned()),
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok(response)) => {
            let body = response.into_body().collect().await;
            body.map_err(|e| e.to_string())
                .and_then(|b| serde_json::from_slice(&b.to_bytes()).map_err(|e| e.to_string()))
        }
    }
}
