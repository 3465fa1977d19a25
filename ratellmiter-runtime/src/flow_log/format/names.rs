//! Service names made safe as parts of file names.

/// The longest sanitized name before its hash suffix, in bytes.
const MAX_NAME_BYTES: usize = 100;

/// `name` made safe as part of a file name: no `/`, `\`, `..`, NUL, control or
/// Windows-reserved characters, no leading dot, at most 100 bytes (cut on a character
/// boundary). A name that had to change gets `-` and 8 hex digits of a hash of the
/// original, so distinct service names keep distinct files; a safe name is kept as is.
///
/// ```
/// use ratellmiter::flow_log::format::sanitize_service_name;
///
/// assert_eq!(sanitize_service_name("gpt-4o"), "gpt-4o");
/// let s = sanitize_service_name("openai/gpt-4o");
/// assert!(s.starts_with("openai_gpt-4o-") && !s.contains('/'));
/// assert_ne!(s, sanitize_service_name("openai\\gpt-4o"));
/// ```
pub fn sanitize_service_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len().min(MAX_NAME_BYTES));
    let mut prev = None;
    for c in name.chars() {
        let bad = c.is_control()
            || matches!(c, '/' | '\\' | '<' | '>' | ':' | '"' | '|' | '?' | '*')
            // A leading dot hides the file; a dot after a dot makes `..`.
            || (c == '.' && matches!(prev, None | Some('.')));
        prev = Some(c);
        let c = if bad { '_' } else { c };
        if out.len() + c.len_utf8() > MAX_NAME_BYTES {
            break;
        }
        out.push(c);
    }
    if out == name && !name.is_empty() {
        return out;
    }
    format!("{out}-{:08x}", fnv1a(name.as_bytes()) as u32)
}

/// FNV-1a, 64 bits: a hash that stays the same across Rust versions and platforms, so
/// the file name a writer chose is the one a later reader computes.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_are_kept() {
        for name in [
            "default",
            "gpt-4o",
            "claude-3.5-sonnet",
            "mistral large",
            "模型",
        ] {
            assert_eq!(sanitize_service_name(name), name);
        }
    }

    #[test]
    fn unsafe_names_are_replaced_and_suffixed_with_a_hash() {
        let cases = [
            ("openai/gpt-4o", "openai_gpt-4o-"),
            ("a\\b", "a_b-"),
            ("..", "__-"),
            ("../../etc/passwd", "___.__etc_passwd-"),
            ("a...b", "a.__b-"),
            (".hidden", "_hidden-"),
            ("a\0b\nc\u{7f}", "a_b_c_-"),
            ("C:*?", "C___-"),
            ("", "-"),
        ];
        for (name, prefix) in cases {
            let s = sanitize_service_name(name);
            assert!(s.starts_with(prefix), "{name:?} gave {s:?}");
            assert_eq!(s.len(), prefix.len() + 8, "{name:?} gave {s:?}");
            assert!(!s.contains(['/', '\\', '\0']) && !s.contains(".."), "{s:?}");
            assert!(!s.chars().any(char::is_control), "{s:?}");
        }
    }

    #[test]
    fn names_that_sanitize_alike_stay_distinct() {
        let names = ["a/b", "a\\b", "a:b", "a_b"];
        let mut out: Vec<String> = names.iter().map(|n| sanitize_service_name(n)).collect();
        out.sort();
        out.dedup();
        assert_eq!(out.len(), names.len(), "{out:?}");
    }

    #[test]
    fn long_names_are_cut_on_a_char_boundary() {
        let long = "é".repeat(300); // 600 bytes
        let s = sanitize_service_name(&long);
        assert_eq!(
            s,
            format!("{}-{:08x}", "é".repeat(50), fnv1a(long.as_bytes()) as u32)
        );
        let other = "é".repeat(301);
        assert_ne!(
            sanitize_service_name(&other),
            s,
            "same cut, different names"
        );
        let ascii = "x".repeat(101);
        assert_eq!(sanitize_service_name(&ascii).len(), 100 + 9);
        assert_eq!(sanitize_service_name(&"x".repeat(100)), "x".repeat(100));
    }

    #[test]
    fn the_hash_is_stable() {
        // Written logs and their file names must agree across builds: FNV-1a test vector.
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(
            sanitize_service_name("a/b"),
            format!("a_b-{:08x}", fnv1a(b"a/b") as u32)
        );
    }
}
