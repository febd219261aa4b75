//! `gateway send`: the agency side of the HTTPS channel — upload sealed files with retries.
//!
//! Uploads are idempotent (the gateway answers a resend with the original receipt), so every
//! failure that might be transient — no connection, a timeout, `503`, `408`, `429`, any `5xx` —
//! is retried with exponential back-off (honouring `Retry-After`); a `4xx` rejection is final.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use base64::Engine;
use serde_json::{Value, json};

use super::exit;
use crate::agent::hub::{Answer, Upload};

/// Arguments of `gateway send`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The gateway's base URL, e.g. `https://hub.example:8443`.
    #[arg(long)]
    pub url: String,
    /// Bearer token issued to the agency.
    #[arg(long, env = "GATEWAY_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Client certificate (PEM) for mutual TLS.
    #[arg(long, requires = "key")]
    pub cert: Option<PathBuf>,
    /// Client key (PEM, PKCS#8) for mutual TLS.
    #[arg(long, requires = "cert")]
    pub key: Option<PathBuf>,
    /// CA certificate to trust for the gateway's TLS certificate (default: the system's).
    #[arg(long)]
    pub cacert: Option<PathBuf>,
    /// Attempts after the first, for transient failures.
    #[arg(long, default_value_t = 5)]
    pub retries: u32,
    /// Write `<FILE>.receipt.json` and `<FILE>.receipt.p7s` (the signature) beside each file.
    #[arg(long)]
    pub save_receipts: bool,
    /// Check only: the gateway runs every check (decryption, signature, schema) and keeps and
    /// forwards nothing; the answer is the verdict a real send would get.
    #[arg(long, conflicts_with = "save_receipts")]
    pub check: bool,
    /// Machine-readable output.
    #[arg(long)]
    pub json: bool,
    /// Sealed files.
    #[arg(value_name = "FILE", required = true)]
    pub files: Vec<PathBuf>,
}

enum Sent {
    Accepted { status: u16, receipt: Value },
    Rejected(Value),
}

/// Runs `gateway send`.
pub fn run(args: &Args) -> anyhow::Result<u8> {
    if args.token.is_none() && args.cert.is_none() {
        bail!("give --token (or GATEWAY_TOKEN) or --cert and --key");
    }
    let client = crate::agent::hub::client(
        args.cacert.as_deref(),
        args.cert.as_deref(),
        args.key.as_deref(),
    )?;
    let mut url = format!("{}/v1/messages", args.url.trim_end_matches('/'));
    if args.check {
        url.push_str("?check=true");
    }
    let (mut rejected, mut failed) = (false, false);
    let mut results = Vec::new();
    for file in &args.files {
        match send_one(&client, &url, args, file) {
            Ok(Sent::Accepted { receipt, .. }) if args.check => {
                if !args.json {
                    println!(
                        "{}: passes every check (schema {}); nothing was sent",
                        file.display(),
                        receipt["receipt"]["schema_id"].as_str().unwrap_or("?")
                    );
                }
                results.push(
                    json!({"file": file, "outcome": "passed", "checked": receipt["receipt"]}),
                );
            }
            Ok(Sent::Accepted { status, receipt }) => {
                let id = receipt["receipt"]["gateway_message_id"]
                    .as_str()
                    .unwrap_or("?");
                if !args.json {
                    let how = if status == 200 {
                        "already accepted as"
                    } else {
                        "accepted as"
                    };
                    println!("{}: {how} {id}", file.display());
                }
                results.push(json!({"file": file, "outcome": "accepted", "status": status, "receipt": receipt["receipt"]}));
            }
            Ok(Sent::Rejected(problem)) => {
                rejected = true;
                if !args.json {
                    print_rejection(file, &problem);
                }
                results.push(json!({"file": file, "outcome": "rejected", "problem": problem}));
            }
            Err(e) => {
                failed = true;
                if !args.json {
                    println!("{}: not sent — {e:#}", file.display());
                }
                results.push(json!({"file": file, "outcome": "failed", "error": format!("{e:#}")}));
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "results": results }))?
        );
    }
    Ok(if failed {
        exit::USAGE
    } else if rejected {
        exit::INVALID
    } else {
        exit::OK
    })
}

/// A rejection as a person reads it: code, sentence, every violation, what to do.
fn print_rejection(file: &Path, problem: &Value) {
    println!(
        "{}: rejected {} — {}",
        file.display(),
        problem["code"].as_str().unwrap_or("?"),
        problem["detail"].as_str().unwrap_or("")
    );
    for v in problem["violations"].as_array().into_iter().flatten() {
        println!(
            "  {}:{} {} at {}: {}",
            v["line"],
            v["column"],
            v["code"].as_str().unwrap_or(""),
            v["path"].as_str().unwrap_or(""),
            v["message"].as_str().unwrap_or("")
        );
    }
    if let Some(a) = problem["action"].as_str() {
        println!("  what to do: {a}");
    }
}

fn send_one(
    client: &reqwest::blocking::Client,
    url: &str,
    args: &Args,
    file: &Path,
) -> anyhow::Result<Sent> {
    let up = Upload {
        client,
        url,
        token: args.token.as_deref(),
        retries: args.retries,
        request: None,
    };
    match crate::agent::hub::send(&up, file)? {
        Answer::Accepted {
            status,
            receipt,
            signature,
        } => {
            if args.save_receipts {
                save_receipt(file, &receipt, signature.as_deref())?;
            }
            let receipt: Value = serde_json::from_slice(&receipt).unwrap_or(Value::Null);
            Ok(Sent::Accepted {
                status,
                receipt: json!({ "receipt": receipt }),
            })
        }
        Answer::Refused(problem) => Ok(Sent::Rejected(problem)),
    }
}

fn save_receipt(file: &Path, json: &[u8], signature_b64: Option<&str>) -> anyhow::Result<()> {
    let name = |ext: &str| {
        let mut p = file.as_os_str().to_owned();
        p.push(ext);
        PathBuf::from(p)
    };
    std::fs::write(name(".receipt.json"), json)?;
    if let Some(s) = signature_b64 {
        let der = base64::engine::general_purpose::STANDARD
            .decode(s)
            .context("the receipt signature is not base64")?;
        std::fs::write(name(".receipt.p7s"), der)?;
    }
    Ok(())
}
