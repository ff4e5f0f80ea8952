//! The demo client's pages for `cargo xtask up`: the redirect URI the seeded public client registers
//! (`/callback`), which shows the authorization code with the ready-to-paste exchange command, and its
//! post-logout page (`/signed-out`). A few lines of HTTP/1.1 over a std listener (xtask links no HTTP
//! server); only `GET` request heads are read, with a deadline and a size cap, and every value taken from
//! the request is escaped before it reaches the page.

use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// The largest request head read.
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// How long a connection may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more are closed.
const MAX_CONNECTIONS: usize = 32;

/// What the callback page needs to print the exchange command.
#[derive(Debug, Clone)]
pub struct Client {
    pub token_endpoint: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_verifier: String,
    /// Seconds an authorization code stays valid (auth-server's `--auth-code-ttl`).
    pub code_lifetime: u64,
}

/// Serves the pages on `listener` from a thread of their own, until the process ends.
pub fn serve(listener: TcpListener, client: Client) {
    let client = Arc::new(client);
    let active = Arc::new(AtomicUsize::new(0));
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            if active.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
                active.fetch_sub(1, Ordering::AcqRel);
                continue;
            }
            let (client, active) = (Arc::clone(&client), Arc::clone(&active));
            std::thread::spawn(move || {
                answer(stream, &client);
                active.fetch_sub(1, Ordering::AcqRel);
            });
        }
    });
}

/// Reads one request head and answers it.
fn answer(mut stream: TcpStream, client: &Client) {
    let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
    let _ = stream.set_write_timeout(Some(READ_TIMEOUT));
    let mut head = Vec::new();
    let mut buffer = [0u8; 1024];
    while !head.windows(4).any(|window| window == b"\r\n\r\n") {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => return,
            Ok(read) => head.extend_from_slice(&buffer[..read]),
        }
        if head.len() > MAX_HEAD_BYTES {
            let _ = stream.write_all(&response(431, "Request Header Fields Too Large", ""));
            return;
        }
    }
    let head = String::from_utf8_lossy(&head);
    let mut request_line = head.lines().next().unwrap_or_default().split(' ');
    let (status, reason, body) = match (request_line.next(), request_line.next()) {
        (Some("GET" | "HEAD"), Some(target)) => page(target, client),
        _ => (405, "Method Not Allowed", String::new()),
    };
    let _ = stream.write_all(&response(status, reason, &body));
}

/// A whole response: the page can never be cached, framed or sent on as a referrer (its URL has the code).
fn response(status: u16, reason: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status} {reason}\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\n\
         cache-control: no-store\r\nreferrer-policy: no-referrer\r\nx-content-type-options: nosniff\r\n\
         content-security-policy: default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// The page for a request target (`/callback?code=…`): status, reason and HTML.
pub fn page(target: &str, client: &Client) -> (u16, &'static str, String) {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let params = parse_query(query);
    let param = |name: &str| {
        params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let mut body = String::new();
    match path {
        "/callback" => {
            if let Some(error) = param("error") {
                let _ = write!(
                    body,
                    "<h1>The authorization server said no</h1><p><code>error={}</code></p>",
                    html(error)
                );
                if let Some(description) = param("error_description") {
                    let _ = write!(body, "<p>{}</p>", html(description));
                }
            } else if let Some(code) = param("code") {
                let _ = write!(
                    body,
                    "<h1>Signed in: here is the authorization code</h1>\
                     <p><code>code={}</code></p>",
                    html(code)
                );
                if is_code_text(code) {
                    let command = format!(
                        "curl -s -d grant_type=authorization_code -d client_id={} -d code={code} \\\n     \
                         -d redirect_uri={} -d code_verifier={} \\\n     {}",
                        client.client_id,
                        client.redirect_uri,
                        client.code_verifier,
                        client.token_endpoint
                    );
                    let _ = write!(
                        body,
                        "<p>Exchange it for tokens within {} seconds (it works once), in a terminal:</p>\
                         <pre>{}</pre>",
                        client.code_lifetime,
                        html(&command)
                    );
                } else {
                    body.push_str(
                        "<p>That is not a code auth-server issues: no command for it.</p>",
                    );
                }
            } else {
                body.push_str(
                    "<h1>No code here</h1><p>This page is where the demo client's sign-in ends; it \
                     expects <code>?code=…</code> or <code>?error=…</code>.</p>",
                );
            }
            for name in ["state", "iss"] {
                if let Some(value) = param(name) {
                    let _ = write!(body, "<p><code>{name}={}</code></p>", html(value));
                }
            }
        }
        "/signed-out" => {
            body.push_str(
                "<h1>Signed out</h1><p>The session at the authorization server has ended.</p>",
            );
            if let Some(state) = param("state") {
                let _ = write!(body, "<p><code>state={}</code></p>", html(state));
            }
        }
        _ => {
            return (
                404,
                "Not Found",
                document("Not found", "<h1>Not found</h1>"),
            );
        }
    }
    (200, "OK", document("Demo client", &body))
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;\
         line-height:1.5}}pre,code{{background:#f3f4f6;padding:.2rem .4rem;border-radius:4px;\
         overflow-wrap:anywhere;white-space:pre-wrap}}pre{{padding:1rem}}</style></head><body>{body}</body></html>"
    )
}

/// Whether `code` can go into a shell command as it is: the URL-safe characters codes are made of.
fn is_code_text(code: &str) -> bool {
    !code.is_empty()
        && code.len() <= 512
        && code
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || b"-._~".contains(&byte))
}

/// Escapes text for HTML.
pub fn html(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// `application/x-www-form-urlencoded` pairs (malformed escapes are kept as they are).
fn parse_query(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(key), decode(value))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |byte: u8| (byte as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(high), Some(low)) => {
                        out.push((high * 16 + low) as u8);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The command that opens a URL in a browser here: `open` on macOS, `xdg-open` elsewhere when it is installed
/// (an `open` on Linux may be `openvt`), else none (the URL is printed to open by hand).
pub fn opener(macos: bool, on_path: impl Fn(&str) -> bool) -> Option<&'static str> {
    if macos {
        Some("open")
    } else {
        on_path("xdg-open").then_some("xdg-open")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> Client {
        Client {
            token_endpoint: "http://127.0.0.1:8080/token".into(),
            client_id: "demo-spa".into(),
            redirect_uri: "http://127.0.0.1:8082/callback".into(),
            code_verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into(),
            code_lifetime: 60,
        }
    }

    /// A GET over a real socket to a server on port 0.
    fn get(address: std::net::SocketAddr, target: &str) -> String {
        let mut stream = TcpStream::connect(address).unwrap();
        write!(stream, "GET {target} HTTP/1.1\r\nHost: {address}\r\n\r\n").unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    }

    #[test]
    fn the_callback_page_shows_the_code_and_the_exchange_command() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        serve(listener, client());
        let reply = get(
            address,
            "/callback?code=Abc-123_x.y&state=xyz&iss=http%3A%2F%2F127.0.0.1%3A8080",
        );
        assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
        assert!(reply.contains("referrer-policy: no-referrer"), "{reply}");
        assert!(reply.contains("cache-control: no-store"), "{reply}");
        assert!(reply.contains("code=Abc-123_x.y"), "{reply}");
        assert!(reply.contains("within 60 seconds"), "{reply}");
        assert!(
            reply.contains(
                "curl -s -d grant_type=authorization_code -d client_id=demo-spa -d code=Abc-123_x.y"
            ),
            "{reply}"
        );
        assert!(
            reply.contains("code_verifier=dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "{reply}"
        );
        assert!(reply.contains("iss=http://127.0.0.1:8080"), "{reply}");
        let signed_out = get(address, "/signed-out?state=s1");
        assert!(signed_out.contains("Signed out") && signed_out.contains("state=s1"));
        assert!(get(address, "/elsewhere").starts_with("HTTP/1.1 404"));
        let refused = get(
            address,
            "/callback?error=access_denied&error_description=the+user+said+no",
        );
        assert!(refused.contains("error=access_denied") && refused.contains("the user said no"));
    }

    #[test]
    fn what_the_request_carries_is_escaped_and_never_a_command() {
        let (status, _, body) = page(
            "/callback?code=%3Cscript%3Ealert(1)%3C%2Fscript%3E%27%3B+rm&state=%22%3E%3Cimg",
            &client(),
        );
        assert_eq!(status, 200);
        assert!(
            !body.contains("<script>") && !body.contains("<img"),
            "{body}"
        );
        assert!(body.contains("&lt;script&gt;"), "{body}");
        assert!(!body.contains("curl"), "{body}");
        // Broken escapes and huge heads do not upset it.
        assert_eq!(page("/callback?code=%zz%", &client()).0, 200);
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        serve(listener, client());
        let mut stream = TcpStream::connect(address).unwrap();
        let _ = stream.write_all(
            format!("GET /callback?code={} HTTP/1.1\r\n", "a".repeat(20_000)).as_bytes(),
        );
        let mut reply = String::new();
        let _ = stream.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 431"), "{reply}");
    }

    #[test]
    fn opens_with_open_on_macos_else_xdg_open_else_prints() {
        assert_eq!(opener(true, |_| false), Some("open"));
        assert_eq!(
            opener(false, |name| name == "open" || name == "xdg-open"),
            Some("xdg-open")
        );
        assert_eq!(
            opener(false, |name| name == "open"),
            None,
            "Linux's open may be openvt"
        );
        assert_eq!(opener(false, |_| false), None);
    }
}
