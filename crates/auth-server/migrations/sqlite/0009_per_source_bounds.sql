-- A pushed request is bound to the browser that first uses it (RFC 9126 §4 leaves its lifetime to us): 60 s
-- to that first use, then 10 minutes for that browser only, across the login and consent pages.
alter table pushed_request add column browser_digest text;

-- Remembered consent per (user, client, audience): consent to one API is not consent to another.
drop table consent;
create table consent (
    user_id text not null references app_user (user_id) on delete cascade,
    client_id text not null references client (client_id) on delete cascade,
    audience text not null,
    scope text not null,
    granted_at bigint not null,
    primary key (user_id, client_id, audience)
);
create index consent_client_idx on consent (client_id);
