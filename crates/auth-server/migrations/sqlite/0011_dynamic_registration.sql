-- Who registered a client: the operator (client create, a configuration file) or its developer through
-- RFC 7591 dynamic registration. A dynamic client carries the digest of its registration access token
-- (RFC 7592), the metadata it registered (echoed by RFC 7592 reads) and the source that registered it (the
-- daily per-source share of open registration).
alter table client add column registered text not null default 'operator';
alter table client add column registration_token_digest text;
alter table client add column registration_metadata text;
alter table client add column registration_source text;
create index client_registered_idx on client (registered, created_at);

-- Initial access tokens for `--registration token` (RFC 7591 §3): digests, with their expiry and uses.
create table initial_access_token (
    token_digest text primary key,
    expires_at bigint not null,
    max_uses bigint not null,
    uses bigint not null default 0,
    created_at bigint not null
);
