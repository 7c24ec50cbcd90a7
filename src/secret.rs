//! Types that keep secrets out of logs, errors and printed config.
//!
//! [`Secret`] holds a private key (or any credential): its `Debug`, `Display` and
//! `Serialize` all print a placeholder, so a settings struct containing one can be logged
//! or shown by `dcn config show` without leaking it. [`redact_url`] strips credentials
//! from RPC URLs before they appear in messages.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// What every redacted value prints as.
pub const REDACTED: &str = "<redacted>";

/// A credential. Read it with [`Secret::expose`]; nothing else prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself: only for the code that signs with it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(REDACTED)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// `url` with its credentials removed: user info, query string and any path segment that
/// looks like an API key (16 or more key-like characters, as in `/v3/<key>`). Text that
/// does not parse as a URL is redacted whole.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = url::Url::parse(url) else {
        return REDACTED.to_string();
    };
    if !parsed.username().is_empty() || parsed.password().is_some() {
        let _ = parsed.set_username("");
        let _ = parsed.set_password(None);
    }
    if parsed.query().is_some() {
        parsed.set_query(Some(REDACTED));
    }
    let looks_like_key =
        |s: &str| s.len() >= 16 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !parsed.cannot_be_a_base() {
        let segments: Vec<String> = parsed
            .path_segments()
            .map(|s| s.map(|seg| if looks_like_key(seg) { REDACTED.to_string() } else { seg.to_string() }).collect())
            .unwrap_or_default();
        parsed.set_path(&segments.join("/"));
    }
    parsed.to_string().replace("%3Credacted%3E", REDACTED)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_never_prints() {
        let s = Secret::new("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80");
        assert_eq!(format!("{s}"), REDACTED);
        assert!(!format!("{s:?}").contains("ac09"));
        assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{REDACTED}\""));
        assert!(s.expose().starts_with("0xac09"));
    }

    #[test]
    fn urls_lose_credentials() {
        assert_eq!(redact_url("http://127.0.0.1:8546"), "http://127.0.0.1:8546/");
        assert_eq!(redact_url("https://user:pw@node.example/rpc"), "https://node.example/rpc");
        assert_eq!(
            redact_url("https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef"),
            format!("https://mainnet.infura.io/v3/{REDACTED}")
        );
        assert_eq!(redact_url("https://rpc.example/?apikey=xyz"), format!("https://rpc.example/?{REDACTED}"));
        assert_eq!(redact_url("not a url with key abc"), REDACTED);
    }
}
