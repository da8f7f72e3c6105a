//! How the layer waits for an operation: `GetOperation` polling with
//! exponential backoff (AIP-151).

use std::time::{Duration, SystemTime};

use http::{HeaderMap, StatusCode};

/// How often the layer sends `GetOperation` (`GET {prefix}{name}`, AIP-151)
/// while an operation is not done.
///
/// The delay before poll *n* (counting from 0) is
/// `min(initial_delay × multiplier^n, max_delay)`; with `jitter` (full jitter)
/// the layer sleeps a uniformly random duration between 0 and that delay.
/// Defaults: initial delay 1 s, multiplier 1.5, max delay 30 s, full jitter,
/// 5 transient failures in a row.
///
/// A poll that fails transiently — a transport error, or HTTP 429, 502, 503 or
/// 504 — is retried on the same schedule; a `Retry-After` header
/// (RFC 9110 §10.2.3, seconds or an HTTP-date) lengthens the next delay, never
/// beyond `max_delay`. Any other non-2xx answer ends the call with
/// [`Error::Poll`](crate::Error::Poll) and a cancel.
#[derive(Clone, Debug, PartialEq)]
pub struct PollPolicy {
    pub(crate) initial_delay: Duration,
    pub(crate) multiplier: f64,
    pub(crate) max_delay: Duration,
    pub(crate) jitter: bool,
    pub(crate) max_transient_failures: u32,
    pub(crate) wait: Option<Duration>,
}

impl Default for PollPolicy {
    fn default() -> Self {
        PollPolicy {
            initial_delay: Duration::from_secs(1),
            multiplier: 1.5,
            max_delay: Duration::from_secs(30),
            jitter: true,
            max_transient_failures: 5,
            wait: None,
        }
    }
}

impl PollPolicy {
    /// The default policy: 1 s, ×1.5, at most 30 s, full jitter.
    pub fn new() -> Self {
        Self::default()
    }

    /// The delay before the first poll (default 1 s).
    pub fn initial_delay(mut self, delay: Duration) -> Self {
        self.initial_delay = delay;
        self
    }

    /// The factor each delay is multiplied by (default 1.5). Values below 1.0
    /// (and NaN) are treated as 1.0.
    pub fn multiplier(mut self, multiplier: f64) -> Self {
        self.multiplier = if multiplier >= 1.0 { multiplier } else { 1.0 };
        self
    }

    /// The longest delay between two polls (default 30 s).
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Whether to sleep a uniformly random part of each delay ("full jitter",
    /// default `true`). Turn it off for reproducible timings in tests.
    pub fn jitter(mut self, jitter: bool) -> Self {
        self.jitter = jitter;
        self
    }

    /// How many transient poll failures in a row are retried before the call
    /// ends with [`Error::Poll`](crate::Error::Poll) (default 5).
    pub fn max_transient_failures(mut self, failures: u32) -> Self {
        self.max_transient_failures = failures;
        self
    }

    /// Long-poll with `WaitOperation` (AIP-151: `POST {prefix}{name}:wait`,
    /// body `{"timeout": "<seconds>s"}`) instead of sleeping between
    /// `GetOperation`s: the server answers as soon as the operation is done,
    /// or after `timeout`, and the layer waits again at once. A server that
    /// answers 404 or 501 to it does not implement it: the layer falls back to
    /// GET polling on the schedule above and remembers that authority (for
    /// the layer's lifetime) so later operations there poll with GET at once.
    /// Request bodies that cannot carry JSON ([`RequestBody::json`](crate::RequestBody::json)
    /// returns `None`) poll with GET.
    pub fn wait_operation(mut self, timeout: Duration) -> Self {
        self.wait = Some(timeout);
        self
    }

    /// The `WaitOperation` request body for `timeout`: protobuf JSON's
    /// `Duration` (seconds with an `s` suffix).
    pub(crate) fn wait_body(timeout: Duration) -> bytes::Bytes {
        format!(r#"{{"timeout":"{}s"}}"#, timeout.as_secs_f64()).into()
    }

    /// The delay before poll number `attempt` (from 0), jitter applied.
    pub(crate) fn delay(&self, attempt: u32) -> Duration {
        backoff(
            self.initial_delay,
            self.multiplier,
            self.max_delay,
            attempt,
            self.jitter,
        )
    }
}

/// `min(initial × multiplier^attempt, max)`, with full jitter if asked.
pub(crate) fn backoff(
    initial: Duration,
    multiplier: f64,
    max: Duration,
    attempt: u32,
    jitter: bool,
) -> Duration {
    let exp = i32::try_from(attempt).unwrap_or(i32::MAX);
    let secs = (initial.as_secs_f64() * multiplier.powi(exp)).min(max.as_secs_f64());
    let delay = Duration::try_from_secs_f64(secs).unwrap_or(max);
    if jitter {
        delay.mul_f64(fastrand::f64())
    } else {
        delay
    }
}

/// Whether an HTTP status is worth retrying: 429, 502, 503, 504
/// (`RESOURCE_EXHAUSTED` and `UNAVAILABLE` in AIP-193's mapping).
pub(crate) fn is_transient(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// The longest `Retry-After` believed: one day. The value comes from the
/// server, and callers add it to `Instant::now()`, which panics on overflow
/// (`Retry-After: 18446744073709551615`); a poll caps it at its `max_delay`
/// and a cancel gives up past its deadline anyway.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The `Retry-After` header (RFC 9110 §10.2.3): delay-seconds or an HTTP-date,
/// at most [`MAX_RETRY_AFTER`].
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO)
            .min(MAX_RETRY_AFTER),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_schedule_without_jitter() {
        let p = PollPolicy::new().jitter(false);
        let secs: Vec<f64> = (0..12).map(|n| p.delay(n).as_secs_f64()).collect();
        assert_eq!(&secs[..4], &[1.0, 1.5, 2.25, 3.375]);
        assert_eq!(secs[11], 30.0, "capped at max_delay");
    }

    #[test]
    fn wait_body_is_a_protobuf_json_duration() {
        assert_eq!(
            PollPolicy::wait_body(Duration::from_secs(5)),
            r#"{"timeout":"5s"}"#
        );
        assert_eq!(
            PollPolicy::wait_body(Duration::from_millis(2500)),
            r#"{"timeout":"2.5s"}"#
        );
    }

    #[test]
    fn jitter_stays_within_the_delay() {
        let p = PollPolicy::new();
        for n in 0..20 {
            let cap = PollPolicy::new().jitter(false).delay(n);
            assert!(p.delay(n) <= cap);
        }
    }

    #[test]
    fn retry_after_seconds_and_date() {
        let mut h = HeaderMap::new();
        h.insert(http::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert(
            http::header::RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(
            retry_after(&h),
            Some(Duration::ZERO),
            "a past date means now"
        );
        h.insert(http::header::RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&h), None);
    }

    #[test]
    fn retry_after_from_a_hostile_server_is_capped() {
        let mut h = HeaderMap::new();
        for value in [
            "18446744073709551615",
            "99999999999",
            "Fri, 31 Dec 9999 23:59:59 GMT",
        ] {
            h.insert(http::header::RETRY_AFTER, value.parse().unwrap());
            let after = retry_after(&h).unwrap();
            assert_eq!(after, MAX_RETRY_AFTER, "{value}");
            // What the callers do with it must not overflow.
            let _ = tokio::time::Instant::now() + after;
        }
        // One more than u64::MAX is not a number: ignored.
        h.insert(
            http::header::RETRY_AFTER,
            "18446744073709551616".parse().unwrap(),
        );
        assert_eq!(retry_after(&h), None);
    }
}
