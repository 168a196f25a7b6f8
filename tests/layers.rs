//! The layering src/lib.rs describes, checked: a module names (`crate::x`)
//! only modules of lower layers. A new module goes into `LAYERS`.

use std::collections::BTreeSet;
use std::path::Path;

/// Lowest first; a module may use any module before it, none after.
const LAYERS: &[&str] = &[
    "protocol",
    "error",
    "private",
    "boards",
    "options",
    "session",
    "board",
    "cache",
    "share",
    "terminal",
    "fs",
    "web",
    "mount",
    "remote",
    "connection",
    "commands",
    "copy",
    "mip",
    "cli",
];

/// The top-level modules a file names as `crate::x` or `crate::{x, y::z}`.
fn named(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("crate::") {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || matches!(c, '_' | ':' | '$')) {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for item in group[..end].split(',') {
                let head = item.trim().split("::").next().unwrap_or("");
                if !head.is_empty() {
                    out.insert(head.to_string());
                }
            }
        } else {
            let head: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            out.insert(head);
        }
    }
    out
}

fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src/ is readable") {
        let p = e.expect("a directory entry").path();
        if p.is_dir() {
            files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    for f in all {
        let rel = f.strip_prefix(&src).expect("under src/");
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .expect("a file name")
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" || top == "main" {
            continue;
        }
        let Some(rank) = LAYERS.iter().position(|l| *l == top) else {
            wrong.push(format!("{}: module {top} is in no layer", rel.display()));
            continue;
        };
        let text = std::fs::read_to_string(&f).expect("a source file");
        for used in named(&text) {
            match LAYERS.iter().position(|l| *l == used) {
                Some(r) if r <= rank => {}
                Some(_) => wrong.push(format!("{}: {top} uses crate::{used}", rel.display())),
                None => wrong.push(format!("{}: crate::{used} is in no layer", rel.display())),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "against the layering:\n{}",
        wrong.join("\n")
    );
}

/// The check sees both spellings, so it can fail.
#[test]
fn the_check_sees_both_spellings() {
    let got = named("use crate::cli::Conn;\nuse crate::{boards, options::Ours};\nx::crate::no");
    let want: BTreeSet<String> = ["cli", "boards", "options"].map(String::from).into();
    assert_eq!(got, want);
}
