//! `CancelHandle::shutdown`: callers still waiting end with an error naming
//! their operation, their operations are cancelled (reason `shutdown`), and
//! the report says which cancels were accepted — checked against the
//! embedded server's log and operation table over real loopback. Also the
//! triggers (`CancelOn`) per layer and per request.

use crate::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{assert_no_cancel, lro_client, send, start, WAIT};
use tower_lro::{CancelOn, CancelOnDropLayer, CancelPolicy, Error, NotAccepted, PollPolicy};
use tower_lro_testing::{Endpoint, Fault, OperationsServer, RecordedRequest};

const CALLERS: usize = 5;

/// One poll 5 ms after the operation is known, the next 50 s later: a
/// waiting call is woken by shutdown, not by its poll timer.
fn one_poll_then_wait() -> PollPolicy {
    PollPolicy::new()
        .initial_delay(Duration::from_millis(5))
        .multiplier(10_000.0)
        .max_delay(Duration::from_secs(600))
        .jitter(false)
}

fn layer() -> CancelOnDropLayer {
    CancelOnDropLayer::new()
        .poll_policy(one_poll_then_wait())
        .cancel_policy(
            CancelPolicy::new()
                .backoff(Duration::from_millis(20), Duration::from_millis(100))
                .attempt_timeout(Duration::from_millis(200)),
        )
}

/// Operations (by name) that the server has been polled for: their callers
/// know the name and wait on it.
fn polled(log: &[RecordedRequest]) -> BTreeSet<String> {
    log.iter()
        .filter(|r| r.endpoint == Endpoint::Get)
        .filter_map(|r| r.operation.clone())
        .collect()
}

/// Starts `CALLERS` calls through `layer`, each on an operation running 10
/// minutes, on tasks of their own; returns once the server has been polled
/// for every one.
async fn waiting_callers(
    server: &OperationsServer,
    base: &str,
    layer: &CancelOnDropLayer,
    request: impl Fn() -> http::Request<http_body_util::Full<bytes::Bytes>>,
) -> Vec<tokio::task::JoinHandle<Result<(), Error>>> {
    let _ = base;
    let tasks = (0..CALLERS)
        .map(|_| {
            let mut client = lro_client(layer);
            let request = request();
            tokio::spawn(async move { send(&mut client, request).await.map(drop) })
        })
        .collect();
    server
        .wait_for(WAIT, |log| polled(log).len() == CALLERS)
        .await
        .expect("every caller waits on its operation");
    tasks
}

#[tokio::test]
async fn shutdown_ends_every_waiting_call_and_cancels_its_operation() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    let lro = layer();
    let cancels = lro.handle();
    let tasks = waiting_callers(&server, &base, &lro, || start(&base, 600_000)).await;

    let report = cancels.shutdown(WAIT).await;

    // Each caller got the shutdown error naming its own operation.
    let mut ended = BTreeSet::new();
    for task in tasks {
        let error = task.await.unwrap().expect_err("the call was ended");
        let Error::Shutdown { operation } = &error else {
            panic!("expected Error::Shutdown, got {error:?}");
        };
        assert!(error.to_string().contains(operation.as_str()), "{error}");
        ended.insert(operation.as_str().to_owned());
    }
    let names: BTreeSet<String> = server.operation_names().into_iter().collect();
    assert_eq!(ended, names);
    // The server received one cancel per operation, and each is CANCELLED.
    for name in &names {
        assert_eq!(server.cancels_for(name).len(), 1, "{name}");
        let op = server.operation(name).unwrap();
        assert_eq!(op["error"]["code"], 1, "not CANCELLED: {op}");
    }
    // The report names exactly those, all accepted.
    let accepted: BTreeSet<String> = report
        .accepted
        .iter()
        .map(|n| n.as_str().to_owned())
        .collect();
    assert_eq!(accepted, names, "{report:?}");
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(report.drain.stats.fired, CALLERS as u64);
}

#[tokio::test]
async fn a_hung_cancel_endpoint_is_named_in_the_report() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    server.inject(Endpoint::Cancel, Fault::Hang);
    let lro = layer();
    let cancels = lro.handle();
    let tasks = waiting_callers(&server, &base, &lro, || start(&base, 600_000)).await;

    let report = cancels.shutdown(Duration::from_millis(500)).await;

    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert!(matches!(error, Error::Shutdown { .. }), "{error:?}");
    }
    let names: BTreeSet<String> = server.operation_names().into_iter().collect();
    let pending: BTreeSet<String> = report
        .not_accepted
        .iter()
        .map(|(name, why)| {
            assert_eq!(*why, NotAccepted::Pending, "{name}");
            name.as_str().to_owned()
        })
        .collect();
    assert_eq!(pending, names, "{report:?}");
    assert!(report.accepted.is_empty());
    assert!(!report.is_complete());
    // The cancels did reach the server, and nothing was cancelled there.
    for name in &names {
        assert!(!server.cancels_for(name).is_empty(), "{name}");
        let op = server.operation(name).unwrap();
        assert!(op.get("error").is_none(), "{op}");
    }
}

#[tokio::test]
async fn with_the_shutdown_trigger_off_the_operation_runs_on() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    let lro = layer();
    let cancels = lro.handle();
    // Per request: every trigger but shutdown.
    let tasks = waiting_callers(&server, &base, &lro, || {
        let mut request = start(&base, 600_000);
        request
            .extensions_mut()
            .insert(CancelOn::all().shutdown(false));
        request
    })
    .await;

    let report = cancels.shutdown(WAIT).await;

    for task in tasks {
        let error = task.await.unwrap().unwrap_err();
        assert!(matches!(error, Error::Shutdown { .. }), "{error:?}");
    }
    assert_eq!(report.not_accepted.len(), CALLERS, "{report:?}");
    assert!(report
        .not_accepted
        .iter()
        .all(|(_, why)| *why == NotAccepted::NotCancelled));
    assert_no_cancel(&cancels, &server).await;
    for name in server.operation_names() {
        let op = server.operation(&name).unwrap();
        assert!(op.get("error").is_none(), "{op}");
    }
}

#[tokio::test]
async fn with_the_drop_trigger_off_a_dropped_call_sends_no_cancel() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    // Per layer: every trigger but drop.
    let lro = layer().cancel_on(CancelOn::all().drop(false));
    let cancels = lro.handle();
    let mut client = lro_client(&lro);
    let call = send(&mut client, start(&base, 600_000));
    tokio::select! {
        _ = call => panic!("the operation runs 10 minutes"),
        polled = server.wait_for(WAIT, |log| polled(log).len() == 1) => { polled.unwrap(); }
    }
    // The call is dropped here.
    assert_no_cancel(&cancels, &server).await;
    let name = common::only_operation(&server);
    assert!(server.operation(&name).unwrap().get("error").is_none());
}

#[tokio::test]
async fn a_request_turning_the_deadline_trigger_off_is_not_cancelled_at_its_deadline() {
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    let lro = layer().deadline(Duration::from_millis(200));
    let cancels = lro.handle();
    let mut client = lro_client(&lro);
    let mut request = start(&base, 600_000);
    request
        .extensions_mut()
        .insert(CancelOn::all().deadline(false));
    let error = send(&mut client, request).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::DeadlineExceeded {
                operation: Some(_),
                ..
            }
        ),
        "{error:?}"
    );
    assert_no_cancel(&cancels, &server).await;
    // The same call without the extension is cancelled at its deadline.
    let error = send(&mut client, start(&base, 600_000)).await.unwrap_err();
    let name = error.operation().unwrap().as_str().to_owned();
    assert!(cancels.drain(WAIT).await.is_complete());
    assert_eq!(server.cancels_for(&name).len(), 1);
}

/// With a journal: the entries of operations whose cancel was not delivered
/// by shutdown's deadline stay for a reaper; the accepted ones are removed.
#[cfg(feature = "journal-sqlite")]
#[tokio::test]
async fn undelivered_cancels_stay_in_the_journal() {
    use std::sync::Arc;
    use tower_lro::journal::{Journal, JournalWriter, SqliteJournal, WriterOptions};

    let path = std::env::temp_dir().join(format!(
        "tower-lro-shutdown-{}-{:x}.sqlite",
        std::process::id(),
        fastrand::u64(..)
    ));
    let journal: Arc<dyn Journal> = Arc::new(SqliteJournal::open(&path).unwrap());
    let writer = JournalWriter::start(journal.clone(), WriterOptions::new()).unwrap();
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    server.inject(Endpoint::Cancel, Fault::Hang);
    let lro = layer().journal(writer.clone());
    let cancels = lro.handle();
    let tasks = waiting_callers(&server, &base, &lro, || start(&base, 600_000)).await;

    let report = cancels.shutdown(Duration::from_millis(500)).await;
    for task in tasks {
        assert!(task.await.unwrap().is_err());
    }
    writer.flush().await.unwrap();
    let journaled: BTreeSet<String> = journal
        .entries()
        .await
        .unwrap()
        .iter()
        .map(|e| e.name().to_owned())
        .collect();
    let undelivered: BTreeSet<String> = report
        .not_accepted
        .iter()
        .map(|(name, _)| name.as_str().to_owned())
        .collect();
    assert_eq!(undelivered.len(), CALLERS, "{report:?}");
    assert_eq!(journaled, undelivered);
    let _ = std::fs::remove_file(&path);
}

use crate::common::grpc as grpc_support;

/// The same promise over gRPC: callers through a tonic `Channel` end with a
/// status naming their operation; the server cancels each.
#[tokio::test]
async fn shutdown_over_grpc_ends_calls_and_cancels_their_operations() {
    use grpc_support::{create, deploy, serve};

    let (server, _handle, channel) = serve().await;
    let lro = grpc_support::layer().poll_policy(one_poll_then_wait());
    let cancels = lro.handle();
    let tasks: Vec<_> = (0..CALLERS)
        .map(|i| {
            let mut client = deploy(&lro, &channel);
            tokio::spawn(async move {
                client
                    .create_release(create(&format!("r{i}"), 600_000))
                    .await
            })
        })
        .collect();
    server
        .wait_for(WAIT, |log| polled(log).len() == CALLERS)
        .await
        .expect("every caller waits on its operation");

    let report = cancels.shutdown(WAIT).await;

    let names: BTreeSet<String> = server.operation_names().into_iter().collect();
    assert_eq!(names.len(), CALLERS);
    for task in tasks {
        let status = task.await.unwrap().expect_err("the call was ended");
        let message = status.message();
        assert!(message.starts_with("shutting down"), "{status:?}");
        assert!(
            names.iter().any(|n| message.contains(n.as_str())),
            "{status:?}"
        );
    }
    for name in &names {
        let cancels = server.cancels_for(name);
        assert_eq!(cancels.len(), 1, "{name}");
        assert_eq!(cancels[0].grpc_status, Some(0));
        assert_eq!(server.operation(name).unwrap()["error"]["code"], 1);
    }
    let accepted: BTreeSet<String> = report
        .accepted
        .iter()
        .map(|n| n.as_str().to_owned())
        .collect();
    assert_eq!(accepted, names, "{report:?}");
    assert!(report.is_complete());
}
