//! One request and its checked reply, either through a Goose user (measured and reported) or through a plain
//! client (the pre-flight check before the load starts). The OAuth flows are written once against [`Exchange`].

use goose::goose::{GooseMethod, GooseRequest, GooseUser, TransactionError};
use goose::metrics::GooseRequestMetric;
use reqwest::header::HeaderMap;
use reqwest::{Method, RequestBuilder};

/// Why a step of a flow failed. The message names the step, so a broken scenario says where it broke.
#[derive(Debug, thiserror::Error)]
pub enum FlowError {
    #[error("{step}: cannot reach {url}: {reason}")]
    Unreachable {
        step: String,
        url: String,
        reason: String,
    },
    #[error("{step}: expected HTTP {expected}, got {status}: {body}")]
    Status {
        step: String,
        expected: String,
        status: u16,
        body: String,
    },
    #[error("{step}: {reason}")]
    Invalid { step: String, reason: String },
    #[error("goose: {0}")]
    Goose(String),
}

impl From<FlowError> for Box<TransactionError> {
    fn from(error: FlowError) -> Self {
        Box::new(TransactionError::Custom(error.to_string()))
    }
}

/// A reply whose status was one of those expected.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
    metric: Option<GooseRequestMetric>,
}

impl Reply {
    /// The values of the `Set-Cookie` headers.
    pub fn set_cookies(&self) -> impl Iterator<Item = &str> {
        self.headers
            .get_all(reqwest::header::SET_COOKIE)
            .iter()
            .filter_map(|value| value.to_str().ok())
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The body as JSON.
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_str(&self.body).ok()
    }
}

/// One step of a flow: a name for the report, a request, and the statuses that count as success.
pub struct Step<'a> {
    pub name: &'a str,
    pub method: Method,
    pub url: &'a str,
    pub expect: &'a [u16],
}

/// Sends requests and checks their status; a reply that is well-formed HTTP but wrong in content is
/// turned into a failure with [`Exchange::reject`], so that the report counts it.
pub trait Exchange: Send {
    fn exchange(
        &mut self,
        step: Step<'_>,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder + Send,
    ) -> impl Future<Output = Result<Reply, FlowError>> + Send;

    /// Marks a reply as failed (wrong content) and returns the error describing it.
    fn reject(&mut self, step: &str, reply: Reply, reason: String) -> FlowError;
}

/// The body of a reply, shortened for an error message.
fn excerpt(body: &str) -> String {
    const MAX: usize = 300;
    let body = body.trim();
    match body.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &body[..at]),
        None => body.to_owned(),
    }
}

fn expected_text(expect: &[u16]) -> String {
    expect
        .iter()
        .map(u16::to_string)
        .collect::<Vec<_>>()
        .join(" or ")
}

/// A plain client: the pre-flight check.
pub struct Direct(pub reqwest::Client);

impl Exchange for Direct {
    async fn exchange(
        &mut self,
        step: Step<'_>,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder + Send,
    ) -> Result<Reply, FlowError> {
        let response = build(self.0.request(step.method.clone(), step.url))
            .send()
            .await
            .map_err(|error| FlowError::Unreachable {
                step: step.name.to_owned(),
                url: step.url.to_owned(),
                reason: error_chain(&error),
            })?;
        check(step, read(response, None).await)
    }

    fn reject(&mut self, step: &str, _reply: Reply, reason: String) -> FlowError {
        FlowError::Invalid {
            step: step.to_owned(),
            reason,
        }
    }
}

/// A Goose user: every request is measured and reported under its step name.
pub struct Measured<'u>(pub &'u mut GooseUser);

impl Exchange for Measured<'_> {
    async fn exchange(
        &mut self,
        step: Step<'_>,
        build: impl FnOnce(RequestBuilder) -> RequestBuilder + Send,
    ) -> Result<Reply, FlowError> {
        let method = match step.method {
            Method::GET => GooseMethod::Get,
            Method::POST => GooseMethod::Post,
            Method::DELETE => GooseMethod::Delete,
            Method::PUT => GooseMethod::Put,
            Method::PATCH => GooseMethod::Patch,
            _ => GooseMethod::Head,
        };
        let builder = build(self.0.client.request(step.method.clone(), step.url));
        let request = GooseRequest::builder()
            .name(step.name)
            .method(method)
            .set_request_builder(builder)
            .build();
        let goose = self
            .0
            .request(request)
            .await
            .map_err(|error| FlowError::Goose(error.to_string()))?;
        let response = goose.response.map_err(|error| FlowError::Unreachable {
            step: step.name.to_owned(),
            url: step.url.to_owned(),
            reason: error_chain(&error),
        })?;
        let mut reply = read(response, Some(goose.request)).await;
        // Goose counts any non-2xx as a failure; here the step's own list decides (a 302 can be the answer).
        let expected = step.expect.contains(&reply.status);
        if let Some(metric) = reply.metric.as_mut() {
            // Both calls only fail when the metrics channel is gone, i.e. the run is ending.
            if expected && !metric.success {
                let _ = self.0.set_success(metric);
            } else if !expected && metric.success {
                let tag = format!("{}: {}", reply.status, step.name);
                let _ = self
                    .0
                    .set_failure(&tag, metric, Some(&reply.headers), Some(&reply.body));
            }
        }
        check(step, reply)
    }

    fn reject(&mut self, step: &str, mut reply: Reply, reason: String) -> FlowError {
        if let Some(metric) = reply.metric.as_mut() {
            // set_failure only fails when the metrics channel is gone, i.e. the run is ending.
            let _ = self
                .0
                .set_failure(&reason, metric, Some(&reply.headers), Some(&reply.body));
        }
        FlowError::Invalid {
            step: step.to_owned(),
            reason,
        }
    }
}

async fn read(response: reqwest::Response, metric: Option<GooseRequestMetric>) -> Reply {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.unwrap_or_default();
    Reply {
        status,
        headers,
        body,
        metric,
    }
}

fn check(step: Step<'_>, reply: Reply) -> Result<Reply, FlowError> {
    if step.expect.contains(&reply.status) {
        Ok(reply)
    } else {
        Err(FlowError::Status {
            step: step.name.to_owned(),
            expected: expected_text(step.expect),
            status: reply.status,
            body: excerpt(&reply.body),
        })
    }
}

/// An error with its sources, on one line ("error sending request: connection refused").
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
