//! What makes a user valid: the one rule set that `user create`, `user set-password` and the configuration
//! file call. A refusal names the field, so each caller can say it its own way (a flag, a file key).

use crate::authorize::login::{MAX_USERNAME_BYTES, is_possible_username};

/// The shortest password accepted unless configured otherwise (NIST SP 800-63B §3.1.1.2: at least 8).
pub const DEFAULT_MIN_PASSWORD_LENGTH: u8 = 8;

/// The longest password accepted (NIST SP 800-63B §3.1.1.2: at least 64 must be); argon2 hashes any length
/// at one cost, so this only bounds what a form may carry.
pub const MAX_PASSWORD_CHARS: usize = 1024;

/// A field of a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserField {
    Username,
    Name,
    Email,
    Password,
}

impl UserField {
    /// Its `user create` flag.
    pub fn flag(self) -> &'static str {
        match self {
            Self::Username => "--username",
            Self::Name => "--name",
            Self::Email => "--email",
            Self::Password => "the password on stdin",
        }
    }

    /// Its key in a configuration file's `[[users]]` entry.
    pub fn key(self) -> &'static str {
        match self {
            Self::Username => "username",
            Self::Name => "name",
            Self::Email => "email",
            Self::Password => "password",
        }
    }
}

/// Why a user is refused, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}")]
pub struct UserError {
    pub field: UserField,
    pub reason: String,
}

fn refuse(field: UserField, reason: impl Into<String>) -> UserError {
    UserError {
        field,
        reason: reason.into(),
    }
}

/// Checks a user's profile: a username that can be looked up, an optional name and e-mail address.
pub fn validate_profile(
    username: &str,
    name: Option<&str>,
    email: Option<&str>,
) -> Result<(), UserError> {
    if !is_possible_username(username) {
        return Err(refuse(
            UserField::Username,
            format!("a username is 1 to {MAX_USERNAME_BYTES} bytes without control characters"),
        ));
    }
    if let Some(email) = email
        && (email.is_empty()
            || email.len() > 254
            || email.chars().any(char::is_control)
            || !email.contains('@'))
    {
        return Err(refuse(
            UserField::Email,
            "an e-mail address is user@host, at most 254 bytes",
        ));
    }
    if name.is_some_and(|name| {
        name.is_empty() || name.len() > 255 || name.chars().any(char::is_control)
    }) {
        return Err(refuse(
            UserField::Name,
            "a name is 1 to 255 bytes without control characters",
        ));
    }
    Ok(())
}

/// Checks a new password: at least `min_length` characters, at most [`MAX_PASSWORD_CHARS`], and nothing
/// else (NIST SP 800-63B §3.1.1.2: no composition rules).
pub fn validate_password(password: &str, min_length: u8) -> Result<(), UserError> {
    let length = password.chars().count();
    if length < usize::from(min_length) {
        return Err(refuse(
            UserField::Password,
            format!("a password must be at least {min_length} characters (it has {length})"),
        ));
    }
    if length > MAX_PASSWORD_CHARS {
        return Err(refuse(
            UserField::Password,
            format!("a password may be at most {MAX_PASSWORD_CHARS} characters"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_need_the_minimum_length_and_nothing_else() {
        assert_eq!(
            validate_password("1234567", 8).unwrap_err().field,
            UserField::Password
        );
        assert!(validate_password("12345678", 8).is_ok());
        assert!(
            validate_password("ééééééé", 8).is_err(),
            "characters, not bytes"
        );
        assert!(
            validate_password("aaaaaaaa", 8).is_ok(),
            "no composition rules"
        );
        assert!(validate_password(&"x".repeat(64), 8).is_ok(), "64 allowed");
        assert!(validate_password(&"x".repeat(12), 16).is_err());
        assert!(validate_password(&"x".repeat(1025), 8).is_err());
    }

    #[test]
    fn profiles_name_the_field_they_refuse() {
        assert!(validate_profile("alice", Some("Alice"), Some("a@b")).is_ok());
        assert_eq!(
            validate_profile("", None, None).unwrap_err().field,
            UserField::Username
        );
        assert_eq!(
            validate_profile("alice", None, Some("nope"))
                .unwrap_err()
                .field,
            UserField::Email
        );
        assert_eq!(
            validate_profile("alice", Some("bad\nname"), None)
                .unwrap_err()
                .field,
            UserField::Name
        );
    }
}
