//! The audit log in PostgreSQL, for instances that share the ledger: one hash chain per
//! writer, all in one database, so that `gateway audit verify` on any host checks them all.
//!
//! * A server writes its own chain, `serve@<host>/<uuid>` (one per run): no lock is shared
//!   between instances, and its records are committed in groups as in the file log. Having
//!   written its chain once, it knows the head, so each later group is one statement that
//!   moves the head only if it is still where it was left (and otherwise takes the locked
//!   path below).
//! * Admin commands, from any host, append to the one chain `admin`; the chain's head row is
//!   locked (`SELECT ... FOR UPDATE`) while a command appends, so they follow each other.
//! * `audit_chains` holds each chain's head (last sequence number and hash), updated in the
//!   same transaction as the records, so records cut off a chain's end are noticed, as the
//!   file log's `audit.head` does. Records are the same JSON, hashed the same way.

use std::sync::Mutex;

use postgres::{Client, GenericClient, NoTls, Statement};

use super::{AuditError, Entry, GENESIS, Record, Verdict};

const SCHEMA: &str = "
    CREATE TABLE audit_chains (
        chain TEXT PRIMARY KEY,
        seq   BIGINT NOT NULL,
        hash  TEXT NOT NULL
    );
    CREATE TABLE audit_records (
        chain  TEXT NOT NULL,
        seq    BIGINT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (chain, seq)
    );";

/// Serialises schema creation between instances starting together ("au").
const SCHEMA_LOCK: i64 = 0x6175;

fn db_err(what: &str, e: impl std::fmt::Display) -> AuditError {
    AuditError::Io {
        path: format!("PostgreSQL audit log ({what})").into(),
        error: std::io::Error::other(e.to_string()),
    }
}

/// One chain of the shared audit log, and its connection.
pub struct Chain {
    url: String,
    name: String,
    conn: Mutex<Option<Connection>>,
}

impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Chain").field("name", &self.name).finish()
    }
}

struct Connection {
    client: Client,
    ensure_head: Statement,
    head: Statement,
    append_after: Statement,
    /// The chain's head as this connection last wrote it.
    known_head: Option<Head>,
}

/// A chain's head: its last sequence number and hash.
type Head = (i64, String);

/// Appends are bounded like the ledger's statements; `verify` reads whole chains, unbounded.
const APPEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn connect(
    url: &str,
    statement_timeout: Option<std::time::Duration>,
) -> Result<Client, AuditError> {
    let mut client = crate::store::connection_config(url, statement_timeout)
        .map_err(|e| db_err("connect", e))?
        .connect(NoTls)
        .map_err(|e| db_err("connect", e))?;
    let mut tx = client.transaction().map_err(|e| db_err("schema", e))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&SCHEMA_LOCK])
        .map_err(|e| db_err("schema", e))?;
    let fresh: bool = tx
        .query_one("SELECT to_regclass('audit_chains') IS NULL", &[])
        .map_err(|e| db_err("schema", e))?
        .get(0);
    if fresh {
        tx.batch_execute(SCHEMA).map_err(|e| db_err("schema", e))?;
    }
    tx.commit().map_err(|e| db_err("schema", e))?;
    Ok(client)
}

impl Connection {
    fn open(url: &str) -> Result<Connection, AuditError> {
        let mut client = connect(url, Some(APPEND_TIMEOUT))?;
        let mut prepare = |sql: &str| client.prepare(sql).map_err(|e| db_err("prepare", e));
        Ok(Connection {
            ensure_head: prepare(
                "INSERT INTO audit_chains (chain, seq, hash) VALUES ($1, 0, $2)
                 ON CONFLICT (chain) DO NOTHING",
            )?,
            head: prepare("SELECT seq, hash FROM audit_chains WHERE chain = $1 FOR UPDATE")?,
            append_after: prepare(
                "WITH h AS (UPDATE audit_chains SET seq = $2, hash = $3
                            WHERE chain = $1 AND seq = $4 AND hash = $5 RETURNING 1)
                 INSERT INTO audit_records (chain, seq, record)
                 SELECT $1, s, r FROM h, unnest($6::bigint[], $7::text[]) AS t(s, r)",
            )?,
            known_head: None,
            client,
        })
    }

    fn append(&mut self, chain: &str, entries: &[&Entry]) -> Result<Vec<Record>, AuditError> {
        if let Some((seq, hash)) = self.known_head.take() {
            let (records, head) = write_after(
                &mut self.client,
                &self.append_after,
                chain,
                entries,
                seq,
                hash,
            )
            .map_err(|e| db_err("append", e))?;
            if head.is_some() {
                self.known_head = head;
                return Ok(records);
            }
        }
        self.append_locked(chain, entries)
    }

    /// Appends under the head row's lock, wherever the head is.
    fn append_locked(
        &mut self,
        chain: &str,
        entries: &[&Entry],
    ) -> Result<Vec<Record>, AuditError> {
        let err = |e| db_err("append", e);
        let mut tx = self.client.transaction().map_err(err)?;
        tx.execute(&self.ensure_head, &[&chain, &GENESIS])
            .map_err(err)?;
        let head = tx.query_one(&self.head, &[&chain]).map_err(err)?;
        let (seq, prev): (i64, String) = (head.get(0), head.get(1));
        let (records, head) =
            write_after(&mut tx, &self.append_after, chain, entries, seq, prev).map_err(err)?;
        if head.is_none() {
            // The head is locked as read, so this cannot happen; if it does, nothing is
            // claimed written (the transaction rolls back as it drops).
            return Err(db_err("append", "the chain's head moved while locked"));
        }
        tx.commit().map_err(err)?;
        self.known_head = head;
        Ok(records)
    }
}

/// Chains `entries` after the head (`seq`, `hash`) and appends them with `append_after`, in
/// one statement that moves the head only if it is still there; returns the records and the
/// new head, or no head when it had moved (nothing written).
fn write_after(
    client: &mut impl GenericClient,
    append_after: &Statement,
    chain: &str,
    entries: &[&Entry],
    seq: i64,
    hash: String,
) -> Result<(Vec<Record>, Option<Head>), postgres::Error> {
    let records = super::chained(entries.iter().copied(), seq as u64 + 1, hash.clone());
    let Some(last) = records.last() else {
        return Ok((records, Some((seq, hash))));
    };
    let (seqs, texts) = columns(&records);
    let n = client.execute(
        append_after,
        &[
            &chain,
            &(last.seq as i64),
            &last.hash,
            &seq,
            &hash,
            &seqs,
            &texts,
        ],
    )?;
    let head = (n as usize == records.len()).then(|| (last.seq as i64, last.hash.clone()));
    Ok((records, head))
}

/// `records` as the columns of `audit_records`: sequence numbers and JSON texts.
fn columns(records: &[Record]) -> (Vec<i64>, Vec<String>) {
    let seqs = records.iter().map(|r| r.seq as i64).collect();
    let texts = records
        .iter()
        .map(|r| serde_json::to_string(r).unwrap_or_default())
        .collect();
    (seqs, texts)
}

impl Chain {
    /// The chain `name` in the database at `url` (connected now, to fail early).
    pub fn open(url: &str, name: String) -> Result<Chain, AuditError> {
        let conn = Connection::open(url)?;
        Ok(Chain {
            url: url.to_owned(),
            name,
            conn: Mutex::new(Some(conn)),
        })
    }

    /// Appends `entries` in one transaction; reconnects once if the connection was lost.
    pub(super) fn append(&self, entries: &[&Entry]) -> Result<Vec<Record>, AuditError> {
        let mut slot = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        for attempt in 0..2 {
            if slot.is_none() {
                *slot = Some(Connection::open(&self.url)?);
            }
            let Some(conn) = slot.as_mut() else { continue };
            match conn.append(&self.name, entries) {
                Ok(records) => return Ok(records),
                Err(e) if conn.client.is_closed() && attempt == 0 => {
                    tracing::warn!(error = %e, "audit log connection lost; reconnecting");
                    *slot = None;
                }
                Err(e) => return Err(e),
            }
        }
        Err(db_err("append", "the connection could not be restored"))
    }
}

/// Checks every chain in the database at `url`: order, links, hashes and heads.
pub fn verify(url: &str) -> Result<Verdict, AuditError> {
    let mut client = connect(url, None)?;
    let heads = client
        .query(
            "SELECT chain, seq, hash FROM audit_chains ORDER BY chain",
            &[],
        )
        .map_err(|e| db_err("verify", e))?;
    let mut records = 0u64;
    for head in &heads {
        let (chain, head_seq, head_hash): (String, i64, String) =
            (head.get(0), head.get(1), head.get(2));
        // Streamed: a chain may hold millions of records.
        let mut rows = client
            .query_raw(
                "SELECT seq, record FROM audit_records WHERE chain = $1 ORDER BY seq",
                [&chain],
            )
            .map_err(|e| db_err("verify", e))?;
        let mut prev = GENESIS.to_owned();
        let mut expect = 1u64;
        while let Some(row) = postgres::fallible_iterator::FallibleIterator::next(&mut rows)
            .map_err(|e| db_err("verify", e))?
        {
            let (seq, text): (i64, String) = (row.get(0), row.get(1));
            let broken = |why: String| Verdict::Broken {
                at: format!("chain {chain}, record {seq}"),
                seq: expect,
                why,
            };
            let rec: Record = match serde_json::from_str(&text) {
                Ok(r) => r,
                Err(e) => return Ok(broken(format!("not a record ({e})"))),
            };
            if rec.seq != expect || seq as u64 != expect {
                return Ok(broken(format!(
                    "sequence {} where {expect} was expected (a record was deleted, inserted or moved)",
                    rec.seq
                )));
            }
            if rec.prev != prev {
                return Ok(broken(
                    "it does not follow the previous record (prev hash differs)".into(),
                ));
            }
            if rec.compute_hash() != rec.hash {
                return Ok(broken("its content was changed (hash differs)".into()));
            }
            prev = rec.hash;
            expect += 1;
            records += 1;
        }
        let written = expect - 1;
        if head_seq as u64 != written || (written > 0 && head_hash != prev) {
            return Ok(Verdict::Broken {
                at: format!("chain {chain}, head"),
                seq: written + 1,
                why: format!(
                    "the chain ends at record {written} but record {head_seq} was written (records were cut off the end)"
                ),
            });
        }
    }
    Ok(Verdict::IntactChains {
        records,
        chains: heads.len(),
    })
}
