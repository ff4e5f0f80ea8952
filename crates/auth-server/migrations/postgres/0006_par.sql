-- Pushed authorization requests (RFC 9126): the parameters a client pushed, under the digest of the
-- request_uri it was given, usable until a code or an error redirect comes from them or they expire.
create table pushed_request (
    digest text primary key,
    client_id text not null references client (client_id) on delete cascade,
    params text not null,
    expires_at bigint not null,
    consumed_at bigint
);
create index pushed_request_expires_idx on pushed_request (expires_at);

-- `client create --require-par`: its authorization requests must be pushed.
alter table client add column require_par boolean not null default false;
