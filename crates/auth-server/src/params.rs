//! Request parameters read strictly (RFC 6749 §3.1, §3.2): a parameter sent without a value counts as
//! omitted, and one sent twice is refused. Form bodies and query strings alike; no HTTP types here.

use crate::error::{Result, invalid_request};

/// Parsed `application/x-www-form-urlencoded` parameters, in order.
#[derive(Debug, Clone, Default)]
pub struct Params(Vec<(String, String)>);

impl Params {
    /// Parses form or query text; bytes that are not UTF-8 are replaced, never an error.
    pub fn parse(text: &[u8]) -> Self {
        Self(
            form_urlencoded::parse(text)
                .map(|(name, value)| (name.into_owned(), value.into_owned()))
                .collect(),
        )
    }

    /// The single value of `name`: `Ok(None)` when absent or empty, `invalid_request` when repeated.
    pub fn get(&self, name: &str) -> Result<Option<&str>> {
        let mut values = self
            .0
            .iter()
            .filter(|(key, value)| key == name && !value.is_empty());
        let first = values.next().map(|(_, value)| value.as_str());
        if values.next().is_some() {
            return Err(invalid_request(format!(
                "parameter {name} was given more than once"
            )));
        }
        Ok(first)
    }

    /// The value of `name`, or `invalid_request` naming it.
    pub fn require(&self, name: &str) -> Result<&str> {
        self.get(name)?
            .ok_or_else(|| invalid_request(format!("parameter {name} is required")))
    }

    /// True when `name` appears at all, even empty.
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(key, _)| key == name)
    }

    /// Every (name, value), in order.
    pub fn pairs(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The parameters form-encoded again, in their order.
    pub fn encode(&self) -> String {
        form_urlencoded::Serializer::new(String::new())
            .extend_pairs(self.0.iter())
            .finish()
    }

    /// These parameters and `name`=`value`, unless `name` has a value already (an empty one is absent, RFC
    /// 6749 §3.1, and is replaced).
    pub fn with_default(mut self, name: &str, value: &str) -> Self {
        if !self
            .0
            .iter()
            .any(|(key, given)| key == name && !given.is_empty())
        {
            self.0.retain(|(key, _)| key != name);
            self.0.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// These parameters with `name` set to `value` alone, whatever it was.
    pub fn with_value(mut self, name: &str, value: &str) -> Self {
        self.0.retain(|(key, _)| key != name);
        self.0.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Only the parameters named in `names` that have a value, in their order.
    pub fn only(&self, names: &[&str]) -> Self {
        Self(
            self.0
                .iter()
                .filter(|(key, value)| !value.is_empty() && names.contains(&key.as_str()))
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use auth_core::wire::ErrorCode;

    #[test]
    fn repeated_parameters_are_refused_and_empty_ones_omitted() {
        let params = Params::parse(b"grant_type=client_credentials&scope=&scope=read&x=1&x=2");
        assert_eq!(
            params.get("grant_type").unwrap(),
            Some("client_credentials")
        );
        assert_eq!(
            params.get("scope").unwrap(),
            Some("read"),
            "the empty one counts as omitted"
        );
        assert!(
            matches!(params.get("x"), Err(Error::OAuth(error)) if error.error == ErrorCode::InvalidRequest)
        );
        assert_eq!(params.get("missing").unwrap(), None);
        assert!(params.require("missing").is_err());
        assert!(params.has("scope") && !params.has("missing"));
    }

    #[test]
    fn an_empty_value_is_absent_for_defaults_and_unknown_names_can_be_dropped() {
        let params = Params::parse(b"dpop_jkt=&client_id=app&extra=1")
            .with_default("dpop_jkt", "key")
            .with_default("client_id", "other");
        assert_eq!(params.get("dpop_jkt").unwrap(), Some("key"));
        assert_eq!(params.get("client_id").unwrap(), Some("app"));
        let replaced = params.clone().with_value("client_id", "b");
        assert_eq!(replaced.get("client_id").unwrap(), Some("b"));
        let kept = params.only(&["client_id", "dpop_jkt"]);
        assert_eq!(kept.encode(), "client_id=app&dpop_jkt=key");
    }

    #[test]
    fn values_are_percent_and_plus_decoded_and_bad_utf8_is_replaced() {
        let params = Params::parse(b"scope=read+write&redirect_uri=http%3A%2F%2Fa%2Fcb&bad=%FF");
        assert_eq!(params.get("scope").unwrap(), Some("read write"));
        assert_eq!(params.get("redirect_uri").unwrap(), Some("http://a/cb"));
        assert_eq!(params.get("bad").unwrap(), Some("\u{FFFD}"));
    }
}
