//! The console (`/console`), for operators and admins.

use std::sync::Arc;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};

use super::Web;
use super::guard;
use super::pages;
use crate::accounts::Role;

/// `GET /console`
pub async fn page(State(web): State<Arc<Web>>, headers: HeaderMap) -> Response {
    match guard::page_for(&web, &headers, &[Role::Operator, Role::Admin]) {
        Ok(who) => {
            let page = pages::console(&who, &web);
            who.finish(page.into_response())
        }
        Err(elsewhere) => *elsewhere,
    }
}
