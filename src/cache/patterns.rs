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

/// Shell-style match of `*` and `?` against a whole name.
pub fn matches(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ni < n.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == n[ni]) {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ni));
            pi += 1;
        } else if let Some((sp, sn)) = star {
            pi = sp + 1;
            ni = sn + 1;
            star = Some((sp, sn + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
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
    }
}
