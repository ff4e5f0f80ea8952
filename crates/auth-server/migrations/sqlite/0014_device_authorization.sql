-- The device authorization grant (RFC 8628). A row is pending until the user approves (family_id, user_id,
-- auth_time and sid set, the family created in the same transaction) or denies (denied_at); the winning
-- poll sets used_at. The poll state (last_polled_at, poll_interval) is what slow_down is decided by.
create table device_authorization (
    device_code_digest text primary key,
    user_code text not null unique,
    client_id text not null references client (client_id) on delete cascade,
    scope text not null,
    audience text not null,
    created_at bigint not null,
    expires_at bigint not null,
    poll_interval bigint not null,
    last_polled_at bigint,
    family_id text references token_family (family_id) on delete cascade,
    user_id text,
    auth_time bigint,
    sid text,
    denied_at bigint,
    used_at bigint
);
create index device_authorization_expires_idx on device_authorization (expires_at);
create index device_authorization_family_idx on device_authorization (family_id);
