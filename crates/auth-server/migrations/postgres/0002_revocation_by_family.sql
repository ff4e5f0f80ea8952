-- Revocation is decided by family: an access token carries its family id, and introspection refuses any
-- token of a revoked (or purged) family. Access tokens are no longer recorded one by one.
drop table issued_access_token;

-- May call /introspect (RFC 7662 §4: the server decides who may learn about tokens).
alter table client add column introspection boolean not null default false;

-- Whether the authorization request named its redirect_uri: then the token request must repeat it
-- (RFC 6749 §4.1.3). Codes issued before this column existed are treated as if it had.
alter table authorization_code add column redirect_uri_given boolean not null default true;

-- For purging families: codes by family.
create index authorization_code_family_idx on authorization_code (family_id);

-- Secrets of the server itself (the CSRF MAC key), shared by every replica; sealed like signing keys.
create table server_secret (
    name text primary key,
    secret bytea not null,
    encrypted boolean not null,
    created_at bigint not null
);
