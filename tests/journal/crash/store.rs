//! The journal a crash run's processes share: a fresh SQLite file, or a
//! fresh PostgreSQL database (`pg.rs`). Each child opens it from its
//! `CRASH_JOURNAL` string (`sqlite:{path}` or `postgres:{libpq string}`,
//! so one child entry serves both); the parent keeps its own connection.

use std::path::PathBuf;
use std::sync::Arc;

use tower_lro::journal::Journal;

/// One run's journal: what the children open (`config`, see [`open`]) and the parent's
/// connection to it. A SQLite file's folder is removed on drop.
pub struct Store {
    pub config: String,
    pub parent: Arc<dyn Journal>,
    dir: Option<PathBuf>,
}

impl Drop for Store {
    fn drop(&mut self) {
        if let Some(dir) = &self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Opens the journal a child is given: `sqlite:{path}` or
/// `postgres:{libpq connection string}`.
pub async fn open(config: String) -> Arc<dyn Journal> {
    match config.split_once(':') {
        Some(("sqlite", path)) => open_sqlite(path.to_owned()).await,
        Some(("postgres", conninfo)) => open_postgres(conninfo.to_owned()).await,
        _ => panic!("CRASH_JOURNAL {config:?} is neither sqlite:PATH nor postgres:CONNINFO"),
    }
}

/// Opens the SQLite journal at `path`.
async fn open_sqlite(path: String) -> Arc<dyn Journal> {
    use tower_lro::journal::SqliteJournal;
    Arc::new(SqliteJournal::open(path).expect("open the SQLite journal"))
}

/// A fresh SQLite journal in a folder of its own under the temp dir.
pub async fn sqlite(label: &str) -> Store {
    let dir = std::env::temp_dir().join(format!(
        "tower-lro-{label}-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    std::fs::create_dir_all(&dir).expect("create the journal's folder");
    let path = dir.join("journal.sqlite").display().to_string();
    Store {
        parent: open_sqlite(path.clone()).await,
        config: format!("sqlite:{path}"),
        dir: Some(dir),
    }
}

/// Connects to the PostgreSQL journal `config`.
async fn open_postgres(config: String) -> Arc<dyn Journal> {
    use tower_lro::journal::PostgresJournal;
    let journal = PostgresJournal::connect(&config)
        .await
        .expect("connect to PostgreSQL");
    Arc::new(journal)
}

/// The PostgreSQL journal in the (fresh) database `conninfo`.
pub async fn postgres(conninfo: String) -> Store {
    Store {
        parent: open_postgres(conninfo.clone()).await,
        config: format!("postgres:{conninfo}"),
        dir: None,
    }
}
