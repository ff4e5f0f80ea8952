-- RFC 9449 §10: an authorization request may name the DPoP key (`dpop_jkt`, or a proof at /par) its code is
-- bound to; the code is then exchanged only with a proof by that key.
alter table authorization_code add column dpop_jkt text;
