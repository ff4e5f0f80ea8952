-- The operator's tools: a display name shown on the login and consent pages, and the clients deleted by
-- `client delete`. Deleting a client removes its families (and so every user grant: their access tokens name a
-- family that no longer exists and are inactive); a client_credentials token has no family, so it is inactive
-- when its client was deleted at or after the token's `iat`, even if the same id is registered again.
alter table client add column name text;

create table deleted_client (
    client_id text primary key,
    deleted_at bigint not null
);
