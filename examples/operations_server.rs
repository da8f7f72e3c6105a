//! Runs the embedded AIP-151 operations server (`tower_lro_testing`) until
//! killed, for trying a client against it by hand.
//!
//! ```text
//! cargo run --example operations_server -- [--addr 127.0.0.1:0] [--duration-ms 10000]
//! ```
//!
//! The first line on stdout is `listening on http://ADDR`; then each request
//! is logged to stderr when answered. For example:
//!
//! ```text
//! curl -X POST $URL/v1/projects/p/locations/l/jobs -d '{"durationMs": 5000}'
//! curl $URL/v1/projects/p/locations/l/operations/op-1
//! curl -X POST $URL/v1/projects/p/locations/l/operations/op-1:cancel
//! curl -X POST $URL/v1/projects/p/locations/l/operations/op-1:wait -d '{"timeout": "5s"}'
//! curl "$URL/v1/projects/p/locations/l/operations?pageSize=10"
//! ```
//!
//! The same port speaks gRPC (HTTP/2, `content-type: application/grpc`):
//! `google.longrunning.Operations` (GetOperation, ListOperations,
//! CancelOperation, DeleteOperation, WaitOperation) and every start method
//! of the googleapis long-running table, e.g.
//! `google.cloud.deploy.v1.CloudDeploy/CreateRelease` (run time: request
//! metadata `x-duration-ms`), on the same operations. Point a generated
//! client at it (e.g. google-cloud-deploy's `CloudDeployClient` with an
//! insecure channel to ADDR), or use grpcurl with the googleapis protos:
//!
//! ```text
//! grpcurl -plaintext -import-path googleapis -proto google/cloud/deploy/v1/cloud_deploy.proto \
//!   -H 'x-duration-ms: 5000' \
//!   -d '{"parent": "projects/p/locations/l/deliveryPipelines/d", "release_id": "r1"}' \
//!   ADDR google.cloud.deploy.v1.CloudDeploy/CreateRelease
//! grpcurl -plaintext -import-path googleapis -proto google/longrunning/operations.proto \
//!   -d '{"name": "projects/p/locations/l/operations/op-1"}' \
//!   ADDR google.longrunning.Operations/CancelOperation
//! ```
//!
//! gRPC calls are logged as `POST /{service}/{Method} -> {HTTP status} grpc-status {code}`.

use std::error::Error;
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use tower_lro_testing::{OperationsServer, RecordedRequest};

const USAGE: &str = "usage: operations_server [--addr HOST:PORT] [--duration-ms N]

  --addr HOST:PORT    address to listen on (default 127.0.0.1:0: any free port)
  --duration-ms N     how long operations run when the start request does not
                      say (\"durationMs\"), in milliseconds (default 10000)";

struct Args {
    addr: SocketAddr,
    duration: Duration,
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Args, String> {
    let mut parsed = Args {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        duration: Duration::from_secs(10),
    };
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (arg, None),
        };
        if flag == "-h" || flag == "--help" {
            return Err(String::new());
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| args.next())
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match flag.as_str() {
            "--addr" => {
                let raw = value()?;
                parsed.addr = raw
                    .parse()
                    .map_err(|e| format!("--addr {raw:?}: {e} (expected HOST:PORT)"))?;
            }
            "--duration-ms" => {
                let raw = value()?;
                let ms: u64 = raw
                    .parse()
                    .map_err(|e| format!("--duration-ms {raw:?}: {e}"))?;
                parsed.duration = Duration::from_millis(ms);
            }
            _ => return Err(format!("unknown argument {flag:?}")),
        }
    }
    Ok(parsed)
}

fn describe(request: &RecordedRequest) -> String {
    let mut line = format!(
        "{} {} -> {} {:?}",
        request.method,
        request.path,
        request.status.as_u16(),
        request.endpoint
    );
    if let Some(code) = request.grpc_status {
        line.push_str(&format!(" grpc-status {code}"));
    }
    if let Some(name) = &request.operation {
        line.push(' ');
        line.push_str(name);
    }
    line
}

/// Prints each request to stderr once it is answered.
async fn print_requests(server: OperationsServer) {
    let mut printed: Vec<bool> = Vec::new();
    loop {
        let unprinted = |log: &[RecordedRequest]| {
            log.iter()
                .enumerate()
                .any(|(i, r)| r.is_answered() && !printed.get(i).copied().unwrap_or(false))
        };
        let Ok(log) = server.wait_for(Duration::from_secs(3600), unprinted).await else {
            continue;
        };
        printed.resize(log.len(), false);
        let mut stderr = std::io::stderr().lock();
        for (request, done) in log.iter().zip(printed.iter_mut()) {
            if request.is_answered() && !*done {
                *done = true;
                let _ = writeln!(stderr, "{}", describe(request));
            }
        }
    }
}

async fn run(args: Args) -> Result<(), Box<dyn Error>> {
    let server = OperationsServer::new().default_duration(args.duration);
    let handle = server.serve_on(args.addr).await?;
    {
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "listening on {}", handle.base_url())?;
        stdout.flush()?;
    }
    tokio::select! {
        result = tokio::signal::ctrl_c() => result?,
        () = print_requests(server.clone()) => {}
    }
    eprintln!("shutting down");
    // In-flight requests get a moment to finish; then they are aborted.
    let _ = tokio::time::timeout(Duration::from_secs(1), handle.shutdown()).await;
    Ok(())
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(args) => args,
        Err(message) => {
            if message.is_empty() {
                println!("{USAGE}");
                return ExitCode::SUCCESS;
            }
            eprintln!("operations_server: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(args).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("operations_server: {error}");
            ExitCode::FAILURE
        }
    }
}
