//! The database: SQLite through rusqlite (its bundled SQLite, so every machine runs the same
//! version), WAL mode, numbered migrations, retention.
//!
//! The SQL is kept to what PostgreSQL also runs (`INSERT ... ON CONFLICT ... DO UPDATE`, window
//! functions, `CASE`, no `INSERT OR REPLACE`, no `MIN(a, b)` scalars, integers for booleans and
//! times in milliseconds): see docs/collector.md for what a PostgreSQL backend would take.

use std::path::{Path, PathBuf};

use berth_model::status::{Chargeback, NodeStatus, ServiceStatus};
use rusqlite::{Connection, OptionalExtension as _, params};

use crate::bill::{ALL_NODES, BillRow, Gap};
use serde::Serialize;

/// A database error, naming the file.
#[derive(Debug, thiserror::Error)]
#[error("database {path}: {source}")]
pub struct StoreError {
    /// The database file.
    pub path: PathBuf,
    /// What SQLite said.
    #[source]
    pub source: rusqlite::Error,
}

/// The schema, one migration per entry; entry `i` brings the schema to version `i + 1`.
/// Never edit a released entry: add one.
pub const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE nodes (
    name          TEXT PRIMARY KEY,
    url           TEXT NOT NULL,
    last_poll_ms  BIGINT,
    last_ok_ms    BIGINT,
    reason        TEXT,
    etag          TEXT,
    stale         INTEGER NOT NULL DEFAULT 0,
    status_json   TEXT
);
CREATE TABLE services (
    node        TEXT NOT NULL,
    name        TEXT NOT NULL,
    app         TEXT,
    env         TEXT,
    avail       TEXT NOT NULL,
    overall     TEXT NOT NULL,
    frozen      INTEGER NOT NULL,
    error       TEXT,
    updated_ms  BIGINT NOT NULL,
    PRIMARY KEY (node, name)
);
CREATE TABLE resources (
    node     TEXT NOT NULL,
    service  TEXT NOT NULL,
    rid      TEXT NOT NULL,
    status   TEXT NOT NULL,
    label    TEXT NOT NULL,
    flags    TEXT NOT NULL,
    PRIMARY KEY (node, service, rid)
);
CREATE TABLE events (
    id        INTEGER PRIMARY KEY,
    at_ms     BIGINT NOT NULL,
    node      TEXT NOT NULL,
    service   TEXT,
    resource  TEXT,
    old       TEXT,
    new       TEXT
);
CREATE INDEX events_at ON events (at_ms);
CREATE INDEX events_node_at ON events (node, at_ms);
CREATE INDEX events_service_at ON events (service, at_ms);
CREATE TABLE chargeback (
    node              TEXT NOT NULL,
    service           TEXT NOT NULL,
    at_ms             BIGINT NOT NULL,
    until_ms          BIGINT NOT NULL,
    open              INTEGER NOT NULL,
    app               TEXT,
    env               TEXT,
    containers        BIGINT NOT NULL,
    images            BIGINT NOT NULL,
    data_bytes        BIGINT NOT NULL,
    daemon_rss_bytes  BIGINT NOT NULL,
    PRIMARY KEY (node, service, at_ms)
);
CREATE INDEX chargeback_at ON chargeback (at_ms);
CREATE INDEX chargeback_until ON chargeback (until_ms);
"#,
    r#"
ALTER TABLE chargeback ADD COLUMN running BIGINT NOT NULL DEFAULT 0;
ALTER TABLE chargeback ADD COLUMN up INTEGER NOT NULL DEFAULT 0;
UPDATE chargeback SET running = containers, up = 1;
CREATE TABLE gaps (
    node     TEXT NOT NULL,
    from_ms  BIGINT NOT NULL,
    to_ms    BIGINT,
    why      TEXT NOT NULL,
    PRIMARY KEY (node, from_ms)
);
CREATE INDEX gaps_from ON gaps (from_ms);
CREATE TABLE collector (
    name   TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);
"#,
    r#"
CREATE TABLE alert_state (
    rule      TEXT NOT NULL,
    subject   TEXT NOT NULL,
    since_ms  BIGINT NOT NULL,
    fired     INTEGER NOT NULL,
    status    TEXT NOT NULL,
    PRIMARY KEY (rule, subject)
);
CREATE TABLE deliveries (
    id            INTEGER PRIMARY KEY,
    at_ms         BIGINT NOT NULL,
    rule          TEXT NOT NULL,
    subject       TEXT NOT NULL,
    kind          TEXT NOT NULL,
    status        TEXT NOT NULL,
    body          TEXT NOT NULL,
    attempts      INTEGER NOT NULL DEFAULT 0,
    state         TEXT NOT NULL,
    error         TEXT,
    done_ms       BIGINT
);
CREATE INDEX deliveries_at ON deliveries (at_ms);
CREATE INDEX deliveries_state ON deliveries (state);
"#,
];

/// A node row as stored: what the collector starts from after a restart.
#[derive(Debug, Clone, Default)]
pub struct NodeRow {
    /// The node name.
    pub name: String,
    /// Its URL.
    pub url: String,
    /// When it was last polled (ms since the epoch).
    pub last_poll_ms: Option<i64>,
    /// When it last answered well.
    pub last_ok_ms: Option<i64>,
    /// Why the last poll failed (None when it did not).
    pub reason: Option<String>,
    /// The ETag of the last status body.
    pub etag: Option<String>,
    /// Whether the node is stale.
    pub stale: bool,
    /// The last status body it sent.
    pub status: Option<NodeStatus>,
}

/// One status change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Its id (ascending in time); 0 before it is stored.
    pub id: i64,
    /// When the collector saw it (ms since the epoch).
    pub at_ms: i64,
    /// The node.
    pub node: String,
    /// The service (None for a node event: stale, back).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The resource (None for a service or node event).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    /// The status before (None when it appeared).
    pub old: Option<String>,
    /// The status after (None when it disappeared).
    pub new: Option<String>,
}

/// One chargeback row: figures that held from `at_ms` to (at least) `until_ms`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// The node.
    pub node: String,
    /// The service.
    pub service: String,
    /// When these figures were first seen (ms since the epoch).
    pub at_ms: i64,
    /// When they were last confirmed.
    pub until_ms: i64,
    /// Whether the collector still sees them (the row may be extended).
    pub open: bool,
    /// `app` of the service.
    pub app: Option<String>,
    /// `env` of the service.
    pub env: Option<String>,
    /// Whether the service is up (or warn) on that node: only then are its figures billed.
    pub up: bool,
    /// The figures.
    pub figures: Chargeback,
}

/// How a node's current services changed, for the `services` and `resources` tables: only what
/// changed is written (rows updated in place), so the tables do not churn.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatusDelta {
    /// The node's rows are not known to match anything: delete them all first.
    pub reset: bool,
    /// Services new or changed, each with the rids it no longer has.
    pub upsert: Vec<(ServiceStatus, Vec<String>)>,
    /// Services gone.
    pub removed: Vec<String>,
}

impl StatusDelta {
    /// The delta from `old` (None: unknown) to `new`.
    pub fn between(old: Option<&NodeStatus>, new: &NodeStatus) -> StatusDelta {
        let Some(old) = old else {
            return StatusDelta {
                reset: true,
                upsert: new.services.iter().map(|s| (s.clone(), vec![])).collect(),
                removed: vec![],
            };
        };
        let before: std::collections::HashMap<&str, &ServiceStatus> =
            old.services.iter().map(|s| (s.name.as_str(), s)).collect();
        let mut upsert = Vec::new();
        for s in &new.services {
            match before.get(s.name.as_str()) {
                Some(b) if *b == s => {}
                Some(b) => {
                    let gone = b
                        .resources
                        .iter()
                        .filter(|r| !s.resources.iter().any(|n| n.rid == r.rid))
                        .map(|r| r.rid.to_string())
                        .collect();
                    upsert.push((s.clone(), gone));
                }
                None => upsert.push((s.clone(), vec![])),
            }
        }
        let removed = old
            .services
            .iter()
            .filter(|b| !new.services.iter().any(|s| s.name == b.name))
            .map(|b| b.name.clone())
            .collect();
        StatusDelta {
            reset: false,
            upsert,
            removed,
        }
    }
}

/// What one write brings: node rows (with how their services changed), events, chargeback.
#[derive(Debug, Default)]
pub struct Batch {
    /// Node rows to upsert; with a delta, `status` is written too and the delta applied.
    pub nodes: Vec<(NodeRow, Option<StatusDelta>)>,
    /// Events to insert.
    pub events: Vec<Event>,
    /// Chargeback rows to insert.
    pub samples: Vec<Sample>,
    /// Chargeback rows to extend or close: `(node, service, at_ms, until_ms, open)`.
    pub extend: Vec<(String, String, i64, i64, bool)>,
    /// Gaps that begin (`to_ms` none) or end: `(node, from_ms, why)` / `(node, to_ms)`.
    pub gaps_open: Vec<(String, i64, String)>,
    /// Gaps that end: `(node, to_ms)` closes the node's open gap.
    pub gaps_close: Vec<(String, i64)>,
    /// The collector is alive at this time (the start of a `collector down` gap if it dies).
    pub alive_ms: Option<i64>,
    /// Alert states to write.
    pub alert_upsert: Vec<crate::alerts::Active>,
    /// Alert states to delete: `(rule, subject)`.
    pub alert_delete: Vec<(String, String)>,
    /// New deliveries (their ids are set by the write).
    pub deliveries: Vec<Delivery>,
    /// Deliveries tried.
    pub delivery_updates: Vec<DeliveryUpdate>,
}

/// A delivery tried: `(id, attempts, state, error, done_ms)`.
pub type DeliveryUpdate = (i64, u32, &'static str, Option<String>, Option<i64>);

/// One notice to send to one alert's sink, and how its sending went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Delivery {
    /// Its id; 0 before it is stored.
    pub id: i64,
    /// When the notice was made.
    pub at_ms: i64,
    /// The alert's name.
    pub alert: String,
    /// `service web`, `node n1`.
    pub subject: String,
    /// `problem` or `recovery`.
    pub kind: String,
    /// The status word.
    pub status: String,
    /// The JSON sent.
    #[serde(skip)]
    pub body: String,
    /// Attempts so far.
    pub attempts: u32,
    /// `pending`, `delivered` or `failed` (retries spent).
    pub state: String,
    /// The last attempt's error.
    pub error: Option<String>,
    /// When it was delivered or given up.
    pub done_ms: Option<i64>,
}

impl Batch {
    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
            && self.events.is_empty()
            && self.samples.is_empty()
            && self.extend.is_empty()
            && self.gaps_open.is_empty()
            && self.gaps_close.is_empty()
            && self.alive_ms.is_none()
            && self.alert_upsert.is_empty()
            && self.alert_delete.is_empty()
            && self.deliveries.is_empty()
            && self.delivery_updates.is_empty()
    }
}

pub use crate::bill::ChargebackRow;

/// The database.
#[derive(Debug)]
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl Store {
    /// Open (creating it and its directory when missing), set WAL mode and migrate.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let err = |source| StoreError {
            path: path.to_path_buf(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| {
                err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CANTOPEN),
                    Some(format!("cannot create {}: {e}", dir.display())),
                ))
            })?;
        }
        let conn = Connection::open(path).map_err(err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(err)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
        |source| StoreError {
            path: self.path.clone(),
            source,
        }
    }

    /// The schema version now in the file.
    pub fn version(&self) -> Result<usize, StoreError> {
        let v: Option<i64> = self
            .conn
            .query_row("SELECT MAX(version) FROM schema_migrations", [], |r| {
                r.get(0)
            })
            .map_err(self.err())?;
        Ok(usize::try_from(v.unwrap_or(0)).unwrap_or(0))
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        self.conn
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS schema_migrations \
                 (version INTEGER PRIMARY KEY, applied_ms BIGINT NOT NULL)",
            )
            .map_err(self.err())?;
        let have = self.version()?;
        if have > MIGRATIONS.len() {
            return Err(StoreError {
                path: self.path.clone(),
                source: rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_MISMATCH),
                    Some(format!(
                        "schema version {have} is newer than this collector's {}",
                        MIGRATIONS.len()
                    )),
                ),
            });
        }
        let path = self.path.clone();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(have) {
            let tx = self.conn.transaction().map_err(err)?;
            tx.execute_batch(sql).map_err(err)?;
            tx.execute(
                "INSERT INTO schema_migrations (version, applied_ms) VALUES (?1, ?2)",
                params![i64::try_from(i + 1).unwrap_or(i64::MAX), now_ms()],
            )
            .map_err(err)?;
            tx.commit().map_err(err)?;
        }
        Ok(())
    }

    /// Every node row, with its last status body.
    pub fn load_nodes(&self) -> Result<Vec<NodeRow>, StoreError> {
        let mut st = self
            .conn
            .prepare(
                "SELECT name, url, last_poll_ms, last_ok_ms, reason, etag, stale, status_json \
                 FROM nodes ORDER BY name",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map([], |r| {
                let json: Option<String> = r.get(7)?;
                Ok(NodeRow {
                    name: r.get(0)?,
                    url: r.get(1)?,
                    last_poll_ms: r.get(2)?,
                    last_ok_ms: r.get(3)?,
                    reason: r.get(4)?,
                    etag: r.get(5)?,
                    stale: r.get::<_, i64>(6)? != 0,
                    // A body that no longer parses is dropped: the next poll brings a new one.
                    status: json.and_then(|j| serde_json::from_str(&j).ok()),
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Write a batch in one transaction.
    pub fn write(&mut self, batch: &mut Batch) -> Result<(), StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        {
            let mut upsert = tx
                .prepare_cached(
                    "INSERT INTO nodes (name, url, last_poll_ms, last_ok_ms, reason, etag, stale) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                     ON CONFLICT (name) DO UPDATE SET url = excluded.url, \
                     last_poll_ms = excluded.last_poll_ms, last_ok_ms = excluded.last_ok_ms, \
                     reason = excluded.reason, etag = excluded.etag, stale = excluded.stale",
                )
                .map_err(err)?;
            for (n, delta) in &batch.nodes {
                upsert
                    .execute(params![
                        n.name,
                        n.url,
                        n.last_poll_ms,
                        n.last_ok_ms,
                        n.reason,
                        n.etag,
                        i64::from(n.stale)
                    ])
                    .map_err(err)?;
                if let (Some(delta), Some(status)) = (delta, &n.status) {
                    write_status(
                        &tx,
                        &n.name,
                        status,
                        delta,
                        n.last_ok_ms.unwrap_or_else(now_ms),
                    )
                    .map_err(err)?;
                }
            }
            let mut ev = tx
                .prepare_cached(
                    "INSERT INTO events (at_ms, node, service, resource, old, new) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                )
                .map_err(err)?;
            for e in &mut batch.events {
                ev.execute(params![
                    e.at_ms, e.node, e.service, e.resource, e.old, e.new
                ])
                .map_err(err)?;
                e.id = tx.last_insert_rowid();
            }
            let mut cb = tx
                .prepare_cached(
                    "INSERT INTO chargeback (node, service, at_ms, until_ms, open, app, env, \
                     containers, images, data_bytes, daemon_rss_bytes, running, up) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                     ON CONFLICT (node, service, at_ms) DO NOTHING",
                )
                .map_err(err)?;
            for s in &batch.samples {
                cb.execute(params![
                    s.node,
                    s.service,
                    s.at_ms,
                    s.until_ms,
                    i64::from(s.open),
                    s.app,
                    s.env,
                    clamp(s.figures.containers),
                    clamp(s.figures.images),
                    clamp(s.figures.data_bytes),
                    clamp(s.figures.daemon_rss_bytes),
                    clamp(s.figures.running),
                    i64::from(s.up)
                ])
                .map_err(err)?;
            }
            let mut ext = tx
                .prepare_cached(
                    "UPDATE chargeback SET until_ms = ?4, open = ?5 \
                     WHERE node = ?1 AND service = ?2 AND at_ms = ?3",
                )
                .map_err(err)?;
            for (node, service, at, until, open) in &batch.extend {
                ext.execute(params![node, service, at, until, i64::from(*open)])
                    .map_err(err)?;
            }
            let mut gap = tx
                .prepare_cached(
                    "INSERT INTO gaps (node, from_ms, why) VALUES (?1, ?2, ?3) \
                     ON CONFLICT (node, from_ms) DO NOTHING",
                )
                .map_err(err)?;
            for (node, from, why) in &batch.gaps_open {
                gap.execute(params![node, from, why]).map_err(err)?;
            }
            let mut end = tx
                .prepare_cached("UPDATE gaps SET to_ms = ?2 WHERE node = ?1 AND to_ms IS NULL")
                .map_err(err)?;
            for (node, to) in &batch.gaps_close {
                end.execute(params![node, to]).map_err(err)?;
            }
            let mut up = tx
                .prepare_cached(
                    "INSERT INTO alert_state (rule, subject, since_ms, fired, status) \
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (rule, subject) DO UPDATE SET \
                     since_ms = excluded.since_ms, fired = excluded.fired, status = excluded.status",
                )
                .map_err(err)?;
            for a in &batch.alert_upsert {
                up.execute(params![
                    a.rule,
                    a.subject,
                    a.since_ms,
                    i64::from(a.fired),
                    a.status
                ])
                .map_err(err)?;
            }
            let mut del = tx
                .prepare_cached("DELETE FROM alert_state WHERE rule = ?1 AND subject = ?2")
                .map_err(err)?;
            for (rule, subject) in &batch.alert_delete {
                del.execute(params![rule, subject]).map_err(err)?;
            }
            let mut new = tx
                .prepare_cached(
                    "INSERT INTO deliveries (at_ms, rule, subject, kind, status, body, attempts, state) \
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, 'pending')",
                )
                .map_err(err)?;
            for d in &mut batch.deliveries {
                new.execute(params![
                    d.at_ms, d.alert, d.subject, d.kind, d.status, d.body
                ])
                .map_err(err)?;
                d.id = tx.last_insert_rowid();
            }
            let mut upd = tx
                .prepare_cached(
                    "UPDATE deliveries SET attempts = ?2, state = ?3, error = ?4, done_ms = ?5 \
                     WHERE id = ?1",
                )
                .map_err(err)?;
            for (id, attempts, state, error, done) in &batch.delivery_updates {
                upd.execute(params![id, attempts, state, error, done])
                    .map_err(err)?;
            }
            if let Some(at) = batch.alive_ms {
                tx.execute(
                    "INSERT INTO collector (name, value) VALUES ('alive_ms', ?1) \
                     ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                    params![at],
                )
                .map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// At start: the collector was down from its last sign of life to `now`. That time is a
    /// gap (every node), and the chargeback rows it left open end at that last sign of life
    /// (their figures held until then, as far as anyone knows). Returns the gap, if any.
    pub fn recover(&mut self, now: i64) -> Result<Option<Gap>, StoreError> {
        let path = self.path.clone();
        let err = |source| StoreError {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(err)?;
        let alive: Option<i64> = tx
            .query_row(
                "SELECT value FROM collector WHERE name = 'alive_ms'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(err)?;
        let Some(alive) = alive.filter(|a| *a < now) else {
            // No sign of life recorded (a database of an older collector): the rows it left
            // open end at their last confirmation.
            tx.execute("UPDATE chargeback SET open = 0 WHERE open = 1", [])
                .map_err(err)?;
            tx.commit().map_err(err)?;
            return Ok(None);
        };
        tx.execute(
            "UPDATE chargeback SET open = 0, \
             until_ms = CASE WHEN until_ms < ?1 THEN ?1 ELSE until_ms END WHERE open = 1",
            params![alive],
        )
        .map_err(err)?;
        let gap = Gap {
            node: ALL_NODES.to_string(),
            from_ms: alive,
            to_ms: Some(now),
            why: "collector down".into(),
        };
        tx.execute(
            "INSERT INTO gaps (node, from_ms, to_ms, why) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (node, from_ms) DO NOTHING",
            params![gap.node, gap.from_ms, gap.to_ms, gap.why],
        )
        .map_err(err)?;
        tx.execute(
            "INSERT INTO collector (name, value) VALUES ('alive_ms', ?1) \
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![now],
        )
        .map_err(err)?;
        tx.commit().map_err(err)?;
        Ok(Some(gap))
    }

    /// The alert states stored.
    pub fn alert_states(&self) -> Result<Vec<crate::alerts::Active>, StoreError> {
        let mut st = self
            .conn
            .prepare("SELECT rule, subject, since_ms, fired, status FROM alert_state")
            .map_err(self.err())?;
        let rows = st
            .query_map([], |r| {
                Ok(crate::alerts::Active {
                    rule: r.get(0)?,
                    subject: r.get(1)?,
                    since_ms: r.get(2)?,
                    fired: r.get::<_, i64>(3)? != 0,
                    status: r.get(4)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Deliveries, newest first (`pending_only`: those still to send, oldest first).
    pub fn deliveries(
        &self,
        pending_only: bool,
        limit: usize,
    ) -> Result<Vec<Delivery>, StoreError> {
        let sql = if pending_only {
            "SELECT id, at_ms, rule, subject, kind, status, body, attempts, state, error, done_ms \
             FROM deliveries WHERE state = 'pending' ORDER BY id LIMIT ?1"
        } else {
            "SELECT id, at_ms, rule, subject, kind, status, body, attempts, state, error, done_ms \
             FROM deliveries ORDER BY id DESC LIMIT ?1"
        };
        let mut st = self.conn.prepare_cached(sql).map_err(self.err())?;
        let rows = st
            .query_map(params![i64::try_from(limit).unwrap_or(i64::MAX)], |r| {
                Ok(Delivery {
                    id: r.get(0)?,
                    at_ms: r.get(1)?,
                    alert: r.get(2)?,
                    subject: r.get(3)?,
                    kind: r.get(4)?,
                    status: r.get(5)?,
                    body: r.get(6)?,
                    attempts: u32::try_from(r.get::<_, i64>(7)?).unwrap_or(0),
                    state: r.get(8)?,
                    error: r.get(9)?,
                    done_ms: r.get(10)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// The gaps that overlap `[from_ms, to_ms]`, oldest first.
    pub fn gaps(&self, from_ms: i64, to_ms: i64) -> Result<Vec<Gap>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT node, from_ms, to_ms, why FROM gaps \
                 WHERE from_ms < ?2 AND (to_ms IS NULL OR to_ms > ?1) ORDER BY from_ms, node",
            )
            .map_err(self.err())?;
        let rows = st
            .query_map(params![from_ms, to_ms], |r| {
                Ok(Gap {
                    node: r.get(0)?,
                    from_ms: r.get(1)?,
                    to_ms: r.get(2)?,
                    why: r.get(3)?,
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Events, newest first: at most `limit`, at or after `since_ms`, of `node` / `service`.
    pub fn events(
        &self,
        since_ms: Option<i64>,
        node: Option<&str>,
        service: Option<&str>,
        limit: usize,
    ) -> Result<Vec<Event>, StoreError> {
        // Only the filters asked for, so each query can use its index ((node, at_ms),
        // (service, at_ms) or at_ms).
        let mut sql = String::from(
            "SELECT id, at_ms, node, service, resource, old, new FROM events WHERE at_ms >= ?1",
        );
        if node.is_some() {
            sql.push_str(" AND node = ?2");
        }
        if service.is_some() {
            sql.push_str(" AND service = ?3");
        }
        sql.push_str(" ORDER BY at_ms DESC, id DESC LIMIT ?4");
        let mut st = self.conn.prepare_cached(&sql).map_err(self.err())?;
        // ?4 is always there, so the statement always has 4 slots (SQLite numbers them up to
        // the highest), and all 4 values are bound whichever filters are used.
        let rows = st
            .query_map(
                params![
                    since_ms.unwrap_or(0),
                    node,
                    service,
                    i64::try_from(limit).unwrap_or(i64::MAX)
                ],
                |r| {
                    Ok(Event {
                        id: r.get(0)?,
                        at_ms: r.get(1)?,
                        node: r.get(2)?,
                        service: r.get(3)?,
                        resource: r.get(4)?,
                        old: r.get(5)?,
                        new: r.get(6)?,
                    })
                },
            )
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// The chargeback rows that overlap `[from_ms, to_ms]`, each ending at its last
    /// confirmation when closed, at `now_ms` while open, never past the next row of its node and
    /// service (see [`crate::bill::integrate`]).
    pub fn bill_rows(
        &self,
        from_ms: i64,
        to_ms: i64,
        now_ms: i64,
    ) -> Result<Vec<BillRow>, StoreError> {
        let mut st = self
            .conn
            .prepare_cached(
                "SELECT node, service, app, env, at_ms, \
                   CASE WHEN open = 1 THEN ?3 ELSE until_ms END, \
                   LEAD(at_ms) OVER (PARTITION BY node, service ORDER BY at_ms), \
                   up, containers, running, images, data_bytes, daemon_rss_bytes \
                 FROM chargeback WHERE at_ms < ?2 AND (open = 1 OR until_ms > ?1)",
            )
            .map_err(self.err())?;
        let u = |v: i64| u64::try_from(v).unwrap_or(0);
        let rows = st
            .query_map(params![from_ms, to_ms, now_ms], |r| {
                let end: i64 = r.get(5)?;
                let next: Option<i64> = r.get(6)?;
                Ok(BillRow {
                    node: r.get(0)?,
                    service: r.get(1)?,
                    app: r.get(2)?,
                    env: r.get(3)?,
                    at_ms: r.get(4)?,
                    end_ms: next.map_or(end, |n| n.min(end)),
                    up: r.get::<_, i64>(7)? != 0,
                    figures: Chargeback {
                        containers: u(r.get(8)?),
                        running: u(r.get(9)?),
                        images: u(r.get(10)?),
                        data_bytes: u(r.get(11)?),
                        daemon_rss_bytes: u(r.get(12)?),
                    },
                })
            })
            .map_err(self.err())?;
        rows.collect::<Result<Vec<_>, _>>().map_err(self.err())
    }

    /// Delete events and chargeback rows that ended before `before_ms`; returns the rows deleted.
    pub fn prune(&mut self, before_ms: i64) -> Result<usize, StoreError> {
        let a = self
            .conn
            .execute("DELETE FROM events WHERE at_ms < ?1", params![before_ms])
            .map_err(self.err())?;
        let b = self
            .conn
            .execute(
                "DELETE FROM chargeback WHERE until_ms < ?1 AND open = 0",
                params![before_ms],
            )
            .map_err(self.err())?;
        let c = self
            .conn
            .execute("DELETE FROM gaps WHERE to_ms < ?1", params![before_ms])
            .map_err(self.err())?;
        Ok(a + b + c)
    }

    /// Row counts of the tables (for tests and the bench).
    pub fn count(&self, table: &str) -> Result<i64, StoreError> {
        let known = [
            "nodes",
            "services",
            "resources",
            "events",
            "chargeback",
            "gaps",
        ];
        let t = known
            .iter()
            .find(|t| **t == table)
            .copied()
            .unwrap_or("nodes");
        self.conn
            .query_row(&format!("SELECT COUNT(*) FROM {t}"), [], |r| r.get(0))
            .map_err(self.err())
    }
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Write a node's last status body, and apply `delta` to its services and resources.
fn write_status(
    tx: &rusqlite::Transaction<'_>,
    node: &str,
    status: &NodeStatus,
    delta: &StatusDelta,
    at_ms: i64,
) -> Result<(), rusqlite::Error> {
    tx.execute(
        "UPDATE nodes SET status_json = ?2 WHERE name = ?1",
        params![node, serde_json::to_string(status).unwrap_or_default()],
    )?;
    if delta.reset {
        tx.execute("DELETE FROM services WHERE node = ?1", params![node])?;
        tx.execute("DELETE FROM resources WHERE node = ?1", params![node])?;
    }
    for name in &delta.removed {
        tx.execute(
            "DELETE FROM services WHERE node = ?1 AND name = ?2",
            params![node, name],
        )?;
        tx.execute(
            "DELETE FROM resources WHERE node = ?1 AND service = ?2",
            params![node, name],
        )?;
    }
    let mut svc = tx.prepare_cached(
        "INSERT INTO services (node, name, app, env, avail, overall, frozen, error, updated_ms) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT (node, name) DO UPDATE SET \
         app = excluded.app, env = excluded.env, avail = excluded.avail, \
         overall = excluded.overall, frozen = excluded.frozen, error = excluded.error, \
         updated_ms = excluded.updated_ms",
    )?;
    let mut res = tx.prepare_cached(
        "INSERT INTO resources (node, service, rid, status, label, flags) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (node, service, rid) DO UPDATE SET \
         status = excluded.status, label = excluded.label, flags = excluded.flags",
    )?;
    let mut gone =
        tx.prepare_cached("DELETE FROM resources WHERE node = ?1 AND service = ?2 AND rid = ?3")?;
    for (s, removed_rids) in &delta.upsert {
        svc.execute(params![
            node,
            s.name,
            s.app,
            s.env,
            s.avail.as_str(),
            s.overall.as_str(),
            i64::from(s.frozen),
            s.error,
            at_ms
        ])?;
        for r in &s.resources {
            res.execute(params![
                node,
                s.name,
                r.rid.to_string(),
                r.status.as_str(),
                r.label,
                r.flags.chars()
            ])?;
        }
        for rid in removed_rids {
            gone.execute(params![node, s.name, rid])?;
        }
    }
    Ok(())
}

/// A duration in whole milliseconds, as the database stores times (saturating).
pub fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bill::GroupBy;

    fn sample(service: &str, app: &str, at_ms: i64, until_ms: i64, running: u64) -> Sample {
        Sample {
            node: "n1".into(),
            service: service.into(),
            at_ms,
            until_ms,
            open: false,
            app: Some(app.into()),
            env: None,
            up: true,
            figures: Chargeback {
                containers: running + 1,
                running,
                images: 1,
                data_bytes: 1000,
                daemon_rss_bytes: 5,
            },
        }
    }

    #[test]
    fn migrations_wal_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/c.db");
        let mut s = Store::open(&path).unwrap();
        assert_eq!(s.version().unwrap(), MIGRATIONS.len());
        let mode: String = s
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let status = NodeStatus {
            schema: 1,
            nodename: "n1".into(),
            services: vec![],
        };
        let row = NodeRow {
            name: "n1".into(),
            url: "http://a:1".into(),
            etag: Some("\"x\"".into()),
            last_ok_ms: Some(7),
            status: Some(status.clone()),
            ..NodeRow::default()
        };
        let delta = StatusDelta::between(None, &status);
        let mut b = Batch {
            nodes: vec![(row, Some(delta))],
            events: vec![Event {
                id: 0,
                at_ms: 7,
                node: "n1".into(),
                service: Some("web".into()),
                resource: None,
                old: None,
                new: Some("up".into()),
            }],
            ..Batch::default()
        };
        s.write(&mut b).unwrap();
        assert!(b.events[0].id > 0);
        drop(s);
        let s = Store::open(&path).unwrap();
        assert_eq!(s.version().unwrap(), MIGRATIONS.len());
        let rows = s.load_nodes().unwrap();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].etag.as_deref(), Some("\"x\""));
        assert_eq!(rows[0].status.as_ref(), Some(&status));
        let ev = s.events(Some(0), Some("n1"), Some("web"), 10).unwrap();
        assert_eq!(ev.len(), 1);
        assert!(s.events(Some(8), None, None, 10).unwrap().is_empty());
        assert!(s.events(None, Some("n2"), None, 10).unwrap().is_empty());
    }

    /// 2 running containers for one hour then 4 for one hour = 6 container-hours; an open row
    /// counts until now, a closed one until its end, never past the next row; windows clip;
    /// a restart closes the open rows at the last sign of life and lists the downtime as a gap.
    #[test]
    fn chargeback_rows_gaps_and_recovery() {
        use crate::bill::integrate;
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("c.db")).unwrap();
        const H: i64 = 3_600_000;
        let mut open = sample("db", "shop", 0, H, 1);
        open.open = true;
        let mut b = Batch {
            samples: vec![
                sample("web", "shop", 0, H, 2),
                sample("web", "shop", H, 2 * H, 4),
                open,
                sample("api", "crm", 0, H / 2, 10),
            ],
            alive_ms: Some(2 * H),
            ..Batch::default()
        };
        s.write(&mut b).unwrap();
        let bill = |s: &Store, by, from, to, now| {
            let rows = s.bill_rows(from, to, now).unwrap();
            let gaps = s.gaps(from, to).unwrap();
            integrate(&rows, &gaps, by, from, to, now, None)
        };
        let rows = bill(&s, GroupBy::App, 0, 3 * H, 3 * H / 2);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].key.as_deref(), Some("crm"));
        assert!((rows[0].container_hours - 5.0).abs() < 1e-9, "{rows:?}");
        // web: 2*1 + 4*1 = 6, db: open, 1 container until now (1.5 h).
        assert!((rows[1].container_hours - 7.5).abs() < 1e-9, "{rows:?}");
        assert_eq!(rows[1].max_running, 4);
        let rows = bill(&s, GroupBy::Service, H / 2, H, 2 * H);
        let web = rows
            .iter()
            .find(|r| r.key.as_deref() == Some("web"))
            .unwrap();
        assert!((web.container_hours - 1.0).abs() < 1e-9, "{web:?}");
        // A node gap is not billed.
        let mut b = Batch {
            gaps_open: vec![("n1".into(), H / 2, "node stale: boom".into())],
            gaps_close: vec![("n1".into(), H)],
            ..Batch::default()
        };
        s.write(&mut b).unwrap();
        let rows = bill(&s, GroupBy::Service, 0, H, H);
        let web = rows
            .iter()
            .find(|r| r.key.as_deref() == Some("web"))
            .unwrap();
        assert!((web.container_hours - 1.0).abs() < 1e-9, "{web:?}");
        // The collector restarts at 3 h after its last sign of life at 2 h: db's open row
        // ends at 2 h, and 2 h..3 h is a gap of every node.
        let gap = s.recover(3 * H).unwrap().unwrap();
        assert_eq!(
            (gap.node.as_str(), gap.from_ms, gap.to_ms),
            ("*", 2 * H, Some(3 * H))
        );
        let v = serde_json::to_value(&gap).unwrap();
        assert_eq!(v["node"], serde_json::Value::Null);
        assert_eq!(v["from"], 2 * H);
        let rows = bill(&s, GroupBy::Service, 0, 4 * H, 4 * H);
        let db = rows
            .iter()
            .find(|r| r.key.as_deref() == Some("db"))
            .unwrap();
        // 0..2 h less n1's gap of half an hour.
        assert!((db.container_hours - 1.5).abs() < 1e-9, "{db:?}");
        assert_eq!(s.gaps(0, 4 * H).unwrap().len(), 2);
        assert!(
            s.recover(3 * H).unwrap().is_none(),
            "alive was moved to the restart"
        );
        // Without any sign of life (an older collector's database), open rows just close.
        let dir2 = tempfile::tempdir().unwrap();
        let mut old = Store::open(&dir2.path().join("c.db")).unwrap();
        let mut row = sample("web", "shop", 0, H, 1);
        row.open = true;
        old.write(&mut Batch {
            samples: vec![row],
            ..Batch::default()
        })
        .unwrap();
        assert!(old.recover(5 * H).unwrap().is_none());
        let rows = old.bill_rows(0, 5 * H, 5 * H).unwrap();
        assert_eq!(rows[0].end_ms, H, "closed at its last confirmation");
        // Retention goes by the end of a row: only crm's (ended at 30 min) is older than 1 h.
        assert_eq!(s.prune(H).unwrap(), 1);
        assert_eq!(s.count("chargeback").unwrap(), 3);
    }

    /// Only what changed is written: a removed service loses its rows, a changed one is updated
    /// in place, a resource it no longer has is deleted.
    #[test]
    fn status_deltas() {
        use berth_model::status::{Flags, ResourceStatus, Status};
        let dir = tempfile::tempdir().unwrap();
        let mut s = Store::open(&dir.path().join("c.db")).unwrap();
        let res = |rid: &str, st: Status| ResourceStatus {
            network: None,
            rid: rid.parse().unwrap(),
            status: st,
            label: String::new(),
            flags: Flags::default(),
            log: vec![],
        };
        let svc = |name: &str, rs: Vec<ResourceStatus>| {
            ServiceStatus::from_resources(name.into(), rs, false)
        };
        let node = |services| NodeStatus {
            schema: 1,
            nodename: "n1".into(),
            services,
        };
        let a = node(vec![
            svc(
                "web",
                vec![res("fs#1", Status::Up), res("ip#1", Status::Up)],
            ),
            svc("db", vec![res("fs#1", Status::Up)]),
        ]);
        let b = node(vec![svc("web", vec![res("fs#1", Status::Down)])]);
        let write = |s: &mut Store, old: Option<&NodeStatus>, new: &NodeStatus| {
            let row = NodeRow {
                name: "n1".into(),
                url: "http://a:1".into(),
                status: Some(new.clone()),
                ..NodeRow::default()
            };
            let mut batch = Batch {
                nodes: vec![(row, Some(StatusDelta::between(old, new)))],
                ..Batch::default()
            };
            s.write(&mut batch).unwrap();
        };
        write(&mut s, None, &a);
        assert_eq!(
            (s.count("services").unwrap(), s.count("resources").unwrap()),
            (2, 3)
        );
        let d = StatusDelta::between(Some(&a), &b);
        assert_eq!(d.removed, ["db"]);
        assert_eq!(d.upsert[0].1, ["ip#1"]);
        write(&mut s, Some(&a), &b);
        assert_eq!(
            (s.count("services").unwrap(), s.count("resources").unwrap()),
            (1, 1)
        );
        let st: String = s
            .conn
            .query_row("SELECT status FROM resources", [], |r| r.get(0))
            .unwrap();
        assert_eq!(st, "down");
        assert!(StatusDelta::between(Some(&b), &b).upsert.is_empty());
    }
}
