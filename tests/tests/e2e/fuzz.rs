//! Fuzz target for the bearer layer over HTTP: hostile `Authorization` headers — random text,
//! JWT-shaped strings, a real token with bytes changed, odd schemes and spacing — on every route and method
//! of resource-api. Every answer is a 2xx or 4xx, never a 5xx (503 only for DELETE, which needs
//! introspection this stack lacks), and only the untouched real token in a well-formed header is accepted. Bounded in CI; `cargo xtask fuzz` raises PROPTEST_CASES.

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use reqwest::header::AUTHORIZATION;
use testkit::Stack;

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|cases| cases.parse().ok())
        .unwrap_or(256)
}

/// base64url of a JSON value.
fn encoded(value: &serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A header value derived from the real token, or not: printable ASCII, any Unicode, any byte a header may
/// carry (obs-text included), and JWTs whose header and claims hold any Unicode, NUL and huge numbers.
fn header(token: String) -> impl Strategy<Value = Vec<u8>> {
    let real = token.clone();
    let mutated = (any::<prop::sample::Index>(), "[ -~]").prop_map(move |(index, replacement)| {
        let mut bytes = token.clone().into_bytes();
        let at = index.index(bytes.len());
        bytes[at] = replacement.as_bytes()[0];
        format!("Bearer {}", String::from_utf8_lossy(&bytes))
    });
    let hostile_text = prop_oneof![
        "(?s).{0,20}".prop_map(serde_json::Value::from),
        Just(serde_json::json!("aaaaaaaaaaaé")),
        Just(serde_json::json!("at+jwt\u{0}")),
        Just(serde_json::json!(1e308)),
        Just(serde_json::json!(u64::MAX)),
        Just(serde_json::json!(-9_223_372_036_854_775_808i64)),
    ];
    let hostile_jwt =
        (hostile_text.clone(), hostile_text.clone(), hostile_text).prop_map(|(typ, kid, exp)| {
            format!(
                "Bearer {}.{}.{}",
                encoded(&serde_json::json!({ "alg": "ES256", "typ": typ, "kid": kid })),
                encoded(
                    &serde_json::json!({ "exp": exp, "iss": "\u{0}", "aud": ["resource-api", 7] })
                ),
                encoded(&serde_json::json!("signature"))
            )
        });
    let header_bytes = prop::collection::vec(
        prop_oneof![Just(b'\t'), 0x20u8..=0x7e, 0x80u8..=0xff],
        0..120,
    );
    prop_oneof![
        Just(format!("Bearer {real}").into_bytes()),
        mutated.prop_map(String::into_bytes),
        "[ -~]{0,80}".prop_map(String::into_bytes),
        "\\PC{0,60}".prop_map(|text| format!("Bearer {text}").into_bytes()),
        header_bytes.clone(),
        header_bytes.prop_map(|bytes| [b"Bearer ".as_slice(), &bytes].concat()),
        hostile_jwt.prop_map(String::into_bytes),
        "[A-Za-z0-9_-]{0,60}\\.[A-Za-z0-9_-]{0,200}\\.[A-Za-z0-9_-]{0,90}"
            .prop_map(|jwt| format!("Bearer {jwt}").into_bytes()),
        (
            "(Bearer|bearer|BEARER|Basic|Token|Bearer |Bearer\t)",
            "[ -~]{0,40}"
        )
            .prop_map(|(scheme, rest)| format!("{scheme} {rest}").into_bytes()),
        Just(format!("Bearer  {real}").into_bytes()),
        Just(format!("Bearer {real} extra").into_bytes()),
        Just(format!("Bearer {real}, Bearer {real}").into_bytes()),
    ]
}

#[test]
fn fuzz_bearer_header_never_gets_a_5xx_and_only_the_real_token_passes() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let Stack { api, token, .. } = runtime.block_on(Stack::start("read write"));
    let input = (
        header(token.clone()),
        prop::sample::select(vec![
            (Method::GET, "/protected"),
            (Method::GET, "/items"),
            (Method::POST, "/items"),
            (Method::DELETE, "/items/1"),
            (Method::PUT, "/protected"),
        ]),
    );
    let mut runner = TestRunner::new(Config::with_cases(cases()));
    runner
        .run(&input, |(value, (method, path))| {
            runtime.block_on(async {
                let header = reqwest::header::HeaderValue::from_bytes(&value)
                    .map_err(|error| TestCaseError::fail(error.to_string()))?;
                let value = String::from_utf8_lossy(&value).into_owned();
                let response = api
                    .http
                    .request(method.clone(), format!("{}{path}", api.base))
                    .header(AUTHORIZATION, header)
                    .header("content-type", "application/json")
                    .body(r#"{"name":"fuzz"}"#)
                    .send()
                    .await
                    .map_err(|error| TestCaseError::fail(error.to_string()))?;
                let status = response.status();
                prop_assert!(
                    status.as_u16() < 500 || (method == Method::DELETE && status == 503),
                    "{method} {path} with {value:?}: {status}"
                );
                if status.is_success() {
                    // RFC 6750 §2.1: credentials = "Bearer" 1*SP b64token, the scheme case-insensitive
                    // (RFC 9110 §11.1). Exactly that, with the real token, may pass.
                    let (scheme, rest) = value.split_at(value.len().min(6));
                    let presented = rest.trim_start_matches(' ');
                    prop_assert!(
                        scheme.eq_ignore_ascii_case("bearer")
                            && rest.starts_with(' ')
                            && presented == token,
                        "{} {} accepted {:?}",
                        method,
                        path,
                        value
                    );
                }
                Ok(())
            })
        })
        .unwrap();
}
