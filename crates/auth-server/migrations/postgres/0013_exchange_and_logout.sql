-- Token exchange (RFC 8693): the audiences a `--token-exchange` client may ask tokens for, space separated.
alter table client add column exchange_audiences text not null default '';
-- OpenID Connect Back-Channel Logout 1.0 §2.2: where the client is told that a session ended.
alter table client add column backchannel_logout_uri text;
