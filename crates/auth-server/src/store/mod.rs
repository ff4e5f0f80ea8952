//! Storage behind traits: handlers and the grant logic see these traits, never a pool. The SQL lives in
//! [`sql`], one implementation per back-end (SQLite and PostgreSQL). Nothing here knows HTTP.

use async_trait::async_trait;
use auth_core::id::{ClientId, FamilyId, Jkt, UnixTime, UserId};
use auth_core::keys::SigningAlgorithm;
use auth_core::scope::ScopeSet;
use auth_core::secret::SecretDigest;
use auth_core::wire::GrantType;

pub mod sql;

/// A storage failure. Client input never causes one; they mean the database is unreachable or broken.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database did not answer or refused the operation.
    #[error("database error: {0}")]
    Database(sqlx::Error),
    /// The first connection failed, and why, in words an operator can act on.
    #[error("{0}")]
    Connect(String),
    /// The database refused a value a client sent (PostgreSQL: a NUL byte, text it cannot index): the
    /// client's mistake, answered 400, never 503.
    #[error("the database refused a value: {0}")]
    Rejected(sqlx::Error),
    /// A unique key already exists (e.g. a client id or username taken).
    #[error("{0} already exists")]
    AlreadyExists(&'static str),
    /// A stored row does not parse (a bug or a hand-edited database).
    #[error("stored {0} is corrupt")]
    Corrupt(&'static str),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    /// A declaration cannot be applied as it stands (a client or user it keeps a secret of has none).
    #[error("{0}")]
    Declared(String),
    /// What a declaration was checked against changed before it was applied: check and apply again.
    #[error("the stored state changed while the configuration was being applied")]
    Stale,
    /// A batched write failed (each waiting request gets this, the cause is logged once).
    #[error("a batched write failed: {0}")]
    Batch(String),
}

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRecord {
    pub client_id: ClientId,
    /// Digest of the secret; `None` for public clients.
    pub secret_digest: Option<SecretDigest>,
    /// Public clients authenticate with `none` and must use PKCE.
    pub is_public: bool,
    /// Grants it may use.
    pub grant_types: Vec<GrantType>,
    /// Exact redirect URIs, as URL parsing serializes them.
    pub redirect_uris: Vec<String>,
    /// The most it may ask for.
    pub scope: ScopeSet,
    /// Audiences it may ask for; the first is its default.
    pub audiences: Vec<String>,
    /// Approve without showing the consent form.
    pub skip_consent: bool,
    /// May call /introspect (RFC 7662 §4): a resource server's client.
    pub introspection: bool,
    /// Where RP-initiated logout may send the browser (exact strings).
    pub post_logout_redirect_uris: Vec<String>,
    /// Every token request must carry a DPoP proof (RFC 9449).
    pub require_dpop: bool,
    /// For `private_key_jwt` (RFC 7523): the client's public keys as a JWK set document…
    pub jwks: Option<String>,
    /// …or where to fetch them.
    pub jwks_uri: Option<String>,
    /// Its authorization requests must be pushed first (RFC 9126 §6).
    pub require_par: bool,
    /// The name shown on the login and consent pages (the client id when absent).
    pub name: Option<String>,
    /// What its ID tokens are signed with (OpenID Connect Registration §2); `None` is RS256.
    pub id_token_signed_response_alg: Option<auth_core::keys::SigningAlgorithm>,
    /// Who registered it.
    pub registered: Registered,
    /// The audiences a token exchange (RFC 8693) may ask for; it may exchange when its grant types hold
    /// the token-exchange grant.
    pub exchange_audiences: Vec<String>,
    /// Where it is told that a session ended (OpenID Connect Back-Channel Logout 1.0 §2.2).
    pub backchannel_logout_uri: Option<String>,
}

/// Who registered a client.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Registered {
    /// The operator: `client create` or a configuration file.
    #[default]
    Operator,
    /// Its developer, through RFC 7591 dynamic registration: its name is the developer's claim, its consent
    /// page is always shown, and a configuration file's `prune` never deletes it.
    Dynamic,
    /// By its client ID metadata document (its `client_id` is the document's URL): as `Dynamic`, and kept
    /// in step with the document.
    Document,
}

impl Registered {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Operator => "operator",
            Self::Dynamic => "dynamic",
            Self::Document => "document",
        }
    }

    /// The stored word; anything else is corrupt.
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "operator" => Some(Self::Operator),
            "dynamic" => Some(Self::Dynamic),
            "document" => Some(Self::Document),
            _ => None,
        }
    }
}

/// What a dynamic registration stores beside its client (RFC 7591, RFC 7592).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamicRegistration {
    /// The registration access token's digest (RFC 7592 §1).
    pub token_digest: SecretDigest,
    /// The metadata as registered and echoed (a JSON object).
    pub metadata: String,
    /// The source that registered it (its per-source key).
    pub source: String,
}

/// Why a registration was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationRefused {
    /// The initial access token is unknown, expired or spent.
    InitialToken,
    /// `--registration-max-clients` dynamic clients exist.
    Full,
    /// This source registered its daily share.
    SourceShare,
}

/// Dynamic registration (RFC 7591, RFC 7592).
#[async_trait]
pub trait RegistrationStore: Send + Sync {
    /// Stores a new initial access token (by digest).
    async fn create_initial_token(
        &self,
        digest: &SecretDigest,
        expires_at: i64,
        max_uses: u32,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Whether the initial access token is usable now (unknown, expired and spent ones are not).
    async fn initial_token_usable(
        &self,
        digest: &SecretDigest,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Stores a dynamic client, in one transaction: a use of `initial_token` is spent (only when stored),
    /// and the caps checked: at most `max_clients` dynamic clients, at most `source_daily` registered by
    /// this source in the last 24 hours (`None`: no share).
    async fn register_client(
        &self,
        client: &ClientRecord,
        registration: &DynamicRegistration,
        initial_token: Option<&SecretDigest>,
        max_clients: u64,
        source_daily: Option<u64>,
        now: i64,
    ) -> Result<Result<(), RegistrationRefused>, StoreError>;
    /// A dynamic client with its registration.
    async fn find_registration(
        &self,
        client_id: &ClientId,
    ) -> Result<Option<(ClientRecord, DynamicRegistration)>, StoreError>;
    /// Replaces a dynamic client's metadata and registration access token, if its token is still
    /// `expected` (a concurrent update wins once); `false` when it was not.
    async fn update_registration(
        &self,
        client: &ClientRecord,
        registration: &DynamicRegistration,
        expected: &SecretDigest,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Deletes a dynamic client as `delete_client` does, if its registration access token is still
    /// `expected` (RFC 7592 §2.3; a concurrent update that rotated it wins); `false` when it was not.
    async fn delete_registration(
        &self,
        client_id: &ClientId,
        expected: &SecretDigest,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Stores the client of a client ID metadata document, or replaces it when the document changed
    /// (only a client registered by a document: an operator's client with that id stays as it is); `false`,
    /// and nothing stored, when the operator deleted that id less than `refuse_for` seconds ago.
    async fn upsert_document_client(
        &self,
        client: &ClientRecord,
        refuse_for: i64,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Notes that a token was issued to the self-registered (dynamic or document) client `client_id` at
    /// `now` (an operator's client is left alone).
    async fn record_dynamic_issuance(
        &self,
        client_id: &ClientId,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Deletes, as `delete_client` does, at most `limit` self-registered clients to which no token was
    /// issued, and which were not registered, since `before`; the ids deleted. A client that a concurrent
    /// issuance marked is not deleted. A document's client is not remembered as deleted (its document may
    /// register it again at once).
    async fn delete_idle_clients(
        &self,
        before: i64,
        limit: u32,
        now: i64,
    ) -> Result<Vec<ClientId>, StoreError>;
}

/// A pushed authorization request, as stored (RFC 9126 §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushedRequest {
    pub client_id: ClientId,
    /// The pushed parameters, form-encoded as they came.
    pub params: String,
    pub expires_at: i64,
    /// Set once a code or an error redirect came from it.
    pub consumed_at: Option<i64>,
    /// The browser that first used it (the digest of its browser id): only that one may use it after.
    pub browser: Option<SecretDigest>,
}

impl ClientRecord {
    /// Authenticates with `private_key_jwt` (it then has no secret).
    pub fn uses_private_key_jwt(&self) -> bool {
        self.jwks.is_some() || self.jwks_uri.is_some()
    }
}

impl ClientRecord {
    /// May the client use this grant?
    pub fn allows(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Stable id (the `sub` of its tokens).
    pub user_id: UserId,
    pub username: String,
    /// argon2id PHC string.
    pub password_hash: String,
    /// Full name (OpenID Connect `name`, scope `profile`).
    pub name: Option<String>,
    /// OpenID Connect `email`, scope `email`.
    pub email: Option<String>,
    /// Whether the operator vouches for `email` (`email_verified`).
    pub email_verified: bool,
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        // SQLSTATE class 22 (data exception: invalid byte sequence, value too long, …) and 54000 (program
        // limit exceeded: an index row too large) come from the values, not from the database's health.
        let rejected = error
            .as_database_error()
            .and_then(|database| database.try_downcast_ref::<sqlx::postgres::PgDatabaseError>())
            .is_some_and(|database| {
                database.code().starts_with("22") || database.code() == "54000"
            });
        if rejected {
            Self::Rejected(error)
        } else {
            Self::Database(error)
        }
    }
}

/// A signing key as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// RFC 7638 thumbprint.
    pub kid: String,
    pub alg: SigningAlgorithm,
    /// PKCS#8 DER, sealed when `encrypted`.
    pub private_key: Vec<u8>,
    /// Sealed with the key-encryption key.
    pub encrypted: bool,
    /// Published from this time.
    pub created_at: i64,
    /// Signs from this time.
    pub active_from: i64,
    /// Insertion order (assigned by the database; ignored on insert): among keys activating at the same
    /// second, the later one wins.
    pub sequence: i64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("encrypted", &self.encrypted)
            .field("active_from", &self.active_from)
            .finish_non_exhaustive()
    }
}

/// What an authorization is bound to: carried by codes and refresh tokens of one family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    pub family_id: FamilyId,
    pub client_id: ClientId,
    pub user_id: UserId,
    pub scope: ScopeSet,
    /// The audience of its access tokens.
    pub audience: String,
    /// When the user logged in.
    pub auth_time: UnixTime,
    /// The login session it came from (the ID token's `sid`).
    pub sid: Option<String>,
}

/// A device authorization (RFC 8628 §3.2), as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceAuthorizationRecord {
    pub device_code_digest: SecretDigest,
    /// The user code, normalized: 8 letters of the RFC 8628 §6.1 alphabet, without the dash.
    pub user_code: String,
    pub client_id: ClientId,
    pub scope: ScopeSet,
    pub audience: String,
    pub created_at: i64,
    pub expires_at: i64,
    /// Seconds a client must wait between polls; grows by 5 at each `slow_down` (RFC 8628 §3.5).
    pub interval: i64,
    /// The user approved: the grant, its family created at approval.
    pub approved: Option<Authorization>,
    pub denied: bool,
    /// The winning poll took the tokens.
    pub used: bool,
}

/// What a poll of a pending device code found (RFC 8628 §3.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Poll {
    /// Polled in time: keep waiting.
    Pending,
    /// Polled too soon: the interval grew by 5 seconds.
    SlowDown,
    /// No longer pending (approved, denied or used meanwhile): look again.
    Decided,
}

/// An authorization code, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationCodeRecord {
    pub code_digest: SecretDigest,
    /// What it authorizes.
    pub authorization: Authorization,
    /// The redirect URI it was issued for.
    pub redirect_uri: String,
    /// The authorization request named the redirect URI: the token request must repeat it
    /// (RFC 6749 §4.1.3).
    pub redirect_uri_given: bool,
    pub code_challenge: String,
    /// OpenID Connect `nonce`, echoed in the ID token.
    pub nonce: Option<String>,
    /// The DPoP key the code is bound to (RFC 9449 §10): its exchange needs a proof by that key.
    pub dpop_jkt: Option<Jkt>,
    pub expires_at: i64,
    /// Set once exchanged.
    pub used_at: Option<i64>,
    /// The family has been revoked.
    pub family_revoked: bool,
}

/// A refresh token, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshTokenRecord {
    pub token_digest: SecretDigest,
    /// What it authorizes: a refresh token keeps the scope it was issued with (RFC 6749 §6).
    pub authorization: Authorization,
    pub created_at: i64,
    pub expires_at: i64,
    /// Set when rotated away.
    pub used_at: Option<i64>,
    /// The family has been revoked.
    pub family_revoked: bool,
    /// When its family began (the code exchange that started it): its absolute lifetime counts from here.
    pub family_created_at: i64,
    /// The DPoP key a public client's token is bound to (RFC 9449 §5): its successors keep it.
    pub dpop_jkt: Option<Jkt>,
}

/// The result of trying to use a code or a refresh token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consumption {
    /// It was unused and its family live: now it is used, and what it produced is stored, in one step.
    Consumed,
    /// It had been used meanwhile, or its family revoked meanwhile: nothing was stored. Either way the
    /// caller revokes the family (a race and a theft look the same, RFC 9700 §4.14.2).
    Refused,
}

/// What introspection needs to know about an access token of ours, beyond its signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccessTokenState {
    /// Its `jti` is on the deny list (it was revoked alone, RFC 7009).
    pub denied: bool,
    /// Its family: `Some(true)` live, `Some(false)` revoked, `None` gone (purged) or never existed.
    pub family_live: Option<bool>,
    /// When its client was registered; `None` when it no longer exists (`client delete`).
    pub client_created_at: Option<i64>,
    /// When a client of that id was last deleted, if ever.
    pub client_deleted_at: Option<i64>,
}

/// Clients.
#[async_trait]
pub trait ClientStore: Send + Sync {
    /// Registers a client; fails with `AlreadyExists` when the id is taken.
    /// Stores a client. `key`, the first key of its ID-token algorithm, is stored in the same transaction
    /// when no key of that algorithm exists yet (so it signs the client's first ID token at once).
    async fn create_client(
        &self,
        client: &ClientRecord,
        key: Option<&StoredKey>,
        now: i64,
    ) -> Result<(), StoreError>;
    /// The ID-token algorithms clients registered, each once.
    async fn id_token_algorithms(
        &self,
    ) -> Result<Vec<auth_core::keys::SigningAlgorithm>, StoreError>;
    /// Looks a client up.
    async fn find_client(&self, client_id: &ClientId) -> Result<Option<ClientRecord>, StoreError>;
    /// Every client, by id.
    async fn list_clients(&self) -> Result<Vec<ClientRecord>, StoreError>;
    /// Deletes a client with everything it owns (its families and so every grant, codes, consent, pushed
    /// requests) and records when; false if unknown.
    async fn delete_client(&self, client_id: &ClientId, now: i64) -> Result<bool, StoreError>;
    /// Every scope some client may be granted (RFC 8414 `scopes_supported`).
    async fn registered_scopes(&self) -> Result<ScopeSet, StoreError>;
}

/// Users and their login sessions.
#[async_trait]
pub trait UserStore: Send + Sync {
    /// Registers a user; fails with `AlreadyExists` when the name is taken.
    async fn create_user(&self, user: &UserRecord, now: i64) -> Result<(), StoreError>;
    /// Looks a user up by login name.
    async fn find_user_by_username(&self, username: &str)
    -> Result<Option<UserRecord>, StoreError>;
    /// Looks a user up by id.
    async fn find_user(&self, user_id: &UserId) -> Result<Option<UserRecord>, StoreError>;
    /// Every user, by username.
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;
    /// Deletes a user with its sessions, consent and grants (families); false if unknown.
    async fn delete_user(&self, username: &str) -> Result<bool, StoreError>;
    /// Sets a new password hash, ends the user's sessions and revokes its live families at `now`; `None`
    /// if unknown, else the number of families revoked.
    async fn set_password(
        &self,
        username: &str,
        password_hash: &str,
        now: i64,
    ) -> Result<Option<u64>, StoreError>;
    /// Starts a session, unless the user's password hash is no longer `verified_hash` (a `user
    /// set-password` or `user delete` that ran while the password was being checked): false then.
    async fn create_session(
        &self,
        session: &StoredSession,
        verified_hash: &str,
    ) -> Result<bool, StoreError>;
    /// A live session by the digest of its cookie.
    async fn find_session(
        &self,
        digest: &SecretDigest,
        now: i64,
    ) -> Result<Option<StoredSession>, StoreError>;
    /// Ends the session of a cookie; false when there was none.
    async fn end_session(&self, digest: &SecretDigest) -> Result<bool, StoreError>;
    /// Ends the session with public id `sid`, if it is `user_id`'s; false when there was none.
    async fn end_session_by_sid(&self, sid: &str, user_id: &UserId) -> Result<bool, StoreError>;
}

/// A login session as stored: the cookie only as its digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub digest: SecretDigest,
    pub user_id: UserId,
    /// Its public id (OpenID Connect `sid`); `None` for sessions older than the column.
    pub sid: Option<String>,
    /// When the user typed their password.
    pub auth_time: UnixTime,
    pub expires_at: i64,
}

/// Signing keys.
#[async_trait]
pub trait KeyStore: Send + Sync {
    /// Stores a key.
    async fn insert_key(&self, key: &StoredKey) -> Result<(), StoreError>;
    /// Every stored key, oldest activation first.
    async fn list_keys(&self) -> Result<Vec<StoredKey>, StoreError>;
    /// Replaces a plaintext key by its sealed form; false when it was sealed already (another replica).
    async fn seal_key(&self, kid: &str, sealed: &[u8]) -> Result<bool, StoreError>;
    /// The server secret `candidate.name`, storing `candidate` first when there is none: the first replica
    /// to start makes it, every other one reads it.
    async fn server_secret(&self, candidate: &StoredSecret) -> Result<StoredSecret, StoreError>;
    /// Every server secret.
    async fn list_server_secrets(&self) -> Result<Vec<StoredSecret>, StoreError>;
    /// Replaces a plaintext server secret by its sealed form; false when it was sealed already.
    async fn seal_server_secret(&self, name: &str, sealed: &[u8]) -> Result<bool, StoreError>;
}

/// A secret of the server itself (the CSRF MAC key), as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredSecret {
    pub name: String,
    /// Sealed with the key-encryption key when `encrypted`.
    pub secret: Vec<u8>,
    pub encrypted: bool,
    pub created_at: i64,
}

impl std::fmt::Debug for StoredSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredSecret")
            .field("name", &self.name)
            .field("encrypted", &self.encrypted)
            .finish_non_exhaustive()
    }
}

/// A refresh-token rotation, as asked for.
#[derive(Debug, Clone, Copy)]
pub struct Rotation<'a> {
    pub presented: &'a SecretDigest,
    /// The authenticated client: the token must be its own.
    pub client_id: &'a ClientId,
    pub now: i64,
    /// A narrower scope asked for the new access token: it must be within the token's scope.
    pub scope: Option<&'a ScopeSet>,
    /// RFC 8707 resource asked for: it must be the token's audience.
    pub resource: Option<&'a str>,
    /// The thumbprint of the request's DPoP proof key: a bound token rotates only with its own key.
    pub jkt: Option<&'a Jkt>,
    /// The family must have been created after this (its absolute lifetime).
    pub family_created_after: i64,
    /// The digest of the new refresh token, and its expiry.
    pub new_digest: &'a SecretDigest,
    pub new_expires_at: i64,
}

/// What a rotation did.
#[derive(Debug, Clone)]
pub enum RotationOutcome {
    /// Rotated: the authorization the new refresh token continues.
    Rotated(Authorization),
    /// Nothing changed; the presented token as found (`None`: there is no such token).
    Refused(Option<RefreshTokenRecord>),
}

/// Codes, refresh-token families and revocations: the grants and their families.
///
/// Revocation is decided by family, never by copying rows: every token of a family carries (or, for
/// refresh tokens, is stored with) its family id, so revoking the family's one row revokes all of them at
/// once, including a token minted by a use that raced the revocation. The uses themselves are conditional on
/// the family being live, so a use either commits before the revocation (its tokens die with the family)
/// or fails (docs/architecture.md, "Revocation").
#[async_trait]
pub trait GrantStore: Send + Sync {
    /// Stores a new family and its code in one transaction.
    async fn create_code(&self, code: &AuthorizationCodeRecord, now: i64)
    -> Result<(), StoreError>;
    /// Looks a code up (with its family's revocation state).
    async fn find_code(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<AuthorizationCodeRecord>, StoreError>;
    /// Marks the code used, if it is unused, unexpired and its family live, and stores the refresh token it
    /// produced, if any: one atomic step. Of concurrent exchanges of one code exactly one consumes it.
    async fn exchange_code(
        &self,
        code: &AuthorizationCodeRecord,
        now: i64,
        refresh_token: Option<&RefreshTokenRecord>,
    ) -> Result<Consumption, StoreError>;
    /// Stores a new device authorization, unless `max_unexpired` unexpired ones exist; `false` when its user
    /// code is taken (draw another) or the bound is reached.
    async fn create_device_authorization(
        &self,
        record: &DeviceAuthorizationRecord,
        max_unexpired: u64,
    ) -> Result<bool, StoreError>;
    /// Looks a device authorization up by its device code.
    async fn find_device_authorization(
        &self,
        device_code: &SecretDigest,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError>;
    /// Looks a device authorization up by its (normalized) user code.
    async fn find_user_code(
        &self,
        user_code: &str,
    ) -> Result<Option<DeviceAuthorizationRecord>, StoreError>;
    /// Approves a pending, unexpired user code: creates the grant's family and records it, in one
    /// transaction; `false` when the code was not pending any more.
    async fn approve_user_code(
        &self,
        user_code: &str,
        grant: &Authorization,
        now: i64,
    ) -> Result<bool, StoreError>;
    /// Denies a pending, unexpired user code; `false` when it was not pending any more.
    async fn deny_user_code(&self, user_code: &str, now: i64) -> Result<bool, StoreError>;
    /// Records a poll of a pending device code, growing its interval when it came too soon.
    async fn poll_device_code(
        &self,
        device_code: &SecretDigest,
        now: i64,
    ) -> Result<Poll, StoreError>;
    /// Marks an approved device code used, if it is unused, unexpired and its family live, and stores the
    /// refresh token it produced: one atomic step, as [`GrantStore::exchange_code`].
    async fn redeem_device_code(
        &self,
        record: &DeviceAuthorizationRecord,
        now: i64,
        refresh_token: Option<&RefreshTokenRecord>,
    ) -> Result<Consumption, StoreError>;
    /// Looks a refresh token up (with its family's revocation state).
    async fn find_refresh_token(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<RefreshTokenRecord>, StoreError>;
    /// Rotates a refresh token in one atomic step (on PostgreSQL one statement, one round trip): the
    /// presented token is marked used and a new one of the same family, client, user, scope and audience
    /// stored, if the presented token is unused, unexpired, of `rotation.client_id`, its family live, its
    /// scope includes `rotation.scope`, its audience is `rotation.resource` (when given) and, when it is
    /// DPoP-bound, `rotation.jkt` is its key. Of concurrent
    /// rotations of one token exactly one rotates. When nothing rotated, the token as it was found (if it
    /// exists) says why.
    async fn rotate_refresh_token(
        &self,
        rotation: &Rotation<'_>,
    ) -> Result<RotationOutcome, StoreError>;
    /// Revokes a family: one row, after which no token of it is active and no use of it succeeds.
    async fn revoke_family(&self, family_id: &FamilyId, now: i64) -> Result<(), StoreError>;
    /// Deny-lists one access token until its expiry.
    async fn revoke_access_token(&self, jti: &str, expires_at: i64) -> Result<(), StoreError>;
    /// The deny list, family and client state of an access token.
    async fn access_token_state(
        &self,
        jti: &str,
        family_id: Option<&FamilyId>,
        client_id: &ClientId,
    ) -> Result<AccessTokenState, StoreError>;
    /// Deletes expired codes, sessions and deny-list entries, and the families none of whose tokens can
    /// still be valid (every code and refresh token of theirs ended more than `horizon` seconds ago, the
    /// longest an access token can live); returns how many rows went.
    async fn purge_expired(&self, now: i64, horizon: i64) -> Result<u64, StoreError>;
}

/// Remembered consent (OpenID Connect Core §3.1.2.4).
#[async_trait]
pub trait ConsentStore: Send + Sync {
    /// The scopes `user_id` has consented to for `client_id`, if any.
    async fn find_consent(
        &self,
        user_id: &UserId,
        client_id: &ClientId,
        audience: &str,
    ) -> Result<Option<ScopeSet>, StoreError>;
    /// Remembers that `user_id` consented to `scope` for `client_id` and `audience` (added to what was
    /// remembered for that audience).
    async fn remember_consent(
        &self,
        user_id: &UserId,
        client_id: &ClientId,
        audience: &str,
        scope: &ScopeSet,
        now: i64,
    ) -> Result<(), StoreError>;
    /// Forgets the consent and revokes every family of (user, client), in one transaction; returns whether
    /// a consent was remembered and how many families were revoked.
    async fn withdraw_consent(
        &self,
        user_id: &UserId,
        client_id: &ClientId,
        now: i64,
    ) -> Result<(bool, u64), StoreError>;
}

/// The ledger of single-use values.
#[async_trait]
pub trait JtiStore: Send + Sync {
    /// Records single-use values (DPoP proof and client assertion `jti`s), each until its expiry, in one
    /// statement: for each, `true` the first time, `false` when any replica recorded it before (or it
    /// appears earlier in `items`).
    async fn first_uses(&self, items: &[(SecretDigest, i64)]) -> Result<Vec<bool>, StoreError>;
}

/// Pushed authorization requests (RFC 9126).
#[async_trait]
pub trait PushedRequestStore: Send + Sync {
    /// Deletes the pushes expired by `now`, then stores a pushed authorization request under the digest of
    /// its `request_uri` unless `max_unexpired` unexpired ones exist: `false` then, and nothing stored.
    async fn push_request(
        &self,
        digest: &SecretDigest,
        request: &PushedRequest,
        now: i64,
        max_unexpired: u64,
    ) -> Result<bool, StoreError>;
    /// Binds an unconsumed, unexpired pushed request to `browser` (its first use) and extends it to
    /// `bound_until`; `true` too when it was bound to this browser already. `false` when it is consumed,
    /// expired or another browser's.
    async fn bind_pushed_request(
        &self,
        digest: &SecretDigest,
        browser: &SecretDigest,
        now: i64,
        bound_until: i64,
    ) -> Result<bool, StoreError>;
    /// A pushed request by the digest of its `request_uri`.
    async fn find_pushed_request(
        &self,
        digest: &SecretDigest,
    ) -> Result<Option<PushedRequest>, StoreError>;
    /// Marks a pushed request consumed if it is unconsumed and unexpired: `true` for the one caller that did.
    async fn consume_pushed_request(
        &self,
        digest: &SecretDigest,
        now: i64,
    ) -> Result<bool, StoreError>;
}

/// Readiness and cross-replica change detection.
#[async_trait]
pub trait HealthStore: Send + Sync {
    /// A round trip to the database.
    async fn ping(&self) -> Result<(), StoreError>;
    /// A number bumped by every change to clients or keys.
    async fn config_version(&self) -> Result<i64, StoreError>;
}

/// A client as a configuration file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredClient {
    /// The client to have; its `secret_digest` is ignored when `keep_secret`.
    pub record: ClientRecord,
    /// The declaration names no secret for a confidential client: keep the stored one (there must be one).
    pub keep_secret: bool,
}

/// A user as a configuration file declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeclaredUser {
    /// The id it gets if it is new (an existing user keeps its own: it is the `sub` of its tokens).
    pub new_id: UserId,
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub password: DeclaredPassword,
}

/// What a declared user's password hash becomes.
#[derive(Clone, PartialEq, Eq)]
pub enum DeclaredPassword {
    /// No password declared: keep the stored hash (there must be one).
    Keep,
    /// An operator's hash: stored unless it is already.
    Hash(String),
    /// A password that was checked against `checked_against` (the stored hash then; `None`: no such user):
    /// `hash` is that very hash when the password verified, else a new one. When the stored hash is no
    /// longer `checked_against` (another replica applied in between), the check is stale and the apply
    /// answers [`StoreError::Stale`], to be checked and applied again.
    Checked {
        hash: String,
        checked_against: Option<String>,
    },
}

impl std::fmt::Debug for DeclaredPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keep => f.write_str("Keep"),
            Self::Hash(_) => f.write_str("Hash(..)"),
            Self::Checked { .. } => f.write_str("Checked(..)"),
        }
    }
}

/// Everything one configuration file declares, applied in one transaction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    pub clients: Vec<DeclaredClient>,
    pub users: Vec<DeclaredUser>,
    /// Delete the clients and users not declared.
    pub prune: bool,
    /// First keys of ID-token algorithms the declared clients use, each stored unless one of its algorithm
    /// exists by then.
    pub keys: Vec<StoredKey>,
}

/// What applying did to one kind of entry.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AppliedCounts {
    pub created: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub pruned: u64,
}

/// What applying a declaration did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Applied {
    pub clients: AppliedCounts,
    pub users: AppliedCounts,
    /// The ids of the clients pruned, the usernames of the users pruned and of those whose password changed
    /// (each audited as the CLI's command would be).
    pub pruned_clients: Vec<String>,
    pub pruned_users: Vec<String>,
    pub passwords_changed: Vec<String>,
}

/// Declared configuration.
#[async_trait]
pub trait DeclaredStore: Send + Sync {
    /// Makes the clients and users match `declared` in one transaction. Transactions applying at once
    /// (replicas starting with one file) run one after the other, and each later one finds the state the
    /// earlier made. A changed password ends the user's sessions and revokes its grants, as `set_password`
    /// does; a pruned client or user goes as `delete_client` and `delete_user` take them.
    async fn apply_declared(&self, declared: &Declared, now: i64) -> Result<Applied, StoreError>;
}

/// A back-channel logout waiting to be delivered (OpenID Connect Back-Channel Logout 1.0 §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedLogout {
    pub id: i64,
    pub client_id: ClientId,
    pub user_id: UserId,
    pub sid: String,
    /// Tries so far, this one included.
    pub attempts: i64,
    /// The token, once minted at the first try (every retry sends the same one).
    pub logout_token: Option<String>,
}

/// The back-channel logout queue. The transactions that end sessions queue the logouts (`UserStore`,
/// `ConsentStore`); the delivering replica claims them here.
#[async_trait]
pub trait LogoutStore: Send + Sync {
    /// Claims up to `limit` due logouts for this replica (none that another replica claimed; at most two
    /// in flight per client), counting the try.
    async fn claim_logouts(&self, now: i64, limit: i64) -> Result<Vec<QueuedLogout>, StoreError>;
    /// Keeps the token minted at a logout's first try.
    async fn keep_logout_token(&self, id: i64, token: &str) -> Result<(), StoreError>;
    /// The logout was delivered, or given up: it leaves the queue.
    async fn logout_done(&self, id: i64) -> Result<(), StoreError>;
    /// The try failed: tried again at `at`.
    async fn logout_retry(&self, id: i64, at: i64) -> Result<(), StoreError>;
    /// How many logouts wait.
    async fn pending_logouts(&self) -> Result<i64, StoreError>;
}

/// Everything the server needs from storage.
pub trait Store:
    ClientStore
    + UserStore
    + KeyStore
    + GrantStore
    + ConsentStore
    + PushedRequestStore
    + JtiStore
    + HealthStore
    + DeclaredStore
    + RegistrationStore
    + LogoutStore
{
}

impl<T> Store for T where
    T: ClientStore
        + UserStore
        + KeyStore
        + GrantStore
        + ConsentStore
        + PushedRequestStore
        + JtiStore
        + HealthStore
        + DeclaredStore
        + RegistrationStore
        + LogoutStore
{
}
