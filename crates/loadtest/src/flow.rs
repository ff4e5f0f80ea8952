//! The pieces of a browser's part in the authorization code flow that do not need a network: reading the
//! hidden fields of an HTML form, keeping cookies, and reading the authorization response from a redirect.

use std::collections::BTreeMap;

/// An HTML form as the server rendered it: where it posts, and its hidden fields in document order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HtmlForm {
    pub action: Option<String>,
    pub hidden: Vec<(String, String)>,
}

impl HtmlForm {
    /// Reads the first `<form>` of a page. Attribute values may be quoted with `"` or `'` and carry HTML
    /// character references (askama escapes `&`, `<`, `>`, `"`, `'`).
    pub fn parse(html: &str) -> Option<Self> {
        let start = find_ignore_case(html, "<form")?;
        let end = find_ignore_case(&html[start..], "</form")
            .map(|end| start + end)
            .unwrap_or(html.len());
        let form = &html[start..end];
        let tag_end = form.find('>')?;
        let action = attribute(&form[..tag_end], "action");
        let mut hidden = Vec::new();
        let mut rest = form;
        while let Some(at) = find_ignore_case(rest, "<input") {
            let tag = &rest[at..];
            let close = tag.find('>').unwrap_or(tag.len());
            let tag_text = &tag[..close];
            let is_hidden =
                attribute(tag_text, "type").is_some_and(|kind| kind.eq_ignore_ascii_case("hidden"));
            if is_hidden && let Some(name) = attribute(tag_text, "name") {
                hidden.push((name, attribute(tag_text, "value").unwrap_or_default()));
            }
            rest = &tag[close..];
        }
        Some(Self { action, hidden })
    }

    /// What submitting the form sends: its hidden fields, then `extra` (what the user typed or clicked).
    pub fn submission<'a>(&'a self, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        self.hidden
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .chain(extra.iter().copied())
            .collect()
    }

    /// The value of a hidden field.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.hidden
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

fn find_ignore_case(haystack: &str, needle: &str) -> Option<usize> {
    haystack
        .as_bytes()
        .windows(needle.len())
        .position(|window| window.eq_ignore_ascii_case(needle.as_bytes()))
}

/// The decoded value of `name="…"` (or `'…'`) inside one tag.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let bytes = tag.as_bytes();
    let mut from = 0;
    while let Some(found) = find_ignore_case(&tag[from..], name) {
        let at = from + found;
        from = at + name.len();
        // A whole attribute name: preceded by whitespace, followed by optional spaces and '='.
        if at == 0 || !bytes[at - 1].is_ascii_whitespace() {
            continue;
        }
        let after = tag[from..].trim_start();
        let Some(after) = after.strip_prefix('=') else {
            continue;
        };
        let after = after.trim_start();
        let value = match after.chars().next() {
            Some(quote @ ('"' | '\'')) => {
                let inner = &after[1..];
                &inner[..inner.find(quote).unwrap_or(inner.len())]
            }
            _ => {
                let end = after
                    .find(|c: char| c.is_ascii_whitespace() || c == '>')
                    .unwrap_or(after.len());
                &after[..end]
            }
        };
        return Some(unescape_html(value));
    }
    None
}

/// Decodes the character references a template engine writes: named `&amp; &lt; &gt; &quot; &apos;` and
/// numeric `&#NN;` / `&#xHH;`. Anything else is kept as written.
pub fn unescape_html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let Some(end) = rest.find(';').filter(|end| *end <= 10) else {
            out.push('&');
            rest = &rest[1..];
            continue;
        };
        let entity = &rest[1..end];
        let decoded = match entity {
            "amp" => Some('&'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .or_else(|| entity.strip_prefix("#X"))
                .and_then(|hex| u32::from_str_radix(hex, 16).ok())
                .or_else(|| {
                    entity
                        .strip_prefix('#')
                        .and_then(|dec| dec.parse::<u32>().ok())
                })
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// A cookie jar for one simulated browser, one host: name → value. Each authorization-code iteration starts
/// with an empty jar, so every iteration signs in (a shared jar would skip the login after the first).
#[derive(Debug, Default, Clone)]
pub struct CookieJar(BTreeMap<String, String>);

impl CookieJar {
    /// Takes the cookies of `Set-Cookie` header values; a cookie with `Max-Age=0` (or an empty value) is
    /// removed.
    pub fn store<'a>(&mut self, set_cookie: impl IntoIterator<Item = &'a str>) {
        for header in set_cookie {
            let mut parts = header.split(';');
            let Some((name, value)) = parts.next().and_then(|pair| pair.split_once('=')) else {
                continue;
            };
            let (name, value) = (name.trim(), value.trim());
            let expired = parts.any(|attribute| {
                attribute
                    .trim()
                    .split_once('=')
                    .is_some_and(|(key, max_age)| {
                        key.eq_ignore_ascii_case("max-age") && max_age.trim() == "0"
                    })
            });
            if expired || value.is_empty() {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_owned(), value.to_owned());
            }
        }
    }

    /// The `Cookie` request header, or `None` when the jar is empty.
    pub fn header(&self) -> Option<String> {
        if self.0.is_empty() {
            return None;
        }
        Some(
            self.0
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }
}

/// What the authorization server sent back to the redirect URI (RFC 6749 §4.1.2 and §4.1.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizationResponse {
    Code {
        code: String,
        state: Option<String>,
    },
    Error {
        error: String,
        description: Option<String>,
    },
}

/// Reads the authorization response from a redirect `Location`, checking it goes to `redirect_uri`.
pub fn authorization_response(
    location: &str,
    redirect_uri: &str,
) -> Result<AuthorizationResponse, String> {
    let (base, query) = location.split_once('?').unwrap_or((location, ""));
    let expected = redirect_uri
        .split_once('?')
        .map_or(redirect_uri, |(base, _)| base);
    if base != expected {
        return Err(format!(
            "redirected to {base}, not to the redirect URI {expected}"
        ));
    }
    let mut code = None;
    let mut state = None;
    let mut error = None;
    let mut description = None;
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match key.as_ref() {
            "code" => code = Some(value.into_owned()),
            "state" => state = Some(value.into_owned()),
            "error" => error = Some(value.into_owned()),
            "error_description" => description = Some(value.into_owned()),
            _ => {}
        }
    }
    match (code, error) {
        (_, Some(error)) => Ok(AuthorizationResponse::Error { error, description }),
        (Some(code), None) => Ok(AuthorizationResponse::Code { code, state }),
        (None, None) => Err(format!(
            "the redirect to {base} carries neither code nor error"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_hidden_fields_and_action_of_the_first_form() {
        let page = r#"<html><body><FORM method="post" action="/authorize?x=1&amp;y=2">
            <input type="hidden" name="client_id" value="demo-spa">
            <input type='hidden' name='redirect_uri' value='http://127.0.0.1:8082/callback?a=1&amp;b=&quot;2&quot;'>
            <input type="hidden" name="csrf_token" value="abc&#x2d;def&#45;">
            <label>Username <input name="username" autocomplete="username" required></label>
            <input type="password" name="password">
        </form><form><input type="hidden" name="other" value="x"></form>"#;
        let form = HtmlForm::parse(page).unwrap();
        assert_eq!(form.action.as_deref(), Some("/authorize?x=1&y=2"));
        assert_eq!(
            form.hidden,
            vec![
                ("client_id".to_owned(), "demo-spa".to_owned()),
                (
                    "redirect_uri".to_owned(),
                    "http://127.0.0.1:8082/callback?a=1&b=\"2\"".to_owned()
                ),
                ("csrf_token".to_owned(), "abc-def-".to_owned()),
            ]
        );
        assert_eq!(form.field("csrf_token"), Some("abc-def-"));
        assert_eq!(form.field("other"), None);
        assert_eq!(HtmlForm::parse("<p>no form</p>"), None);
    }

    #[test]
    fn does_not_take_data_value_for_value() {
        let form = HtmlForm::parse(
            r#"<form action=/a><input data-value="no" type=hidden name=n value=yes></form>"#,
        )
        .unwrap();
        assert_eq!(form.action.as_deref(), Some("/a"));
        assert_eq!(form.field("n"), Some("yes"));
    }

    #[test]
    fn unescapes_only_what_it_knows() {
        assert_eq!(
            unescape_html("a &amp; b &lt;c&gt; &#39;d&#x27;"),
            "a & b <c> 'd'"
        );
        assert_eq!(
            unescape_html("AT&T &unknown; &#xZZ; &"),
            "AT&T &unknown; &#xZZ; &"
        );
    }

    #[test]
    fn a_jar_keeps_replaces_and_expires_cookies() {
        let mut jar = CookieJar::default();
        assert_eq!(jar.header(), None);
        jar.store([
            "auth_csrf=one; Path=/authorize; HttpOnly; SameSite=Lax",
            "auth_session=s1; Max-Age=3600",
        ]);
        assert_eq!(
            jar.header().as_deref(),
            Some("auth_csrf=one; auth_session=s1")
        );
        jar.store(["auth_session=s2", "auth_csrf=; Max-Age=0"]);
        assert_eq!(jar.header().as_deref(), Some("auth_session=s2"));
        jar.store(["auth_session=gone; max-age=0", "not a cookie"]);
        assert_eq!(jar.header(), None);
    }

    #[test]
    fn reads_codes_and_errors_from_the_redirect() {
        let redirect = "http://127.0.0.1:8082/callback";
        assert_eq!(
            authorization_response(&format!("{redirect}?code=c%2B1&state=s%20t"), redirect),
            Ok(AuthorizationResponse::Code {
                code: "c+1".into(),
                state: Some("s t".into())
            })
        );
        assert_eq!(
            authorization_response(
                &format!("{redirect}?error=access_denied&error_description=no&code=x"),
                redirect
            ),
            Ok(AuthorizationResponse::Error {
                error: "access_denied".into(),
                description: Some("no".into())
            })
        );
        assert!(authorization_response("http://evil.example/callback?code=c", redirect).is_err());
        assert!(authorization_response(redirect, redirect).is_err());
    }
}
