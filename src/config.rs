//! [`Config`]: the settings every service made by one layer reads, fixed
//! when the layer builds them. Settings only: the cancel delivery's state
//! (slots, queue, counters, memos) belongs to the layer's
//! [`CancelHandle`](crate::CancelHandle).

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use crate::cancel::CancelPolicy;
use crate::operation::Operation;
use crate::poll::PollPolicy;
use crate::protocol::{ProtocolSettings, Timing};

/// The headers copied from the original request onto its `GetOperation` and
/// `CancelOperation` requests, before any added with
/// [`CancelOnDropLayer::forward_headers`](crate::CancelOnDropLayer::forward_headers).
pub const FORWARDED_HEADERS: [&str; 5] = [
    "authorization",
    "x-goog-user-project",
    "x-goog-api-key",
    "x-goog-api-client",
    "user-agent",
];

pub(crate) type ProgressFn = dyn Fn(&Operation) + Send + Sync;

/// What every service made by one layer reads.
#[derive(Clone)]
pub(crate) struct Config {
    pub(crate) poll: PollPolicy,
    pub(crate) cancel: CancelPolicy,
    pub(crate) deadline: Option<Duration>,
    pub(crate) forward_headers: Vec<HeaderName>,
    pub(crate) on_progress: Option<Arc<ProgressFn>>,
    /// What each wire protocol inspects and how it routes.
    pub(crate) protocol: ProtocolSettings,
    /// Where tracked operations are journaled, if anywhere.
    pub(crate) journal: crate::journal_hook::Writer,
    /// Which triggers fire a cancel, unless a request says otherwise.
    pub(crate) cancel_on: crate::extensions::CancelOn,
}

impl Config {
    /// What a target's requests take from the poll and cancel policies.
    pub(crate) fn timing(&self) -> Timing {
        Timing {
            wait: self.poll.wait.is_some(),
            cancel_timeout: self.cancel.attempt_timeout,
        }
    }

    /// The most bytes of a response body read.
    pub(crate) fn max_inspect_bytes(&self) -> usize {
        self.protocol.max_inspect_bytes
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("poll", &self.poll)
            .field("cancel", &self.cancel)
            .field("deadline", &self.deadline)
            .field("forward_headers", &self.forward_headers)
            .field("on_progress", &self.on_progress.as_ref().map(|_| "set"))
            .field("protocol", &self.protocol)
            .field("journal", &self.journal)
            .field("cancel_on", &self.cancel_on)
            .finish()
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            poll: PollPolicy::default(),
            cancel: CancelPolicy::default(),
            deadline: None,
            forward_headers: FORWARDED_HEADERS
                .iter()
                .map(|h| HeaderName::from_static(h))
                .collect(),
            on_progress: None,
            protocol: ProtocolSettings::default(),
            journal: Default::default(),
            cancel_on: Default::default(),
        }
    }
}
