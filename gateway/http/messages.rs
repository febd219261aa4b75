//! `POST /v1/messages` and `GET /v1/messages/{id}`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Body;
use axum::extract::{Extension, Path as UrlPath, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt;
use serde_json::json;
use tokio::io::AsyncWriteExt;

use super::problem::ApiError;
use super::{AppState, PeerCertificate};
use crate::pipeline::{Outcome, Payload};
use crate::sinks::Receipt;
use crate::store::{Channel, MessageId, Status};

/// Who is calling: from the bearer token and/or the client certificate, before the body.
fn authenticate(
    st: &AppState,
    peer: &PeerCertificate,
    headers: &HeaderMap,
) -> Result<String, ApiError> {
    let by_token = match headers.get(header::AUTHORIZATION) {
        None => None,
        Some(v) => {
            let v = v.to_str().unwrap_or_default();
            let token = v.strip_prefix("Bearer ").unwrap_or_default().trim();
            match st.token_agency(token) {
                Some(a) => Some(a),
                None => {
                    return Err(ApiError::new(
                        "unauthenticated",
                        "the bearer token is not valid (unknown, mistyped or revoked)",
                    ));
                }
            }
        }
    };
    let by_cert = match &peer.0 {
        None => None,
        Some(cert) => {
            let ring = st.gateway.keyring.get();
            let trust = &ring.trust;
            let now = SystemTime::now();
            let names: Vec<&str> = trust.agencies().collect();
            let found = names
                .into_iter()
                .find(|a| trust.check(a, cert, &[], now).is_ok())
                .map(str::to_owned);
            if found.is_none() && by_token.is_none() {
                return Err(ApiError::new(
                    "unauthenticated",
                    "the client certificate is not registered for any agency (or is expired or revoked)",
                ));
            }
            found
        }
    };
    let agency = match (by_token, by_cert) {
        (Some(t), Some(c)) if t != c => {
            return Err(ApiError::new(
                "forbidden",
                format!("the token is {t}'s but the client certificate is {c}'s"),
            ));
        }
        (Some(a), _) | (None, Some(a)) => a,
        (None, None) => {
            return Err(ApiError::new(
                "unauthenticated",
                "present a bearer token (Authorization: Bearer gw_...) or a registered client certificate",
            ));
        }
    };
    let ring = st.gateway.keyring.get();
    let info = ring.agencies.iter().find(|a| a.name == agency);
    if info.is_some_and(|i| i.require_client_certificate) && peer.0.is_none() {
        return Err(ApiError::new(
            "unauthenticated",
            format!("agency {agency} must present its client certificate"),
        ));
    }
    Ok(agency)
}

/// Why an upload could not be stored.
enum UploadError {
    TooLarge(u64),
    Client(String),
    Io(std::io::Error),
}

/// A received upload: in memory (holding its share of the memory budget until dropped) or in
/// a file.
enum Upload {
    Memory(
        Vec<u8>,
        #[allow(dead_code)] tokio::sync::OwnedSemaphorePermit,
    ),
    File(Incoming),
}

fn timed_out() -> Response {
    ApiError::new("request_timeout", "the upload took longer than allowed").into_response()
}

fn upload_failed(e: UploadError, agency: &str) -> Response {
    match e {
        UploadError::TooLarge(max) => ApiError::new(
            "payload_too_large",
            format!("the payload exceeds the limit for {agency} of {max} bytes"),
        )
        .into_response(),
        UploadError::Client(e) => ApiError::new(
            "request_timeout",
            format!("the upload was interrupted: {e}"),
        )
        .into_response(),
        UploadError::Io(e) => {
            tracing::error!(error = %e, "cannot store an upload");
            ApiError::new(
                "queue_unavailable",
                "the gateway cannot store uploads right now",
            )
            .into_response()
        }
    }
}

/// Reads a small body of `declared` bytes into memory, with the same limits as `write_body`.
async fn read_body(
    body: Body,
    declared: u64,
    max: u64,
    idle: std::time::Duration,
) -> Result<Vec<u8>, UploadError> {
    let mut out = Vec::with_capacity(usize::try_from(declared.min(max)).unwrap_or(0));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = next_chunk(&mut stream, idle).await? {
        if (out.len() + chunk.len()) as u64 > max {
            return Err(UploadError::TooLarge(max));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The next piece of an upload. A client that stops sending is cut off after `idle`: it holds
/// an upload slot, not a worker.
async fn next_chunk(
    stream: &mut axum::body::BodyDataStream,
    idle: std::time::Duration,
) -> Result<Option<axum::body::Bytes>, UploadError> {
    let Ok(next) = tokio::time::timeout(idle, stream.next()).await else {
        return Err(UploadError::Client(format!(
            "nothing received for {} s",
            idle.as_secs()
        )));
    };
    next.transpose()
        .map_err(|e| UploadError::Client(e.to_string()))
}

async fn write_body(
    body: Body,
    path: &Path,
    max: u64,
    idle: std::time::Duration,
) -> Result<u64, UploadError> {
    let mut file = tokio::fs::File::create(path)
        .await
        .map_err(UploadError::Io)?;
    let mut stream = body.into_data_stream();
    let mut n = 0u64;
    while let Some(chunk) = next_chunk(&mut stream, idle).await? {
        n += chunk.len() as u64;
        if n > max {
            return Err(UploadError::TooLarge(max));
        }
        file.write_all(&chunk).await.map_err(UploadError::Io)?;
    }
    file.flush().await.map_err(UploadError::Io)?;
    Ok(n)
}

/// Removes the upload file whatever happens.
struct Incoming(PathBuf);
impl Drop for Incoming {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn signed_receipt(st: &AppState, receipt: &Receipt, status: StatusCode) -> Response {
    let Some(fw) = &st.gateway.forwarding else {
        return ApiError::new("queue_unavailable", "the gateway is not forwarding").into_response();
    };
    match fw.receipts.sign(receipt) {
        Ok(signed) => {
            let mut resp = (status, signed.json).into_response();
            let h = resp.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            if let Ok(v) = HeaderValue::from_str(
                &base64::engine::general_purpose::STANDARD.encode(&signed.signature),
            ) {
                h.insert("gateway-receipt-signature", v);
            }
            if let Ok(v) =
                HeaderValue::from_str(&format!("/v1/messages/{}", receipt.gateway_message_id))
            {
                h.insert(header::LOCATION, v);
            }
            resp
        }
        Err(e) => {
            // The message is safely queued; only the receipt signature failed.
            tracing::error!(error = %e, "receipt signing failed");
            (status, Json(receipt)).into_response()
        }
    }
}

use axum::Json;

/// Reads and discards a little of a body we refuse before reading it, so that HTTP/2
/// clients get the answer instead of a stream reset; a larger body is cut off.
async fn refuse(body: Body, e: ApiError) -> Response {
    const DRAIN: usize = 256 * 1024;
    let mut stream = body.into_data_stream();
    let mut seen = 0usize;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len();
            if seen > DRAIN {
                break;
            }
        }
    })
    .await;
    e.into_response()
}

/// `POST /v1/messages`
pub async fn post(
    State(st): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let agency = match authenticate(&st, &peer, &headers) {
        Ok(a) => a,
        Err(e) => return refuse(body, e).await,
    };
    let cfg = &st.gateway.config;
    let max = crate::pipeline::payload_limit(&st.gateway.keyring.snapshot(), cfg, &agency);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared
        && len > max
    {
        let e = ApiError::new(
            "payload_too_large",
            format!("the payload is {len} bytes; the limit for {agency} is {max} bytes"),
        );
        return refuse(body, e).await;
    }
    let Ok(upload_slot) = st.uploads.clone().try_acquire_owned() else {
        let e = ApiError::new(
            "queue_unavailable",
            "the gateway is receiving as many payloads as it may; retry shortly",
        );
        return refuse(body, e).await;
    };
    // Small uploads whose size is declared stay in memory, within a byte budget shared by all
    // uploads; anything else is streamed to a file.
    let in_memory = declared
        .filter(|len| *len <= super::MEMORY_UPLOAD_MAX)
        .and_then(|len| {
            let kib = u32::try_from(len.div_ceil(1024).max(1)).ok()?;
            st.memory.clone().try_acquire_many_owned(kib).ok()
        });
    let upload = if let Some(budget) = in_memory {
        let read = tokio::time::timeout(
            cfg.http.request_timeout,
            read_body(body, declared.unwrap_or(0), max, cfg.http.idle_timeout),
        )
        .await;
        match read {
            Err(_) => return timed_out(),
            Ok(Err(e)) => return upload_failed(e, &agency),
            Ok(Ok(bytes)) => Upload::Memory(bytes, budget),
        }
    } else {
        let file = Incoming(st.incoming.join(format!("{}.sealed", MessageId::new())));
        let written = tokio::time::timeout(
            cfg.http.request_timeout,
            write_body(body, &file.0, max, cfg.http.idle_timeout),
        )
        .await;
        match written {
            Err(_) => return timed_out(),
            Ok(Err(e)) => return upload_failed(e, &agency),
            Ok(Ok(_)) => Upload::File(file),
        }
    };
    drop(upload_slot);
    // Processing is short (milliseconds for small payloads): wait for a slot rather than
    // refuse at once, but not forever.
    let permit = match tokio::time::timeout(
        std::time::Duration::from_secs(30),
        st.permits.clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(p)) => p,
        _ => {
            return ApiError::new(
                "queue_unavailable",
                "the gateway is processing as many payloads as it may; retry shortly",
            )
            .into_response();
        }
    };
    let gw = st.gateway.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let payload = match &upload {
            Upload::File(f) => Payload::File(&f.0),
            Upload::Memory(bytes, _) => Payload::Bytes {
                bytes,
                name: "upload.sealed",
            },
        };
        gw.process(&agency, Channel::Https, payload)
    })
    .await;
    match outcome {
        Err(e) => {
            tracing::error!(error = %e, "pipeline task failed");
            ApiError::new(
                "queue_unavailable",
                "internal error; nothing was kept: send again",
            )
            .into_response()
        }
        Ok(Outcome::Forwarded { receipt, .. }) => {
            signed_receipt(&st, &receipt, StatusCode::CREATED)
        }
        Ok(Outcome::Duplicate {
            receipt: Some(receipt),
            ..
        }) => signed_receipt(&st, &receipt, StatusCode::OK),
        Ok(Outcome::Duplicate {
            gateway_message_id,
            original_code,
            ..
        }) => {
            let code = original_code.unwrap_or_default();
            let r = crate::rejection::Rejection::new(
                crate::rejection::stable_code(&code),
                format!("this message was sent before and rejected ({code}); nothing changed"),
            );
            ApiError::from_rejection(r, Some(gateway_message_id)).into_response()
        }
        Ok(Outcome::Rejected {
            rejection,
            gateway_message_id,
            ..
        }) => ApiError::from_rejection(rejection, gateway_message_id).into_response(),
        Ok(Outcome::Accepted { .. }) => {
            ApiError::new("queue_unavailable", "the gateway is not forwarding").into_response()
        }
    }
}

/// `GET /v1/messages/{id}`: the sending agency only; others get 404.
pub async fn get(
    State(st): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Response {
    let agency = match authenticate(&st, &peer, &headers) {
        Ok(a) => a,
        Err(e) => return e.into_response(),
    };
    let not_found =
        || ApiError::new("not_found", format!("no message {id} from {agency}")).into_response();
    let Ok(mid) = id.parse::<MessageId>() else {
        return not_found();
    };
    let Some(fw) = &st.gateway.forwarding else {
        return not_found();
    };
    let record = match fw.store.get(&mid) {
        Ok(Some(r)) if r.agency == agency => r,
        Ok(_) => return not_found(),
        Err(e) => {
            tracing::error!(error = %e, "ledger read failed");
            return ApiError::new("queue_unavailable", "the ledger cannot be read right now")
                .into_response();
        }
    };
    let steps = fw.store.steps(&mid).unwrap_or_default();
    // What the sender should do now, in the words of the rejection catalog.
    let action = match (record.status, record.rejection_code.as_deref()) {
        (Status::InProgress, _) => Some("the message is being processed: ask again shortly"),
        (Status::Rejected, Some(code)) => Some(crate::rejection::action(code)),
        _ => None,
    };
    Json(json!({
        "gateway_message_id": record.id,
        "agency": record.agency,
        "agency_message_id": record.agency_message_id,
        "status": record.status.as_str(),
        "sha256": record.sha256,
        "size": record.size,
        "channel": record.channel.as_str(),
        "rejection_code": record.rejection_code,
        "rejection_detail": record.rejection_detail,
        "action": action,
        "receipt": record.receipt().ok().flatten(),
        "steps": steps,
    }))
    .into_response()
}
