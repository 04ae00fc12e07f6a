//! Name rules shared by layers that must agree on them: host names are
//! validated the same way in routes (tenancy) and in the fetch allow-list
//! (capabilities), so neither imports the other.

/// Whether `host` is a DNS host name: dot-separated labels of letters,
/// digits and dashes, each 1-63 bytes, 253 in all.
pub fn is_hostname(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::is_hostname;

    #[test]
    fn host_names_follow_dns_label_rules() {
        assert!(is_hostname("example.com"));
        assert!(is_hostname("a-b.c1"));
        assert!(is_hostname(&format!("{}.com", "a".repeat(63))));
        assert!(!is_hostname(&format!("{}.com", "a".repeat(64))));
        assert!(!is_hostname(&"a.".repeat(127)));
        assert!(!is_hostname(""));
        assert!(!is_hostname("a..b"));
        assert!(!is_hostname("under_score.com"));
        assert!(!is_hostname("*.example.com"));
    }
}
