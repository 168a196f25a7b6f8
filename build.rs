//! Installs the page's npm packages (src/web/page/package-lock.json, from
//! the npm registry) into OUT_DIR and bundles the editor's (CodeMirror, ES
//! modules) into one script with esbuild, where src/web embeds them: the
//! binary needs no network and no CDN at run time.

use std::path::Path;
use std::process::Command;

fn main() {
    let page = Path::new("src/web/page");
    for f in [
        "package.json",
        "package-lock.json",
        "editor.mjs",
        "terminal.mjs",
    ] {
        println!("cargo:rerun-if-changed=src/web/page/{f}");
    }
    let Some(out) = std::env::var_os("OUT_DIR") else {
        panic!("cargo sets OUT_DIR for build scripts");
    };
    let npm = Path::new(&out).join("npm");
    let installed = npm.join("node_modules/@xterm/xterm/lib/xterm.js");
    let lock = std::fs::read(page.join("package-lock.json")).ok();
    if !(installed.exists() && std::fs::read(npm.join("package-lock.json")).ok() == lock) {
        install(page, &npm);
    }
    bundle(page, &npm, "editor");
    bundle(page, &npm, "terminal");
}

fn install(page: &Path, npm: &Path) {
    std::fs::create_dir_all(npm).expect("create OUT_DIR/npm");
    for f in ["package.json", "package-lock.json"] {
        std::fs::copy(page.join(f), npm.join(f)).expect("copy the page's package files");
    }
    let status = Command::new("npm")
        .args([
            "ci",
            "--no-audit",
            "--no-fund",
            "--ignore-scripts",
            "--loglevel=error",
        ])
        .current_dir(npm)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            panic!("npm ci for the page's xterm.js failed ({s}); is the npm registry reachable?")
        }
        Err(e) => {
            panic!("cannot run npm ({e}): scripts/install.sh installs it (Debian: apt install npm)")
        }
    }
}

/// ES modules as one classic script: the editor's (CodeMirror, as
/// window.CM) and the terminal's (xterm.js, as window.Terminal).
fn bundle(page: &Path, npm: &Path, name: &str) {
    let (from, to) = (format!("{name}.mjs"), format!("{name}.js"));
    std::fs::copy(page.join(&from), npm.join(&from)).expect("copy the page's module");
    let status = Command::new(npm.join("node_modules/.bin/esbuild"))
        .args([
            from.as_str(),
            "--bundle",
            "--minify",
            "--format=iife",
            "--log-level=warning",
            &format!("--outfile={to}"),
        ])
        .current_dir(npm)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("esbuild could not bundle the page's {name} ({s})"),
        Err(e) => panic!("cannot run the page's esbuild ({e}): npm ci installs it"),
    }
}
