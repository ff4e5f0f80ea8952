-- DPoP (RFC 9449): clients that must bind their tokens, and the single use of proof `jti`s.

-- `client create --require-dpop`: a token request without a proof is refused (RFC 9449 §5.2 leaves it to us).
alter table client add column require_dpop boolean not null default false;

-- A proof's `jti` is used once within its acceptance window, at whichever replica it arrives (RFC 9449 §11.1):
-- the SHA-256 of (kind, key thumbprint, jti), kept until the proof could no longer be accepted anyway.
create table used_jti (
    digest text primary key,
    expires_at bigint not null
);
create index used_jti_expires_idx on used_jti (expires_at);

-- A public client's refresh token issued with a proof is bound to that proof's key (RFC 9449 §5): the RFC 7638
-- thumbprint, copied to each successor; a rotation needs a proof by the same key.
alter table refresh_token add column dpop_jkt text;
