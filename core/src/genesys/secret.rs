//! Secrets that cannot leak through formatting.

use std::fmt;

/// A client secret or access token. Its `Debug` and `Display` print `[redacted]`, so it cannot
/// reach a log line, an error message or a report by accident; [`Secret::expose`] is the one way
/// to read it, and is called only where the value goes on the wire.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one header or form field that must carry it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// OAuth client credentials for the client-credentials grant.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// The OAuth client id (not secret: it names the client).
    pub client_id: String,
    /// The OAuth client secret.
    pub client_secret: Secret,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formatting_never_shows_the_value() {
        let credentials = Credentials {
            client_id: "id-1".into(),
            client_secret: Secret::new("s3cr3t-value"),
        };
        let shown = format!(
            "{credentials:?} {} {:?}",
            credentials.client_secret, credentials
        );
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("id-1"));
        assert_eq!(credentials.client_secret.expose(), "s3cr3t-value");
    }
}
