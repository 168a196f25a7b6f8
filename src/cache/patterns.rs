//! Names that stay local: editor droppings that would otherwise cost a
//! transfer and a flash write each.

/// vim's swap files, probe and backups, gedit's scratch files, Emacs'
/// auto-saves (`#name#`) and lock files (`.#name`).
pub const DEFAULT_LOCAL_ONLY: &[&str] = &[
    ".*.swp",
    ".*.swx",
    "4913",
    "*~",
    ".goutputstream-*",
    "#*#",
    ".#*",
];

/// Shell-style match (`*`, `?`, `[abc]`, `[!a-z]`) against a whole name;
/// a pattern that is not one (an unclosed `[`) matches itself only.
pub fn matches(pattern: &str, name: &str) -> bool {
    match glob::Pattern::new(pattern) {
        Ok(p) => p.matches_with(
            name,
            glob::MatchOptions {
                case_sensitive: true,
                require_literal_separator: true,
                require_literal_leading_dot: false,
            },
        ),
        Err(_) => pattern == name,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn editor_droppings_match_and_real_files_do_not() {
        let local = |n: &str| DEFAULT_LOCAL_ONLY.iter().any(|p| matches(p, n));
        for n in [
            ".main.py.swp",
            ".x.swx",
            "4913",
            "boot.py~",
            ".goutputstream-ABC123",
            "#main.py#",
            ".#main.py",
        ] {
            assert!(local(n), "{n}");
        }
        for n in [
            "main.py",
            "swp",
            "49130",
            ".main.py.swpx",
            "a~b",
            "#x",
            "a#b#",
        ] {
            assert!(!local(n), "{n}");
        }
        assert!(matches("a?c*", "abcdef"));
        assert!(!matches("a?c", "ac"));
        assert!(matches("[ab]*", "b.mpy") && !matches("[ab]*", "c.py"));
        assert!(matches("[!a]?", "bc") && !matches("[!a]?", "ac"));
        assert!(matches("x[", "x[") && !matches("x[", "x"));
    }
}
