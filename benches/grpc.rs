//! gRPC recognition costs, each next to its anchor in the same run.
//!
//! | group | variant | what |
//! |---|---|---|
//! | `grpc_lookup` | `HashSet` | a `HashSet<&str>` of the 2,666 table methods (the anchor) |
//! | | `GrpcLroMethods` | `GrpcLroMethods::googleapis().contains`: the table compiled in, in a `HashMap` built on first use, behind the opt-out/addition checks |
//! | | `GrpcLroMethods +1 -1` | the same with one method added and one opted out |
//!
//! One iteration looks up 64 `:path`s, half in the table, half not
//! (near misses: same service, other methods).
//!
//! | group | variant | what |
//! |---|---|---|
//! | `grpc_pass_through` | `bare Get` | a tonic `OperationsClient::get_operation` on a loopback `Channel` to the embedded server (the anchor) |
//! | | `lro Get (pass-through)` | the same through `CancelOnDropLayer`: a gRPC method not in the table, passed through |
//! | `grpc_recognise` | `bare CreateRelease done` | a tonic `CreateRelease` answered with an Operation already done |
//! | | `lro CreateRelease done` | the same through the layer: the answer is read, decoded as an Operation, found done, handed back |
//!
//! One tonic client per variant, each on its own HTTP/2 connection, on a
//! current-thread runtime that also runs the server.
//!
//! The loopback round trip (~100–200 µs here) hides the layer's cost in
//! noise, so the same four variants also run in memory: the tonic client
//! over a `service_fn` that answers a canned gRPC response (a framed done
//! Operation and `grpc-status: 0` trailers) at once — groups
//! `grpc_mem_pass_through` and `grpc_mem_recognise`.
//!
//! `cargo bench --bench grpc`  (quicker: `-- --measurement-time 2 --warm-up-time 1`)

mod support;

use std::collections::HashSet;
use std::convert::Infallible;
use std::hint::black_box;
use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::Criterion;
use http_body_util::StreamBody;
use hyper::body::Frame;
use prost::Message;
use tokio::runtime::Runtime;
use tonic::client::GrpcService;
use tonic::transport::Channel;
use tower::{service_fn, ServiceBuilder};
use tower_lro::{BoxError, CancelOnDropLayer, GrpcLroMethods};
use tower_lro_testing::grpc::{
    CloudDeployClient, CreateReleaseRequest, GetOperationRequest, Operation, OperationsClient,
};
use tower_lro_testing::OperationsServer;

use support::{print_table, run_group, Variant};

const TABLE: &str = include_str!("../data/grpc_lro_methods.tsv");

fn table_methods() -> Vec<&'static str> {
    TABLE
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split('\t').next())
        .collect()
}

/// 64 paths: every 83rd table method, and as many misses.
fn probes(methods: &[&'static str]) -> Vec<String> {
    let mut probes = Vec::new();
    for m in methods.iter().step_by(methods.len() / 32).take(32) {
        probes.push((*m).to_owned());
        probes.push(format!("{m}Status"));
    }
    probes
}

fn lookup(c: &mut Criterion) {
    let methods = table_methods();
    let probes = probes(&methods);
    let set: HashSet<&str> = methods.iter().copied().collect();
    let table = GrpcLroMethods::googleapis();
    // Built once, like a layer's.
    assert!(table.contains(methods[0]));
    let edited = GrpcLroMethods::googleapis()
        .with("/acme.builds.v1.Builds/Start")
        .and_then(|m| m.without(methods[1]))
        .unwrap_or_default();

    let run = |contains: &dyn Fn(&str) -> bool, iters: u64| {
        let start = Instant::now();
        for _ in 0..iters {
            for p in &probes {
                black_box(contains(black_box(p)));
            }
        }
        start.elapsed()
    };
    let mut variants = vec![
        Variant::new("HashSet", |iters| run(&|p| set.contains(p), iters)),
        Variant::new("GrpcLroMethods", |iters| run(&|p| table.contains(p), iters)),
        Variant::new("GrpcLroMethods +1 -1", |iters| {
            run(&|p| edited.contains(p), iters)
        }),
    ];
    let measured = run_group(c, "grpc_lookup", &mut variants, &[], 0);
    print_table(
        "grpc_lookup: ns per 64 lookups (32 hits, 32 misses); ratios to HashSet",
        "HashSet",
        &measured,
    );
}

/// What a tonic client needs of the service under it.
trait Transport: GrpcService<tonic::body::Body, ResponseBody = Self::Answer> {
    type Answer: http_body::Body<Data = Bytes, Error = Self::AnswerError> + Send + 'static;
    type AnswerError: Into<BoxError> + Send;
}

impl<T, B> Transport for T
where
    T: GrpcService<tonic::body::Body, ResponseBody = B>,
    B: http_body::Body<Data = Bytes> + Send + 'static,
    B::Error: Into<BoxError> + Send,
{
    type Answer = B;
    type AnswerError = B::Error;
}

/// `iters` GetOperation calls.
fn get<'a, T>(
    rt: &'a Runtime,
    mut client: OperationsClient<T>,
    name: String,
) -> impl FnMut(u64) -> Duration + 'a
where
    T: Transport + 'a,
{
    move |iters| {
        rt.block_on(async {
            let start = Instant::now();
            for _ in 0..iters {
                let request = GetOperationRequest { name: name.clone() };
                black_box(client.get_operation(request).await.expect("get"));
            }
            start.elapsed()
        })
    }
}

/// `iters` CreateRelease calls answered done.
fn create<'a, T>(
    rt: &'a Runtime,
    mut client: CloudDeployClient<T>,
) -> impl FnMut(u64) -> Duration + 'a
where
    T: Transport + 'a,
{
    move |iters| {
        rt.block_on(async {
            let start = Instant::now();
            for i in 0..iters {
                let op = client
                    .create_release(call_request(i))
                    .await
                    .expect("create");
                assert!(op.get_ref().done);
            }
            start.elapsed()
        })
    }
}

fn call_request(id: u64) -> tonic::Request<CreateReleaseRequest> {
    let mut request = tonic::Request::new(CreateReleaseRequest {
        parent: "projects/p/locations/l/deliveryPipelines/d".into(),
        release_id: format!("r{id}"),
        release: None,
    });
    request.metadata_mut().insert(
        "x-duration-ms",
        tonic::metadata::MetadataValue::from_static("0"),
    );
    request
}

fn calls(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let server = OperationsServer::new();
    let handle = rt.block_on(server.serve()).expect("bind");
    let connect = || {
        rt.block_on(
            Channel::from_shared(handle.base_url())
                .expect("url")
                .connect(),
        )
        .expect("connect")
    };
    let layered = |channel: Channel| {
        ServiceBuilder::new()
            .layer(CancelOnDropLayer::new())
            .service(channel)
    };
    let ops_bare = OperationsClient::new(connect());
    let ops_lro = OperationsClient::new(layered(connect()));
    let deploy_bare = CloudDeployClient::new(connect());
    let deploy_lro = CloudDeployClient::new(layered(connect()));
    let first = rt
        .block_on(deploy_bare.clone().create_release(call_request(0)))
        .expect("a release")
        .into_inner()
        .name;
    let rt = &rt;
    let mut pass = vec![
        Variant::new("bare Get", get(rt, ops_bare, first.clone())),
        Variant::new("lro Get (pass-through)", get(rt, ops_lro, first)),
    ];
    let measured = run_group(c, "grpc_pass_through", &mut pass, &[], 0);
    print_table(
        "grpc_pass_through: ns per unary call on loopback; ratio to bare (target: <= 1.10)",
        "bare Get",
        &measured,
    );
    let mut recognise = vec![
        Variant::new("bare CreateRelease done", create(rt, deploy_bare)),
        Variant::new("lro CreateRelease done", create(rt, deploy_lro)),
    ];
    let measured = run_group(c, "grpc_recognise", &mut recognise, &[], 0);
    print_table(
        "grpc_recognise: ns per unary call answered by a done Operation; ratio to bare",
        "bare CreateRelease done",
        &measured,
    );
    server.clear_requests();
}

type Canned =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>;

/// A done Operation, framed, with `grpc-status: 0` trailers: the answer to
/// every call of the in-memory service.
fn canned(message: &Bytes) -> http::Response<Canned> {
    let mut trailers = http::HeaderMap::new();
    trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
    let frames = vec![
        Ok(Frame::data(message.clone())),
        Ok(Frame::trailers(trailers)),
    ];
    let mut response = http::Response::new(StreamBody::new(futures_util::stream::iter(frames)));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}

fn in_memory(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let done = Operation {
        name: "projects/p/locations/l/operations/op-1".into(),
        done: true,
        ..Operation::default()
    };
    let mut framed = vec![0u8];
    framed.extend_from_slice(&(done.encoded_len() as u32).to_be_bytes());
    framed.extend_from_slice(&done.encode_to_vec());
    let framed = Bytes::from(framed);
    let service = service_fn(move |_request: http::Request<tonic::body::Body>| {
        let response = canned(&framed);
        async move { Ok::<_, Infallible>(response) }
    });
    let layered = ServiceBuilder::new()
        .layer(CancelOnDropLayer::new())
        .service(service.clone());
    let name = "projects/p/locations/l/operations/op-1".to_owned();
    let rt = &rt;
    let mut pass = vec![
        Variant::new(
            "bare Get",
            get(rt, OperationsClient::new(service.clone()), name.clone()),
        ),
        Variant::new(
            "lro Get (pass-through)",
            get(rt, OperationsClient::new(layered.clone()), name),
        ),
    ];
    let measured = run_group(c, "grpc_mem_pass_through", &mut pass, &[], 0);
    print_table(
        "grpc_mem_pass_through: ns per unary call, in memory; ratio to bare (target: <= 1.10)",
        "bare Get",
        &measured,
    );
    let mut recognise = vec![
        Variant::new(
            "bare CreateRelease done",
            create(rt, CloudDeployClient::new(service)),
        ),
        Variant::new(
            "lro CreateRelease done",
            create(rt, CloudDeployClient::new(layered)),
        ),
    ];
    let measured = run_group(c, "grpc_mem_recognise", &mut recognise, &[], 0);
    print_table(
        "grpc_mem_recognise: ns per unary call answered by a done Operation, in memory; ratio to bare",
        "bare CreateRelease done",
        &measured,
    );
}

fn main() {
    let mut c = Criterion::default().configure_from_args();
    lookup(&mut c);
    in_memory(&mut c);
    calls(&mut c);
    if std::env::var_os("BENCH_PROFILE").is_none() {
        c.final_summary();
    }
}
