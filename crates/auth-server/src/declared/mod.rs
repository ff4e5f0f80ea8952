//! Configuration as code: a TOML file (`--config FILE`) declaring the `serve` settings, clients, users and
//! scope descriptions. [`read`] checks the whole file without a database, with the rule sets of the
//! clients and users domain ([`crate::clients::registration`], [`crate::users`]) so that the file, the
//! command line and registration can never disagree; every problem is one line `FILE:LINE: KEY: reason`.
//! [`apply`] makes the database match (one transaction), [`server`] merges `[server]` under the command
//! line and the environment, [`export`] writes the operator's clients and users back as a file.
//!
//! ```toml
//! prune = false
//! min_password_length = 12
//! [server]
//! access_token_ttl = 300
//! trusted_proxy = ["10.0.0.0/8"]
//! [[clients]]
//! client_id = "web"
//! secret_env = "WEB_CLIENT_SECRET"
//! grant_types = ["authorization_code", "refresh_token"]
//! redirect_uris = ["https://app.example/callback"]
//! scope = "openid profile read"
//! [[users]]
//! username = "alice"
//! password_file = "alice.password"
//! [scopes]
//! read = "Read your invoices"
//! ```

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;
use toml::de::{DeTable, DeValue};
use zeroize::Zeroizing;

use crate::clients::registration::{self, ClientMetadata, Field};
use crate::store::ClientRecord;
use crate::users::{self, UserField};

pub mod apply;
pub mod export;
pub mod server;

/// The largest file read (a configuration, a secret or password file, a JWK set file).
pub const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// One `[server]` setting: its key, the line it is on, and its value as command-line words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerSetting {
    /// The flag's long name (`access-token-ttl`).
    pub flag: String,
    pub line: usize,
    /// The values: one for a setting, each for a repeatable one, none for a flag that is off.
    pub values: Vec<String>,
    /// A flag without a value (`dpop_nonce = true`).
    pub switch: bool,
}

/// Where a declared client's secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// No secret (public and `private_key_jwt` clients).
    None,
    /// Keep the stored one.
    Keep,
    /// From the file (its digest is in the record).
    Given,
}

/// A `[[clients]]` entry, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientEntry {
    pub line: usize,
    pub record: ClientRecord,
    pub secret: SecretSource,
}

/// Where a declared user's password comes from.
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordSource {
    /// Keep the stored hash.
    Keep,
    /// A password (from a variable or a file): hashed when it does not verify against the stored hash.
    Plain(Zeroizing<String>),
    /// An argon2id PHC string.
    Hash(String),
}

impl std::fmt::Debug for PasswordSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Keep => f.write_str("Keep"),
            Self::Plain(_) => f.write_str("Plain(..)"),
            Self::Hash(_) => f.write_str("Hash(..)"),
        }
    }
}

/// A `[[users]]` entry, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserEntry {
    pub line: usize,
    pub username: String,
    pub name: Option<String>,
    pub email: Option<String>,
    pub email_verified: bool,
    pub password: PasswordSource,
}

/// A configuration file, checked: nothing in it is known to be wrong without a database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declaration {
    /// The file as it was named (the `FILE` of every line about it).
    pub path: PathBuf,
    pub prune: bool,
    pub min_password_length: u8,
    pub server: Vec<ServerSetting>,
    /// `[scopes]`: (scope, text), as `--scope-description` gives them.
    pub scopes: Vec<(String, String)>,
    pub clients: Vec<ClientEntry>,
    pub users: Vec<UserEntry>,
    /// Lines to log as warnings (a literal secret).
    pub warnings: Vec<String>,
}

impl Declaration {
    /// `FILE:LINE: KEY: reason`.
    pub fn line(&self, line: usize, key: &str, reason: &str) -> String {
        format!("{}:{line}: {key}: {reason}", self.path.display())
    }
}

/// Why a file cannot be used: each line `FILE:LINE: KEY: reason` (or `FILE: reason`), in file order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .0.join("\n"))]
pub struct Problems(pub Vec<String>);

const TOP_LEVEL_KEYS: [&str; 6] = [
    "prune",
    "min_password_length",
    "server",
    "clients",
    "users",
    "scopes",
];

const CLIENT_KEYS: [&str; 22] = [
    "client_id",
    "name",
    "public",
    "secret_env",
    "secret_file",
    "secret",
    "grant_types",
    "redirect_uris",
    "scope",
    "audiences",
    "skip_consent",
    "introspection",
    "post_logout_redirect_uris",
    "require_dpop",
    "require_par",
    "jwks",
    "jwks_file",
    "jwks_uri",
    "id_token_signed_response_alg",
    "token_exchange",
    "exchange_audiences",
    "backchannel_logout_uri",
];

const USER_KEYS: [&str; 7] = [
    "username",
    "name",
    "email",
    "email_verified",
    "password_env",
    "password_file",
    "password_hash",
];

/// Reads and checks `path`, with `env` for `secret_env` and `password_env` (the process environment in
/// production).
pub fn read(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> Result<Declaration, Problems> {
    let text = read_bounded(path)
        .map_err(|reason| Problems(vec![format!("{}: {reason}", path.display())]))?;
    parse(path, &text, env)
}

/// Reads a file of at most [`MAX_FILE_BYTES`].
fn read_bounded(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|error| format!("cannot read it: {error}"))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|error| format!("cannot read it: {error}"))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(text)
}

/// Checks `text`, the content of `path`.
pub fn parse(
    path: &Path,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Declaration, Problems> {
    let mut reader = Reader {
        path,
        text,
        env,
        problems: Vec::new(),
        warnings: Vec::new(),
    };
    let root = match DeTable::parse(text) {
        Ok(root) => root,
        Err(error) => {
            let line = error.span().map_or(1, |span| reader.line_of(span.start));
            let message = error
                .message()
                .lines()
                .next()
                .unwrap_or("not TOML")
                .to_owned();
            return Err(Problems(vec![format!(
                "{}:{line}: {message}",
                path.display()
            )]));
        }
    };
    let declaration = reader.declaration(root.get_ref());
    if reader.problems.is_empty() {
        Ok(Declaration {
            warnings: reader.warnings,
            ..declaration
        })
    } else {
        reader.problems.sort_by_key(|(line, _)| *line);
        Err(Problems(
            reader.problems.into_iter().map(|(_, line)| line).collect(),
        ))
    }
}

struct Reader<'a> {
    path: &'a Path,
    text: &'a str,
    env: &'a dyn Fn(&str) -> Option<String>,
    /// (line, text) to sort by line.
    problems: Vec<(usize, String)>,
    warnings: Vec<String>,
}

type Table<'i> = DeTable<'i>;

impl<'a> Reader<'a> {
    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|byte| **byte == b'\n')
            .count()
            + 1
    }

    fn problem(&mut self, span: Range<usize>, key: &str, reason: impl std::fmt::Display) {
        let line = self.line_of(span.start);
        self.problems.push((
            line,
            format!("{}:{line}: {key}: {reason}", self.path.display()),
        ));
    }

    /// Unknown keys of `table` are problems; `where_` names the table for the message.
    fn known_keys(&mut self, table: &Table<'_>, known: &[&str], where_: &str) {
        for (key, _) in table.iter() {
            if !known.contains(&key.get_ref().as_ref()) {
                self.problem(
                    key.span(),
                    key.get_ref(),
                    format!("unknown key in {where_}"),
                );
            }
        }
    }

    fn string(&mut self, table: &Table<'_>, key: &str) -> Option<(String, Range<usize>)> {
        let value = table.get(key)?;
        match value.get_ref().as_str() {
            Some(text) => Some((text.to_owned(), value.span())),
            None => {
                self.problem(
                    value.span(),
                    key,
                    format!("expected a string, found {}", value.get_ref().type_str()),
                );
                None
            }
        }
    }

    fn boolean(&mut self, table: &Table<'_>, key: &str) -> bool {
        let Some(value) = table.get(key) else {
            return false;
        };
        match value.get_ref().as_bool() {
            Some(flag) => flag,
            None => {
                self.problem(
                    value.span(),
                    key,
                    format!(
                        "expected true or false, found {}",
                        value.get_ref().type_str()
                    ),
                );
                false
            }
        }
    }

    fn strings(&mut self, table: &Table<'_>, key: &str) -> Vec<String> {
        let Some(value) = table.get(key) else {
            return Vec::new();
        };
        let Some(items) = value.get_ref().as_array() else {
            self.problem(
                value.span(),
                key,
                format!(
                    "expected an array of strings, found {}",
                    value.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        let mut strings = Vec::new();
        for item in items {
            match item.get_ref().as_str() {
                Some(text) => strings.push(text.to_owned()),
                None => self.problem(item.span(), key, "expected an array of strings"),
            }
        }
        strings
    }

    /// A file named relative to the configuration file's directory, read whole (at most 1 MiB).
    fn relative_file(&mut self, key: &str, name: &str, span: Range<usize>) -> Option<String> {
        let path = self
            .path
            .parent()
            .unwrap_or_else(|| Path::new(""))
            .join(name);
        match read_bounded(&path) {
            Ok(text) => Some(text),
            Err(reason) => {
                self.problem(span, key, format!("{}: {reason}", path.display()));
                None
            }
        }
    }

    /// A secret or password from exactly one of `{prefix}_env`, `{prefix}_file` and `literal`: the value
    /// (a file's without its final line break), the key it came from and that key's span.
    fn secret(
        &mut self,
        table: &Table<'_>,
        entry: Range<usize>,
        prefix: &str,
        literal: &str,
    ) -> Option<(Zeroizing<String>, String, Range<usize>)> {
        let env_key = format!("{prefix}_env");
        let file_key = format!("{prefix}_file");
        let given: Vec<&str> = [env_key.as_str(), file_key.as_str(), literal]
            .into_iter()
            .filter(|key| table.contains_key(*key))
            .collect();
        if given.len() > 1 {
            self.problem(
                entry,
                given[1],
                format!(
                    "give one of {env_key}, {file_key} and {literal}, not {}",
                    given.join(" and ")
                ),
            );
            return None;
        }
        let key = *given.first()?;
        let (text, span) = self.string(table, key)?;
        let value = if key == env_key {
            // A variable's name, never its value: a secret pasted here is not repeated in the message.
            let is_name = !text.is_empty()
                && !text.starts_with(|c: char| c.is_ascii_digit())
                && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !is_name {
                self.problem(
                    span,
                    key,
                    "expected the name of an environment variable (letters, digits and _), not a value",
                );
                return None;
            }
            match (self.env)(&text) {
                Some(value) => value,
                None => {
                    self.problem(span, key, format!("the variable {text} is not set"));
                    return None;
                }
            }
        } else if key == file_key {
            let content = self.relative_file(key, &text, span.clone())?;
            content
                .strip_suffix("\r\n")
                .or_else(|| content.strip_suffix('\n'))
                .unwrap_or(&content)
                .to_owned()
        } else {
            text
        };
        Some((Zeroizing::new(value), key.to_owned(), span))
    }

    fn declaration(&mut self, root: &Table<'_>) -> Declaration {
        self.known_keys(root, &TOP_LEVEL_KEYS, "the file");
        let prune = self.boolean(root, "prune");
        let min_password_length = match root.get("min_password_length") {
            None => users::DEFAULT_MIN_PASSWORD_LENGTH,
            Some(value) => {
                match integer(value.get_ref()).and_then(|number| u8::try_from(number).ok()) {
                    Some(length) if (8..=64).contains(&length) => length,
                    _ => {
                        self.problem(
                            value.span(),
                            "min_password_length",
                            "expected a whole number from 8 to 64",
                        );
                        users::DEFAULT_MIN_PASSWORD_LENGTH
                    }
                }
            }
        };
        let server = match root.get("server") {
            None => Vec::new(),
            Some(value) => match value.get_ref().as_table() {
                Some(table) => self.server(table),
                None => {
                    self.problem(value.span(), "server", "expected a table ([server])");
                    Vec::new()
                }
            },
        };
        let scopes = match root.get("scopes") {
            None => Vec::new(),
            Some(value) => match value.get_ref().as_table() {
                Some(table) => self.scopes(table),
                None => {
                    self.problem(value.span(), "scopes", "expected a table ([scopes])");
                    Vec::new()
                }
            },
        };
        let clients = self.entries(root, "clients", Self::client);
        let mut seen = BTreeSet::new();
        for client in &clients {
            if !seen.insert(client.record.client_id.as_str().to_owned()) {
                let line = client.line;
                self.problems.push((
                    line,
                    format!(
                        "{}:{line}: client_id: {} is declared twice",
                        self.path.display(),
                        client.record.client_id.as_str()
                    ),
                ));
            }
        }
        let users: Vec<UserEntry> = self.entries(root, "users", |reader, table, span| {
            reader.user(table, span, min_password_length)
        });
        let mut seen = BTreeSet::new();
        for user in &users {
            if !seen.insert(user.username.clone()) {
                let line = user.line;
                self.problems.push((
                    line,
                    format!(
                        "{}:{line}: username: {} is declared twice",
                        self.path.display(),
                        user.username
                    ),
                ));
            }
        }
        Declaration {
            path: self.path.to_owned(),
            prune,
            min_password_length,
            server,
            scopes,
            clients,
            users,
            warnings: Vec::new(),
        }
    }

    /// `[[name]]`: each table read by `one`.
    fn entries<T>(
        &mut self,
        root: &Table<'_>,
        name: &str,
        one: impl Fn(&mut Self, &Table<'_>, Range<usize>) -> Option<T>,
    ) -> Vec<T> {
        let Some(value) = root.get(name) else {
            return Vec::new();
        };
        let Some(items) = value.get_ref().as_array() else {
            self.problem(value.span(), name, format!("expected tables ([[{name}]])"));
            return Vec::new();
        };
        let mut entries = Vec::new();
        for item in items {
            match item.get_ref().as_table() {
                Some(table) => entries.extend(one(self, table, item.span())),
                None => self.problem(item.span(), name, format!("expected a table ([[{name}]])")),
            }
        }
        entries
    }

    fn server(&mut self, table: &Table<'_>) -> Vec<ServerSetting> {
        let command = crate::config::ServeConfig::command();
        let mut settings = Vec::new();
        for (key, value) in table.iter() {
            let name = key.get_ref().as_ref();
            if name == "scope_description" {
                self.problem(
                    key.span(),
                    name,
                    "scope descriptions go in [scopes] (read = \"Read your data\")",
                );
                continue;
            }
            let flag = name.replace('_', "-");
            let Some(arg) = command
                .get_arguments()
                .find(|arg| arg.get_long() == Some(flag.as_str()) && !name.contains('-'))
            else {
                self.problem(key.span(), name, "unknown key in [server] (the serve flags, with _ for -; --database-url, --log-format and --key-encryption-key are not file settings)");
                continue;
            };
            let line = self.line_of(key.span().start);
            let switch = matches!(arg.get_action(), clap::ArgAction::SetTrue);
            let repeatable = matches!(arg.get_action(), clap::ArgAction::Append);
            let words: Vec<(String, Range<usize>)> = match value.get_ref() {
                DeValue::Boolean(on) if switch => {
                    settings.push(ServerSetting {
                        flag,
                        line,
                        values: Vec::new(),
                        switch: *on,
                    });
                    continue;
                }
                _ if switch => {
                    self.problem(value.span(), name, "expected true or false");
                    continue;
                }
                DeValue::Array(items) if repeatable => {
                    let mut words = Vec::new();
                    for item in items {
                        match scalar(item.get_ref()) {
                            Some(word) => words.push((word, item.span())),
                            None => {
                                self.problem(item.span(), name, "expected a string or a number")
                            }
                        }
                    }
                    words
                }
                other => match scalar(other) {
                    Some(word) => vec![(word, value.span())],
                    None => {
                        self.problem(
                            value.span(),
                            name,
                            format!(
                                "expected a string or a number{}",
                                if repeatable {
                                    ", or an array of them"
                                } else {
                                    ""
                                }
                            ),
                        );
                        continue;
                    }
                },
            };
            let mut values = Vec::new();
            for (word, span) in words {
                match check_value(arg, &flag, &word) {
                    Ok(()) => values.push(word),
                    Err(reason) => self.problem(span, name, reason),
                }
            }
            settings.push(ServerSetting {
                flag,
                line,
                values,
                switch: false,
            });
        }
        settings
    }

    fn scopes(&mut self, table: &Table<'_>) -> Vec<(String, String)> {
        let mut scopes = Vec::new();
        for (key, value) in table.iter() {
            let scope = key.get_ref().as_ref();
            if scope.contains('=') {
                self.problem(key.span(), scope, "a scope name has no =");
                continue;
            }
            let Some(text) = value.get_ref().as_str() else {
                self.problem(value.span(), scope, "expected the description as a string");
                continue;
            };
            match crate::authorize::scope_descriptions::parse(&format!("{scope}={text}")) {
                Ok(pair) => scopes.push(pair),
                Err(reason) => self.problem(key.span(), scope, reason),
            }
        }
        scopes
    }

    fn client(&mut self, table: &Table<'_>, entry: Range<usize>) -> Option<ClientEntry> {
        self.known_keys(table, &CLIENT_KEYS, "[[clients]]");
        let Some((client_id, id_span)) = self.string(table, "client_id") else {
            if !table.contains_key("client_id") {
                self.problem(
                    entry,
                    "client_id",
                    "every [[clients]] entry needs a client_id",
                );
            }
            return None;
        };
        let public = self.boolean(table, "public");
        let secret = self.secret(table, entry.clone(), "secret", "secret");
        if let Some((_, key, span)) = &secret
            && key == "secret"
        {
            let line = self.line_of(span.start);
            self.warnings.push(format!(
                "{}:{line}: secret: a literal secret in a file is readable by whoever reads the file; prefer secret_env or secret_file",
                self.path.display()
            ));
        }
        let jwks_file = self.string(table, "jwks_file");
        let jwks_inline = table.get("jwks");
        let jwks = match (&jwks_file, jwks_inline) {
            (Some(_), Some(inline)) => {
                self.problem(inline.span(), "jwks", "give jwks or jwks_file, not both");
                return None;
            }
            (Some((name, span)), None) => {
                Some(self.relative_file("jwks_file", name, span.clone())?)
            }
            (None, Some(inline)) => match inline.get_ref() {
                DeValue::Table(_) => Some(to_json(inline.get_ref()).to_string()),
                other => {
                    self.problem(
                        inline.span(),
                        "jwks",
                        format!(
                            "expected a table (jwks = {{ keys = [...] }}), found {}",
                            other.type_str()
                        ),
                    );
                    return None;
                }
            },
            (None, None) => None,
        };
        let metadata = ClientMetadata {
            client_id: client_id.clone(),
            public,
            secret: secret.as_ref().map(|(value, _, _)| value.to_string()),
            grant_types: self.strings(table, "grant_types"),
            redirect_uris: self.strings(table, "redirect_uris"),
            scope: self
                .string(table, "scope")
                .map(|(text, _)| text)
                .unwrap_or_default(),
            audiences: self.strings(table, "audiences"),
            skip_consent: self.boolean(table, "skip_consent"),
            introspection: self.boolean(table, "introspection"),
            post_logout_redirect_uris: self.strings(table, "post_logout_redirect_uris"),
            require_dpop: self.boolean(table, "require_dpop"),
            jwks,
            jwks_uri: self.string(table, "jwks_uri").map(|(text, _)| text),
            require_par: self.boolean(table, "require_par"),
            name: self.string(table, "name").map(|(text, _)| text),
            id_token_signed_response_alg: self
                .string(table, "id_token_signed_response_alg")
                .map(|(text, _)| text),
            token_exchange: self.boolean(table, "token_exchange"),
            exchange_audiences: self.strings(table, "exchange_audiences"),
            backchannel_logout_uri: self
                .string(table, "backchannel_logout_uri")
                .map(|(text, _)| text),
        };
        match registration::validate(&metadata) {
            Ok((mut record, _)) => {
                let secret = if record.secret_digest.is_none() {
                    SecretSource::None
                } else if secret.is_some() {
                    SecretSource::Given
                } else {
                    // The rule set made one up: the file names none, so the stored one stays.
                    record.secret_digest = None;
                    SecretSource::Keep
                };
                Some(ClientEntry {
                    line: self.line_of(id_span.start),
                    record,
                    secret,
                })
            }
            Err(error) => {
                let (key, span) = self.key_of_field(table, error.field, &secret, &entry);
                self.problem(span, &key, error.reason);
                None
            }
        }
    }

    /// The key a refused field was given by, and its span (the entry's when it is absent).
    fn key_of_field(
        &self,
        table: &Table<'_>,
        field: Field,
        secret: &Option<(Zeroizing<String>, String, Range<usize>)>,
        entry: &Range<usize>,
    ) -> (String, Range<usize>) {
        let key = match field {
            Field::Secret => match secret {
                Some((_, key, span)) => return (key.clone(), span.clone()),
                None => "secret",
            },
            Field::Jwks if table.contains_key("jwks_file") => "jwks_file",
            other => other.key(),
        };
        let span = table
            .get(key)
            .map(Spanned::span)
            .unwrap_or_else(|| entry.clone());
        (key.to_owned(), span)
    }

    fn user(
        &mut self,
        table: &Table<'_>,
        entry: Range<usize>,
        min_password_length: u8,
    ) -> Option<UserEntry> {
        self.known_keys(table, &USER_KEYS, "[[users]]");
        let Some((username, username_span)) = self.string(table, "username") else {
            if !table.contains_key("username") {
                self.problem(entry, "username", "every [[users]] entry needs a username");
            }
            return None;
        };
        let name = self.string(table, "name").map(|(text, _)| text);
        let email = self.string(table, "email");
        let email_verified = self.boolean(table, "email_verified");
        if email_verified && email.is_none() {
            self.problem(
                table
                    .get("email_verified")
                    .map_or(entry.clone(), Spanned::span),
                "email_verified",
                "email_verified needs an email",
            );
        }
        if let Err(error) = users::validate_profile(
            &username,
            name.as_deref(),
            email.as_ref().map(|(text, _)| text.as_str()),
        ) {
            let key = error.field.key();
            let span = table.get(key).map_or(entry.clone(), Spanned::span);
            self.problem(span, key, error.reason);
            return None;
        }
        let password = match self.secret(table, entry.clone(), "password", "password_hash") {
            None => PasswordSource::Keep,
            Some((hash, key, span)) if key == "password_hash" => {
                if let Err(reason) = auth_core::secret::PasswordHasher::check_given_hash(&hash) {
                    self.problem(span, &key, reason);
                    return None;
                }
                PasswordSource::Hash(hash.to_string())
            }
            Some((password, key, span)) => {
                if let Err(error) = users::validate_password(&password, min_password_length) {
                    debug_assert_eq!(error.field, UserField::Password);
                    self.problem(span, &key, error.reason);
                    return None;
                }
                PasswordSource::Plain(password)
            }
        };
        Some(UserEntry {
            line: self.line_of(username_span.start),
            username,
            name,
            email: email.map(|(text, _)| text),
            email_verified,
            password,
        })
    }
}

/// A TOML integer as i64.
fn integer(value: &DeValue<'_>) -> Option<i64> {
    let number = value.as_integer()?;
    i64::from_str_radix(&number.as_str().replace('_', ""), number.radix()).ok()
}

/// A string or an integer as a command-line word.
fn scalar(value: &DeValue<'_>) -> Option<String> {
    match value {
        DeValue::String(text) => Some(text.to_string()),
        DeValue::Integer(_) => integer(value).map(|number| number.to_string()),
        _ => None,
    }
}

/// Parses `word` as the flag's value would be parsed on the command line (the flag's own value parser,
/// alone: no other flag it requires or conflicts with); the reason clap gives when it does not parse.
fn check_value(arg: &clap::Arg, flag: &str, word: &str) -> Result<(), String> {
    let alone = clap::Arg::new("value")
        .long("value")
        .action(clap::ArgAction::Set)
        .value_parser(arg.get_value_parser().clone());
    match clap::Command::new("check")
        .no_binary_name(true)
        .arg(alone)
        .try_get_matches_from([format!("--value={word}")])
    {
        Ok(_) => Ok(()),
        Err(error) => {
            let text = error.to_string();
            let reason: Vec<&str> = text
                .lines()
                .take_while(|line| !line.is_empty())
                .map(str::trim)
                .collect();
            let reason = reason.join(" ");
            Err(reason
                .strip_prefix("error: ")
                .unwrap_or(&reason)
                .replace("'--value <value>'", &format!("--{flag}")))
        }
    }
}

/// A TOML value as JSON (an inline JWK set).
fn to_json(value: &DeValue<'_>) -> serde_json::Value {
    match value {
        DeValue::String(text) => serde_json::Value::String(text.to_string()),
        DeValue::Integer(_) => integer(value).map_or(serde_json::Value::Null, Into::into),
        DeValue::Float(number) => number
            .as_str()
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map_or(serde_json::Value::Null, serde_json::Value::Number),
        DeValue::Boolean(flag) => serde_json::Value::Bool(*flag),
        DeValue::Datetime(datetime) => serde_json::Value::String(datetime.to_string()),
        DeValue::Array(items) => items.iter().map(|item| to_json(item.get_ref())).collect(),
        DeValue::Table(table) => serde_json::Value::Object(
            table
                .iter()
                .map(|(key, item)| (key.get_ref().to_string(), to_json(item.get_ref())))
                .collect(),
        ),
    }
}

#[cfg(test)]
mod tests;
