//! Named boards: `~/.config/webrepl-mount/boards.toml` gives a board a name
//! (as `~/.ssh/config` gives hosts one), with its address, password file and
//! default mount options, so `webrepl-mount kitchen /mnt/kitchen` and
//! `webrepl-mount cp main.py kitchen:` need nothing else.
//!
//! ```toml
//! [kitchen]
//! address = "192.168.1.50"          # HOST[:PORT], ws://... or wss://...
//! password_file = "kitchen.pass"    # relative to this file's folder
//! options = "allow_other,cache_size=16"
//! ```

use crate::error::{Error, Result};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Named {
    pub address: String,
    pub password_file: Option<PathBuf>,
    pub ca_file: Option<PathBuf>,
    pub tls_fingerprint: Option<String>,
    /// `-o` options a mount of this board starts with.
    #[serde(default)]
    pub options: String,
}

/// `$XDG_CONFIG_HOME/webrepl-mount/boards.toml`, `~/.config/...` without it.
pub fn file() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("webrepl-mount").join("boards.toml"))
}

/// The board called `name`, if the file names one; a file that exists but
/// cannot be read is an error rather than a silent fall-back to DNS.
pub fn find(name: &str) -> Result<Option<Named>> {
    let Some(path) = file() else { return Ok(None) };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::Setup(crate::error::Setup::BoardsFile {
                path,
                why: e.to_string(),
            }));
        }
    };
    parse(&text, &path).map(|mut all| all.remove(name))
}

fn parse(text: &str, path: &Path) -> Result<BTreeMap<String, Named>> {
    let mut all: BTreeMap<String, Named> = toml::from_str(text).map_err(|e| {
        Error::Setup(crate::error::Setup::BoardsFile {
            path: path.to_path_buf(),
            why: e.message().to_string(),
        })
    })?;
    let dir = path.parent().unwrap_or(Path::new("."));
    for b in all.values_mut() {
        for f in [&mut b.password_file, &mut b.ca_file].into_iter().flatten() {
            *f = expand(f, dir);
        }
    }
    Ok(all)
}

/// `~/x` and paths relative to the file's folder, as a person writes them.
fn expand(f: &Path, dir: &Path) -> PathBuf {
    if let (Ok(rest), Some(home)) = (f.strip_prefix("~"), std::env::var_os("HOME")) {
        return PathBuf::from(home).join(rest);
    }
    dir.join(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_their_files_resolved() {
        let all = parse(
            "[kitchen]\naddress = \"192.168.1.50\"\npassword_file = \"k.pass\"\n\
             options = \"ro\"\n[proxy]\naddress = \"wss://h/webrepl/\"\nca_file = \"/etc/ca.pem\"\n",
            Path::new("/home/u/.config/webrepl-mount/boards.toml"),
        )
        .expect("parses");
        let k = &all["kitchen"];
        assert_eq!(k.address, "192.168.1.50");
        assert_eq!(
            k.password_file.as_deref(),
            Some(Path::new("/home/u/.config/webrepl-mount/k.pass"))
        );
        assert_eq!(k.options, "ro");
        assert_eq!(
            all["proxy"].ca_file.as_deref(),
            Some(Path::new("/etc/ca.pem"))
        );
    }

    #[test]
    fn a_mistyped_key_is_named() {
        let e = parse(
            "[k]\naddress = \"h\"\npasword_file = \"x\"\n",
            Path::new("/b.toml"),
        )
        .expect_err("refused")
        .to_string();
        assert!(e.contains("/b.toml") && e.contains("pasword_file"), "{e}");
        let e = parse("[k]\npassword_file = \"x\"\n", Path::new("/b.toml"))
            .expect_err("refused")
            .to_string();
        assert!(e.contains("address"), "{e}");
    }
}
