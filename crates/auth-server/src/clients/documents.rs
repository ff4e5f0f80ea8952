//! Clients named by their client ID metadata document (draft-ietf-oauth-client-id-metadata-document):
//! with `--client-id-metadata-documents`, a `client_id` that is an https URL is fetched
//! ([`super::document_fetch`]), checked under the rules of an open registration (RFC 7591 §2, the one client
//! rule set), and stored as a client marked `document`, refreshed when its cache expires. Handlers call
//! [`ensure`] before they look the client up; everything after is the path of any other client.

use serde_json::Value;
use service_kit::telemetry::untrusted;

use super::document_fetch::{self, FetchError};
use super::dynamic::{self, Allowance};
use crate::protection::source::RequestSource;
use crate::state::AppState;
use crate::store::{Registered, StoreError};

/// How long an id that the operator deleted (`client delete`) is refused before its document may register
/// it again.
pub const DELETED_REFUSED_SECONDS: i64 = 86_400;

/// Why a document's client cannot be used now.
#[derive(Debug, thiserror::Error)]
pub enum DocumentRefusal {
    /// Unreachable, too slow, too big, redirecting, invalid or refused: never cached.
    #[error("the client's metadata document cannot be used: {0}")]
    Unusable(String),
    /// This source's fetches (10 a minute, 4 at once) or all fetches (32 at once) are used up.
    #[error("too many metadata documents are being fetched; try again later")]
    Busy { retry_after: i64 },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<DocumentRefusal> for crate::error::Error {
    /// At the JSON endpoints: an unusable document is an unknown client (401 `invalid_client`).
    fn from(refusal: DocumentRefusal) -> Self {
        match refusal {
            DocumentRefusal::Unusable(_) => crate::error::oauth(
                auth_core::wire::ErrorCode::InvalidClient,
                refusal.to_string(),
            ),
            DocumentRefusal::Busy { retry_after } => Self::TooMany { retry_after },
            DocumentRefusal::Store(error) => Self::Store(error),
        }
    }
}

/// Whether `client_id` names a metadata document this server would fetch.
pub fn names_document(state: &AppState, client_id: &str) -> bool {
    state.settings.client_id_metadata_documents
        && document_fetch::is_document_url(client_id, state.documents.loopback())
}

/// Makes sure that the client a metadata-document `client_id` names is stored and fresh: fetched at its
/// first use and whenever its cache expired. Any other `client_id` (or the feature off) passes untouched; so
/// does a URL that the operator registered as a client of their own.
pub async fn ensure(
    state: &AppState,
    client_id: &str,
    source: RequestSource,
) -> Result<(), DocumentRefusal> {
    if !names_document(state, client_id) {
        return Ok(());
    }
    let now = state.clock.now();
    let stored = match state.clients.get(state.store.as_ref(), client_id).await? {
        Some(client) if client.registered != Registered::Document => return Ok(()),
        // Fresh, and still stored (`client delete` or the idle purge may have removed it since).
        Some(_) if state.documents.fresh(client_id, now) => return Ok(()),
        stored => stored.is_some(),
    };
    // When the fetches are used up (by this source, or by everyone's slow documents), a client already
    // stored is served as it was stored and refreshed at a later request: a flood of new documents cannot
    // lock out the clients that exist. Only a document never seen waits (429).
    let busy = |retry_after: i64| {
        if stored {
            Ok(())
        } else {
            Err(DocumentRefusal::Busy { retry_after })
        }
    };
    if let Err(retry_after) = state.throttle.count_document_fetch(source.key, now) {
        return busy(retry_after);
    }
    let Some(_place) = state.documents.enter(source.key) else {
        return busy(5);
    };
    let fetched = state
        .documents
        .fetch(client_id)
        .await
        .map_err(|FetchError(why)| DocumentRefusal::Unusable(why))?;
    let client = client_of(state, client_id, fetched.document).await?;
    if !state
        .store
        .upsert_document_client(&client, DELETED_REFUSED_SECONDS, now)
        .await
        .map_err(|error| match error {
            StoreError::Rejected(_) => {
                DocumentRefusal::Unusable("a member holds a value that cannot be stored".into())
            }
            error => DocumentRefusal::Store(error),
        })?
    {
        return Err(DocumentRefusal::Unusable(
            "the operator deleted this client less than a day ago".into(),
        ));
    }
    tracing::info!(target: "audit", event = "client_registered", client_id = &*untrusted(client_id), outcome = "document", "client registered by its metadata document");
    // This replica reads the new record at once; the others when their own copy of the document expires.
    state.clients.forget(&client.client_id);
    state.documents.remember(client_id, now + fetched.fresh_for);
    Ok(())
}

/// The client a document describes, under the rules of an open registration: its `client_id` is the URL
/// exactly, it authenticates with `none` (the default) or `private_key_jwt` with its keys inline, and it has
/// no secret.
async fn client_of(
    state: &AppState,
    url: &str,
    mut document: serde_json::Map<String, Value>,
) -> Result<crate::store::ClientRecord, DocumentRefusal> {
    let unusable = |why: &str| DocumentRefusal::Unusable(why.to_owned());
    if document.get("client_id").and_then(Value::as_str) != Some(url) {
        return Err(unusable("its client_id is not the document's URL"));
    }
    if document.contains_key("client_secret") || document.contains_key("client_secret_expires_at") {
        return Err(unusable("a document never holds a client_secret"));
    }
    if document.contains_key("jwks_uri") {
        return Err(unusable("a document registers its keys inline, as jwks"));
    }
    match document
        .entry("token_endpoint_auth_method")
        .or_insert_with(|| Value::from("none"))
        .as_str()
    {
        Some("none" | "private_key_jwt") => {}
        _ => {
            return Err(unusable(
                "token_endpoint_auth_method is none or private_key_jwt",
            ));
        }
    }
    let scopes = super::registrar::policy_scopes(state).await?;
    let allowance = Allowance {
        trusted: false,
        jwks_uri_allowed: false,
        scopes: &scopes,
        audience: &state.settings.default_audience,
    };
    let body = serde_json::to_vec(&Value::Object(document)).unwrap_or_default();
    // Checked under a stand-in id (an operator's ids hold no `:`); the URL was checked as a document URL.
    let mut registration = dynamic::register(&body, "metadata-document", &allowance, None)
        .map_err(|error| DocumentRefusal::Unusable(error.description))?;
    registration.client.client_id = auth_core::id::ClientId::from_trusted(url);
    registration.client.registered = Registered::Document;
    Ok(registration.client)
}
