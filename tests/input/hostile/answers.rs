//! The hostile server answers every Start with one of `cases`: nothing the
//! layer sends may leave the origin, carry a hostile name unencoded, or
//! read an endless body.

use super::cases::{hostile_cases, Case, Expect, Served};
use super::*;

/// The hostile server: `POST …/cases/{i}:run` gets case `i`'s answer; any GET
/// (a poll of an inert name) gets a done operation; anything else a 404.
fn hostile_responder(cases: Arc<Vec<Case>>) -> Respond {
    Arc::new(move |seen: &Seen| {
        if seen.method == Method::GET {
            return json(StatusCode::OK, r#"{"done":true,"response":{"ok":true}}"#);
        }
        let index = seen
            .target
            .strip_prefix("/v1/projects/p/locations/l/cases/")
            .and_then(|rest| rest.strip_suffix(":run"))
            .and_then(|i| i.parse::<usize>().ok());
        let Some(case) = index.and_then(|i| cases.get(i)) else {
            return json(StatusCode::NOT_FOUND, "{}");
        };
        let body: TestBody = match &case.served {
            Served::Bytes(bytes) => {
                let frames: Vec<_> = bytes
                    .chunks(16 * 1024)
                    .map(|c| Ok::<_, Infallible>(http_body::Frame::data(bytes.slice_ref(c))))
                    .collect();
                StreamBody::new(stream::iter(frames)).boxed()
            }
            Served::Endless(prefix) => {
                let x = Bytes::from(vec![b'x'; 64 * 1024]);
                let frames = std::iter::once(Bytes::from_static(prefix.as_bytes()))
                    .chain(std::iter::repeat(x))
                    .map(|b| Ok::<_, Infallible>(http_body::Frame::data(b)));
                StreamBody::new(stream::iter(frames)).boxed()
            }
            Served::Hung(prefix) => {
                let first = stream::iter([Ok::<_, Infallible>(http_body::Frame::data(
                    Bytes::from_static(prefix.as_bytes()),
                ))]);
                StreamBody::new(futures_util::StreamExt::chain(first, stream::pending())).boxed()
            }
        };
        let mut response = http::Response::builder()
            .header("content-type", "application/json; charset=utf-8")
            .header("x-case", index.unwrap_or_default().to_string());
        if let Some(encoding) = case.content_encoding {
            response = response.header("content-encoding", encoding);
        }
        response.body(body).unwrap()
    })
}

/// Reads a body frame by frame until it ends or `limit` bytes were read.
async fn read_up_to<B>(mut body: B, limit: usize) -> (Vec<u8>, bool)
where
    B: http_body::Body<Data = Bytes> + Unpin,
    B::Error: std::fmt::Debug,
{
    let mut out = Vec::new();
    while out.len() < limit {
        match body.frame().await {
            None => return (out, true),
            Some(frame) => {
                if let Ok(data) = frame.unwrap().into_data() {
                    out.extend_from_slice(&data);
                }
            }
        }
    }
    (out, false)
}

#[tokio::test]
async fn hostile_operations_steer_nothing_off_the_origin() {
    let warnings = Warnings::default();
    let _guard = warnings.install();
    let other = OtherHost::start().await;
    let cases = Arc::new(hostile_cases(other.addr));
    let (addr, log, server) = recording_server(hostile_responder(cases.clone())).await;
    // A call dropped while its response is read goes on reading in a detached
    // task, bounded by the cancel deadline: short here.
    let layer = CancelOnDropLayer::new()
        .poll_policy(fast_polls())
        .cancel_policy(tower_lro::CancelPolicy::new().deadline(Duration::from_millis(300)));
    let mut client = lro_client(&layer);

    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let label = &case.label;
        let target = format!("/v1/projects/p/locations/l/cases/{i}:run");
        let logged_before = log.len();
        let warned_before = warnings.all().len();
        let request = http::Request::post(format!("http://{addr}{target}"))
            .header("content-type", "application/json")
            .header("authorization", "Bearer secret-token")
            .body(Full::from("{}"))
            .unwrap();
        let call = send(&mut client, request);

        if let Served::Hung(_) = case.served {
            // Bounded by the caller's own timeout: the drop path.
            let outcome = tokio::time::timeout(Duration::from_millis(200), call).await;
            if outcome.is_ok() {
                failures.push(format!("{label}: a hung body resolved the call"));
            }
            // The detached read of the abandoned response ends at the cancel
            // deadline, having found no operation to cancel.
            let report = layer.handle().drain(WAIT).await;
            if !report.is_complete() || report.stats.fired != 0 {
                failures.push(format!("{label}: after the drop: {report:?}"));
            }
        } else {
            let response = match tokio::time::timeout(WAIT, call).await {
                Ok(Ok(response)) => response,
                Ok(Err(e)) => {
                    failures.push(format!("{label}: the call failed: {e}"));
                    continue;
                }
                Err(_) => {
                    failures.push(format!("{label}: the call hung"));
                    continue;
                }
            };
            if response.status() != StatusCode::OK {
                failures.push(format!("{label}: status {}", response.status()));
            }
            match (&case.expect, &case.served) {
                (Expect::Untracked, Served::Bytes(sent)) => {
                    if response.headers().get("x-case").map(|v| v.as_bytes())
                        != Some(i.to_string().as_bytes())
                    {
                        failures.push(format!("{label}: headers not passed through"));
                    }
                    let got = body_bytes(response.into_body()).await;
                    if got != *sent {
                        failures.push(format!(
                            "{label}: body changed ({} bytes sent, {} received)",
                            sent.len(),
                            got.len()
                        ));
                    }
                }
                (Expect::Untracked, Served::Endless(prefix)) => {
                    // The caller gets the bytes the layer read, then the rest
                    // of the stream: 4 MiB of it, all in order.
                    let (got, ended) = read_up_to(response.into_body(), 4 << 20).await;
                    let intact = !ended
                        && got.starts_with(prefix.as_bytes())
                        && got[prefix.len()..].iter().all(|&b| b == b'x');
                    if !intact {
                        failures.push(format!(
                            "{label}: endless body not handed over intact ({} bytes)",
                            got.len()
                        ));
                    }
                }
                (Expect::Inert(_), _) => {
                    let got = body_bytes(response.into_body()).await;
                    if got.as_ref() != br#"{"done":true,"response":{"ok":true}}"# {
                        failures.push(format!(
                            "{label}: not the done poll's body: {:?}",
                            String::from_utf8_lossy(&got)
                        ));
                    }
                }
                (Expect::Untracked, Served::Hung(_)) => unreachable!(),
            }
        }

        // On the wire: the POST, and for an inert name polls of exactly the
        // expected target, on this server.
        let seen: Vec<Seen> = log.all().split_off(logged_before);
        let (posts, rest) = seen
            .split_first()
            .map_or((None, &[][..]), |(p, r)| (Some(p), r));
        match posts {
            Some(post) if post.method == Method::POST && post.target == target => {}
            other => failures.push(format!("{label}: first request {other:?}")),
        }
        match &case.expect {
            Expect::Untracked => {
                if !rest.is_empty() {
                    failures.push(format!(
                        "{label}: the layer sent requests: {:?}",
                        rest.iter()
                            .map(|s| format!("{} {}", s.method, s.target))
                            .collect::<Vec<_>>()
                    ));
                }
            }
            Expect::Inert(expected) => {
                let ok = !rest.is_empty()
                    && rest.iter().all(|s| {
                        s.method == Method::GET
                            && &s.target == expected
                            && s.headers["host"] == addr.to_string().as_str()
                    });
                if !ok {
                    failures.push(format!(
                        "{label}: expected GET {expected}, saw {:?}",
                        rest.iter()
                            .map(|s| format!("{} {}", s.method, s.target))
                            .collect::<Vec<_>>()
                    ));
                }
            }
        }

        // One warn event per response left untracked for being hostile (for
        // the hung body: the detached read giving up), none for inert names,
        // and none echoing a control character.
        let warned: Vec<String> = warnings.all().split_off(warned_before);
        let expected_warnings = match &case.expect {
            Expect::Inert(_) => 0,
            Expect::Untracked => 1,
        };
        if warned.len() != expected_warnings {
            failures.push(format!(
                "{label}: {} warn events, expected {expected_warnings}: {warned:?}",
                warned.len()
            ));
        }
        if let Some(long) = warned.iter().find(|w| w.len() > 2000) {
            failures.push(format!(
                "{label}: a warn event of {} bytes echoes the body: {}…",
                long.len(),
                &long[..200]
            ));
        }
        if warned.iter().any(|w| w.contains(['\r', '\n', '\0'])) {
            failures.push(format!("{label}: a warn event echoes control characters"));
        }
    }

    let report = layer.handle().drain(WAIT).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.stats.fired, 0, "nothing was cancelled: {report:?}");
    other.assert_untouched().await;
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    server.abort();
}
