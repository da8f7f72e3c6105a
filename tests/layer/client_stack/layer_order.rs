//! Which layers see what: those outside `CancelOnDrop` see only the caller's
//! call, those inside every poll and the cancel.

use super::*;

#[tokio::test]
async fn layers_outside_see_only_the_callers_call_and_layers_inside_see_every_poll_and_the_cancel()
{
    let server = OperationsServer::new();
    let handle = server.serve().await.unwrap();
    let base = handle.base_url();
    let token = Token::new("token-1");
    // What a layer at each position is called with: (method, path).
    type Seen = Arc<Mutex<Vec<(Method, String)>>>;
    let outside: Seen = Seen::default();
    let inside: Seen = Seen::default();
    let record = |seen: &Seen| {
        let seen = seen.clone();
        move |request: Request<Full<Bytes>>| {
            seen.lock()
                .unwrap()
                .push((request.method().clone(), request.uri().path().to_owned()));
            request
        }
    };
    let layer = CancelOnDropLayer::new().poll_policy(fast_polls());
    let mut client = ServiceBuilder::new()
        .map_request(record(&outside))
        .layer(layer.clone())
        .map_request(record(&inside))
        .service(inner_stack(&token, true));

    // Let it poll a few times, then give up.
    let name = abandon_after_polls(&mut client, &server, &base, 3, || {}).await;
    drain_once_settled(&server, &layer, RecordedRequest::is_answered).await;

    let start_path = "/v1/projects/p/locations/l/jobs".to_owned();
    assert_eq!(
        *outside.lock().unwrap(),
        [(Method::POST, start_path.clone())],
        "outside: the caller's one call"
    );
    let inside = inside.lock().unwrap().clone();
    assert_eq!(
        inside.first(),
        Some(&(Method::POST, start_path)),
        "{inside:?}"
    );
    assert_eq!(
        inside.last(),
        Some(&(Method::POST, format!("/v1/{name}:cancel"))),
        "{inside:?}"
    );
    let polls = &inside[1..inside.len() - 1];
    assert!(polls.len() >= 3, "{inside:?}");
    assert!(
        polls
            .iter()
            .all(|p| *p == (Method::GET, format!("/v1/{name}"))),
        "inside: the start, every poll, the cancel: {inside:?}"
    );
}
