//! The tests' HTTP clients: each gives up after [`REQUEST_TIMEOUT`], so a deadlock fails the test that met
//! it, by name, instead of hanging the run.

/// How long any request of the tests may take: a deadlock fails the test that met it, by name, instead of
/// hanging the run.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// The tests' HTTP client: it gives up after [`REQUEST_TIMEOUT`].
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("reqwest client")
}

/// A client that follows no redirect (the harness reads them) and gives up after [`REQUEST_TIMEOUT`].
pub fn no_redirect_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .build()
        .expect("reqwest client")
}

/// A second loopback source address, standing for another client's machine (all of 127.0.0.0/8 is local).
pub const OTHER_SOURCE: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 2));

/// A client that follows no redirect and connects from `source` (a loopback address).
pub fn client_from(source: std::net::IpAddr) -> reqwest::Client {
    client_with(Some(source), reqwest::header::HeaderMap::new())
}

/// A client that follows no redirect, connects from `source` when given, and sends `headers` with every
/// request (an `X-Forwarded-For` of a proxy, say).
pub fn client_with(
    source: Option<std::net::IpAddr>,
    headers: reqwest::header::HeaderMap,
) -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(REQUEST_TIMEOUT)
        .local_address(source)
        .default_headers(headers)
        .build()
        .expect("reqwest client")
}
