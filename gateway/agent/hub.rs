//! Talking to the hub from the agency's side: the HTTPS client (`gateway send`, `gateway
//! recipient --url` and the agent share it), the recipient document and receipts checked
//! against the pinned receipt certificate, and uploads with retries.
//!
//! Uploads are idempotent (the hub answers a resend with the original receipt), so every
//! failure that might be transient (no connection, a timeout, `408`, `429`, any `5xx`) is
//! retried with exponential back-off and jitter, honouring `Retry-After`; any other `4xx` is
//! the hub's final word on the file.

use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use base64::Engine;
use openssl::cms::{CMSOptions, CmsContentInfo};
use serde_json::Value;

/// Builds the HTTPS client: the CA bundle to trust for the hub (all of its certificates, so
/// both old and new are trusted while the hub's TLS certificate is replaced), and a client
/// certificate for mutual TLS.
pub fn client(
    cacert: Option<&Path>,
    cert: Option<&Path>,
    key: Option<&Path>,
) -> anyhow::Result<reqwest::blocking::Client> {
    let mut b = reqwest::blocking::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(3600))
        .min_tls_version(reqwest::tls::Version::TLS_1_2);
    if let Some(ca) = cacert {
        let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
        for cert in reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("{}: not PEM certificates", ca.display()))?
        {
            b = b.add_root_certificate(cert);
        }
        b = b.tls_built_in_root_certs(false);
    }
    if let (Some(cert), Some(key)) = (cert, key) {
        let c = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
        let k = std::fs::read(key).with_context(|| format!("reading {}", key.display()))?;
        b = b.identity(
            reqwest::Identity::from_pkcs8_pem(&c, &k)
                .context("the client certificate and key (PKCS#8 PEM)")?,
        );
    }
    b.build().context("building the HTTPS client")
}

/// Checks the detached CMS signature (base64 DER) over `body`, made by the certificate in
/// `cert` and no other.
pub fn verify_detached(body: &[u8], sig_b64: &str, cert: &Path) -> anyhow::Result<()> {
    let pem = std::fs::read(cert).with_context(|| format!("reading {}", cert.display()))?;
    let cert = openssl::x509::X509::from_pem(&pem).context("the signer certificate")?;
    let der = base64::engine::general_purpose::STANDARD
        .decode(sig_b64.trim())
        .context("the signature is not base64")?;
    let mut cms = CmsContentInfo::from_der(&der).context("the signature is not CMS")?;
    let mut certs = openssl::stack::Stack::new()?;
    certs.push(cert)?;
    // Only the given certificate may have signed (NOINTERN); it is trusted as given, so no
    // chain is built.
    cms.verify(
        Some(&certs),
        None,
        Some(body),
        None,
        CMSOptions::BINARY | CMSOptions::NOINTERN | CMSOptions::NO_SIGNER_CERT_VERIFY,
    )
    .context("signature check failed")?;
    Ok(())
}

/// Largest recipient document read.
const RECIPIENT_MAX: u64 = 1 << 20;
/// Largest schema bundle read.
const SCHEMAS_MAX: u64 = 64 << 20;

/// The body of `resp` from `url` (`what` it should be), read up to `max` bytes, with its
/// `Gateway-Signature` checked against the pinned `receipt_cert`.
fn verified_body(
    resp: reqwest::blocking::Response,
    url: &str,
    what: &str,
    receipt_cert: &Path,
    max: u64,
) -> anyhow::Result<Vec<u8>> {
    let sig = resp
        .headers()
        .get("gateway-signature")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .with_context(|| format!("{url} sent an unsigned {what}: not trusted"))?;
    let mut body = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(resp, max + 1), &mut body)?;
    if body.len() as u64 > max {
        anyhow::bail!("{url} sent more than {max} bytes: not a {what}");
    }
    verify_detached(&body, &sig, receipt_cert)
        .with_context(|| format!("the {what} from {url} does not verify"))?;
    Ok(body)
}

/// The hub's current age recipient, from its recipient document signed by `receipt_cert`.
pub fn recipient(
    client: &reqwest::blocking::Client,
    base: &str,
    receipt_cert: &Path,
) -> anyhow::Result<String> {
    let url = format!("{base}/v1/recipient");
    let resp = client.get(&url).send()?.error_for_status()?;
    let body = verified_body(
        resp,
        &url,
        "recipient document",
        receipt_cert,
        RECIPIENT_MAX,
    )?;
    let doc: crate::keyring::recipient_doc::RecipientDocument =
        serde_json::from_slice(&body).context("not a recipient document")?;
    doc.current
        .parse::<age::x25519::Recipient>()
        .map_err(|e| anyhow::anyhow!("{:?} is not an age recipient: {e}", doc.current))?;
    Ok(doc.current)
}

/// What the hub said of an upload.
#[derive(Debug)]
pub enum Answer {
    /// `201` (or `200` for a resend): the receipt as signed, and its signature (base64).
    Accepted {
        /// The status.
        status: u16,
        /// The receipt's bytes.
        receipt: Vec<u8>,
        /// The `Gateway-Receipt-Signature` header.
        signature: Option<String>,
    },
    /// Any other `4xx`: the problem document.
    Refused(Value),
}

/// How an upload is made.
pub struct Upload<'a> {
    /// The client.
    pub client: &'a reqwest::blocking::Client,
    /// `https://hub/v1/messages[?check=true]`.
    pub url: &'a str,
    /// The bearer token, if any.
    pub token: Option<&'a str>,
    /// Attempts after the first, for transient failures.
    pub retries: u32,
    /// The hub's request the upload answers, if any (header `Gateway-Request-Id`).
    pub request: Option<&'a str>,
}

/// A pause of about `base`, up to a quarter more (jitter, so that many agents retrying after
/// the same outage do not come back at the same instant).
fn jittered(base: Duration) -> Duration {
    let mut b = [0u8; 1];
    let _ = openssl::rand::rand_bytes(&mut b);
    base + base.mul_f64(f64::from(b[0]) / 1024.0)
}

/// Uploads `file`, retrying transient failures; the hub's answer, or the last failure.
pub fn send(up: &Upload<'_>, file: &Path) -> anyhow::Result<Answer> {
    let mut delay = Duration::from_millis(500);
    let mut attempt = 0;
    loop {
        let body =
            std::fs::File::open(file).with_context(|| format!("reading {}", file.display()))?;
        let mut req = up.client.post(up.url).body(body);
        if let Some(t) = up.token {
            req = req.bearer_auth(t);
        }
        if let Some(r) = up.request {
            req = req.header(crate::http::requests::REQUEST_HEADER, r);
        }
        let transient = match req.send() {
            Ok(resp) => {
                let status = resp.status().as_u16();
                let header = |name: &str| {
                    resp.headers()
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned)
                };
                let retry_after = header("retry-after").and_then(|v| v.parse::<u64>().ok());
                let signature = header("gateway-receipt-signature");
                let bytes = resp.bytes().unwrap_or_default();
                if status == 200 || status == 201 {
                    return Ok(Answer::Accepted {
                        status,
                        receipt: bytes.to_vec(),
                        signature,
                    });
                }
                let problem: Value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                    serde_json::json!({"code": format!("http_{status}"), "detail": String::from_utf8_lossy(&bytes)})
                });
                if !(matches!(status, 408 | 429) || status >= 500) {
                    return Ok(Answer::Refused(problem));
                }
                if let Some(s) = retry_after {
                    delay = delay.max(Duration::from_secs(s.min(300)));
                }
                format!("HTTP {status} {}", problem["code"].as_str().unwrap_or(""))
            }
            Err(e) => format!("{e}"),
        };
        if attempt >= up.retries {
            anyhow::bail!("gave up after {} attempts: {transient}", attempt + 1);
        }
        attempt += 1;
        tracing::info!(file = %file.display(), attempt, error = %transient, "retrying");
        std::thread::sleep(jittered(delay));
        delay = (delay * 2).min(Duration::from_secs(300));
    }
}

/// The schema bundle the hub publishes to this agency (`GET /v1/schemas`), its signature
/// checked against the pinned receipt certificate.
pub fn schemas(
    client: &reqwest::blocking::Client,
    base: &str,
    token: Option<&str>,
    receipt_cert: &Path,
) -> anyhow::Result<Value> {
    let url = format!("{base}/v1/schemas");
    let mut req = client.get(&url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send()?.error_for_status()?;
    let body = verified_body(resp, &url, "schema bundle", receipt_cert, SCHEMAS_MAX)?;
    serde_json::from_slice(&body).context("not a schema bundle")
}

/// The largest request document the agent reads.
const REQUEST_MAX: u64 = 256 << 10;

/// A request from the hub, as the agent reads it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct HubRequest {
    /// Its id.
    pub request_id: String,
    /// The query asked.
    pub query: String,
    /// Its parameters.
    #[serde(default)]
    pub params: std::collections::BTreeMap<String, String>,
}

/// Waits up to `wait` (at most 30 s) for the hub's next request to this agency; its signature
/// is checked against the pinned receipt certificate (a request makes the agent run a
/// command: only the hub may ask).
pub fn next_request(
    client: &reqwest::blocking::Client,
    base: &str,
    token: Option<&str>,
    receipt_cert: &Path,
    wait: Duration,
) -> anyhow::Result<Option<HubRequest>> {
    let url = format!("{base}/v1/requests/next?wait={}", wait.as_secs().min(30));
    let mut req = client.get(&url).timeout(wait + Duration::from_secs(30));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send()?.error_for_status()?;
    if resp.status() == reqwest::StatusCode::NO_CONTENT {
        return Ok(None);
    }
    // A request is a few hundred bytes: more is not one.
    let body = verified_body(resp, &url, "request", receipt_cert, REQUEST_MAX)?;
    Ok(Some(
        serde_json::from_slice(&body).context("not a request document")?,
    ))
}

/// Tells the hub that request `id` cannot be answered, and why. `Ok(false)` when the hub
/// has closed it already (answered, failed or timed out).
pub fn report_failure(
    client: &reqwest::blocking::Client,
    base: &str,
    token: Option<&str>,
    id: &str,
    detail: &str,
) -> anyhow::Result<bool> {
    let url = format!("{base}/v1/requests/{id}/failure");
    let mut req = client
        .post(&url)
        .timeout(Duration::from_secs(60))
        .json(&serde_json::json!({ "detail": detail }));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send()?;
    match resp.status().as_u16() {
        200 => Ok(true),
        404 | 409 => Ok(false),
        status => anyhow::bail!("{url} answered HTTP {status}"),
    }
}
