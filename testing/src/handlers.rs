//! The REST methods' answers once no fault intercepts a request: start,
//! GetOperation, CancelOperation, DeleteOperation, ListOperations
//! (AIP-158 paging, AIP-160 `done` filter) and WaitOperation; and the
//! AIP-193 errors they answer with.

use std::fmt;
use std::time::Duration;

use bytes::Bytes;
use http::{StatusCode, Uri};
use serde_json::{json, Value};
use tokio::time::Instant;

use super::filter::Filter;
use super::route::{self, Target};
use super::{ops, Inner, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, MAX_WAIT};

/// An error answer: an AIP-193 body.
pub(super) struct ApiError {
    pub(super) status: StatusCode,
    pub(super) message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        ApiError {
            status,
            message: message.into(),
        }
    }

    fn not_found(name: &str) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("Operation {name} not found."),
        )
    }

    fn invalid(message: impl Into<String>) -> Self {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
}

impl Inner {
    /// Answers a request that no fault intercepted: the Operation JSON (or
    /// `{}`), and for a Start the name of the operation created.
    pub(super) async fn dispatch(
        &self,
        target: Target,
        uri: &Uri,
        body: &Bytes,
    ) -> Result<(Value, Option<String>), Answer> {
        match target {
            Target::Start { target, parent } => {
                let duration = start_duration(uri, body)?;
                let mut state = self.lock();
                let duration = duration.unwrap_or(state.default_duration);
                let now = Instant::now();
                let json = state
                    .ops
                    .create(&parent, target, duration, now)
                    .to_json(now);
                let name = json["name"].as_str().map(str::to_owned);
                Ok((json, name))
            }
            Target::Get(name) => {
                let state = self.lock();
                let op = state
                    .ops
                    .get(&name)
                    .ok_or_else(|| ApiError::not_found(&name))?;
                Ok((op.to_json(Instant::now()), None))
            }
            Target::Cancel(name) => {
                let mut state = self.lock();
                let op = state
                    .ops
                    .get_mut(&name)
                    .ok_or_else(|| ApiError::not_found(&name))?;
                let changed = op.cancel(Instant::now());
                drop(state);
                if changed {
                    self.ops_changed.send_modify(|v| *v += 1);
                }
                Ok((json!({}), None))
            }
            Target::Delete(name) => {
                let removed = self.lock().ops.remove(&name);
                if !removed {
                    return Err(ApiError::not_found(&name).into());
                }
                self.ops_changed.send_modify(|v| *v += 1);
                Ok((json!({}), None))
            }
            Target::List(collection) => Ok((self.list(&collection, uri)?, None)),
            Target::Wait(name) => {
                let timeout = wait_timeout(uri, body)?;
                Ok((self.wait(&name, timeout).await?, None))
            }
            Target::NotFound(message) => Err(ApiError::new(StatusCode::NOT_FOUND, message).into()),
            Target::Invalid(message) => Err(ApiError::invalid(message).into()),
            Target::NotAllowed { allow, message } => Err(Answer::NotAllowed { allow, message }),
        }
    }

    /// ListOperations (AIP-158 paging).
    fn list(&self, collection: &str, uri: &Uri) -> Result<Value, ApiError> {
        let page_size = match route::query_param(uri, "pageSize") {
            None => DEFAULT_PAGE_SIZE,
            Some(raw) => match raw.parse::<i64>() {
                Ok(0) => DEFAULT_PAGE_SIZE,
                Ok(n) if n > 0 => usize::try_from(n)
                    .unwrap_or(MAX_PAGE_SIZE)
                    .min(MAX_PAGE_SIZE),
                _ => {
                    return Err(ApiError::invalid(format!(
                        "Invalid pageSize {raw:?}: must be a non-negative integer."
                    )))
                }
            },
        };
        let after = match route::query_param(uri, "pageToken").filter(|t| !t.is_empty()) {
            None => 0,
            Some(token) => token
                .strip_prefix("after-op-")
                .and_then(|seq| seq.parse::<u64>().ok())
                .ok_or_else(|| ApiError::invalid(format!("Invalid pageToken {token:?}.")))?,
        };
        let raw_filter = route::query_param(uri, "filter").unwrap_or_default();
        let filter = Filter::parse(&raw_filter)
            .map_err(|e| ApiError::invalid(format!("Invalid filter {raw_filter:?}: {e}.")))?;
        let state = self.lock();
        let now = Instant::now();
        let (page, next) = state.ops.page(collection, after, page_size, |op| {
            filter.matches(op.is_done(now))
        });
        let mut body = json!({
            "operations": page.iter().map(|op| op.to_json(now)).collect::<Vec<_>>(),
        });
        if let Some(next) = next {
            body["nextPageToken"] = json!(format!("after-op-{next}"));
        }
        Ok(body)
    }

    /// WaitOperation: the operation once done, or when `timeout` passes.
    async fn wait(&self, name: &str, timeout: Duration) -> Result<Value, ApiError> {
        // Subscribe before the first look, so no cancel/delete is missed.
        let mut changed = self.ops_changed.subscribe();
        let deadline = Instant::now() + timeout.min(MAX_WAIT);
        loop {
            let wake = {
                let state = self.lock();
                let op = state
                    .ops
                    .get(name)
                    .ok_or_else(|| ApiError::not_found(name))?;
                let now = Instant::now();
                if op.is_done(now) || now >= deadline {
                    return Ok(op.to_json(now));
                }
                op.done_at().map_or(deadline, |at| at.min(deadline))
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => {}
                result = changed.changed() => {
                    if result.is_err() {
                        // Cannot happen (we hold the sender); don't spin.
                        tokio::time::sleep_until(wake).await;
                    }
                }
            }
        }
    }
}

/// A non-OK answer from [`Inner::dispatch`].
pub(super) enum Answer {
    Error(ApiError),
    NotAllowed {
        allow: &'static str,
        message: String,
    },
}

impl From<ApiError> for Answer {
    fn from(e: ApiError) -> Self {
        Answer::Error(e)
    }
}

/// A body as a JSON object (`{}` if empty).
fn json_object(body: &Bytes) -> Result<serde_json::Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(serde_json::Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid(
            "Invalid JSON payload received: expected an object.",
        )),
        Err(e) => Err(ApiError::invalid(format!(
            "Invalid JSON payload received: {e}."
        ))),
    }
}

/// The start request's `durationMs` (query first, then body).
fn start_duration(uri: &Uri, body: &Bytes) -> Result<Option<Duration>, ApiError> {
    let object = json_object(body)?;
    let invalid = |raw: &dyn fmt::Display| {
        ApiError::invalid(format!(
            "Invalid durationMs {raw}: must be a non-negative integer (milliseconds)."
        ))
    };
    if let Some(raw) = route::query_param(uri, "durationMs") {
        let ms = raw.parse::<u64>().map_err(|_| invalid(&raw))?;
        return Ok(Some(Duration::from_millis(ms)));
    }
    match object.get("durationMs") {
        None | Some(Value::Null) => Ok(None),
        Some(value) => {
            let ms = ops::json_u64(value).ok_or_else(|| invalid(value))?;
            Ok(Some(Duration::from_millis(ms)))
        }
    }
}

/// The wait request's `timeout` (query first, then body), at most [`MAX_WAIT`].
fn wait_timeout(uri: &Uri, body: &Bytes) -> Result<Duration, ApiError> {
    let object = json_object(body)?;
    let raw = match route::query_param(uri, "timeout") {
        Some(raw) => Some(raw),
        None => match object.get("timeout") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(other) => Some(other.to_string()),
        },
    };
    match raw {
        None => Ok(MAX_WAIT),
        Some(raw) => ops::parse_duration(&raw)
            .map(|d| d.min(MAX_WAIT))
            .ok_or_else(|| {
                ApiError::invalid(format!(
                    "Invalid timeout {raw:?}: expected a duration in seconds such as \"5s\" or \"1.5s\"."
                ))
            }),
    }
}
