//! The operations table: what each operation is, independent of the wire
//! format that shows it (see [`Snapshot`]).

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::time::Instant;

/// `error.message` of a cancelled operation.
pub(crate) const CANCELLED_MESSAGE: &str = "Operation was cancelled.";
/// `error.code` of a cancelled operation: `google.rpc.Code.CANCELLED`.
pub(crate) const CANCELLED_CODE: i32 = 1;

/// One operation.
#[derive(Debug)]
pub(crate) struct Op {
    name: String,
    target: String,
    started: Instant,
    duration: Duration,
    create_time: String,
    /// `create_time` as a wall-clock time.
    created: SystemTime,
    cancelled_at: Option<Instant>,
}

/// What the typed metadata of an operation reports, fixed per operation:
/// the wall clock when it was created and when it finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Facts {
    /// When the operation was created.
    pub(crate) create_time: SystemTime,
    /// When it finished (succeeded or was cancelled): its creation time
    /// plus the time it ran, the same on every read; `None` while running.
    pub(crate) end_time: Option<SystemTime>,
    /// Whether a CancelOperation ended it.
    pub(crate) requested_cancellation: bool,
}

/// How an operation stands at one instant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Not done.
    Running,
    /// Done, with a response.
    Succeeded,
    /// Done, with the `CANCELLED` error.
    Cancelled,
}

/// One value of a metadata or response field: what a
/// `google.protobuf.Value` holds (numbers as JSON/`double` numbers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Field<'a> {
    Number(u64),
    Text(&'a str),
    Bool(bool),
}

/// An operation as GetOperation answers it at one instant, for any wire
/// format: the REST front end renders it as proto3 JSON, a gRPC one as
/// `google.longrunning.Operation`. `metadata` and `response` are
/// `google.protobuf.Struct`s of [`Snapshot::metadata`] and
/// [`Snapshot::response`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct Snapshot<'a> {
    pub(crate) name: &'a str,
    /// The start request's resource name without its `:verb`.
    pub(crate) target: &'a str,
    /// RFC 3339 (`google.protobuf.Timestamp` JSON).
    pub(crate) create_time: &'a str,
    /// 0–100; frozen at cancellation.
    pub(crate) progress_percent: u64,
    pub(crate) outcome: Outcome,
}

impl<'a> Snapshot<'a> {
    /// AIP-151 `done`.
    pub(crate) fn done(&self) -> bool {
        self.outcome != Outcome::Running
    }

    /// The metadata fields: `progressPercent`, `target`, `createTime`, and
    /// `requestedCancellation: true` once cancelled.
    pub(crate) fn metadata(&self) -> Vec<(&'static str, Field<'a>)> {
        let mut fields = vec![
            ("progressPercent", Field::Number(self.progress_percent)),
            ("target", Field::Text(self.target)),
            ("createTime", Field::Text(self.create_time)),
        ];
        if self.outcome == Outcome::Cancelled {
            fields.push(("requestedCancellation", Field::Bool(true)));
        }
        fields
    }

    /// The response fields once succeeded: `target`, `state: "SUCCEEDED"`.
    pub(crate) fn response(&self) -> Option<Vec<(&'static str, Field<'a>)>> {
        (self.outcome == Outcome::Succeeded).then(|| {
            vec![
                ("target", Field::Text(self.target)),
                ("state", Field::Text("SUCCEEDED")),
            ]
        })
    }
}

impl Op {
    /// When the operation is (or will be) done; `None` if never.
    pub(crate) fn done_at(&self) -> Option<Instant> {
        self.cancelled_at
            .or_else(|| self.started.checked_add(self.duration))
    }

    pub(crate) fn is_done(&self, now: Instant) -> bool {
        self.done_at().is_some_and(|at| at <= now)
    }

    /// The operation's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether a CancelOperation ended it by `now`.
    pub(crate) fn is_cancelled(&self, now: Instant) -> bool {
        self.cancelled_at.is_some_and(|at| at <= now)
    }

    /// Its [`Facts`] at `now`.
    pub(crate) fn facts(&self, now: Instant) -> Facts {
        let end_time = self
            .done_at()
            .filter(|at| *at <= now)
            .map(|at| self.created + at.saturating_duration_since(self.started));
        Facts {
            create_time: self.created,
            end_time,
            requested_cancellation: self.is_cancelled(now),
        }
    }

    /// Marks the operation cancelled at `now` unless it is already done.
    /// Returns whether it changed.
    pub(crate) fn cancel(&mut self, now: Instant) -> bool {
        if self.is_done(now) {
            return false;
        }
        self.cancelled_at = Some(now);
        true
    }

    fn progress_percent(&self, at: Instant) -> u64 {
        let elapsed = at.saturating_duration_since(self.started).as_nanos();
        let total = self.duration.as_nanos();
        if total == 0 || elapsed >= total {
            return 100;
        }
        // elapsed < total, so the quotient is < 100.
        u64::try_from(elapsed * 100 / total).unwrap_or(99)
    }

    /// The operation as it stands at `now`.
    pub(crate) fn snapshot(&self, now: Instant) -> Snapshot<'_> {
        let (outcome, progress_percent) = match self.cancelled_at {
            Some(at) if at <= now => (Outcome::Cancelled, self.progress_percent(at)),
            _ if self.is_done(now) => (Outcome::Succeeded, 100),
            _ => (Outcome::Running, self.progress_percent(now)),
        };
        Snapshot {
            name: &self.name,
            target: &self.target,
            create_time: &self.create_time,
            progress_percent,
            outcome,
        }
    }
}

/// All operations of one server, in creation order.
#[derive(Debug, Default)]
pub(crate) struct Store {
    by_seq: BTreeMap<u64, Op>,
    by_name: HashMap<String, u64>,
    last_seq: u64,
}

impl Store {
    /// Creates `{parent}/operations/op-{n}`.
    pub(crate) fn create(
        &mut self,
        parent: &str,
        target: String,
        duration: Duration,
        now: Instant,
    ) -> &Op {
        let name = |seq| format!("{parent}/operations/op-{seq}");
        self.create_named(name, target, duration, now)
    }

    /// Creates the operation named `name(n)`, `n` its sequence number.
    pub(crate) fn create_named(
        &mut self,
        name: impl FnOnce(u64) -> String,
        target: String,
        duration: Duration,
        now: Instant,
    ) -> &Op {
        self.last_seq += 1;
        let seq = self.last_seq;
        let name = name(seq);
        let created = SystemTime::now();
        let op = Op {
            name: name.clone(),
            target,
            started: now,
            duration,
            create_time: rfc3339(created),
            created,
            cancelled_at: None,
        };
        self.by_name.insert(name, seq);
        self.by_seq.entry(seq).or_insert(op)
    }

    /// The sequence number of operation `name`; `operations/{id}` also
    /// addresses an operation named by a bare id (Speech's: its REST
    /// GetOperation is `GET /v1/operations/{name}`).
    fn seq(&self, name: &str) -> Option<(u64, String)> {
        let bare = name
            .strip_prefix("operations/")
            .filter(|id| !id.contains('/'));
        [Some(name), bare]
            .into_iter()
            .flatten()
            .find_map(|n| self.by_name.get(n).map(|seq| (*seq, n.to_owned())))
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Op> {
        self.seq(name).and_then(|(seq, _)| self.by_seq.get(&seq))
    }

    pub(crate) fn get_mut(&mut self, name: &str) -> Option<&mut Op> {
        self.seq(name)
            .and_then(|(seq, _)| self.by_seq.get_mut(&seq))
    }

    pub(crate) fn remove(&mut self, name: &str) -> bool {
        match self.seq(name) {
            Some((seq, name)) => {
                self.by_name.remove(&name);
                self.by_seq.remove(&seq).is_some()
            }
            None => false,
        }
    }

    pub(crate) fn names(&self) -> Vec<String> {
        self.by_seq.values().map(|op| op.name.clone()).collect()
    }

    /// Up to `size` operations of `collection` created after `after`
    /// (a sequence number) for which `keep` holds, and the sequence number to
    /// continue after if there are more.
    pub(crate) fn page(
        &self,
        collection: &str,
        after: u64,
        size: usize,
        keep: impl Fn(&Op) -> bool,
    ) -> (Vec<&Op>, Option<u64>) {
        let prefix = format!("{collection}/");
        let mut matching = self
            .by_seq
            .range(after.saturating_add(1)..)
            .filter(|(_, op)| op.name.starts_with(&prefix) && keep(op));
        let page: Vec<(&u64, &Op)> = matching.by_ref().take(size).collect();
        let more = matching.next().is_some();
        let next = match page.last() {
            Some((seq, _)) if more => Some(**seq),
            _ => None,
        };
        (page.into_iter().map(|(_, op)| op).collect(), next)
    }
}

/// Formats a wall-clock time as RFC 3339 in UTC with milliseconds,
/// e.g. `2023-11-14T22:13:20.000Z` (the JSON form of `google.protobuf.Timestamp`).
pub(crate) fn rfc3339(t: SystemTime) -> String {
    let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let rem = secs % 86_400;
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        since.subsec_millis()
    )
}

/// Days since 1970-01-01 → (year, month, day); H. Hinnant's algorithm for
/// non-negative day counts.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// Parses a `google.protobuf.Duration` in its JSON form: decimal seconds
/// with up to 9 fractional digits and an `s` suffix (`"5s"`, `"1.5s"`).
/// Negative durations are rejected.
pub(crate) fn parse_duration(s: &str) -> Option<Duration> {
    let number = s.strip_suffix('s')?;
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = whole.parse().ok()?;
    let nanos: u32 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().ok()?
    };
    Some(Duration::new(secs, nanos))
}

/// Reads an unsigned integer from JSON: a number, or (proto3 JSON for
/// 64-bit integers) a string of digits.
pub(crate) fn json_u64(value: &Value) -> Option<u64> {
    match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00.000Z");
        let t = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        assert_eq!(rfc3339(t), "2023-11-14T22:13:20.123Z");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400); // 2000-02-29
        assert_eq!(rfc3339(leap), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn parses_json_durations() {
        assert_eq!(parse_duration("5s"), Some(Duration::from_secs(5)));
        assert_eq!(parse_duration("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(
            parse_duration("0.000000001s"),
            Some(Duration::from_nanos(1))
        );
        assert_eq!(parse_duration("-1s"), None);
        assert_eq!(parse_duration("5"), None);
        assert_eq!(parse_duration(".5s"), None);
        assert_eq!(parse_duration("1.0000000001s"), None);
    }
}
