//! Reading a request's client credentials (RFC 6749 §2.3): HTTP Basic, or `client_id` and `client_secret`
//! in the body, never both. What they are worth is for `crate::clients::authenticate` to say.

use auth_core::wire::ErrorCode;
use axum::http::{HeaderMap, header};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::error::ApiError;
use crate::clients::authentication::{AuthMethod, ClientCredentials, invalid_client};
use crate::error::{invalid_request, oauth};
use crate::params::Params;

/// Decodes `Authorization: Basic` into (client_id, secret); RFC 6749 §2.3.1 form-urlencodes both first.
/// `None` when the header is absent or another scheme; `Some(Err)` when it is Basic but malformed.
fn basic_credentials(headers: &HeaderMap) -> Option<Result<(String, String), ()>> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decode = || -> Result<(String, String), ()> {
        let bytes = STANDARD.decode(encoded.trim()).map_err(|_| ())?;
        let text = String::from_utf8(bytes).map_err(|_| ())?;
        let (id, secret) = text.split_once(':').ok_or(())?;
        let unescape = |part: &str| -> String {
            form_urlencoded::parse(format!("x={part}").as_bytes())
                .next()
                .map(|(_, value)| value.into_owned())
                .unwrap_or_default()
        };
        Ok((unescape(id), unescape(secret)))
    };
    Some(decode())
}

/// The credentials of a request. A client that used Basic gets a Basic challenge with `invalid_client`.
pub fn client_credentials(
    headers: &HeaderMap,
    params: &Params,
) -> Result<ClientCredentials, ApiError> {
    let basic = basic_credentials(headers);
    let basic_tried = basic.is_some();
    let with_challenge = |error| ApiError {
        error,
        basic_challenge: basic_tried,
    };
    let body_id = params.get("client_id").map_err(with_challenge)?;
    let body_secret = params.get("client_secret").map_err(with_challenge)?;
    let assertion_type = params.get("client_assertion_type")?;
    let assertion = params.get("client_assertion")?;
    if assertion_type.is_some() || assertion.is_some() {
        // RFC 7521 §4.2 with RFC 7523 §2.2: both parameters, the JWT type, and no second method.
        if basic_tried || body_secret.is_some() {
            return Err(invalid_request("use one client authentication method, not two").into());
        }
        let (Some(assertion_type), Some(assertion)) = (assertion_type, assertion) else {
            return Err(
                invalid_request("client_assertion and client_assertion_type go together").into(),
            );
        };
        if assertion_type != auth_core::client_assertion::ASSERTION_TYPE {
            return Err(invalid_client().into());
        }
        let client_id = match body_id {
            Some(client_id) => client_id.to_owned(),
            None => auth_core::client_assertion::claimed_client_id(assertion)
                .ok_or_else(invalid_client)?,
        };
        return Ok(ClientCredentials {
            client_id,
            secret: None,
            assertion: Some(assertion.to_owned()),
            method: AuthMethod::PrivateKeyJwt,
        });
    }
    match (basic, body_id, body_secret) {
        (Some(_), _, Some(_)) => {
            Err(invalid_request("use one client authentication method, not two").into())
        }
        (Some(Err(())), _, None) => Err(with_challenge(invalid_client())),
        (Some(Ok((client_id, secret))), body_id, None) => {
            if body_id.is_some_and(|body_id| body_id != client_id) {
                return Err(invalid_request(
                    "client_id in the body differs from the Basic credentials",
                )
                .into());
            }
            Ok(ClientCredentials {
                client_id,
                secret: Some(secret),
                assertion: None,
                method: AuthMethod::ClientSecretBasic,
            })
        }
        (None, Some(client_id), Some(secret)) => Ok(ClientCredentials {
            client_id: client_id.to_owned(),
            secret: Some(secret.to_owned()),
            assertion: None,
            method: AuthMethod::ClientSecretPost,
        }),
        (None, Some(client_id), None) => Ok(ClientCredentials {
            client_id: client_id.to_owned(),
            secret: None,
            assertion: None,
            method: AuthMethod::None,
        }),
        (None, None, _) => Err(oauth(
            ErrorCode::InvalidClient,
            "client authentication is required",
        )
        .into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, HeaderValue::from_str(value).unwrap());
        headers
    }

    #[test]
    fn basic_credentials_are_form_urldecoded() {
        // "my%3Aclient:s%2Bcret" → id "my:client", secret "s+cret" (RFC 6749 §2.3.1).
        let encoded = STANDARD.encode("my%3Aclient:s%2Bcret");
        let parsed = basic_credentials(&headers(&format!("Basic {encoded}")))
            .unwrap()
            .unwrap();
        assert_eq!(parsed, ("my:client".to_owned(), "s+cret".to_owned()));
    }

    #[test]
    fn malformed_basic_is_an_error_and_other_schemes_are_ignored() {
        assert!(basic_credentials(&headers("Basic !!!")).unwrap().is_err());
        assert!(
            basic_credentials(&headers(&format!("Basic {}", STANDARD.encode("no-colon"))))
                .unwrap()
                .is_err()
        );
        assert!(basic_credentials(&headers("Bearer abc")).is_none());
        assert!(basic_credentials(&HeaderMap::new()).is_none());
    }

    #[test]
    fn one_method_at_a_time_and_a_challenge_after_basic() {
        let basic = headers(&format!("Basic {}", STANDARD.encode("app:secret")));
        let both = client_credentials(&basic, &Params::parse(b"client_secret=x")).unwrap_err();
        assert!(
            matches!(&both.error, crate::error::Error::OAuth(e) if e.error == ErrorCode::InvalidRequest)
        );
        let malformed = client_credentials(&headers("Basic !!!"), &Params::default()).unwrap_err();
        assert!(malformed.basic_challenge);
        let post = client_credentials(
            &HeaderMap::new(),
            &Params::parse(b"client_id=app&client_secret=s"),
        )
        .unwrap();
        assert_eq!(post.method, AuthMethod::ClientSecretPost);
        let public =
            client_credentials(&HeaderMap::new(), &Params::parse(b"client_id=spa")).unwrap();
        assert_eq!((public.method, public.secret), (AuthMethod::None, None));
        let none = client_credentials(&HeaderMap::new(), &Params::default()).unwrap_err();
        assert!(!none.basic_challenge);
    }
}
