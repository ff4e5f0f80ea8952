-- OpenID Connect: what UserInfo and the ID token say about a user, logout, sessions and remembered consent.

-- UserInfo claims (Core §5.1): `name` with scope profile, `email` and `email_verified` with scope email.
alter table app_user add column name text;
alter table app_user add column email text;
alter table app_user add column email_verified boolean not null default false;

-- RP-Initiated Logout 1.0 §3: where a client may send the browser after logout (exact strings, space separated).
alter table client add column post_logout_redirect_uris text not null default '';

-- The public id of a login session (the ID token's `sid`), never the cookie itself. Sessions made before
-- this column existed have none and end with their cookie.
alter table login_session add column sid text;
create unique index login_session_sid_idx on login_session (sid);
create index login_session_user_idx on login_session (user_id);

-- The authorization request's nonce (Core §3.1.2.1) and the session it came from, for the ID token.
alter table authorization_code add column nonce text;
alter table authorization_code add column sid text;
alter table refresh_token add column sid text;

-- Remembered consent (Core §3.1.2.4): the scopes a user approved for a client. A later request within them
-- skips the consent page; `consent revoke` removes the row and revokes the grants.
create table consent (
    user_id text not null references app_user (user_id) on delete cascade,
    client_id text not null references client (client_id) on delete cascade,
    scope text not null,
    granted_at bigint not null,
    primary key (user_id, client_id)
);
create index consent_client_idx on consent (client_id);
create index token_family_user_idx on token_family (user_id);
