//! A sample hub consumer for the RabbitMQ integration queue (`[queue] backend = "rabbitmq"`):
//! reads each message, fetches a claim-checked payload from the shared folder, verifies the
//! SHA-256 the gateway put in the headers, acknowledges it, and prints one JSON line per
//! message on standard output.
//!
//! ```text
//! GATEWAY_QUEUE_URL=amqp://hub:secret@mq.example:5672/%2f \
//!     cargo run --example hub-consumer -- --queue integration --idle-secs 5
//! ```
//!
//! A message whose bytes do not match its SHA-256 is rejected (not requeued: it would fail
//! again) and reported with `"ok": false`. A claim-checked payload's file is deleted once the
//! message is acknowledged (`--keep-claims` keeps it). Payloads re-encrypted to the hub
//! (`content_type` `application/age`, `[outbox] hub_recipients`) are decrypted with the hub's
//! age identities (`--identity FILE`, as `age-keygen` writes them) and the XML checked against
//! `sha256`; without `--identity` only a claim-checked file's `claim_check_sha256` is checked.
//!
//! The hub should deduplicate on `agency` + `agency_message_id` + `sha256`: delivery is
//! at-least-once (a gateway that dies between the broker's confirm and its ledger write has
//! the message sent again by the agency's retry).

use std::time::Duration;

use futures_util::StreamExt;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicQosOptions, BasicRejectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};

struct Args {
    url: String,
    queue: String,
    idle: Duration,
    max: Option<u64>,
    keep_claims: bool,
    identities: Vec<age::x25519::Identity>,
}

fn args() -> Result<Args, String> {
    let mut a = Args {
        url: std::env::var("GATEWAY_QUEUE_URL").unwrap_or_default(),
        queue: "integration".into(),
        idle: Duration::from_secs(5),
        max: None,
        keep_claims: false,
        identities: Vec::new(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--url" => a.url = value()?,
            "--queue" => a.queue = value()?,
            "--idle-secs" => {
                a.idle = Duration::from_secs(value()?.parse().map_err(|e| format!("{e}"))?)
            }
            "--max" => a.max = Some(value()?.parse().map_err(|e| format!("{e}"))?),
            "--keep-claims" => a.keep_claims = true,
            "--identity" => {
                let path = value()?;
                let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
                for line in text.lines().filter(|l| l.starts_with("AGE-SECRET-KEY-")) {
                    a.identities
                        .push(line.trim().parse().map_err(|e| format!("{path}: {e}"))?);
                }
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.url.is_empty() {
        return Err("set GATEWAY_QUEUE_URL or pass --url amqp://...".into());
    }
    Ok(a)
}

fn header(headers: &FieldTable, name: &str) -> Option<String> {
    match headers.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        AMQPValue::ShortString(s) => Some(s.to_string()),
        AMQPValue::LongLongInt(n) => Some(n.to_string()),
        AMQPValue::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(openssl::sha::sha256(bytes))
}

/// The XML inside an age payload, with the hub's identities.
fn decrypt(bytes: &[u8], identities: &[age::x25519::Identity]) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let decryptor = age::Decryptor::new(bytes).map_err(|e| e.to_string())?;
    let mut reader = decryptor
        .decrypt(identities.iter().map(|i| i as &dyn age::Identity))
        .map_err(|e| e.to_string())?;
    let mut plain = Vec::new();
    reader.read_to_end(&mut plain).map_err(|e| e.to_string())?;
    Ok(plain)
}

/// Checks one message; returns its report line and whether it is good.
fn check(
    id: &str,
    headers: &FieldTable,
    body: &[u8],
    a: &Args,
) -> (serde_json::Value, bool, Option<std::path::PathBuf>) {
    let claim = header(headers, "claim_check").map(std::path::PathBuf::from);
    let encrypted = header(headers, "encrypted_to_hub").as_deref() == Some("true");
    let bytes = match &claim {
        Some(path) => match std::fs::read(path) {
            Ok(b) => b,
            Err(e) => {
                return (
                    serde_json::json!({"id": id, "ok": false, "error": format!("claim check {}: {e}", path.display())}),
                    false,
                    None,
                );
            }
        },
        None => body.to_vec(),
    };
    let mut actual = sha256_hex(&bytes);
    let mut expected = if claim.is_some() && encrypted {
        header(headers, "claim_check_sha256")
    } else if encrypted {
        None
    } else {
        header(headers, "forwarded_sha256").or_else(|| header(headers, "sha256"))
    };
    let mut ok = expected.as_deref().is_none_or(|e| e == actual);
    if ok && encrypted && !a.identities.is_empty() {
        // The XML itself, as the agency signed it (or transcoded: `forwarded_sha256`).
        expected = header(headers, "forwarded_sha256").or_else(|| header(headers, "sha256"));
        match decrypt(&bytes, &a.identities) {
            Ok(plain) => actual = sha256_hex(&plain),
            Err(e) => actual = format!("cannot decrypt: {e}"),
        }
        ok = expected.as_deref() == Some(actual.as_str());
    }
    let line = serde_json::json!({
        "id": id,
        "agency": header(headers, "agency"),
        "agency_message_id": header(headers, "agency_message_id"),
        "sha256": header(headers, "sha256"),
        "actual_sha256": actual,
        "size": bytes.len(),
        "claim_check": claim.is_some(),
        "verified": expected.is_some(),
        "decrypted": encrypted && !a.identities.is_empty(),
        "ok": ok,
    });
    let remove = claim.filter(|_| ok && !a.keep_claims);
    (line, ok, remove)
}

async fn consume(a: Args) -> Result<u64, lapin::Error> {
    let conn = Connection::connect(&a.url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel.basic_qos(100, BasicQosOptions::default()).await?;
    let mut consumer = channel
        .basic_consume(
            a.queue.as_str().into(),
            "hub-consumer".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut n = 0u64;
    loop {
        if a.max.is_some_and(|max| n >= max) {
            break;
        }
        let next = tokio::time::timeout(a.idle, consumer.next()).await;
        let delivery = match next {
            Err(_) | Ok(None) => break,
            Ok(Some(d)) => d?,
        };
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default();
        let empty = FieldTable::default();
        let headers = delivery.properties.headers().as_ref().unwrap_or(&empty);
        let (line, ok, claim) = check(&id, headers, &delivery.data, &a);
        if ok {
            delivery.ack(BasicAckOptions::default()).await?;
            if let Some(path) = claim {
                let _ = std::fs::remove_file(path);
            }
        } else {
            delivery
                .reject(BasicRejectOptions { requeue: false })
                .await?;
        }
        println!("{line}");
        n += 1;
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(n)
}

fn main() -> std::process::ExitCode {
    let a = match args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("hub-consumer: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hub-consumer: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    match runtime.block_on(consume(a)) {
        Ok(n) => {
            eprintln!("hub-consumer: {n} message(s)");
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("hub-consumer: {e}");
            std::process::ExitCode::from(1)
        }
    }
}
