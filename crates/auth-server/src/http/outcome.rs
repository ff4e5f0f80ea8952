//! How the typed outcomes of the authorization and logout endpoints become HTTP: a redirect's `Location` is
//! built here and only here, an error redirect is counted here (once) in `auth_oauth_errors_total`, and a
//! server-side failure is a fixed page with its cause in the log.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::pages::error_page;
use crate::authorize::outcome::{Redirect, Refusal};
use crate::error::Error;
use crate::state::AppState;

/// The URI with the redirect's parameters appended to its own query (RFC 6749 §3.1.2: the registered query
/// is kept). `None` when the stored URI no longer parses (edited in the database by hand).
pub fn location(redirect: &Redirect) -> Option<String> {
    let mut url = url::Url::parse(&redirect.to).ok()?;
    if !redirect.params.is_empty() {
        let mut query = url.query_pairs_mut();
        for (name, value) in &redirect.params {
            query.append_pair(name, value);
        }
    }
    Some(url.to_string())
}

/// A 303 to an authorization or logout response (RFC 6749 §4.1.2), never cached.
pub fn redirect(redirect: &Redirect) -> Response {
    let Some(location) = location(redirect).and_then(|text| HeaderValue::from_str(&text).ok())
    else {
        return error_page(StatusCode::BAD_REQUEST, "The redirect URI is invalid.");
    };
    let mut response = StatusCode::SEE_OTHER.into_response();
    response.headers_mut().insert(header::LOCATION, location);
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The page or redirect of a refusal; an error for the client is counted by its code.
pub fn refusal(state: &AppState, refusal: Refusal) -> Response {
    match refusal {
        Refusal::Page(message) => error_page(StatusCode::BAD_REQUEST, &message),
        Refusal::Error(error) => {
            state.metrics.increment(
                "auth_oauth_errors_total",
                &[("error", error.error.error.as_str())],
            );
            redirect(&error.redirect())
        }
        Refusal::Failed(error) => failure(&error),
    }
}

/// A server-side failure: the cause to the log, a fixed page to the user.
pub fn failure(error: &Error) -> Response {
    tracing::error!(%error, "authorization request failed");
    error_page(
        StatusCode::SERVICE_UNAVAILABLE,
        "The service is temporarily unavailable. Try again shortly.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_keep_the_registered_query_escape_values_and_are_303_uncached() {
        let to = |params: Vec<(&'static str, String)>| Redirect {
            to: "http://app.example/cb?tenant=1".into(),
            params,
        };
        assert_eq!(
            location(&to(vec![("code", "a b".into()), ("state", "x&y".into())])).as_deref(),
            Some("http://app.example/cb?tenant=1&code=a+b&state=x%26y")
        );
        assert_eq!(
            location(&Redirect {
                to: "not a uri".into(),
                params: vec![]
            }),
            None
        );
        let response = redirect(&to(vec![("code", "c".into())]));
        assert_eq!(response.status(), StatusCode::SEE_OTHER);
        assert_eq!(
            response.headers()[header::LOCATION],
            "http://app.example/cb?tenant=1&code=c"
        );
        assert_eq!(response.headers()[header::CACHE_CONTROL], "no-store");
    }
}
