-- private_key_jwt (RFC 7523 §2.2, OpenID Connect Core §9): a client proves who it is by signing an assertion
-- with a key it registered, given as a JWK set (`client create --jwks-file`) or as a URL to fetch it from
-- (`--jwks-uri`). Such a client has no secret.
alter table client add column jwks text;
alter table client add column jwks_uri text;
