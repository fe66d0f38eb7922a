//! The web role's database: sessions, share links, instances and the server registry.
//!
//! One `sqlx` [`AnyPool`], so the same queries run on SQLite (a file, the default: no set-up)
//! and PostgreSQL (by URL; compiled in with the crate's `postgres` feature), which several web
//! roles can share. The schema comes from `orchestrator/migrations/`, applied at start and
//! recorded in sqlx's `_sqlx_migrations` table. Queries use `$n` parameters, which both
//! backends understand, and only TEXT and BIGINT columns.

use std::borrow::Cow;
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Row};
use tracing::info;

/// The migrations, oldest first. A new one is appended here and never edited afterwards (sqlx
/// refuses to start on a changed checksum).
const MIGRATIONS: &[(i64, &str, &str)] = &[
    (
        1,
        "initial",
        include_str!("../../migrations/0001_initial.sql"),
    ),
    (
        2,
        "client address",
        include_str!("../../migrations/0002_client_address.sql"),
    ),
    (
        3,
        "api websocket base port",
        include_str!("../../migrations/0003_api_websocket_base_port.sql"),
    ),
    (
        4,
        "no instance base ports",
        include_str!("../../migrations/0004_no_instance_base_ports.sql"),
    ),
    (
        5,
        "server tls",
        include_str!("../../migrations/0005_server_tls.sql"),
    ),
];

/// A migrator of `migrations` (all of [`MIGRATIONS`], or the first few in a test of an
/// older schema's upgrade).
fn migrator(migrations: &'static [(i64, &'static str, &'static str)]) -> Migrator {
    let migrations: Vec<Migration> = migrations
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                Cow::Borrowed(description),
                MigrationType::Simple,
                Cow::Borrowed(sql),
                false,
            )
        })
        .collect();
    Migrator {
        migrations: Cow::Owned(migrations),
        ..Migrator::DEFAULT
    }
}

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names no supported database.
    #[error("unsupported database URL {0} (use sqlite://PATH, a file path, or postgres://…)")]
    Url(String),
    /// A PostgreSQL URL, but the driver is not compiled in.
    #[error(
        "PostgreSQL needs an orchestrator built with the `postgres` feature \
         (cargo build -p orchestrator --features postgres)"
    )]
    NoPostgres,
    /// The database could not be opened.
    #[error("cannot open the database {url}: {source}")]
    Open {
        /// The URL, password removed.
        url: String,
        /// Why.
        source: sqlx::Error,
    },
    /// The schema could not be brought up to date.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// The SQLite file is not the one the database was opened on any more.
    #[error("database file {path}: {problem}")]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },
}

/// A row of `servers` (the seeds' columns). Nothing about a server's instances' ports: the web
/// role reaches them through the supervisor ([`crate::relay`]), which knows its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerRow {
    /// A UUID, made when the server is first registered.
    pub server_id: String,
    /// Where it is (free text; the seeds used `us-east-3`).
    pub region: String,
    /// Host name or address of its supervisor.
    pub ip_address: String,
    /// Its supervisor protocol port (4699).
    pub port: u16,
    /// `active`, or `unreachable` after a failed `SERVER_STATUS`.
    pub status: String,
    /// Free slots at the last `SERVER_STATUS`.
    pub available_instances: u32,
    /// Slots in all.
    pub num_instances: u32,
    /// Memory, as text (`64GB`).
    pub ram: String,
    /// GPU, as text.
    pub graphics_card: String,
    /// Disk, as text.
    pub storage: String,
    /// Whether its supervisor port speaks TLS (`wss://`), a column beside the seeds' (see
    /// `migrations/0005_server_tls.sql`).
    pub tls: bool,
}

/// A row of `instances`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceRow {
    /// The instance's UUID (its URL is `/stream/<uuid>`).
    pub instance_id: String,
    /// The session that launched it.
    pub session_id: String,
    /// The server it runs on.
    pub server_id: String,
    /// Its slot (the supervisor protocol's id) on that server.
    pub slot: u32,
    /// `INITIALIZING`, `RUNNING`, `DEINITIALIZING` or `ENDED`.
    pub status: String,
    /// Why it ended, in words.
    pub end_reason: Option<String>,
    /// Launch time, ms since the epoch.
    pub created_at: i64,
    /// When it became `RUNNING`.
    pub running_at: Option<i64>,
    /// When it ended.
    pub ended_at: Option<i64>,
    /// Stream width after the last `RESOLUTION`.
    pub width: Option<u32>,
    /// Stream height after the last `RESOLUTION`.
    pub height: Option<u32>,
    /// The client address key that launched it, while it is live.
    pub client_address: Option<String>,
}

/// The database handle. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    /// The connections.
    pool: AnyPool,
    /// The SQLite file, as it was when opened (none for PostgreSQL and `:memory:`).
    file: Option<SqliteFile>,
}

/// A SQLite database file and the inode it had when the database was opened.
///
/// Open connections keep working on a file that was deleted or replaced, so queries alone do
/// not notice; everything written after that would be lost at the next start.
#[derive(Debug, Clone, PartialEq, Eq)]
struct SqliteFile {
    /// As given in the URL.
    path: PathBuf,
    /// `st_dev` and `st_ino` at open.
    identity: (u64, u64),
}

/// The first 16 bytes of every SQLite 3 database file.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

impl SqliteFile {
    /// The file of a normalized `sqlite://PATH?…` URL, if it names one.
    fn of_url(url: &str) -> Option<SqliteFile> {
        let rest = url.strip_prefix("sqlite://")?;
        let path = rest.split_once('?').map_or(rest, |(path, _)| path);
        if path.is_empty() || path.starts_with(':') {
            return None;
        }
        let meta = std::fs::metadata(path).ok()?;
        Some(SqliteFile {
            path: PathBuf::from(path),
            identity: (meta.dev(), meta.ino()),
        })
    }

    /// Whether the file at the path is still the database that was opened.
    fn check(&self) -> Result<(), DbError> {
        let problem = |problem: &str| DbError::File {
            path: self.path.clone(),
            problem: problem.to_string(),
        };
        let meta = match std::fs::metadata(&self.path) {
            Ok(meta) => meta,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(problem("deleted while in use"));
            }
            Err(err) => return Err(problem(&err.to_string())),
        };
        if (meta.dev(), meta.ino()) != self.identity {
            return Err(problem("replaced by another file while in use"));
        }
        let mut magic = [0u8; 16];
        std::fs::File::open(&self.path)
            .and_then(|mut file| file.read_exact(&mut magic))
            .map_err(|err| problem(&format!("unreadable: {err}")))?;
        if &magic != SQLITE_MAGIC {
            return Err(problem("no longer a SQLite database (corrupted)"));
        }
        Ok(())
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// `url` with any password replaced by `***`, for logs and errors.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split(':').next().unwrap_or("");
            format!("{scheme}://{user}:***@{host}{tail}")
        }
        None => url.to_string(),
    }
}

/// The URL sqlx gets: a bare path becomes `sqlite://PATH`, SQLite files are created if
/// missing (`mode=rwc`) along with their folder.
pub fn normalize_url(url: &str) -> Result<String, DbError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        if cfg!(feature = "postgres") {
            return Ok(url.to_string());
        }
        return Err(DbError::NoPostgres);
    }
    let rest = match url.split_once(':') {
        Some(("sqlite", rest)) => rest.trim_start_matches("//"),
        Some((scheme, _)) if !scheme.contains('/') && scheme.len() > 1 => {
            return Err(DbError::Url(redact(url)));
        }
        _ => url,
    };
    if rest == ":memory:" || rest.is_empty() {
        return Ok("sqlite::memory:".to_string());
    }
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if let Some(dir) = Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        let _ = std::fs::create_dir_all(dir);
    }
    let query = if query.split('&').any(|kv| kv.starts_with("mode=")) {
        query.to_string()
    } else if query.is_empty() {
        "mode=rwc".to_string()
    } else {
        format!("{query}&mode=rwc")
    };
    Ok(format!("sqlite://{path}?{query}"))
}

fn u32_of(row: &AnyRow, column: &str) -> Result<u32, sqlx::Error> {
    let value: i64 = row.try_get(column)?;
    u32::try_from(value).map_err(|err| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(err),
    })
}

fn u16_of(row: &AnyRow, column: &str) -> Result<u16, sqlx::Error> {
    let value: i64 = row.try_get(column)?;
    u16::try_from(value).map_err(|err| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: Box::new(err),
    })
}

fn opt_u32_of(row: &AnyRow, column: &str) -> Result<Option<u32>, sqlx::Error> {
    let value: Option<i64> = row.try_get(column)?;
    Ok(value.and_then(|v| u32::try_from(v).ok()))
}

fn server_of(row: &AnyRow) -> Result<ServerRow, sqlx::Error> {
    Ok(ServerRow {
        server_id: row.try_get("server_id")?,
        region: row.try_get("region")?,
        ip_address: row.try_get("ip_address")?,
        port: u16_of(row, "port")?,
        status: row.try_get("status")?,
        available_instances: u32_of(row, "available_instances")?,
        num_instances: u32_of(row, "num_instances")?,
        ram: row.try_get("ram")?,
        graphics_card: row.try_get("graphics_card")?,
        storage: row.try_get("storage")?,
        tls: row.try_get::<i64, _>("tls")? != 0,
    })
}

fn instance_of(row: &AnyRow) -> Result<InstanceRow, sqlx::Error> {
    Ok(InstanceRow {
        instance_id: row.try_get("instance_id")?,
        session_id: row.try_get("session_id")?,
        server_id: row.try_get("server_id")?,
        slot: u32_of(row, "slot")?,
        status: row.try_get("status")?,
        end_reason: row.try_get("end_reason")?,
        created_at: row.try_get("created_at")?,
        running_at: row.try_get("running_at")?,
        ended_at: row.try_get("ended_at")?,
        width: opt_u32_of(row, "width")?,
        height: opt_u32_of(row, "height")?,
        client_address: row.try_get("client_address")?,
    })
}

const INSTANCE_COLUMNS: &str = "instance_id, session_id, server_id, slot, status, end_reason, \
     created_at, running_at, ended_at, width, height, client_address";

/// Sessions past their expiry (`$1`: the oldest `last_seen_at` still active) that have no live
/// instance: an owner must always be able to stop what it runs.
const EXPIRED_SESSIONS: &str = "SELECT session_id FROM sessions WHERE last_seen_at < $1 \
     AND NOT EXISTS (SELECT 1 FROM instances WHERE instances.session_id = sessions.session_id \
     AND instances.status <> 'ENDED')";

impl Db {
    /// Opens (creating a SQLite file if needed) and migrates the database at `url`.
    pub async fn open(url: &str) -> Result<Db, DbError> {
        sqlx::any::install_default_drivers();
        let url = normalize_url(url)?;
        let memory = url == "sqlite::memory:";
        let mut options = AnyPoolOptions::new()
            .max_connections(if memory { 1 } else { 4 })
            .acquire_timeout(Duration::from_secs(10));
        if memory {
            // Every connection to `:memory:` is a database of its own: keep the one forever.
            options = options
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        let pool = options
            .connect(&url)
            .await
            .map_err(|source| DbError::Open {
                url: redact(&url),
                source,
            })?;
        migrator(MIGRATIONS).run(&pool).await?;
        info!(database = %redact(&url), "database ready");
        Ok(Db {
            pool,
            file: SqliteFile::of_url(&url),
        })
    }

    /// Whether the database works: a real query, and for SQLite, that the file is still the
    /// one opened and still a database. Reads only.
    pub async fn check(&self) -> Result<(), DbError> {
        sqlx::query("SELECT COUNT(*) AS n FROM servers")
            .fetch_one(&self.pool)
            .await?;
        match &self.file {
            Some(file) => file.check(),
            None => Ok(()),
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    // Sessions and shares.

    /// Stores a new session.
    pub async fn create_session(&self, session_id: &str, token_hash: &str) -> Result<(), DbError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO sessions (session_id, token_hash, created_at, last_seen_at) \
             VALUES ($1, $2, $3, $4)",
        )
        .bind(session_id)
        .bind(token_hash)
        .bind(now)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The session id of a token hash, if the session has not expired: it was used at
    /// `active_since` or later, or it has a live instance.
    pub async fn session_of(
        &self,
        token_hash: &str,
        active_since: i64,
    ) -> Result<Option<String>, DbError> {
        let row = sqlx::query(
            "SELECT session_id FROM sessions WHERE token_hash = $1 AND (last_seen_at >= $2 \
             OR EXISTS (SELECT 1 FROM instances WHERE instances.session_id = sessions.session_id \
             AND instances.status <> 'ENDED'))",
        )
        .bind(token_hash)
        .bind(active_since)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|r| r.try_get("session_id")).transpose()?)
    }

    /// Deletes the sessions unused since before `active_since` that have no live instance,
    /// with their ended instances and share links. Returns how many sessions went.
    pub async fn delete_expired_sessions(&self, active_since: i64) -> Result<u64, DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(&format!(
            "DELETE FROM shares WHERE instance_id IN (SELECT instance_id FROM instances \
             WHERE session_id IN ({EXPIRED_SESSIONS}))"
        ))
        .bind(active_since)
        .execute(&mut *tx)
        .await?;
        sqlx::query(&format!(
            "DELETE FROM instances WHERE session_id IN ({EXPIRED_SESSIONS})"
        ))
        .bind(active_since)
        .execute(&mut *tx)
        .await?;
        let gone = sqlx::query(&format!(
            "DELETE FROM sessions WHERE session_id IN ({EXPIRED_SESSIONS})"
        ))
        .bind(active_since)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(gone)
    }

    /// Records that a session was used now.
    pub async fn touch_session(&self, session_id: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE session_id = $2")
            .bind(now_ms())
            .bind(session_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Stores a share link's token hash for an instance.
    pub async fn create_share(&self, token_hash: &str, instance_id: &str) -> Result<(), DbError> {
        sqlx::query("INSERT INTO shares (token_hash, instance_id, created_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(instance_id)
            .bind(now_ms())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The instance a share token hash opens, if any.
    pub async fn share_of(&self, token_hash: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query("SELECT instance_id FROM shares WHERE token_hash = $1")
            .bind(token_hash)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get("instance_id")).transpose()?)
    }

    // Servers.

    /// Registers a server, or updates the row with the same address and port (keeping its
    /// `server_id`). Returns the stored row. Whether it speaks TLS is the registering web
    /// role's word, like the rest of the row: the last configuration started wins.
    pub async fn upsert_server(&self, server: &ServerRow) -> Result<ServerRow, DbError> {
        sqlx::query(
            "INSERT INTO servers (server_id, region, ip_address, port, status, \
             available_instances, num_instances, ram, graphics_card, storage, tls) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) \
             ON CONFLICT (ip_address, port) DO UPDATE SET region = $2, status = $5, \
             available_instances = $6, num_instances = $7, ram = $8, graphics_card = $9, \
             storage = $10, tls = $11",
        )
        .bind(&server.server_id)
        .bind(&server.region)
        .bind(&server.ip_address)
        .bind(i64::from(server.port))
        .bind(&server.status)
        .bind(i64::from(server.available_instances))
        .bind(i64::from(server.num_instances))
        .bind(&server.ram)
        .bind(&server.graphics_card)
        .bind(&server.storage)
        .bind(i64::from(server.tls))
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT * FROM servers WHERE ip_address = $1 AND port = $2")
            .bind(&server.ip_address)
            .bind(i64::from(server.port))
            .fetch_one(&self.pool)
            .await?;
        Ok(server_of(&row)?)
    }

    /// Every registered server.
    pub async fn servers(&self) -> Result<Vec<ServerRow>, DbError> {
        let rows = sqlx::query("SELECT * FROM servers ORDER BY ip_address, port")
            .fetch_all(&self.pool)
            .await?;
        Ok(rows.iter().map(server_of).collect::<Result<_, _>>()?)
    }

    /// Stores the outcome of a `SERVER_STATUS`.
    pub async fn set_server_load(
        &self,
        server_id: &str,
        status: &str,
        available: u32,
        total: u32,
    ) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE servers SET status = $1, available_instances = $2, num_instances = $3 \
             WHERE server_id = $4",
        )
        .bind(status)
        .bind(i64::from(available))
        .bind(i64::from(total))
        .bind(server_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Marks a server unreachable, keeping its last known load.
    pub async fn set_server_status(&self, server_id: &str, status: &str) -> Result<(), DbError> {
        sqlx::query("UPDATE servers SET status = $1 WHERE server_id = $2")
            .bind(status)
            .bind(server_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    // Instances.

    /// Stores a newly launched instance.
    pub async fn insert_instance(&self, row: &InstanceRow) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO instances (instance_id, session_id, server_id, slot, status, \
             created_at, client_address) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(&row.instance_id)
        .bind(&row.session_id)
        .bind(&row.server_id)
        .bind(i64::from(row.slot))
        .bind(&row.status)
        .bind(row.created_at)
        .bind(&row.client_address)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One instance.
    pub async fn instance(&self, instance_id: &str) -> Result<Option<InstanceRow>, DbError> {
        let row = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE instance_id = $1"
        ))
        .bind(instance_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.as_ref().map(instance_of).transpose()?)
    }

    /// A session's instances, newest first: every live one, and the latest `ended` ended ones.
    pub async fn instances_of_session(
        &self,
        session_id: &str,
        ended: u32,
    ) -> Result<Vec<InstanceRow>, DbError> {
        let live = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE session_id = $1 AND status <> 'ENDED' \
             ORDER BY created_at DESC"
        ))
        .bind(session_id)
        .fetch_all(&self.pool)
        .await?;
        let done = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE session_id = $1 AND status = 'ENDED' \
             ORDER BY ended_at DESC LIMIT $2"
        ))
        .bind(session_id)
        .bind(i64::from(ended))
        .fetch_all(&self.pool)
        .await?;
        Ok(live
            .iter()
            .chain(done.iter())
            .map(instance_of)
            .collect::<Result<_, _>>()?)
    }

    /// Every instance not `ENDED` (to adopt at start).
    pub async fn live_instances(&self) -> Result<Vec<InstanceRow>, DbError> {
        let rows = sqlx::query(&format!(
            "SELECT {INSTANCE_COLUMNS} FROM instances WHERE status <> 'ENDED' ORDER BY created_at"
        ))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.iter().map(instance_of).collect::<Result<_, _>>()?)
    }

    /// Sets `status` (not `ENDED`: see [`Db::set_ended`]).
    pub async fn set_status(&self, instance_id: &str, status: &str) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE instances SET status = $1 WHERE instance_id = $2 AND status <> 'ENDED'",
        )
        .bind(status)
        .bind(instance_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `RUNNING` since `at`.
    pub async fn set_running(&self, instance_id: &str, at: i64) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE instances SET status = 'RUNNING', running_at = $1 \
             WHERE instance_id = $2 AND status <> 'ENDED'",
        )
        .bind(at)
        .bind(instance_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// `ENDED` at `at`, for `reason`; the client address is forgotten.
    pub async fn set_ended(&self, instance_id: &str, reason: &str, at: i64) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE instances SET status = 'ENDED', end_reason = $1, ended_at = $2, \
             client_address = NULL WHERE instance_id = $3 AND status <> 'ENDED'",
        )
        .bind(reason)
        .bind(at)
        .bind(instance_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The stream size after a `RESOLUTION`.
    pub async fn set_size(
        &self,
        instance_id: &str,
        width: u32,
        height: u32,
    ) -> Result<(), DbError> {
        sqlx::query("UPDATE instances SET width = $1, height = $2 WHERE instance_id = $3")
            .bind(i64::from(width))
            .bind(i64::from(height))
            .bind(instance_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The mean time from launch to `RUNNING` of the server's last ten instances, in ms; the
    /// waiting page's progress bar is scaled by it.
    pub async fn expected_startup_ms(&self, server_id: &str) -> Result<Option<i64>, DbError> {
        let rows = sqlx::query(
            "SELECT running_at - created_at AS took FROM instances \
             WHERE server_id = $1 AND running_at IS NOT NULL ORDER BY created_at DESC LIMIT 10",
        )
        .bind(server_id)
        .fetch_all(&self.pool)
        .await?;
        let took: Vec<i64> = rows
            .iter()
            .map(|r| r.try_get::<i64, _>("took"))
            .collect::<Result<_, _>>()?;
        Ok((!took.is_empty()).then(|| took.iter().sum::<i64>() / took.len() as i64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_normalized_and_redacted() {
        assert_eq!(
            normalize_url("sqlite://x/y.db").unwrap(),
            "sqlite://x/y.db?mode=rwc"
        );
        assert_eq!(
            normalize_url("/tmp/a.db").unwrap(),
            "sqlite:///tmp/a.db?mode=rwc"
        );
        assert_eq!(
            normalize_url("sqlite:///tmp/a.db?mode=ro").unwrap(),
            "sqlite:///tmp/a.db?mode=ro"
        );
        assert_eq!(normalize_url("sqlite::memory:").unwrap(), "sqlite::memory:");
        assert!(normalize_url("mysql://u@h/db").is_err());
        if cfg!(feature = "postgres") {
            assert_eq!(
                normalize_url("postgres://u:p@h/db").unwrap(),
                "postgres://u:p@h/db"
            );
        } else {
            assert!(matches!(
                normalize_url("postgres://u:p@h/db"),
                Err(DbError::NoPostgres)
            ));
        }
        assert_eq!(
            redact("postgres://u:secret@h:5432/db"),
            "postgres://u:***@h:5432/db"
        );
        assert_eq!(redact("sqlite:///tmp/a.db"), "sqlite:///tmp/a.db");
    }

    async fn memory() -> Db {
        Db::open("sqlite::memory:").await.unwrap()
    }

    fn server(ip: &str, port: u16) -> ServerRow {
        ServerRow {
            server_id: format!("id-{ip}-{port}"),
            region: "local".into(),
            ip_address: ip.into(),
            port,
            status: "active".into(),
            available_instances: 3,
            num_instances: 3,
            ram: "64GB".into(),
            graphics_card: "NVIDIA Tesla T4".into(),
            storage: "1TB SSD".into(),
            tls: false,
        }
    }

    #[tokio::test]
    async fn servers_upsert_by_address_and_keep_their_id() {
        let db = memory().await;
        let first = db.upsert_server(&server("localhost", 4699)).await.unwrap();
        let mut again = server("localhost", 4699);
        again.server_id = "another".into();
        again.num_instances = 5;
        let second = db.upsert_server(&again).await.unwrap();
        assert_eq!(second.server_id, first.server_id);
        assert_eq!(second.num_instances, 5);
        db.upsert_server(&server("localhost", 4799)).await.unwrap();
        assert_eq!(db.servers().await.unwrap().len(), 2);
        db.set_server_load(&first.server_id, "active", 1, 5)
            .await
            .unwrap();
        db.set_server_status(&first.server_id, "unreachable")
            .await
            .unwrap();
        let s = &db.servers().await.unwrap()[0];
        assert_eq!(
            (s.status.as_str(), s.available_instances),
            ("unreachable", 1)
        );
        // Whether it speaks TLS is stored, and follows the latest registration.
        assert!(!s.tls);
        let mut tls = server("localhost", 4699);
        tls.tls = true;
        assert!(db.upsert_server(&tls).await.unwrap().tls);
        assert!(db.servers().await.unwrap()[0].tls);
    }

    #[tokio::test]
    async fn sessions_instances_and_shares_round_trip() {
        round_trip(&memory().await).await;
    }

    /// The same queries on PostgreSQL, given `OSW_TEST_POSTGRES=postgres://…/db` (a fresh
    /// database is made in that server for the test).
    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn the_same_queries_work_on_postgres() {
        let Ok(admin) = std::env::var("OSW_TEST_POSTGRES") else {
            eprintln!(
                "\n!!!!! SKIPPED: set OSW_TEST_POSTGRES=postgres://user@host/db to test PostgreSQL !!!!!\n"
            );
            return;
        };
        let url = fresh_postgres(&admin, "dbtest").await;
        let db = Db::open(&url).await.unwrap();
        round_trip(&db).await;
        let first = db.upsert_server(&server("localhost", 4699)).await.unwrap();
        let mut again = server("localhost", 4699);
        again.server_id = "another".into();
        assert_eq!(
            db.upsert_server(&again).await.unwrap().server_id,
            first.server_id
        );
        db.close().await;
        // Migrations run once: a second open finds the schema in place.
        Db::open(&url).await.unwrap().close().await;
    }

    /// A new, empty database on the server of `admin`, named after `tag` and this process.
    #[cfg(feature = "postgres")]
    pub async fn fresh_postgres(admin: &str, tag: &str) -> String {
        sqlx::any::install_default_drivers();
        let name = format!("osw_{tag}_{}_{}", std::process::id(), now_ms() % 1_000_000);
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .connect(admin)
            .await
            .unwrap();
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
        let base = admin.rsplit_once('/').map_or(admin, |(base, _)| base);
        format!("{base}/{name}")
    }

    async fn round_trip(db: &Db) {
        let server = db.upsert_server(&server("localhost", 4699)).await.unwrap();
        db.create_session("sess", "hash").await.unwrap();
        assert_eq!(
            db.session_of("hash", i64::MIN).await.unwrap().as_deref(),
            Some("sess")
        );
        assert_eq!(db.session_of("other", i64::MIN).await.unwrap(), None);
        db.touch_session("sess").await.unwrap();
        for (i, id) in ["a", "b", "c"].iter().enumerate() {
            db.insert_instance(&InstanceRow {
                instance_id: id.to_string(),
                session_id: "sess".into(),
                server_id: server.server_id.clone(),
                slot: i as u32,
                status: "INITIALIZING".into(),
                end_reason: None,
                created_at: 1000 * (i as i64 + 1),
                running_at: None,
                ended_at: None,
                width: None,
                height: None,
                client_address: Some("203.0.113.7".into()),
            })
            .await
            .unwrap();
        }
        db.set_running("a", 1500).await.unwrap();
        db.set_running("b", 3500).await.unwrap();
        assert_eq!(
            db.expected_startup_ms(&server.server_id).await.unwrap(),
            Some(1000)
        );
        db.set_size("a", 640, 480).await.unwrap();
        db.set_ended("c", "stopped by its owner", 9000)
            .await
            .unwrap();
        // An ended instance stays ended.
        db.set_running("c", 9500).await.unwrap();
        db.set_status("c", "RUNNING").await.unwrap();
        let c = db.instance("c").await.unwrap().unwrap();
        assert_eq!(c.status, "ENDED");
        assert_eq!(c.end_reason.as_deref(), Some("stopped by its owner"));
        assert_eq!(c.ended_at, Some(9000));
        assert_eq!(
            c.client_address, None,
            "an ended instance forgets its client"
        );
        let a = db.instance("a").await.unwrap().unwrap();
        assert_eq!(a.client_address.as_deref(), Some("203.0.113.7"));
        assert_eq!(
            (a.width, a.height, a.running_at),
            (Some(640), Some(480), Some(1500))
        );
        let listed: Vec<_> = db
            .instances_of_session("sess", 10)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.instance_id)
            .collect();
        assert_eq!(listed, ["b", "a", "c"]);
        assert_eq!(db.live_instances().await.unwrap().len(), 2);
        db.create_share("share-hash", "a").await.unwrap();
        assert_eq!(
            db.share_of("share-hash").await.unwrap().as_deref(),
            Some("a")
        );
    }

    #[tokio::test]
    async fn a_file_database_keeps_its_rows_across_opens_and_migrates_once() {
        let dir = std::env::temp_dir().join(format!("osw-db-test-{}", std::process::id()));
        let path = dir.join("nested/orchestrator.db");
        let url = path.to_string_lossy().to_string();
        {
            let db = Db::open(&url).await.unwrap();
            db.create_session("kept", "h").await.unwrap();
            db.close().await;
        }
        let db = Db::open(&url).await.unwrap();
        assert_eq!(
            db.session_of("h", i64::MIN).await.unwrap().as_deref(),
            Some("kept")
        );
        db.check().await.unwrap();
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_database_from_before_0004_keeps_its_servers_and_instances_without_the_ports() {
        let dir = std::env::temp_dir().join(format!("osw-db-upgrade-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let _ = std::fs::create_dir_all(&dir);
        let url = dir.join("orchestrator.db").to_string_lossy().to_string();
        upgrade_drops_the_base_ports(&normalize_url(&url).unwrap()).await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// The same upgrade on PostgreSQL, given `OSW_TEST_POSTGRES` (see above).
    #[cfg(feature = "postgres")]
    #[tokio::test]
    async fn a_postgres_database_from_before_0004_keeps_its_servers_and_instances() {
        let Ok(admin) = std::env::var("OSW_TEST_POSTGRES") else {
            eprintln!(
                "\n!!!!! SKIPPED: set OSW_TEST_POSTGRES=postgres://user@host/db to test PostgreSQL !!!!!\n"
            );
            return;
        };
        upgrade_drops_the_base_ports(&fresh_postgres(&admin, "upgrade").await).await;
    }

    /// A database at migration 3, with a server that has base ports and a live instance on it,
    /// opened by this version: both rows are kept, the port columns are gone, and the server
    /// registers again under its id.
    async fn upgrade_drops_the_base_ports(url: &str) {
        sqlx::any::install_default_drivers();
        {
            let pool = AnyPoolOptions::new()
                .max_connections(1)
                .connect(url)
                .await
                .unwrap();
            migrator(&MIGRATIONS[..3]).run(&pool).await.unwrap();
            for statement in [
                "INSERT INTO servers (server_id, region, ip_address, port, status, \
                 available_instances, num_instances, ram, graphics_card, storage, \
                 signaling_base_port, api_websocket_base_port) VALUES ('old', 'local', \
                 '127.0.0.1', 4699, 'active', 3, 3, '64GB', 'none', '1TB', 5700, 5682)",
                "INSERT INTO sessions (session_id, token_hash, created_at, last_seen_at) \
                 VALUES ('sess', 'hash', 1, 1)",
                "INSERT INTO instances (instance_id, session_id, server_id, slot, status, \
                 created_at) VALUES ('i', 'sess', 'old', 1, 'RUNNING', 1)",
            ] {
                sqlx::query(statement).execute(&pool).await.unwrap();
            }
            pool.close().await;
        }
        let db = Db::open(url).await.unwrap();
        let servers = db.servers().await.unwrap();
        assert_eq!(servers.len(), 1);
        assert_eq!(
            (servers[0].server_id.as_str(), servers[0].port),
            ("old", 4699)
        );
        // A server from before TLS existed (0005) is reached as it was: plain.
        assert!(!servers[0].tls);
        let instance = db.instance("i").await.unwrap().unwrap();
        assert_eq!((instance.server_id.as_str(), instance.slot), ("old", 1));
        let gone = sqlx::query("SELECT signaling_base_port FROM servers")
            .fetch_all(&db.pool)
            .await;
        assert!(gone.is_err(), "the column is still there");
        let again = db.upsert_server(&server("127.0.0.1", 4699)).await.unwrap();
        assert_eq!(again.server_id, "old");
        db.close().await;
    }

    fn instance(id: &str, session: &str, server_id: &str) -> InstanceRow {
        InstanceRow {
            instance_id: id.into(),
            session_id: session.into(),
            server_id: server_id.into(),
            slot: 0,
            status: "RUNNING".into(),
            end_reason: None,
            created_at: 1,
            running_at: Some(2),
            ended_at: None,
            width: None,
            height: None,
            client_address: None,
        }
    }

    #[tokio::test]
    async fn sessions_expire_unless_an_instance_lives_and_go_with_their_ended_instances() {
        let db = memory().await;
        let server = db.upsert_server(&server("localhost", 4699)).await.unwrap();
        db.create_session("old", "h-old").await.unwrap();
        db.create_session("busy", "h-busy").await.unwrap();
        db.insert_instance(&instance("ended", "old", &server.server_id))
            .await
            .unwrap();
        db.set_ended("ended", "done", 3).await.unwrap();
        db.create_share("share", "ended").await.unwrap();
        db.insert_instance(&instance("live", "busy", &server.server_id))
            .await
            .unwrap();
        // Everything is older than a cutoff in the future.
        let future = now_ms() + 60_000;
        assert_eq!(db.session_of("h-old", future).await.unwrap(), None);
        assert_eq!(
            db.session_of("h-busy", future).await.unwrap().as_deref(),
            Some("busy"),
            "a session with a live instance expired"
        );
        assert_eq!(db.delete_expired_sessions(future).await.unwrap(), 1);
        assert_eq!(db.session_of("h-old", i64::MIN).await.unwrap(), None);
        assert_eq!(db.instance("ended").await.unwrap(), None);
        assert_eq!(db.share_of("share").await.unwrap(), None);
        assert!(db.instance("live").await.unwrap().is_some());
        // Used now: active again for a cutoff in the past.
        db.touch_session("busy").await.unwrap();
        db.set_ended("live", "done", 4).await.unwrap();
        assert_eq!(
            db.delete_expired_sessions(now_ms() - 60_000).await.unwrap(),
            0
        );
        assert_eq!(db.delete_expired_sessions(future).await.unwrap(), 1);
    }

    #[tokio::test]
    async fn the_check_notices_a_deleted_replaced_or_corrupted_file() {
        let dir = std::env::temp_dir().join(format!("osw-db-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("o.db");
        let url = path.to_string_lossy().to_string();
        let db = Db::open(&url).await.unwrap();
        db.check().await.unwrap();
        std::fs::copy(&path, dir.join("copy.db")).unwrap();
        std::fs::rename(dir.join("copy.db"), &path).unwrap();
        let err = db.check().await.unwrap_err().to_string();
        assert!(err.contains("replaced"), "{err}");
        // Deleted: the check fails, whichever notices first. (A connection the pool opens
        // after the deletion creates an empty file, `mode=rwc`, which has no tables.)
        std::fs::remove_file(&path).unwrap();
        assert!(db.check().await.is_err());
        db.close().await;

        let db = Db::open(&url).await.unwrap();
        let length = std::fs::metadata(&path).unwrap().len() as usize;
        {
            use std::io::Write;
            let mut file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.write_all(&vec![b'x'; length]).unwrap();
        }
        assert!(db.check().await.is_err());
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
