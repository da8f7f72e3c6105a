//! Serving an [`OperationsServer`] over HTTP with hyper: [`ServerHandle`].

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::{Inner, OperationsServer};

/// An answer over HTTP: REST (`Left`) or gRPC (`Right`), and whether to
/// drop the connection or stream instead.
struct Handled {
    response: http::Response<Either<http_body_util::Full<bytes::Bytes>, tonic::body::Body>>,
    disconnect: bool,
}

/// A running HTTP server for an [`OperationsServer`], from
/// [`OperationsServer::serve`] or [`OperationsServer::serve_on`].
///
/// It speaks HTTP/1.1 and HTTP/2 (prior knowledge, `h2c`) on one port, and
/// serves the same state as the `OperationsServer` it came from (and every
/// clone of it). HTTP/2 connections allow 10,000 concurrent streams
/// (hyper's default, 200, would make the test server the bottleneck of a
/// load test).
///
/// Dropping the handle stops accepting connections and aborts the open ones
/// (in-flight requests are dropped and logged as `499`); the listener is
/// closed as soon as the accept task next runs. [`shutdown`](Self::shutdown)
/// stops gracefully instead.
pub struct ServerHandle {
    addr: SocketAddr,
    /// Cancelled on drop: abort everything.
    hard: CancellationToken,
    /// Cancelled by `shutdown` (and by `hard`, its parent): stop accepting
    /// and close connections once their in-flight requests are answered.
    graceful: CancellationToken,
    tracker: TaskTracker,
}

impl ServerHandle {
    /// The address the server is bound to (with the real port when bound to
    /// port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://{addr}`, e.g. `http://127.0.0.1:40123` (no trailing slash;
    /// IPv6 addresses in brackets).
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops gracefully: stops accepting, lets every in-flight request be
    /// answered (a WaitOperation may take up to its timeout, a
    /// [`FaultKind::Latency`](super::FaultKind::Latency) its delay; a
    /// [`FaultKind::Hang`](super::FaultKind::Hang) is ended as a
    /// disconnect), closes idle connections, and returns when every
    /// connection is closed and the listening socket is released. Wrap it in `tokio::time::timeout` to
    /// bound it; dropping this future aborts what is left.
    pub async fn shutdown(self) {
        self.graceful.cancel();
        self.tracker.close();
        self.tracker.wait().await;
    }
}

impl Drop for ServerHandle {
    fn drop(&mut self) {
        self.hard.cancel();
        self.tracker.close();
    }
}

impl fmt::Debug for ServerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServerHandle")
            .field("addr", &self.addr)
            .field("tasks", &self.tracker.len())
            .finish()
    }
}

/// The `SETTINGS_MAX_CONCURRENT_STREAMS` of the served HTTP/2 connections:
/// 10,000.
const MAX_CONCURRENT_STREAMS: u32 = 10_000;

/// Binds `addr` and spawns the accept loop.
pub(crate) async fn serve_on(
    server: &OperationsServer,
    addr: SocketAddr,
) -> std::io::Result<ServerHandle> {
    let listener = TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let hard = CancellationToken::new();
    let graceful = hard.child_token();
    let tracker = TaskTracker::new();
    tracker.spawn(accept_loop(
        listener,
        Arc::clone(&server.inner),
        Tasks {
            hard: hard.clone(),
            graceful: graceful.clone(),
            tracker: tracker.clone(),
        },
    ));
    tracing::debug!(%addr, "tower_lro_testing::OperationsServer listening");
    Ok(ServerHandle {
        addr,
        hard,
        graceful,
        tracker,
    })
}

/// What every task of one server shares.
#[derive(Clone)]
struct Tasks {
    hard: CancellationToken,
    graceful: CancellationToken,
    tracker: TaskTracker,
}

/// The hyper executor (HTTP/2 stream tasks): tracked, and aborted on drop.
#[derive(Clone)]
struct Executor(Tasks);

impl<F> hyper::rt::Executor<F> for Executor
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    fn execute(&self, fut: F) {
        let hard = self.0.hard.clone();
        self.0.tracker.spawn(async move {
            tokio::select! {
                _ = fut => {}
                _ = hard.cancelled() => {}
            }
        });
    }
}

async fn accept_loop(listener: TcpListener, inner: Arc<Inner>, tasks: Tasks) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = tasks.graceful.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _peer)) => {
                // Best effort: latency matters more than throughput here.
                let _ = stream.set_nodelay(true);
                tasks
                    .tracker
                    .spawn(serve_connection(stream, Arc::clone(&inner), tasks.clone()));
            }
            Err(error) => {
                // E.g. too many open files: don't spin.
                tracing::warn!(%error, "tower_lro_testing: accept failed");
                tokio::select! {
                    _ = tasks.graceful.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_millis(50)) => {}
                }
            }
        }
    }
}

/// The service error that makes hyper drop the connection (HTTP/1) or reset
/// the stream (HTTP/2): [`FaultKind::Disconnect`](super::FaultKind::Disconnect).
#[derive(Debug)]
struct Disconnect;

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("connection dropped by tower_lro_testing::FaultKind::Disconnect")
    }
}

impl std::error::Error for Disconnect {}

/// The server's end of one TCP connection: closed with a `RST` (zero linger,
/// an abortive close) instead of a `FIN` when `reset` is set by the time it
/// is dropped.
struct Conn {
    stream: TcpStream,
    reset: Arc<AtomicBool>,
}

impl Drop for Conn {
    fn drop(&mut self) {
        if self.reset.load(Ordering::Acquire) {
            // Best effort: a socket already closed by the peer may refuse it.
            let _ = self.stream.set_zero_linger();
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

async fn serve_connection(stream: TcpStream, inner: Arc<Inner>, tasks: Tasks) {
    let reset = Arc::new(AtomicBool::new(false));
    let conn = Conn {
        stream,
        reset: Arc::clone(&reset),
    };
    let graceful = tasks.graceful.clone();
    let service = hyper::service::service_fn(move |request: http::Request<Incoming>| {
        let inner = Arc::clone(&inner);
        let reset = Arc::clone(&reset);
        let release = graceful.clone().cancelled_owned();
        async move {
            let http1 = request.version() < http::Version::HTTP_2;
            let (parts, body) = request.into_parts();
            let grpc = super::grpc::is_grpc(&parts);
            let request = http::Request::from_parts(parts, body);
            let handled = if grpc {
                let handled = super::grpc::handle(&inner, request, release).await;
                Handled {
                    response: handled.response.map(Either::Right),
                    disconnect: handled.disconnect,
                }
            } else {
                let handled = inner.handle(request, release).await;
                Handled {
                    response: handled.response.map(Either::Left),
                    disconnect: handled.disconnect,
                }
            };
            if handled.disconnect {
                // HTTP/1: the whole connection goes, with a RST. HTTP/2:
                // hyper resets this stream only.
                if http1 {
                    reset.store(true, Ordering::Release);
                }
                Err(Disconnect)
            } else {
                Ok(handled.response)
            }
        }
    });
    let mut builder = auto::Builder::new(Executor(tasks.clone()));
    builder
        .http2()
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS)
        // Every injected `Disconnect` is a stream this server resets with an
        // error; h2 otherwise ends the whole connection (GOAWAY
        // ENHANCE_YOUR_CALM) after 1,024 of them, failing every request on
        // it: a fault nobody injected.
        .max_local_error_reset_streams(None);
    let connection = builder.serve_connection(TokioIo::new(conn), service);
    let mut connection = std::pin::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = tasks.graceful.cancelled() => {}
    }
    if tasks.hard.is_cancelled() {
        return;
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection.as_mut() => {}
        _ = tasks.hard.cancelled() => {}
    }
}
