//! `config export`: the operator's clients and users as a file that `config apply` takes back unchanged.
//! No secret and no password hash is written: an entry without one keeps the stored one when applied.

use crate::store::{ClientRecord, UserRecord};

fn strings(items: &[String]) -> toml::Value {
    toml::Value::Array(items.iter().cloned().map(toml::Value::String).collect())
}

/// A JSON value (a JWK set) as TOML; JSON's null has no TOML form and is left out.
fn from_json(value: &serde_json::Value) -> Option<toml::Value> {
    Some(match value {
        serde_json::Value::Null => return None,
        serde_json::Value::Bool(flag) => toml::Value::Boolean(*flag),
        serde_json::Value::Number(number) => match number.as_i64() {
            Some(integer) => toml::Value::Integer(integer),
            None => toml::Value::Float(number.as_f64()?),
        },
        serde_json::Value::String(text) => toml::Value::String(text.clone()),
        serde_json::Value::Array(items) => {
            toml::Value::Array(items.iter().filter_map(from_json).collect())
        }
        serde_json::Value::Object(members) => toml::Value::Table(
            members
                .iter()
                .filter_map(|(key, item)| Some((key.clone(), from_json(item)?)))
                .collect(),
        ),
    })
}

fn client_table(client: &ClientRecord) -> toml::Table {
    let mut table = toml::Table::new();
    let mut put = |key: &str, value: toml::Value| {
        table.insert(key.to_owned(), value);
    };
    put(
        "client_id",
        toml::Value::String(client.client_id.as_str().to_owned()),
    );
    if let Some(name) = &client.name {
        put("name", toml::Value::String(name.clone()));
    }
    if client.is_public {
        put("public", toml::Value::Boolean(true));
    }
    put(
        "grant_types",
        toml::Value::Array(
            client
                .grant_types
                .iter()
                .map(|grant| toml::Value::String(grant.as_str().to_owned()))
                .collect(),
        ),
    );
    if !client.redirect_uris.is_empty() {
        put("redirect_uris", strings(&client.redirect_uris));
    }
    put("scope", toml::Value::String(client.scope.to_string()));
    if !client.audiences.is_empty() {
        put("audiences", strings(&client.audiences));
    }
    for (key, flag) in [
        ("skip_consent", client.skip_consent),
        ("introspection", client.introspection),
        ("require_dpop", client.require_dpop),
        ("require_par", client.require_par),
    ] {
        if flag {
            put(key, toml::Value::Boolean(true));
        }
    }
    if !client.post_logout_redirect_uris.is_empty() {
        put(
            "post_logout_redirect_uris",
            strings(&client.post_logout_redirect_uris),
        );
    }
    if let Some(jwks) = client
        .jwks
        .as_deref()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .as_ref()
        .and_then(from_json)
    {
        put("jwks", jwks);
    }
    if let Some(uri) = &client.jwks_uri {
        put("jwks_uri", toml::Value::String(uri.clone()));
    }
    if !client.exchange_audiences.is_empty() {
        put("exchange_audiences", strings(&client.exchange_audiences));
    }
    if let Some(uri) = &client.backchannel_logout_uri {
        put("backchannel_logout_uri", toml::Value::String(uri.clone()));
    }
    if let Some(alg) = client.id_token_signed_response_alg {
        put(
            "id_token_signed_response_alg",
            toml::Value::String(alg.as_str().to_owned()),
        );
    }
    table
}

fn user_table(user: &UserRecord) -> toml::Table {
    let mut table = toml::Table::new();
    table.insert(
        "username".into(),
        toml::Value::String(user.username.clone()),
    );
    if let Some(name) = &user.name {
        table.insert("name".into(), toml::Value::String(name.clone()));
    }
    if let Some(email) = &user.email {
        table.insert("email".into(), toml::Value::String(email.clone()));
        table.insert(
            "email_verified".into(),
            toml::Value::Boolean(user.email_verified),
        );
    }
    table
}

/// The file: `[[clients]]` then `[[users]]`, each in the store's order.
pub fn export(clients: &[ClientRecord], users: &[UserRecord]) -> Result<String, toml::ser::Error> {
    let mut root = toml::Table::new();
    root.insert(
        "clients".into(),
        toml::Value::Array(
            clients
                .iter()
                .map(|client| toml::Value::Table(client_table(client)))
                .collect(),
        ),
    );
    root.insert(
        "users".into(),
        toml::Value::Array(
            users
                .iter()
                .map(|user| toml::Value::Table(user_table(user)))
                .collect(),
        ),
    );
    toml::to_string(&root)
}
