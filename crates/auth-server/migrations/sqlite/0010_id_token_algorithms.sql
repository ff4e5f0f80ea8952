-- The algorithm a client registered for its ID tokens (OpenID Connect Registration §2,
-- id_token_signed_response_alg); null is RS256, the default every OpenID client expects.
alter table client add column id_token_signed_response_alg text;
