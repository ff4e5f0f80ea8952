//! OAuth 2.0 scope sets (RFC 6749 §3.3): parsing, subset checks and canonical formatting.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Why a scope string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// Two spaces in a row, or a leading or trailing space: RFC 6749 §3.3 allows single spaces only.
    #[error("scope tokens must be separated by single spaces")]
    BadSeparator,
    /// A character outside NQCHAR (`%x21 / %x23-5B / %x5D-7E`).
    #[error("scope token {0:?} contains a character outside NQCHAR")]
    InvalidCharacter(String),
}

/// A set of scope tokens.
///
/// The order of tokens carries no meaning (RFC 6749 §3.3: "the strings are order-independent"), so the set
/// is kept sorted and formats canonically: tokens in byte order, separated by single spaces.
///
/// ```
/// use auth_core::scope::ScopeSet;
///
/// let granted: ScopeSet = "write read".parse()?;
/// let asked: ScopeSet = "read".parse()?;
/// assert!(asked.is_subset_of(&granted));
/// assert_eq!(granted.to_string(), "read write");
/// # Ok::<(), auth_core::scope::ScopeError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScopeSet(BTreeSet<String>);

/// RFC 6749 Appendix A.4: `NQCHAR = %x21 / %x23-5B / %x5D-7E` (printable ASCII but `"` and `\`).
fn is_nqchar(byte: u8) -> bool {
    matches!(byte, 0x21 | 0x23..=0x5B | 0x5D..=0x7E)
}

impl ScopeSet {
    /// The empty set.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Parses a `scope` parameter. The empty string is the empty set.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        if text.is_empty() {
            return Ok(Self::empty());
        }
        let mut tokens = BTreeSet::new();
        for token in text.split(' ') {
            if token.is_empty() {
                return Err(ScopeError::BadSeparator);
            }
            if !token.bytes().all(is_nqchar) {
                return Err(ScopeError::InvalidCharacter(token.to_owned()));
            }
            tokens.insert(token.to_owned());
        }
        Ok(Self(tokens))
    }

    /// Builds a set from tokens that are each checked like [`ScopeSet::parse`] checks them.
    pub fn from_tokens<I, S>(tokens: I) -> Result<Self, ScopeError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut set = BTreeSet::new();
        for token in tokens {
            let token = token.as_ref();
            if token.is_empty() || token.contains(' ') {
                return Err(ScopeError::BadSeparator);
            }
            if !token.bytes().all(is_nqchar) {
                return Err(ScopeError::InvalidCharacter(token.to_owned()));
            }
            set.insert(token.to_owned());
        }
        Ok(Self(set))
    }

    /// True when every token of `self` is in `other`.
    pub fn is_subset_of(&self, other: &ScopeSet) -> bool {
        self.0.is_subset(&other.0)
    }

    /// True when the set holds `token`.
    pub fn contains(&self, token: &str) -> bool {
        self.0.contains(token)
    }

    /// Tokens of `self` that are not in `other`, in canonical order.
    pub fn missing_from<'a>(&'a self, other: &'a ScopeSet) -> impl Iterator<Item = &'a str> + 'a {
        self.0.difference(&other.0).map(String::as_str)
    }

    /// Tokens in canonical order.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for ScopeSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for token in &self.0 {
            if !first {
                f.write_str(" ")?;
            }
            f.write_str(token)?;
            first = false;
        }
        Ok(())
    }
}

impl FromStr for ScopeSet {
    type Err = ScopeError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

impl Serialize for ScopeSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ScopeSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_formats_canonically() {
        let set = ScopeSet::parse("write read openid read").unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(set.to_string(), "openid read write");
    }

    #[test]
    fn empty_string_is_the_empty_set() {
        assert!(ScopeSet::parse("").unwrap().is_empty());
        assert_eq!(ScopeSet::empty().to_string(), "");
    }

    #[test]
    fn refuses_double_leading_and_trailing_spaces() {
        for bad in ["read  write", " read", "read ", " "] {
            assert_eq!(
                ScopeSet::parse(bad),
                Err(ScopeError::BadSeparator),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_characters_outside_nqchar() {
        for bad in ["re\"ad", "re\\ad", "read\twrite", "réad", "read\u{7f}"] {
            assert!(
                matches!(ScopeSet::parse(bad), Err(ScopeError::InvalidCharacter(_))),
                "{bad:?}"
            );
        }
        // Every NQCHAR is accepted, including the odd ones.
        assert!(ScopeSet::parse("!#[]~ urn:x:y https://api.example/read").is_ok());
    }

    #[test]
    fn subset_and_missing() {
        let granted = ScopeSet::parse("read write").unwrap();
        let asked = ScopeSet::parse("read admin").unwrap();
        assert!(!asked.is_subset_of(&granted));
        assert_eq!(
            asked.missing_from(&granted).collect::<Vec<_>>(),
            vec!["admin"]
        );
        assert!(ScopeSet::empty().is_subset_of(&granted));
    }

    #[test]
    fn serde_uses_the_space_separated_form() {
        let set: ScopeSet = serde_json::from_str("\"b a\"").unwrap();
        assert_eq!(serde_json::to_string(&set).unwrap(), "\"a b\"");
        assert!(serde_json::from_str::<ScopeSet>("\"a  b\"").is_err());
    }

    fn token() -> impl Strategy<Value = String> {
        proptest::string::string_regex("[!#-\\[\\]-~]{1,12}").unwrap()
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(tokens in proptest::collection::vec(token(), 0..8)) {
            let set = ScopeSet::from_tokens(&tokens).unwrap();
            let again = ScopeSet::parse(&set.to_string()).unwrap();
            prop_assert_eq!(&again, &set);
            // Canonical: formatting is a fixed point.
            prop_assert_eq!(again.to_string(), set.to_string());
        }

    }

    proptest! {
        // PROPTEST_CASES raises the count under `cargo xtask fuzz`; CI runs the default.
        #![proptest_config(ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|cases| cases.parse().ok()).unwrap_or(512)
        ))]

        /// Fuzz target for the scope parser: any text, valid-looking or not. Nothing panics, and what
        /// parses is canonical (formatting re-parses to the same set) and made of NQCHAR only (RFC 6749 §3.3).
        #[test]
        fn fuzz_scope_parse(text in prop_oneof!["\\PC{0,40}", "[ -~]{0,40}", "(read|write| |  |\\t|\u{7f}|\"|\\\\){0,10}"]) {
            if let Ok(set) = ScopeSet::parse(&text) {
                let formatted = set.to_string();
                prop_assert_eq!(ScopeSet::parse(&formatted).unwrap(), set);
                prop_assert!(formatted.chars().all(|c| c == ' ' || matches!(c, '\x21' | '\x23'..='\x5b' | '\x5d'..='\x7e')));
            }
        }
    }
}
