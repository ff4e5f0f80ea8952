-- OpenID Connect Back-Channel Logout 1.0: which clients received an ID token in which session (while the
-- session lives), and the logout tokens waiting to be delivered. A queued row is claimed by one replica
-- (claimed_until), tried at most three times with the same token (minted at the first try).
create table session_client (
    sid text not null,
    client_id text not null references client (client_id) on delete cascade,
    created_at bigint not null,
    primary key (sid, client_id)
);
create table backchannel_logout (
    id integer primary key autoincrement,
    client_id text not null references client (client_id) on delete cascade,
    user_id text not null,
    sid text not null,
    created_at bigint not null,
    next_attempt_at bigint not null,
    attempts integer not null default 0,
    claimed_until bigint,
    logout_token text
);
create index backchannel_logout_due_idx on backchannel_logout (next_attempt_at);
create index backchannel_logout_client_idx on backchannel_logout (client_id);
