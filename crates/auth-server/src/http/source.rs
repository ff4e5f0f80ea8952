//! The [`Source`] extractor: the source address of a request (`service_kit::source`), with this server's
//! trusted proxies.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use service_kit::source::source_of;

use crate::protection::source::RequestSource;
use crate::state::AppState;

/// Where a request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Source(pub RequestSource);

impl FromRequestParts<AppState> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        // The connection loop sets ConnectInfo on every request; a request built otherwise (a unit test)
        // has no peer and counts as the unspecified address.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(peer)| peer.ip());
        let address = source_of(peer, &parts.headers, &state.settings.trusted_proxies);
        Ok(Self(RequestSource::new(
            address,
            state.settings.ipv6_source_prefix,
        )))
    }
}
