//! `application/problem+json` (RFC 9457) for every refusal, with the stable code.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::rejection::{Code, Rejection};

/// A refusal on the HTTPS channel.
#[derive(Debug)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The rejection (code, detail, action, violations).
    pub rejection: Box<Rejection>,
    /// The ledger id, when the message was recorded.
    pub message_id: Option<String>,
    /// Seconds after which a retry may succeed (`503`).
    pub retry_after: Option<u32>,
}

impl ApiError {
    /// A refusal with the status its code implies.
    pub fn new(code: Code, detail: impl Into<String>) -> ApiError {
        ApiError::from_rejection(Rejection::new(code, detail), None)
    }

    /// From a pipeline rejection.
    pub fn from_rejection(rejection: Rejection, message_id: Option<String>) -> ApiError {
        let status = StatusCode::from_u16(rejection.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let retry_after = rejection.code.retryable().then_some(1);
        ApiError {
            status,
            rejection: Box::new(rejection),
            message_id,
            retry_after,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let r = &self.rejection;
        let mut body = json!({
            "type": format!("urn:gateway:problem:{}", r.code),
            "title": r.code.as_str().replace('_', " "),
            "status": self.status.as_u16(),
            "code": r.code,
            "detail": r.detail,
            "action": r.action,
        });
        if !r.violations.is_empty() {
            body["violations"] = json!(r.violations);
            body["truncated"] = json!(r.truncated);
        }
        if let Some(id) = &self.message_id {
            body["gateway_message_id"] = json!(id);
        }
        let mut resp = (self.status, body.to_string()).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(s) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}
