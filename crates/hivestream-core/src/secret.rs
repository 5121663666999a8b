//! [`Secret`]: a string that is never printed. A leaf: keys (collect) and
//! credentials (config, sink) both hold secrets, and neither should need
//! the other to do so.

/// A string that is never printed: `Debug` shows `Secret(***)`, and there
/// is no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_value() {
        let s = Secret("sk_live_very_secret".into());
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert!(!format!("{:?}", Some(&s)).contains("very_secret"));
    }
}
