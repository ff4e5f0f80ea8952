-- Initial schema. Times are Unix seconds (bigint); secrets are stored only as SHA-256 hex digests.

create table client (
    client_id text primary key,
    secret_digest text,                 -- null for public clients
    is_public boolean not null,
    grant_types text not null,          -- space separated
    redirect_uris text not null,        -- space separated, each stored as URL parsing serializes it
    scope text not null,                -- space separated
    audiences text not null,            -- space separated; the first is the default audience
    skip_consent boolean not null,
    created_at bigint not null,
    updated_at bigint not null
);

create table app_user (
    user_id text primary key,
    username text not null unique,
    password_hash text not null,        -- argon2id PHC string
    created_at bigint not null
);

create table signing_key (
    signing_key_id bigint generated always as identity primary key,  -- insertion order: breaks activation ties
    kid text not null unique,
    alg text not null,
    private_key bytea not null,         -- PKCS#8 DER, AES-256-GCM sealed when encrypted is true
    encrypted boolean not null,
    created_at bigint not null,
    active_from bigint not null         -- signs from this time; published from created_at
);
create index signing_key_active_from_idx on signing_key (active_from);

-- One authorization (a code, or the refresh tokens descended from it) is one family.
create table token_family (
    family_id text primary key,
    client_id text not null references client (client_id) on delete cascade,
    user_id text not null references app_user (user_id) on delete cascade,
    created_at bigint not null,
    revoked_at bigint
);
create index token_family_client_idx on token_family (client_id);

create table authorization_code (
    code_digest text primary key,
    family_id text not null references token_family (family_id) on delete cascade,
    client_id text not null,
    user_id text not null,
    redirect_uri text not null,
    scope text not null,
    audience text not null,
    code_challenge text not null,
    auth_time bigint not null,
    expires_at bigint not null,
    used_at bigint
);
create index authorization_code_expires_idx on authorization_code (expires_at);

create table refresh_token (
    token_digest text primary key,
    family_id text not null references token_family (family_id) on delete cascade,
    client_id text not null,
    user_id text not null,
    scope text not null,
    audience text not null,
    auth_time bigint not null,
    created_at bigint not null,
    expires_at bigint not null,
    used_at bigint                      -- set when rotated away; a second use is reuse
);
create index refresh_token_family_idx on refresh_token (family_id);
create index refresh_token_expires_idx on refresh_token (expires_at);

-- Access tokens issued from a family, so revoking the family can deny-list them.
create table issued_access_token (
    jti text primary key,
    family_id text not null references token_family (family_id) on delete cascade,
    expires_at bigint not null
);
create index issued_access_token_family_idx on issued_access_token (family_id);
create index issued_access_token_expires_idx on issued_access_token (expires_at);

create table revoked_access_token (
    jti text primary key,
    expires_at bigint not null
);
create index revoked_access_token_expires_idx on revoked_access_token (expires_at);

create table login_session (
    session_digest text primary key,
    user_id text not null references app_user (user_id) on delete cascade,
    auth_time bigint not null,
    expires_at bigint not null
);
create index login_session_expires_idx on login_session (expires_at);

-- Bumped in the same transaction as any change to clients or keys; replicas poll it to drop caches.
create table config_version (
    config_version_id integer primary key,
    version bigint not null
);
insert into config_version (config_version_id, version) values (1, 1);
