//! Retrying: capped exponential backoff, and the server's `Retry-After`.
//! Shared by polling and cancel delivery.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

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
