//! The HTML the authorization and logout endpoints show (login, consent, error, sign-out), its stylesheet,
//! and the headers every page carries: a content security policy that loads nothing but that stylesheet and
//! forbids framing (RFC 9700 §4.16), no caching (pages carry CSRF tokens), no referrer.

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::authorize::request::AuthorizationRequest;
use crate::state::AppState;
use crate::store::ClientRecord;

/// The pages' one stylesheet, served by the server itself (no CDN; the pages need no JavaScript).
const STYLESHEET: &str = include_str!("../../assets/style.css");

/// The stylesheet's route (pages link it relatively, so it follows an issuer path), and the home page.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/assets/style.css", get(stylesheet))
        .route("/", get(home))
}

#[derive(Template)]
#[template(path = "home.html")]
struct HomePage<'a> {
    issuer: &'a str,
}

/// `GET /`: what this server is, and where its metadata is.
async fn home(axum::extract::State(state): axum::extract::State<AppState>) -> Response {
    html(
        StatusCode::OK,
        HomePage {
            issuer: &state.settings.base_url,
        }
        .render(),
    )
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=86400"),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        STYLESHEET,
    )
        .into_response()
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage<'a> {
    action: &'a str,
    client_id: &'a str,
    client_name: &'a str,
    fields: &'a [(&'static str, String)],
    csrf_token: &'a str,
    error: Option<&'a str>,
    username: &'a str,
}

/// A scope as the consent page shows it: what it lets the application do, and its name.
struct ScopeLine<'a> {
    name: &'a str,
    description: std::borrow::Cow<'a, str>,
}

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    action: &'a str,
    client_id: &'a str,
    client_name: &'a str,
    username: &'a str,
    scopes: Vec<ScopeLine<'a>>,
    /// The API the access is for: shown only when the request asks for more than who the user is.
    audience: Option<&'a str>,
    fields: &'a [(&'static str, String)],
    csrf_token: &'a str,
    /// The application registered itself (RFC 7591, or a metadata document): its name is its developer's
    /// claim.
    self_registered: bool,
    /// The host of its metadata document, when a document registered it.
    document_host: Option<String>,
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    message: &'a str,
}

/// The scopes a consent page lists, each with what it lets the application do.
fn scope_lines<'a>(
    state: &'a AppState,
    scope: &'a auth_core::scope::ScopeSet,
) -> Vec<ScopeLine<'a>> {
    scope
        .iter()
        .map(|name| ScopeLine {
            name,
            description: state.settings.scope_descriptions.describe(name),
        })
        .collect()
}

/// The API a consent page names: only when the request asks for more than who the user is.
fn shown_audience<'a>(scope: &auth_core::scope::ScopeSet, audience: &'a str) -> Option<&'a str> {
    scope
        .iter()
        .any(|scope| !crate::tokens::openid::USER_SCOPES.contains(&scope))
        .then_some(audience)
}

/// The name a page shows for a client: its registered display name, else its id.
fn display_name(client: &ClientRecord) -> &str {
    client.name.as_deref().unwrap_or(client.client_id.as_str())
}

/// The pages' policy: nothing loads but the server's own stylesheet, no script runs, no framing (RFC 9700
/// §4.16), no `<base>`. There is no `form-action`: browsers apply it to every redirect that follows a form
/// post, so it would have to list the origin of every redirect URI and of wherever a client's callback
/// forwards the browser next (another origin, a native app's scheme), and a page that runs no script and shows
/// no input of the client's gains little from it.
const CONTENT_SECURITY_POLICY: &str =
    "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'";

/// A page with the security headers: no caching (pages carry CSRF tokens), no referrer.
fn html(status: StatusCode, body: Result<String, askama::Error>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(error) => {
            tracing::error!(%error, "template rendering failed");
            return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
        }
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response();
    let headers = response.headers_mut();
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Where the forms post.
fn action(state: &AppState) -> String {
    format!("{}/authorize", state.settings.base_url)
}

/// Adds `Retry-After: seconds` (RFC 9110 §10.2.3) to a page.
pub fn with_retry_after(mut response: Response, seconds: i64) -> Response {
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// An error page; `message` is our own text (never the client's input), escaped all the same.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    html(status, ErrorPage { message }.render())
}

/// The login form for `request`, with an optional message and the username to fill in again.
pub fn login_page(
    state: &AppState,
    request: &AuthorizationRequest,
    csrf_token: &str,
    error: Option<&str>,
    status: StatusCode,
    username: &str,
) -> Response {
    let action = action(state);
    html(
        status,
        LoginPage {
            action: &action,
            client_id: request.client().client_id.as_str(),
            client_name: display_name(request.client()),
            fields: &request.fields,
            csrf_token,
            error,
            username,
        }
        .render(),
    )
}

/// The consent form for `request`, shown to `username`.
pub fn consent_page(
    state: &AppState,
    request: &AuthorizationRequest,
    csrf_token: &str,
    username: &str,
) -> Response {
    let action = action(state);
    let scopes = scope_lines(state, &request.scope);
    html(
        StatusCode::OK,
        ConsentPage {
            action: &action,
            client_id: request.client().client_id.as_str(),
            client_name: display_name(request.client()),
            username,
            scopes,
            audience: shown_audience(&request.scope, &request.audience),
            fields: &request.fields,
            csrf_token,
            self_registered: request.client().registered != crate::store::Registered::Operator,
            document_host: document_host(request.client()),
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "device.html")]
struct DevicePage<'a> {
    action: &'a str,
    csrf_token: &'a str,
    user_code: &'a str,
    error: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "device_consent.html")]
struct DeviceConsentPage<'a> {
    action: &'a str,
    client_id: &'a str,
    client_name: &'a str,
    username: &'a str,
    user_code: &'a str,
    scopes: Vec<ScopeLine<'a>>,
    audience: Option<&'a str>,
    csrf_token: &'a str,
    self_registered: bool,
    /// The host of its metadata document, when a document registered it.
    document_host: Option<String>,
}

#[derive(Template)]
#[template(path = "device_done.html")]
struct DeviceDonePage<'a> {
    client_name: &'a str,
    approved: bool,
}

/// Where the device pages post.
fn device_action(state: &AppState) -> String {
    format!("{}/device", state.settings.base_url)
}

/// The device page: a form for the user code (RFC 8628 §3.3), filled with `user_code` (never submitted
/// by itself).
pub fn device_page(
    state: &AppState,
    csrf_token: &str,
    user_code: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let action = device_action(state);
    html(
        status,
        DevicePage {
            action: &action,
            csrf_token,
            user_code,
            error,
        }
        .render(),
    )
}

/// The login form of the device flow: the same form as at /authorize, posting to /device with the code.
pub fn device_login_page(
    state: &AppState,
    client: &ClientRecord,
    user_code: &str,
    csrf_token: &str,
    error: Option<&str>,
    status: StatusCode,
    username: &str,
) -> Response {
    let action = device_action(state);
    let fields = [("user_code", user_code.to_owned())];
    html(
        status,
        LoginPage {
            action: &action,
            client_id: client.client_id.as_str(),
            client_name: display_name(client),
            fields: &fields,
            csrf_token,
            error,
            username,
        }
        .render(),
    )
}

/// The device consent page (RFC 8628 §5.4): the client, the code the user must check against their
/// device, and what the access allows; always shown.
pub fn device_consent_page(
    state: &AppState,
    client: &ClientRecord,
    record: &crate::store::DeviceAuthorizationRecord,
    csrf_token: &str,
    username: &str,
) -> Response {
    let action = device_action(state);
    let user_code = crate::authorize::device::display(&record.user_code);
    let scopes = scope_lines(state, &record.scope);
    html(
        StatusCode::OK,
        DeviceConsentPage {
            action: &action,
            client_id: client.client_id.as_str(),
            client_name: display_name(client),
            username,
            user_code: &user_code,
            scopes,
            audience: shown_audience(&record.scope, &record.audience),
            csrf_token,
            self_registered: client.registered != crate::store::Registered::Operator,
            document_host: document_host(client),
        }
        .render(),
    )
}

/// The host of a document client's metadata document.
fn document_host(client: &ClientRecord) -> Option<String> {
    (client.registered == crate::store::Registered::Document)
        .then(|| url::Url::parse(client.client_id.as_str()).ok())
        .flatten()
        .and_then(|url| url.host_str().map(str::to_owned))
}

/// After the device consent: "return to your device", or the denial.
pub fn device_done_page(client: &ClientRecord, approved: bool) -> Response {
    html(
        StatusCode::OK,
        DeviceDonePage {
            client_name: display_name(client),
            approved,
        }
        .render(),
    )
}

#[derive(Template)]
#[template(path = "logout.html")]
struct LogoutPage<'a> {
    action: &'a str,
    client_name: Option<&'a str>,
    fields: &'a [(&'static str, String)],
    csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOutPage;

/// The logout confirmation (RP-Initiated Logout §2: a request without a valid `id_token_hint`).
pub fn logout_page(
    state: &AppState,
    client: Option<&ClientRecord>,
    fields: &[(&'static str, String)],
    csrf_token: &str,
) -> Response {
    let action = format!("{}/logout", state.settings.base_url);
    html(
        StatusCode::OK,
        LogoutPage {
            action: &action,
            client_name: client.map(display_name),
            fields,
            csrf_token,
        }
        .render(),
    )
}

/// After a logout without a post-logout redirect URI.
pub fn signed_out_page() -> Response {
    html(StatusCode::OK, SignedOutPage.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pages_cannot_be_framed_and_escape_what_they_show() {
        let response = error_page(StatusCode::BAD_REQUEST, "<script>alert(1)</script>");
        assert_eq!(response.headers()[header::X_FRAME_OPTIONS], "DENY");
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(
            csp,
            "default-src 'none'; style-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'",
            "no script, only our stylesheet, no framing, and no form-action to break a redirect chain"
        );
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert!(
            body.contains("&#60;script&#62;") || body.contains("&lt;script&gt;"),
            "{body}"
        );
        assert!(!body.contains("<script>"), "{body}");
    }

    #[test]
    fn the_stylesheet_follows_dark_mode_and_narrow_screens() {
        assert!(STYLESHEET.contains("@media (prefers-color-scheme: dark)"));
        assert!(STYLESHEET.contains("@media (max-width: 30rem)"));
    }
}
