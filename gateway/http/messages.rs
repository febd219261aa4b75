//! `POST /v1/messages` and `GET /v1/messages/{id}`.

use std::sync::Arc;

use axum::Json;
use axum::body::{Body, BodyDataStream};
use axum::extract::{Extension, Path as UrlPath, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use futures_util::StreamExt;
use serde_json::json;

use super::auth::authenticate;
use super::problem::ApiError;
use super::upload::{Incoming, Pace, UploadError, answer_holding, read_body, write_body};
use super::{AppState, PeerCertificate};
use crate::message::AgencyName;
use crate::message::Receipt;
use crate::message::{Channel, MessageId};
use crate::pipeline::{Outcome, Payload};
use crate::rejection::{Code, Rejection};
use crate::store::Status;

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
    ApiError::new(Code::RequestTimeout, "the upload took longer than allowed").into_response()
}

async fn upload_failed(e: UploadError, agency: &str, stream: BodyDataStream) -> Response {
    let too_large = matches!(e, UploadError::TooLarge(_));
    let e = match e {
        UploadError::TooLarge(max) => ApiError::new(
            Code::PayloadTooLarge,
            format!("the payload exceeds the limit for {agency} of {max} bytes"),
        ),
        UploadError::Idle(idle) => ApiError::new(
            Code::RequestTimeout,
            format!(
                "nothing of the body arrived for {} s: send again on a working connection",
                idle.as_secs()
            ),
        ),
        UploadError::TooSlow {
            received,
            elapsed,
            min_rate,
        } => ApiError::new(
            Code::RequestTimeout,
            format!(
                "the body arrived too slowly ({received} bytes in {:.0} s; the minimum is {min_rate} bytes/s on average): send again on a faster connection",
                elapsed.as_secs_f64()
            ),
        ),
        UploadError::Malformed(why) => ApiError::new(
            Code::MalformedRequest,
            format!("the request body is not valid HTTP framing ({why}): fix the client"),
        ),
        UploadError::Interrupted(why) => ApiError::new(
            Code::RequestTimeout,
            format!("the upload was interrupted ({why}): send again"),
        ),
        UploadError::Io(e) => {
            tracing::error!(error = %e, "cannot store an upload");
            ApiError::new(
                Code::QueueUnavailable,
                "the gateway cannot store uploads right now",
            )
        }
    };
    if too_large {
        // The client is still sending: let it finish, as for a declared size over the limit.
        refuse(stream, e.into_response()).await
    } else {
        answer_holding(e.into_response(), stream)
    }
}

fn signed_receipt(st: &AppState, receipt: &Receipt, status: StatusCode) -> Response {
    let Some(fw) = &st.gateway.forwarding else {
        return ApiError::new(Code::QueueUnavailable, "the gateway is not forwarding")
            .into_response();
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

/// Answers a request whose body we will not use. Some of the body is read and discarded
/// first, a whole body up to `DRAIN` (10 s at most): an HTTP/1.1 client still sending
/// sees a broken pipe instead of the answer, and HTTP/2 clients such as curl before 8.x treat
/// the reset that follows an early answer as a failure even when it says NO_ERROR. The rest is
/// held until the answer is sent (see `answer_holding`).
pub async fn refuse(mut stream: BodyDataStream, response: Response) -> Response {
    let (bound, time) = (DRAIN, std::time::Duration::from_secs(10));
    let mut seen = 0u64;
    let _ = tokio::time::timeout(time, async {
        while let Some(Ok(chunk)) = stream.next().await {
            seen += chunk.len() as u64;
            if seen > bound {
                break;
            }
        }
    })
    .await;
    answer_holding(response, stream)
}

/// Most of a refused body read to let the client finish sending (bytes).
const DRAIN: u64 = 16 << 20;

/// `POST /v1/messages`: authenticate, receive the body within the agency's limit, run the
/// pipeline on a blocking thread, answer with the signed receipt or the problem. With
/// `?check=true`, every check runs and nothing is kept or forwarded (see `answer_check`).
pub async fn post(
    State(st): State<Arc<AppState>>,
    Extension(peer): Extension<PeerCertificate>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let check = match check_only(query.as_deref()) {
        Ok(check) => check,
        Err(e) => return refuse(body.into_data_stream(), e.into_response()).await,
    };
    let agency = match authenticate(&st, &peer, &headers) {
        Ok(a) => a,
        Err(e) => return refuse(body.into_data_stream(), e.into_response()).await,
    };
    let request = match super::requests::answering(&st, &agency, &headers).await {
        Ok(r) => r,
        Err(refused) => return refuse(body.into_data_stream(), refused).await,
    };
    let from = From {
        agency,
        channel: Channel::Https,
        person: None,
        request,
    };
    accept(&st, from, check, &headers, body).await
}

/// Who sends an upload that was authenticated.
pub struct From {
    /// The agency.
    pub agency: AgencyName,
    /// The channel (`https`, or `web` for the upload page).
    pub channel: Channel,
    /// The person signed in to the upload page, if any.
    pub person: Option<String>,
    /// The hub's request the upload answers, if any.
    pub request: Option<super::requests::Answering>,
}

/// Receives and processes an authenticated upload (or only checks it): the signed receipt,
/// the check's verdict, or the problem.
pub async fn accept(
    st: &AppState,
    from: From,
    check: bool,
    headers: &HeaderMap,
    body: Body,
) -> Response {
    let upload = match receive(st, &from.agency, headers, body).await {
        Ok(upload) => upload,
        Err(refused) => return refused,
    };
    let (agency, request) = (from.agency.clone(), from.request.clone());
    match process(st, from, upload, check).await {
        Ok(outcome) if check => answer_check(outcome),
        Ok(outcome) => {
            if let Some(request) = &request {
                super::requests::settle(st, &agency, request, &outcome).await;
            }
            answer(st, outcome)
        }
        Err(refused) => refused,
    }
}

/// Whether the query asks for a check only (`check=true`); any other parameter, or another
/// value, is refused rather than ignored: a client that meant to check must not send for real.
pub fn check_only(query: Option<&str>) -> Result<bool, ApiError> {
    let mut check = false;
    for pair in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=').unwrap_or((pair, "")) {
            ("check", "true") => check = true,
            ("check", "false") => check = false,
            ("check", other) => {
                return Err(ApiError::new(
                    Code::MalformedRequest,
                    format!("check={other}: the parameter check is true or false"),
                ));
            }
            (name, _) => {
                return Err(ApiError::new(
                    Code::MalformedRequest,
                    format!(
                        "unknown query parameter {name:?}: POST /v1/messages takes only check=true|false"
                    ),
                ));
            }
        }
    }
    Ok(check)
}

/// Receives the body: refused at once when its declared size is over the limit or no upload
/// slot is free; small declared bodies stay in memory, within a byte budget shared by all
/// uploads; anything else is streamed to a file.
async fn receive(
    st: &AppState,
    agency: &AgencyName,
    headers: &HeaderMap,
    body: Body,
) -> Result<Upload, Response> {
    let cfg = &st.gateway.config;
    let max = crate::pipeline::payload_limit(&st.gateway.keyring.snapshot(), cfg, agency);
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(len) = declared
        && len > max
    {
        let e = ApiError::new(
            Code::PayloadTooLarge,
            format!("the payload is {len} bytes; the limit for {agency} is {max} bytes"),
        );
        return Err(refuse(body.into_data_stream(), e.into_response()).await);
    }
    let _upload_slot = match st.uploads.try_acquire(agency) {
        Ok(slot) => slot,
        Err(busy) => {
            let e = ApiError::new(Code::Busy, busy.to_string());
            return Err(refuse(body.into_data_stream(), e.into_response()).await);
        }
    };
    let pace = Pace::new(&cfg.http);
    let mut stream = body.into_data_stream();
    let in_memory = declared
        .filter(|len| *len <= super::MEMORY_UPLOAD_MAX)
        .and_then(|len| {
            let kib = u32::try_from(len.div_ceil(1024).max(1)).ok()?;
            st.memory.clone().try_acquire_many_owned(kib).ok()
        });
    let received = if let Some(budget) = in_memory {
        let read = read_body(&mut stream, declared.unwrap_or(0), max, pace);
        tokio::time::timeout(cfg.http.request_timeout, read)
            .await
            .map(|r| r.map(|bytes| Upload::Memory(bytes, budget)))
    } else {
        let file = Incoming(st.incoming.join(format!("{}.sealed", MessageId::new())));
        let written = write_body(&mut stream, &file.0, max, pace);
        tokio::time::timeout(cfg.http.request_timeout, written)
            .await
            .map(|r| r.map(|_| Upload::File(file)))
    };
    match received {
        Err(_) => Err(answer_holding(timed_out(), stream)),
        Ok(Err(e)) => Err(upload_failed(e, agency, stream).await),
        Ok(Ok(upload)) => Ok(upload),
    }
}

/// Runs the pipeline on a blocking thread once a processing slot is free. Processing is short
/// (milliseconds for small payloads): wait for a slot rather than refuse at once, but not
/// forever.
async fn process(
    st: &AppState,
    from: From,
    upload: Upload,
    check: bool,
) -> Result<Outcome, Response> {
    let permit = tokio::time::timeout(
        std::time::Duration::from_secs(30),
        st.permits.clone().acquire_owned(),
    )
    .await;
    let Ok(Ok(permit)) = permit else {
        return Err(ApiError::new(
            Code::Busy,
            "the gateway is processing as many payloads as it may; retry shortly",
        )
        .into_response());
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
        let person = from.person.as_deref();
        let request = from.request.as_ref().map(|r| r.id.as_str());
        if check {
            gw.check_only(&from.agency, from.channel, payload, person)
        } else {
            gw.process_by(&from.agency, from.channel, payload, person, request)
        }
    })
    .await;
    outcome.map_err(|e| {
        tracing::error!(error = %e, "pipeline task failed");
        ApiError::new(
            Code::InternalError,
            "internal error; nothing was kept: send again",
        )
        .into_response()
    })
}

/// The answer to an upload: `201` with the signed receipt, `200` with the original receipt for
/// a resend, or the problem.
fn answer(st: &AppState, outcome: Outcome) -> Response {
    match outcome {
        Outcome::Forwarded { receipt, .. } => signed_receipt(st, &receipt, StatusCode::CREATED),
        Outcome::Duplicate {
            receipt: Some(receipt),
            ..
        } => signed_receipt(st, &receipt, StatusCode::OK),
        Outcome::Duplicate {
            gateway_message_id,
            original_code,
            ..
        } => {
            let r = rejected_before(&original_code.unwrap_or_default());
            ApiError::from_rejection(r, Some(gateway_message_id)).into_response()
        }
        Outcome::Rejected {
            rejection,
            gateway_message_id,
            ..
        } => ApiError::from_rejection(rejection, gateway_message_id).into_response(),
        Outcome::Accepted { .. } => {
            ApiError::new(Code::QueueUnavailable, "the gateway is not forwarding").into_response()
        }
    }
}

/// The answer to a check-only upload: `200` with what the checks established (as a receipt
/// would name it, but no receipt: nothing was forwarded), or the problem a real upload would
/// get, without a ledger id (nothing was recorded).
fn answer_check(outcome: Outcome) -> Response {
    match outcome {
        Outcome::Accepted { facts } | Outcome::Forwarded { facts, .. } => {
            let mut body = json!({ "outcome": "passed", "check_only": true });
            if let (Some(obj), Ok(serde_json::Value::Object(facts))) =
                (body.as_object_mut(), serde_json::to_value(&facts))
            {
                obj.extend(facts);
                obj.remove("gateway_message_id");
            }
            (StatusCode::OK, Json(body)).into_response()
        }
        Outcome::Rejected { rejection, .. } => {
            ApiError::from_rejection(rejection, None).into_response()
        }
        Outcome::Duplicate { .. } => ApiError::new(
            Code::InternalError,
            "a check-only run answered as a resend; nothing was kept",
        )
        .into_response(),
    }
}

/// The refusal of a resend of a message that was rejected with `code`.
fn rejected_before(code: &str) -> Rejection {
    match Code::parse(code) {
        Some(known) => Rejection::new(
            known,
            format!("this message was sent before and rejected ({code}); nothing changed"),
        ),
        // Written by a newer gateway sharing the ledger: say so rather than guess.
        None => {
            tracing::error!(
                code,
                "the ledger holds a rejection code this version does not know"
            );
            Rejection::new(
                Code::InternalError,
                format!(
                    "this message was sent before and rejected with code {code}, which this version of the gateway does not know"
                ),
            )
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
        || ApiError::new(Code::NotFound, format!("no message {id} from {agency}")).into_response();
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
            return ApiError::new(
                Code::QueueUnavailable,
                "the ledger cannot be read right now",
            )
            .into_response();
        }
    };
    let steps = fw.store.steps(&mid).unwrap_or_default();
    // The queue's metadata says how the forwarded XML is encoded.
    let encoding = match record.status {
        Status::Forwarded => fw.sink.published(&mid).ok().flatten().map(|m| m.encoding),
        _ => None,
    };
    // Where the XML was wrong, as the refusal said (absent for other refusals).
    let located = match record.status {
        Status::Rejected => fw.store.violations(&mid).unwrap_or_else(|e| {
            tracing::error!(error = %e, "ledger read of violations failed");
            None
        }),
        _ => None,
    };
    // What the sender should do now, in the words of the rejection catalog.
    let action = match (record.status, record.rejection_code.as_deref()) {
        (Status::InProgress, _) => Some("the message is being processed: ask again shortly"),
        (Status::Rejected, Some(code)) => Code::parse(code).map(Code::action),
        _ => None,
    };
    Json(json!({
        "gateway_message_id": record.id,
        "agency": record.agency,
        "agency_message_id": record.agency_message_id,
        "status": record.status.as_str(),
        "sha256": record.sha256,
        "size": record.size,
        "encoding": encoding,
        "channel": record.channel.as_str(),
        "rejection_code": record.rejection_code,
        "rejection_detail": record.rejection_detail,
        "violations": located.as_ref().map(|l| &l.violations),
        "truncated": located.as_ref().map(|l| l.truncated),
        "action": action,
        "receipt": record.receipt().ok().flatten(),
        "steps": steps,
    }))
    .into_response()
}
