//! Who may register clients at /register (RFC 7591 §3): a leaf, read by the command line and the state.

/// Who may register clients (RFC 7591).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum RegistrationPolicy {
    /// No /register endpoint.
    #[default]
    Off,
    /// With an initial access token (`registration token create`).
    Token,
    /// Anyone, within per-source and total caps.
    Open,
}
