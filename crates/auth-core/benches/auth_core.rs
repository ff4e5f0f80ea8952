//! Criterion benches of auth-core: token issue/verify per algorithm next to the bare signature and
//! verification of the same backend (so the overhead ratio is visible), the `jsonwebtoken::encode` path
//! that re-parses its key, PKCE, scope parsing and secret digests. Run with `cargo xtask bench`.

use std::hint::black_box;
use std::sync::Arc;

use auth_core::clock::SystemClock;
use auth_core::jwks::KeySet;
use auth_core::keys::{SigningAlgorithm, SigningKey};
use auth_core::pkce::{CodeChallenge, generate_verifier};
use auth_core::scope::ScopeSet;
use auth_core::secret::{OpaqueToken, SecretDigest};
use auth_core::token::{AccessTokenClaims, Audience, ValidationPolicy, issue, verify};
use aws_lc_rs::signature::{self as lc, UnparsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{Criterion, criterion_group, criterion_main};

fn claims() -> AccessTokenClaims {
    let now = auth_core::clock::Clock::now(&SystemClock);
    AccessTokenClaims {
        iss: "http://127.0.0.1:8080".into(),
        sub: "d0c4b2a4-6a57-4c43-a5d4-5b1b0a9e7c11".into(),
        aud: Audience::One("resource-api".into()),
        client_id: "demo-client".into(),
        scope: "read write".parse().unwrap_or_default(),
        iat: now,
        exp: now + 900,
        nbf: None,
        jti: "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".into(),
        auth_time: None,
        fam: None,
        cnf: None,
        act: None,
        may_act: None,
    }
}

fn split(token: &str) -> (&[u8], Vec<u8>) {
    let dot = token.rfind('.').unwrap_or(0);
    (
        &token.as_bytes()[..dot],
        URL_SAFE_NO_PAD
            .decode(&token[dot + 1..])
            .unwrap_or_default(),
    )
}

fn bare_verify(key: &SigningKey, message: &[u8], signature: &[u8]) -> bool {
    let jwk = key.public_jwk();
    let b64 = |value: &Option<String>| {
        URL_SAFE_NO_PAD
            .decode(value.as_deref().unwrap_or_default())
            .unwrap_or_default()
    };
    match key.alg() {
        SigningAlgorithm::Es256 => {
            let mut point = vec![0x04];
            point.extend(b64(&jwk.x));
            point.extend(b64(&jwk.y));
            UnparsedPublicKey::new(&lc::ECDSA_P256_SHA256_FIXED, point)
                .verify(message, signature)
                .is_ok()
        }
        SigningAlgorithm::EdDsa => UnparsedPublicKey::new(&lc::ED25519, b64(&jwk.x))
            .verify(message, signature)
            .is_ok(),
        SigningAlgorithm::Rs256 => lc::RsaPublicKeyComponents {
            n: b64(&jwk.n),
            e: b64(&jwk.e),
        }
        .verify(&lc::RSA_PKCS1_2048_8192_SHA256, message, signature)
        .is_ok(),
        SigningAlgorithm::Ps256 => lc::RsaPublicKeyComponents {
            n: b64(&jwk.n),
            e: b64(&jwk.e),
        }
        .verify(&lc::RSA_PSS_2048_8192_SHA256, message, signature)
        .is_ok(),
    }
}

fn tokens(c: &mut Criterion) {
    let claims = claims();
    let policy = ValidationPolicy::new(
        "http://127.0.0.1:8080",
        "resource-api",
        Arc::new(SystemClock),
    );
    for alg in SigningAlgorithm::ALL {
        let Ok(key) = SigningKey::generate(alg) else {
            return;
        };
        let keys = KeySet::from_signing_keys([&key]);
        let Ok(token) = issue(&claims, &key) else {
            return;
        };
        let (message, signature) = split(&token);
        assert!(
            bare_verify(&key, message, &signature),
            "bench setup: bare verification must succeed"
        );

        let mut group = c.benchmark_group(format!("token/{alg}"));
        group.bench_function("issue", |b| b.iter(|| issue(black_box(&claims), &key)));
        group.bench_function("sign_bare", |b| b.iter(|| key.sign(black_box(message))));
        group.bench_function("verify", |b| {
            b.iter(|| verify(black_box(&token), &keys, &policy))
        });
        group.bench_function("verify_bare", |b| {
            b.iter(|| bare_verify(&key, black_box(message), &signature))
        });
        if alg == SigningAlgorithm::Es256 {
            // What the hot path would cost through jsonwebtoken::encode, which re-parses the PKCS#8 key.
            let encoding = jsonwebtoken::EncodingKey::from_ec_der(key.pkcs8_der());
            let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
            header.typ = Some("at+jwt".into());
            header.kid = Some(key.kid().into());
            group.bench_function("issue_via_jsonwebtoken_encode", |b| {
                b.iter(|| jsonwebtoken::encode(black_box(&header), &claims, &encoding))
            });
        }
        group.finish();
    }
}

fn primitives(c: &mut Criterion) {
    let verifier = generate_verifier();
    let Ok(challenge) = CodeChallenge::from_verifier(&verifier) else {
        return;
    };
    c.bench_function("pkce/verify_s256", |b| {
        b.iter(|| challenge.verify(black_box(&verifier)))
    });
    c.bench_function("scope/parse_5_tokens", |b| {
        b.iter(|| ScopeSet::parse(black_box("openid profile read write admin")))
    });
    let granted = ScopeSet::parse("openid profile read write admin").unwrap_or_default();
    let asked = ScopeSet::parse("read write").unwrap_or_default();
    c.bench_function("scope/subset_check", |b| {
        b.iter(|| black_box(&asked).is_subset_of(&granted))
    });
    let token = OpaqueToken::generate();
    c.bench_function("secret/sha256_digest", |b| {
        b.iter(|| SecretDigest::of(black_box(token.as_str())))
    });
    let digest = token.digest();
    c.bench_function("secret/digest_match", |b| {
        b.iter(|| digest.matches(black_box(token.as_str())))
    });
    c.bench_function("secret/generate_opaque_token", |b| {
        b.iter(OpaqueToken::generate)
    });
}

criterion_group!(benches, tokens, primitives);
criterion_main!(benches);
