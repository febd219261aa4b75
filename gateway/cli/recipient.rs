//! `gateway recipient`: the age recipient agencies should seal to now.

use anyhow::Context;

use super::exit;
use crate::config::Config;
use crate::keyring::recipient_doc::RecipientDocument;

/// Arguments of `gateway recipient`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Machine-readable output: the recipient document (current, grace, issued_at).
    #[arg(long)]
    pub json: bool,
    /// Ask a running gateway (`GET <URL>/v1/recipient`) instead of the local keys.
    #[arg(long)]
    pub url: Option<String>,
    /// CA certificate to trust for the gateway's TLS certificate (with --url).
    #[arg(long, requires = "url")]
    pub cacert: Option<std::path::PathBuf>,
    /// The gateway's receipt certificate: the document's signature must verify with it,
    /// or nothing is printed and the exit code is 1 (with --url).
    #[arg(long, requires = "url")]
    pub signer: Option<std::path::PathBuf>,
}

/// `gateway recipient --url`: fetches the recipient from a gateway (no local configuration).
pub fn run_remote(args: &Args, url: &str) -> anyhow::Result<u8> {
    let client = crate::agent::hub::client(args.cacert.as_deref(), None, None)?;
    let url = format!("{}/v1/recipient", url.trim_end_matches('/'));
    let resp = client.get(&url).send()?.error_for_status()?;
    let signature = resp
        .headers()
        .get("gateway-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.bytes()?;
    if let Some(cert) = &args.signer {
        let Some(sig) = signature else {
            eprintln!("{url} sent an unsigned recipient document: not trusted");
            return Ok(exit::INVALID);
        };
        if let Err(e) = crate::agent::hub::verify_detached(&body, &sig, cert) {
            eprintln!("the recipient document from {url} does not verify: {e:#}");
            return Ok(exit::INVALID);
        }
    }
    let doc: RecipientDocument = serde_json::from_slice(&body)
        .with_context(|| format!("{url} did not return a recipient document"))?;
    if doc.current.parse::<age::x25519::Recipient>().is_err() {
        anyhow::bail!("{url} did not return an age recipient: {:?}", doc.current);
    }
    print(&doc, args.json)
}

fn print(doc: &RecipientDocument, json: bool) -> anyhow::Result<u8> {
    if json {
        println!("{}", serde_json::to_string(doc)?);
    } else {
        println!("{}", doc.current);
    }
    Ok(exit::OK)
}

/// Prints the current recipient (plain: just the `age1...` line, for scripts).
pub fn run(args: &Args, config: &Config) -> anyhow::Result<u8> {
    let ids = crate::keyring::Identities::records(&config.keys)?;
    if ids.current().is_none() {
        anyhow::bail!(
            "no current gateway identity in {}: run `gateway keys init`",
            config.keys.display()
        );
    }
    print(
        &RecipientDocument::new(&ids, time::OffsetDateTime::now_utc()),
        args.json,
    )
}
