//! `GET /logout` and `POST /logout` (OpenID Connect RP-Initiated Logout 1.0): map `crate::authorize::logout`'s
//! decisions to the confirmation page, the signed-out page, cookies and redirects.

use axum::Router;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use super::cookies::{Csrf, clear_session_cookie, session_cookie};
use super::form::OAuthForm;
use super::outcome::{failure, redirect, refusal};
use super::pages::{error_page, logout_page, signed_out_page};
use crate::authorize::csrf::Form;
use crate::authorize::logout::{self, Step};
use crate::params::Params;
use crate::state::AppState;

/// The routes of this module.
pub fn router() -> Router<AppState> {
    Router::new().route("/logout", get(logout_get).post(logout_post))
}

async fn logout_get(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let params = Params::parse(query.unwrap_or_default().as_bytes());
    handle(&state, &headers, &params, Method::Get).await
}

async fn logout_post(
    State(state): State<AppState>,
    headers: HeaderMap,
    OAuthForm(params): OAuthForm,
) -> Response {
    handle(&state, &headers, &params, Method::Post).await
}

/// How the request came: only a form post can confirm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Method {
    Get,
    Post,
}

async fn handle(
    state: &AppState,
    headers: &HeaderMap,
    params: &Params,
    method: Method,
) -> Response {
    let request = match logout::validate(state, params).await {
        Ok(request) => request,
        Err(error) => return refusal(state, error),
    };
    let cookie = session_cookie(state, headers);
    let confirmed = method == Method::Post && params.get("confirm").ok().flatten() == Some("yes");
    if confirmed && Csrf::of_post(state, headers, params, Form::Logout).is_none() {
        return error_page(
            StatusCode::FORBIDDEN,
            "The form has expired or did not come from this site.",
        );
    }
    if !confirmed {
        match logout::step(state, &request, cookie).await {
            Ok(Step::SignOut) => {}
            Ok(Step::Confirm) => {
                let csrf = match Csrf::of_page(state, headers) {
                    Ok(csrf) => csrf,
                    Err(error) => return failure(&error),
                };
                let mut response = logout_page(
                    state,
                    request.client.as_deref(),
                    &request.fields,
                    &csrf.token(state, Form::Logout),
                );
                csrf.set_cookie(&mut response, state);
                return response;
            }
            Err(error) => return failure(&error),
        }
    }
    let signed_out = match logout::sign_out(state, &request, cookie).await {
        Ok(signed_out) => signed_out,
        Err(error) => return failure(&error),
    };
    let mut response = match &signed_out.redirect {
        Some(to) => redirect(to),
        None => signed_out_page(),
    };
    // A cookie is cleared only when its session ended here.
    if signed_out.ended {
        clear_session_cookie(&mut response, state);
    }
    response
}
