//! Who may call what: API keys with scopes and allowed origins.
//!
//! - An *ingest* key may be public (embedded in a web page): it writes
//!   events, batches, identify calls and new users, nothing else.
//! - An *admin* key may do everything, including alias look-ups and
//!   cohorts. The legacy `api_keys` setting gives admin keys.
//! - Each key may list the browser origins allowed to use it: exact origins
//!   (`https://news.example`, `http://localhost:3000`), wildcards
//!   (`https://*.news.example`, which matches every subdomain but not
//!   `news.example` itself) or `*`. A request with an `Origin` header (one a
//!   browser sends) is refused (403) unless its key lists that origin; a key
//!   without origins is for servers only.
//!
//! With no key configured at all the server is open (it then only listens
//! on loopback, see [`crate::config`]) and any origin may write.
//!
//! Keys are compared in constant time (`subtle`), every configured key
//! each time, so timing reveals neither a key's prefix nor which key
//! matched.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// What a key may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    Ingest,
    Admin,
}

/// An allowed origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPattern {
    /// Any origin (`*`).
    Any,
    /// `scheme://host[:port]`, lower case.
    Exact(String),
    /// `scheme://*.suffix[:port]`: any subdomain of `suffix`.
    Subdomains {
        scheme: String,
        suffix: String,
        port: Option<String>,
    },
}

/// Splits `scheme://host[:port]` (lower-cased); `None` when it is not an
/// origin (a path, a query, no scheme).
fn split_origin(origin: &str) -> Option<(String, String, Option<String>)> {
    let origin = origin.to_ascii_lowercase();
    let (scheme, rest) = origin.split_once("://")?;
    let scheme_ok = !scheme.is_empty()
        && scheme
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'+' || b == b'-');
    if !scheme_ok || rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
        return None;
    }
    // An IPv6 host is bracketed: `[::1]:8080`.
    let split_at = match rest.strip_prefix('[') {
        Some(v6) => v6.find(']').map(|i| i + 2)?,
        None => rest.find(':').unwrap_or(rest.len()),
    };
    let (host, port) = rest.split_at(split_at.min(rest.len()));
    let port = match port.strip_prefix(':') {
        Some(p) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => Some(p.to_string()),
        Some(_) => return None,
        None if port.is_empty() => None,
        None => return None,
    };
    let host = host.to_string();
    (!host.is_empty()).then_some((scheme.to_string(), host, port))
}

impl OriginPattern {
    /// Parses a configured origin; the error says what is wrong.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "*" {
            return Ok(OriginPattern::Any);
        }
        let (scheme, host, port) = split_origin(s).ok_or_else(|| {
            format!("{s:?} is not an origin like https://news.example or https://*.news.example (no path, no trailing slash)")
        })?;
        if let Some(suffix) = host.strip_prefix("*.") {
            if suffix.is_empty() || suffix.contains('*') {
                return Err(format!(
                    "{s:?}: a wildcard must look like https://*.example.com"
                ));
            }
            return Ok(OriginPattern::Subdomains {
                scheme,
                suffix: suffix.to_string(),
                port,
            });
        }
        if host.contains('*') {
            return Err(format!(
                "{s:?}: `*` may only open the host, as in https://*.example.com"
            ));
        }
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        Ok(OriginPattern::Exact(format!("{scheme}://{host}{port}")))
    }

    /// Whether the request origin `origin` matches.
    pub fn matches(&self, origin: &str) -> bool {
        match self {
            OriginPattern::Any => true,
            OriginPattern::Exact(o) => o.eq_ignore_ascii_case(origin),
            OriginPattern::Subdomains {
                scheme,
                suffix,
                port,
            } => split_origin(origin).is_some_and(|(s, host, p)| {
                s == *scheme
                    && p == *port
                    && host
                        .strip_suffix(suffix.as_str())
                        .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.'))
            }),
        }
    }
}

/// A configured key.
#[derive(Debug, Clone)]
pub struct ApiKey {
    pub secret: Secret,
    pub scope: Scope,
    pub origins: Vec<OriginPattern>,
}

impl ApiKey {
    /// Whether a browser on `origin` may use this key.
    pub fn allows_origin(&self, origin: &str) -> bool {
        self.origins.iter().any(|p| p.matches(origin))
    }
}

/// Every configured key.
#[derive(Debug, Clone, Default)]
pub struct Access {
    keys: Vec<ApiKey>,
}

impl Access {
    pub fn new(keys: Vec<ApiKey>) -> Self {
        Self { keys }
    }

    /// No key configured: every request is allowed (loopback only).
    pub fn is_open(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key matching `presented`, compared with every key in constant
    /// time.
    pub fn find(&self, presented: &str) -> Option<&ApiKey> {
        let mut found = None;
        for key in &self.keys {
            let eq: bool = key.secret.0.as_bytes().ct_eq(presented.as_bytes()).into();
            if eq && !presented.is_empty() {
                found = Some(key);
            }
        }
        found
    }

    /// Whether some ingest key (or, open, anyone) lets `origin` write: what
    /// a preflight that names no key is answered from.
    pub fn any_ingest_allows(&self, origin: &str) -> bool {
        self.is_open() || self.keys.iter().any(|k| k.allows_origin(origin))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(secret: &str, scope: Scope, origins: &[&str]) -> ApiKey {
        ApiKey {
            secret: Secret(secret.into()),
            scope,
            origins: origins
                .iter()
                .map(|o| OriginPattern::parse(o).unwrap())
                .collect(),
        }
    }

    #[test]
    fn origins_exact_wildcard_and_any() {
        let exact = OriginPattern::parse("https://News.example").unwrap();
        assert!(exact.matches("https://news.example"));
        assert!(!exact.matches("https://news.example:8443"));
        assert!(!exact.matches("http://news.example"));
        let sub = OriginPattern::parse("https://*.example.com").unwrap();
        assert!(sub.matches("https://a.example.com"));
        assert!(sub.matches("https://a.b.example.com"));
        assert!(!sub.matches("https://example.com"));
        assert!(!sub.matches("https://evilexample.com"));
        assert!(!sub.matches("https://a.example.com.evil.net"));
        assert!(!sub.matches("http://a.example.com"));
        assert!(!sub.matches("https://a.example.com:444"));
        let v6 = OriginPattern::parse("http://[::1]:8080").unwrap();
        assert!(v6.matches("http://[::1]:8080") && !v6.matches("http://[::1]"));
        let local = OriginPattern::parse("http://localhost:3000").unwrap();
        assert!(local.matches("http://localhost:3000"));
        assert!(OriginPattern::parse("*").unwrap().matches("null"));
        for bad in [
            "news.example",
            "https://news.example/",
            "https://a*.b",
            "https://*.",
            "ftp//x",
            "",
        ] {
            assert!(OriginPattern::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_are_found_whole_and_only_whole() {
        let access = Access::new(vec![
            key("pk_live_1", Scope::Ingest, &["https://news.example"]),
            key("sk_admin", Scope::Admin, &[]),
        ]);
        assert_eq!(
            access.find("pk_live_1").map(|k| k.scope),
            Some(Scope::Ingest)
        );
        assert_eq!(access.find("sk_admin").map(|k| k.scope), Some(Scope::Admin));
        for bad in ["", "pk_live", "pk_live_1x", "PK_LIVE_1", "sk_admin "] {
            assert!(access.find(bad).is_none(), "{bad}");
        }
        assert!(access.any_ingest_allows("https://news.example"));
        assert!(!access.any_ingest_allows("https://evil.example"));
        assert!(Access::default().any_ingest_allows("https://anything"));
    }
}
