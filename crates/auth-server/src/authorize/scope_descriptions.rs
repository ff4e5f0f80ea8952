//! What each scope lets an application do, in words a person reads on the consent page. Defaults for the
//! OpenID Connect scopes (Core §5.4) and the demo API's `read` and `write`; `serve --scope-description
//! SCOPE=TEXT` adds or replaces one.

use std::borrow::Cow;
use std::collections::BTreeMap;

/// The defaults, replaced by any configured description of the same scope.
const DEFAULTS: [(&str, &str); 5] = [
    ("openid", "Know who you are (your account's user id)"),
    ("profile", "See your name and username"),
    (
        "email",
        "See your e-mail address and whether it is verified",
    ),
    ("read", "Read your data"),
    ("write", "Change your data"),
];

/// The descriptions in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScopeDescriptions(BTreeMap<String, String>);

impl Default for ScopeDescriptions {
    fn default() -> Self {
        Self::new(&[])
    }
}

impl ScopeDescriptions {
    /// The defaults with `configured` (scope, text) pairs on top.
    pub fn new(configured: &[(String, String)]) -> Self {
        let mut map: BTreeMap<String, String> = DEFAULTS
            .iter()
            .map(|(scope, text)| ((*scope).to_owned(), (*text).to_owned()))
            .collect();
        for (scope, text) in configured {
            map.insert(scope.clone(), text.clone());
        }
        Self(map)
    }

    /// The text for `scope`; a scope nobody described is named as it is.
    pub fn describe<'a>(&'a self, scope: &'a str) -> Cow<'a, str> {
        match self.0.get(scope) {
            Some(text) => Cow::Borrowed(text),
            None => Cow::Owned(format!("Use the “{scope}” permission")),
        }
    }
}

/// Parses `SCOPE=TEXT` (clap value parser of `--scope-description`).
pub fn parse(text: &str) -> Result<(String, String), String> {
    let (scope, description) = text
        .split_once('=')
        .ok_or_else(|| "expected SCOPE=TEXT".to_owned())?;
    let scope = scope.trim();
    let description = description.trim();
    if auth_core::scope::ScopeSet::parse(scope).map_or(true, |set| set.iter().count() != 1) {
        return Err(format!("{scope:?} is not one scope (RFC 6749 §3.3)"));
    }
    if description.is_empty()
        || description.len() > 200
        || description.chars().any(char::is_control)
    {
        return Err("the text must be 1 to 200 bytes without control characters".into());
    }
    Ok((scope.to_owned(), description.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_can_be_replaced_and_unknown_scopes_are_named() {
        let descriptions =
            ScopeDescriptions::new(&[parse("write = Change your invoices").unwrap()]);
        assert_eq!(descriptions.describe("read"), "Read your data");
        assert_eq!(
            descriptions.describe("email"),
            "See your e-mail address and whether it is verified"
        );
        assert_eq!(
            descriptions.describe("openid"),
            "Know who you are (your account's user id)"
        );
        assert_eq!(
            descriptions.describe("profile"),
            "See your name and username"
        );
        assert_eq!(descriptions.describe("write"), "Change your invoices");
        assert_eq!(
            descriptions.describe("billing"),
            "Use the “billing” permission"
        );
        assert!(parse("no equals sign").is_err());
        assert!(parse("two scopes=text").is_err());
        assert!(parse("read=").is_err());
        assert!(parse("read=line\nbreak").is_err());
    }
}
