//! The crash test (issue #4): `gateway serve` is killed with SIGKILL at a random moment while
//! uploads and folder drops are in flight, restarted on the same home, and every message must
//! end in the queue exactly once: every `201` (or `200` with the original receipt) and every
//! file moved to `accepted/` is queued once under the gateway id its receipt names, nothing is
//! lost (a dropped file ends accepted, rejected with its reason, or still in the inbox), and the
//! ledger agrees with the queue.
//!
//! `CRASH_ITERATIONS` (default 3) kill/restart cycles; `CRASH_SEED` replays a run (the seed is
//! printed). CI runs it with more iterations.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{Home, Server, names_in};

const CONFIG: &str = "[inbox]\nstable_ms = 100\nrescan_secs = 1\n";
const AGENCY: &str = "police";
const MESSAGES: &str = "/v1/messages";
/// Messages of each kind per iteration.
const UPLOADS: usize = 30;
const DROPS: usize = 30;
/// Concurrent HTTPS clients.
const CLIENTS: usize = 3;
/// How long the restarted server gets to answer every resend and drain the inbox.
const SETTLE: Duration = Duration::from_secs(60);

/// A small seeded generator (splitmix64): the run is replayable from its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

/// `gateway serve` on the home, its log kept per run in `serve-<run>.log`.
fn start(home: &Home, run: usize) -> Server {
    home.serve_from_home(&format!("serve-{run}.log"))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Upload,
    Drop,
}

/// One message of the run.
struct Msg {
    /// The agency message id (distinct per message).
    id: String,
    kind: Kind,
    /// The sealed file (outside the inbox).
    sealed: PathBuf,
    /// The name it is dropped under (drops only).
    name: String,
    iteration: usize,
    /// The receipt's gateway id of the first definite answer (uploads only), and the status.
    answer: Option<(u16, String)>,
    /// The last indefinite answer, for the failure message.
    last: String,
}

/// What one upload attempt got: a definite answer (status, receipt id) or why not.
fn upload(home: &Home, url: &str, token: &str, file: &Path) -> Result<(u16, String), String> {
    match crate::support::upload(&home.tls_cert(), url, token, file) {
        (status @ (200 | 201), body) => match body["gateway_message_id"].as_str() {
            Some(id) => Ok((status, id.to_owned())),
            None => Err(format!("{status} without a receipt: {body}")),
        },
        (status, body) => Err(format!("{status}: {body}")),
    }
}

/// A status the client must retry on: no answer (killed mid-request), or the gateway saying
/// it cannot take the message now.
fn retryable(outcome: &str) -> bool {
    outcome.starts_with("0:") || outcome.starts_with("503:")
}

/// The dropped name a file in accepted/ or rejected/ stands for (`d0n3-1.sealed` after a
/// collision is `d0n3.sealed`).
fn dropped_name(file: &str) -> String {
    let stem = file.strip_suffix(".sealed").unwrap_or(file);
    let stem = stem.split_once('-').map_or(stem, |(s, _)| s);
    format!("{stem}.sealed")
}

/// Where every dropped file is now: name -> places (inbox, processing, accepted, rejected).
fn drop_places(inbox: &Path) -> BTreeMap<String, Vec<(String, PathBuf)>> {
    let mut places: BTreeMap<String, Vec<(String, PathBuf)>> = BTreeMap::new();
    for n in names_in(inbox) {
        let p = inbox.join(&n);
        if p.is_file() && !n.starts_with('.') {
            places.entry(n).or_default().push(("inbox".into(), p));
        }
    }
    for n in names_in(&inbox.join(".processing")) {
        // `<uuid>.<name>`
        let name = n.split_once('.').map_or(n.as_str(), |(_, r)| r).to_owned();
        let p = inbox.join(".processing").join(&n);
        places
            .entry(name)
            .or_default()
            .push(("processing".into(), p));
    }
    for (dir, sidecars) in [
        ("accepted", [".receipt.json", ".receipt.p7s"]),
        ("rejected", [".error.json", ".error.txt"]),
    ] {
        for n in names_in(&inbox.join(dir)) {
            if sidecars.iter().any(|s| n.ends_with(s)) {
                continue;
            }
            let p = inbox.join(dir).join(&n);
            places
                .entry(dropped_name(&n))
                .or_default()
                .push((dir.into(), p));
        }
    }
    places
}

/// One queue entry, from its metadata file.
struct Queued {
    gateway_message_id: String,
    metadata: PathBuf,
}

/// Agency message id -> queue entries, from `new/*.json` only (`tmp/` holds nothing the hub
/// sees).
fn queue(home: &Home) -> BTreeMap<String, Vec<Queued>> {
    let new = home.path().join("outbox/integration/new");
    let mut out: BTreeMap<String, Vec<Queued>> = BTreeMap::new();
    for n in names_in(&new) {
        if !n.ends_with(".json") {
            continue;
        }
        let path = new.join(&n);
        let meta: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap())
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        let payload = meta["payload_file"].as_str().unwrap_or_default();
        assert!(
            new.join(payload).is_file(),
            "{} names payload {payload:?}, which is not in new/",
            path.display()
        );
        let gid = meta["gateway_message_id"].as_str().unwrap().to_owned();
        assert_eq!(n, format!("{gid}.json"), "metadata file name and id differ");
        out.entry(meta["agency_message_id"].as_str().unwrap().to_owned())
            .or_default()
            .push(Queued {
                gateway_message_id: gid,
                metadata: path,
            });
    }
    out
}

/// Ledger records of our agency: agency message id -> (gateway id, status, rejection code).
fn ledger(home: &Home) -> BTreeMap<String, Vec<(String, String, Option<String>)>> {
    let db = rusqlite::Connection::open_with_flags(
        home.path().join("state/ledger.sqlite"),
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .unwrap();
    let mut stmt = db
        .prepare(
            "SELECT agency_message_id, id, status, rejection_code FROM messages
             WHERE agency = ?1 AND agency_message_id IS NOT NULL",
        )
        .unwrap();
    let mut out: BTreeMap<String, Vec<_>> = BTreeMap::new();
    let rows = stmt
        .query_map([AGENCY], |r| {
            Ok((
                r.get::<_, String>(0)?,
                (r.get(1)?, r.get(2)?, r.get::<_, Option<String>>(3)?),
            ))
        })
        .unwrap();
    for row in rows {
        let (mid, rec) = row.unwrap();
        out.entry(mid).or_default().push(rec);
    }
    out
}

/// Resends every upload without a definite answer until it has one.
fn resend(home: &Home, server: &Server, token: &str, msgs: &mut [Msg], ctx: &str) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let mut pending = 0;
        for m in msgs
            .iter_mut()
            .filter(|m| m.kind == Kind::Upload && m.answer.is_none())
        {
            match upload(home, &server.url(MESSAGES), token, &m.sealed) {
                Ok(a) => m.answer = Some(a),
                Err(e) if retryable(&e) => {
                    m.last = e;
                    pending += 1;
                }
                Err(e) => panic!(
                    "{ctx}: upload {} (iteration {}) was refused on resend: {e}",
                    m.id, m.iteration
                ),
            }
        }
        if pending == 0 {
            return;
        }
        if Instant::now() > deadline {
            let stuck: Vec<String> = msgs
                .iter()
                .filter(|m| m.kind == Kind::Upload && m.answer.is_none())
                .map(|m| format!("{} (iteration {}): {}", m.id, m.iteration, m.last))
                .collect();
            panic!(
                "{ctx}: {} uploads got no definite answer within {SETTLE:?} of the restart:\n{}\nledger: {:?}",
                stuck.len(),
                stuck.join("\n"),
                stuck_records(home)
            );
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// In-progress ledger records, for failure messages.
fn stuck_records(home: &Home) -> Vec<(String, String)> {
    ledger(home)
        .into_iter()
        .flat_map(|(mid, recs)| {
            recs.into_iter()
                .filter(|(_, s, _)| s == "in_progress")
                .map(move |(gid, _, _)| (mid.clone(), gid))
        })
        .collect()
}

/// Waits until every dropped file has left the inbox and `.processing/`.
fn drain(home: &Home, msgs: &[Msg], ctx: &str) {
    let inbox = home.path().join("inbox").join(AGENCY);
    let deadline = Instant::now() + SETTLE;
    loop {
        let places = drop_places(&inbox);
        let waiting: Vec<String> = msgs
            .iter()
            .filter(|m| m.kind == Kind::Drop)
            .filter(|m| {
                places
                    .get(&m.name)
                    .is_none_or(|p| p.iter().any(|(w, _)| w == "inbox" || w == "processing"))
            })
            .map(|m| format!("{} ({}, iteration {})", m.name, m.id, m.iteration))
            .collect();
        if waiting.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{ctx}: {} dropped files not settled within {SETTLE:?} of the restart: {waiting:?}\nledger in progress: {:?}",
            waiting.len(),
            stuck_records(home)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every message is in the queue exactly once, under the id its receipt names, and the ledger
/// has exactly one forwarded record for it, with that id.
fn check(home: &Home, msgs: &[Msg], ctx: &str) {
    // The last forwarded messages' final ledger state is committed by the server's periodic
    // flush (every 100 ms) when no later message carries it: another process reading the
    // ledger may see `in_progress` until then.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !stuck_records(home).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let inbox = home.path().join("inbox").join(AGENCY);
    let queued = queue(home);
    let ledger = ledger(home);
    let places = drop_places(&inbox);
    let known: BTreeSet<&str> = msgs.iter().map(|m| m.id.as_str()).collect();
    for mid in queued.keys() {
        assert!(
            known.contains(mid.as_str()),
            "{ctx}: the queue holds {mid}, which no one sent"
        );
    }
    for m in msgs {
        let what = format!(
            "{ctx}: {:?} message {} (iteration {}{})",
            m.kind,
            m.id,
            m.iteration,
            if m.kind == Kind::Drop {
                format!(", file {}", m.name)
            } else {
                String::new()
            }
        );
        let entries = queued.get(&m.id).map(Vec::as_slice).unwrap_or_default();
        let ids: Vec<&str> = entries
            .iter()
            .map(|q| q.gateway_message_id.as_str())
            .collect();
        let records = ledger.get(&m.id).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            entries.len(),
            1,
            "{what} is queued {} times: {ids:?} ({:?}); ledger: {records:?}",
            entries.len(),
            entries.iter().map(|q| &q.metadata).collect::<Vec<_>>()
        );
        let gid = ids[0];
        let forwarded: Vec<&String> = records
            .iter()
            .filter(|(_, s, _)| s == "forwarded")
            .map(|(g, _, _)| g)
            .collect();
        assert_eq!(
            forwarded,
            vec![gid],
            "{what}: the ledger's forwarded records do not match the queue ({gid}); ledger: {records:?}"
        );
        assert!(
            !records.iter().any(|(_, s, _)| s == "in_progress"),
            "{what}: a ledger record is still in progress: {records:?}"
        );
        match m.kind {
            Kind::Upload => {
                let (status, receipt_id) = m.answer.as_ref().unwrap_or_else(|| {
                    panic!("{what} has no answer (the resends should have got one)")
                });
                assert_eq!(
                    receipt_id, gid,
                    "{what}: answered {status} with receipt {receipt_id}, but queued as {gid}"
                );
            }
            Kind::Drop => {
                let at = places.get(&m.name).map(Vec::as_slice).unwrap_or_default();
                assert_eq!(at.len(), 1, "{what} is in {} places: {at:?}", at.len());
                let (dir, file) = &at[0];
                assert_eq!(
                    dir,
                    "accepted",
                    "{what}: a valid message ended in {}: {}",
                    file.display(),
                    fs::read_to_string(format!("{}.error.txt", file.display())).unwrap_or_default()
                );
                let receipt = format!("{}.receipt.json", file.display());
                let receipt: serde_json::Value =
                    serde_json::from_slice(&fs::read(&receipt).unwrap_or_else(|e| {
                        panic!("{what}: no receipt beside {}: {e}", file.display())
                    }))
                    .unwrap();
                assert_eq!(
                    receipt["gateway_message_id"].as_str(),
                    Some(gid),
                    "{what}: its receipt names another message than the queue entry"
                );
            }
        }
    }
}

#[test]
fn crash_kill_9_during_uploads_and_drops_loses_nothing_and_queues_nothing_twice() {
    let iterations: usize = std::env::var("CRASH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let seed: u64 = std::env::var("CRASH_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    println!("crash test: CRASH_SEED={seed} CRASH_ITERATIONS={iterations}");
    let mut rng = Rng(seed);
    let started = Instant::now();

    let home = Home::with_server_config(CONFIG);
    let recipient = home.recipient();
    let token = home.token(AGENCY);
    let inbox = home.path().join("inbox").join(AGENCY);
    let work = home.file("work");
    fs::create_dir_all(&work).unwrap();
    fs::create_dir_all(&inbox).unwrap();
    let home = Arc::new(home);

    let mut runs = 0;
    let mut server = start(&home, runs);
    let mut msgs: Vec<Msg> = Vec::new();
    for it in 0..iterations {
        let ctx = format!("CRASH_SEED={seed} iteration {it}");
        let first = msgs.len();
        let mut batch = Vec::new();
        for (kind, n) in [(Kind::Upload, UPLOADS), (Kind::Drop, DROPS)] {
            for k in 0..n {
                let id = uuid::Uuid::now_v7().to_string();
                let prefix = if kind == Kind::Upload { 'u' } else { 'd' };
                let stem = format!("{prefix}{it}n{k}");
                batch.push((id.clone(), work.join(format!("{stem}.sealed"))));
                msgs.push(Msg {
                    id,
                    kind,
                    sealed: work.join(format!("{stem}.sealed")),
                    name: format!("{stem}.sealed"),
                    iteration: it,
                    answer: None,
                    last: String::new(),
                });
            }
        }
        home.seal_police(&recipient, &batch);

        // Clients upload, one after the other each; an operator drops files meanwhile.
        let uploads: Vec<(usize, PathBuf)> = (first..msgs.len())
            .filter(|&i| msgs[i].kind == Kind::Upload)
            .map(|i| (i, msgs[i].sealed.clone()))
            .collect();
        let answers = Arc::new(Mutex::new(Vec::new()));
        let mut threads = Vec::new();
        for c in 0..CLIENTS {
            let mine: Vec<(usize, PathBuf)> =
                uploads.iter().skip(c).step_by(CLIENTS).cloned().collect();
            let (home, url, token, answers) = (
                home.clone(),
                server.url(MESSAGES),
                token.clone(),
                answers.clone(),
            );
            threads.push(std::thread::spawn(move || {
                for (i, file) in mine {
                    let a = upload(&home, &url, &token, &file);
                    answers.lock().unwrap().push((i, a));
                }
            }));
        }
        let drops: Vec<(PathBuf, String)> = msgs[first..]
            .iter()
            .filter(|m| m.kind == Kind::Drop)
            .map(|m| (m.sealed.clone(), m.name.clone()))
            .collect();
        let pauses: Vec<u64> = drops.iter().map(|_| rng.range(0, 60)).collect();
        let dropper = {
            let inbox = inbox.clone();
            std::thread::spawn(move || {
                for ((sealed, name), pause) in drops.into_iter().zip(pauses) {
                    let part = inbox.join(format!(".{name}.part"));
                    fs::copy(&sealed, &part).unwrap();
                    fs::rename(&part, inbox.join(&name)).unwrap();
                    // An operator's pace (part of the scenario, not a wait).
                    std::thread::sleep(Duration::from_millis(pause));
                }
            })
        };

        // The kill comes at a random moment of the traffic (part of the scenario, not a wait).
        let after = rng.range(20, 1200);
        std::thread::sleep(Duration::from_millis(after));
        server.kill();
        for t in threads {
            t.join().unwrap();
        }
        dropper.join().unwrap();
        let mut answered = 0;
        for (i, a) in answers.lock().unwrap().drain(..) {
            match a {
                Ok(a) => {
                    msgs[i].answer = Some(a);
                    answered += 1;
                }
                Err(e) if retryable(&e) => msgs[i].last = e,
                Err(e) => panic!(
                    "{ctx}: upload {} was refused before the kill: {e}",
                    msgs[i].id
                ),
            }
        }
        let processing = names_in(&inbox.join(".processing")).len();
        println!(
            "{ctx}: killed after {after} ms: {answered}/{UPLOADS} uploads answered, {processing} files in .processing/"
        );

        runs += 1;
        server = start(&home, runs);
        resend(&home, &server, &token, &mut msgs, &ctx);
        drain(&home, &msgs, &ctx);
        check(&home, &msgs, &ctx);
    }
    drop(server);
    println!(
        "crash test: {iterations} iterations, {} messages, {:.1} s",
        msgs.len(),
        started.elapsed().as_secs_f64()
    );
}
