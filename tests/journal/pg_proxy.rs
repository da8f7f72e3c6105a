//! A loopback TCP proxy in front of the `TOWER_LRO_PG` server that a test
//! can cut: every connection through it is closed and new ones are refused
//! until it is restored — what a client sees of a restarted or unreachable
//! PostgreSQL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::watch;

/// Where the real server listens, read from a libpq key=value string.
enum Upstream {
    Unix(String),
    Tcp(String),
}

fn upstream(config: &str) -> Upstream {
    let value = |key: &str| {
        config
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=').map(str::to_owned))
    };
    let port = value("port").unwrap_or_else(|| "5432".to_owned());
    match value("host") {
        Some(dir) if dir.starts_with('/') => Upstream::Unix(format!("{dir}/.s.PGSQL.{port}")),
        Some(host) => Upstream::Tcp(format!("{host}:{port}")),
        None => Upstream::Unix(format!("/var/run/postgresql/.s.PGSQL.{port}")),
    }
}

/// The proxy; stops when dropped.
pub struct PgProxy {
    /// `config` with host and port pointing at the proxy.
    pub config: String,
    up: Arc<AtomicBool>,
    cut: watch::Sender<u64>,
    task: tokio::task::JoinHandle<()>,
}

impl PgProxy {
    /// A proxy to the server of `config` (a libpq key=value string).
    pub async fn start(config: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind loopback");
        let addr = listener.local_addr().expect("local addr");
        let kept: Vec<&str> = config
            .split_whitespace()
            .filter(|kv| !kv.starts_with("host=") && !kv.starts_with("port="))
            .collect();
        let proxied = format!("{} host=127.0.0.1 port={}", kept.join(" "), addr.port());
        let up = Arc::new(AtomicBool::new(true));
        let (cut, _) = watch::channel(0u64);
        let target = Arc::new(upstream(config));
        let (up2, cut2) = (up.clone(), cut.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                if !up2.load(Ordering::SeqCst) {
                    drop(client); // refused: closed at once
                    continue;
                }
                let (target, mut cuts) = (target.clone(), cut2.subscribe());
                tokio::spawn(async move {
                    let result = match &*target {
                        Upstream::Unix(path) => match UnixStream::connect(path).await {
                            Ok(server) => pipe(client, server, &mut cuts).await,
                            Err(_) => return,
                        },
                        Upstream::Tcp(addr) => match TcpStream::connect(addr).await {
                            Ok(server) => pipe(client, server, &mut cuts).await,
                            Err(_) => return,
                        },
                    };
                    drop(result);
                });
            }
        });
        PgProxy {
            config: proxied,
            up,
            cut,
            task,
        }
    }

    /// Closes every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.cut.send_modify(|n| *n += 1);
    }

    /// Accepts connections again.
    pub fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

/// Copies both ways until either side closes or the proxy is cut.
async fn pipe<S>(
    mut client: TcpStream,
    mut server: S,
    cuts: &mut watch::Receiver<u64>,
) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    tokio::select! {
        r = tokio::io::copy_bidirectional(&mut client, &mut server) => r.map(drop),
        _ = cuts.changed() => Ok(()),
    }
}
