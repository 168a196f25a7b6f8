//! What a package is, as MicroPython's mip reads it: a name looked up in
//! the index (`{index}/package/{mpy}/{name}/{version}.json`), a
//! `github:`/`gitlab:`/http(s) URL of a package.json, or of one `.py` /
//! `.mpy` file. A package.json lists `hashes` (files kept in the index by
//! the first 8 hex digits of their SHA-256), `urls` (files fetched as they
//! are) and `deps` (other packages, installed the same way).
//!
//! Everything is fetched and checked here, on the host, before one byte
//! goes to the board: a bad hash or a missing file leaves the board as it
//! was.

use crate::board;
use crate::error::{Error, Kind, Result};
use sha2::{Digest, Sha256};

/// micropython-lib's index, as mip and mpremote use it.
pub const DEFAULT_INDEX: &str = "https://micropython.org/pi/v2";

/// A package.json is a few KB; anything near this is not one.
const MAX_JSON: u64 = 1 << 20;
/// One file of a package (the largest in micropython-lib are ~60 KB).
const MAX_FILE: u64 = 4 << 20;
/// All the files of one install: more could not fit a board's flash.
const MAX_TOTAL: u64 = 16 << 20;
/// Packages one install may pull in, dependencies included.
const MAX_PACKAGES: usize = 64;
/// How deep dependencies may nest (a cycle is caught by name first).
const MAX_DEPTH: usize = 16;
/// Files of one install, each a request.
const MAX_FILES: usize = 1000;

/// One file to install: where on the board, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    pub path: String,
    pub data: Vec<u8>,
}

/// Fetches a URL: the body, or why not. `Ok(None)` is a 404.
pub trait Fetch {
    fn get(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>>;
}

/// A package argument: `NAME[@VERSION]`, or a URL form with `@BRANCH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub name: String,
    pub version: Option<String>,
}

impl Spec {
    pub fn parse(arg: &str) -> Result<Spec> {
        // `@` after the last `/`: a URL may hold `@` in its user part.
        let split = arg.rfind('@').filter(|&at| !arg[at..].contains('/'));
        let (name, version) = match split {
            Some(at) => (&arg[..at], Some(&arg[at + 1..])),
            None => (arg, None),
        };
        if name.is_empty() || version.is_some_and(str::is_empty) {
            return Err(Error::Usage(crate::error::Usage::Package {
                arg: arg.to_string(),
            }));
        }
        if !is_url(name) {
            check_name(name, version)?;
        }
        Ok(Spec {
            name: name.to_string(),
            version: version.map(str::to_string),
        })
    }
}

fn is_url(s: &str) -> bool {
    ["http://", "https://", "github:", "gitlab:"]
        .iter()
        .any(|p| s.starts_with(p))
}

/// A name and version of the index go into its URLs: plain words only.
fn check_name(name: &str, version: Option<&str>) -> Result<()> {
    let plain = |s: &str| {
        !s.is_empty()
            && !s.starts_with('.')
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
    };
    if !plain(name) {
        return Err(Error::Usage(crate::error::Usage::PackageName {
            name: name.to_string(),
        }));
    }
    match version {
        Some(v) if !plain(v) => Err(Error::Usage(crate::error::Usage::PackageVersion {
            name: name.to_string(),
            version: v.to_string(),
        })),
        _ => Ok(()),
    }
}

/// `github:org/repo/path` and `gitlab:...` as the raw file's URL on
/// `branch` (HEAD: the default branch), as mip rewrites them.
pub fn rewrite_url(url: &str, branch: Option<&str>) -> String {
    let branch = branch.unwrap_or("HEAD");
    let raw = |rest: &str, host: &str, mid: &str| {
        let mut parts = rest.splitn(3, '/');
        let (org, repo) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        let path = parts.next().unwrap_or("");
        format!("{host}/{org}/{repo}{mid}/{branch}/{path}")
    };
    if let Some(rest) = url.strip_prefix("github:") {
        raw(rest, "https://raw.githubusercontent.com", "")
    } else if let Some(rest) = url.strip_prefix("gitlab:") {
        raw(rest, "https://gitlab.com", "/-/raw")
    } else {
        url.to_string()
    }
}

/// The board path of a file a package.json names, below `target`: each
/// part one plain name (an index is trusted no more than a board).
fn board_path(target: &str, rel: &str) -> Result<String> {
    let mut path = target.trim_end_matches('/').to_string();
    for part in rel.split('/') {
        board::component(part).map_err(|why| {
            Error::Remote(
                Kind::Protocol,
                format!("the package names the file {rel:?}: {why}"),
            )
        })?;
        path.push('/');
        path.push_str(part);
    }
    Ok(path)
}

/// The parts of a package.json an install uses.
#[derive(Debug, Default, serde::Deserialize)]
struct PackageJson {
    #[serde(default)]
    hashes: Vec<(String, String)>,
    #[serde(default)]
    urls: Vec<(String, String)>,
    #[serde(default)]
    deps: Vec<(String, serde_json::Value)>,
}

/// A resolution under way: what the board will get, and what was seen.
pub struct Resolver<'a, F: Fetch> {
    fetch: &'a F,
    index: String,
    target: String,
    /// The board's `.mpy` version (`sys.implementation._mpy & 0xff`), or
    /// None for `.py` files.
    mpy: Option<u32>,
    pub files: Vec<File>,
    /// One line per package, as installed: for the user.
    pub said: Vec<String>,
    seen: Vec<String>,
    total: u64,
}

impl<'a, F: Fetch> Resolver<'a, F> {
    pub fn new(fetch: &'a F, index: &str, target: &str, mpy: Option<u32>) -> Self {
        Resolver {
            fetch,
            index: index.trim_end_matches('/').to_string(),
            target: target.to_string(),
            mpy,
            files: Vec::new(),
            said: Vec::new(),
            seen: Vec::new(),
            total: 0,
        }
    }

    pub fn add(&mut self, spec: &Spec) -> Result<()> {
        self.package(&spec.name, spec.version.as_deref(), 0)
    }

    fn package(&mut self, name: &str, version: Option<&str>, depth: usize) -> Result<()> {
        if self.seen.iter().any(|s| s == name) {
            return Ok(());
        }
        if depth > MAX_DEPTH || self.seen.len() >= MAX_PACKAGES {
            return Err(Error::Limit(crate::error::Limit::Packages {
                name: name.to_string(),
                most: MAX_PACKAGES,
                depth: MAX_DEPTH,
            }));
        }
        self.seen.push(name.to_string());
        if is_url(name) {
            if name.ends_with(".py") || name.ends_with(".mpy") {
                let url = rewrite_url(name, version);
                let leaf = name.rsplit('/').next().unwrap_or(name);
                let data = self.must_get(&url, MAX_FILE, "file")?;
                self.said.push(format!("{name} -> {}", self.target));
                return self.keep(leaf, data);
            }
            let json = if name.ends_with(".json") {
                name.to_string()
            } else {
                format!("{}/package.json", name.trim_end_matches('/'))
            };
            let url = rewrite_url(&json, version);
            let body = self.must_get(&url, MAX_JSON, "package")?;
            self.said.push(format!("{name} -> {}", self.target));
            return self.install_json(&url, &body, version, depth);
        }
        check_name(name, version)?;
        let v = version.unwrap_or("latest");
        let at = |mpy: &str| format!("{}/package/{mpy}/{name}/{v}.json", self.index);
        let mut tried = Vec::new();
        let mut found = None;
        // `.mpy` files for the board's version where the index has them;
        // an index without them (a private one) still has `.py`.
        for kind in self
            .mpy
            .map(|m| m.to_string())
            .into_iter()
            .chain(["py".into()])
        {
            let url = at(&kind);
            if let Some(body) = self.fetch.get(&url, MAX_JSON)? {
                found = Some((url, body));
                break;
            }
            tried.push(url);
        }
        let Some((url, body)) = found else {
            return Err(Error::Remote(
                Kind::NotFound,
                format!(
                    "package {name} ({v}) not found: the index has no {}",
                    tried.join(" nor ")
                ),
            ));
        };
        self.said
            .push(format!("{name} ({v}) from {url} -> {}", self.target));
        self.install_json(&url, &body, version, depth)
    }

    fn install_json(
        &mut self,
        url: &str,
        body: &[u8],
        version: Option<&str>,
        depth: usize,
    ) -> Result<()> {
        let pkg: PackageJson = serde_json::from_slice(body).map_err(|e| {
            Error::Remote(Kind::Protocol, format!("{url}: not a package.json: {e}"))
        })?;
        for (rel, short) in &pkg.hashes {
            let ok =
                (8..=64).contains(&short.len()) && short.bytes().all(|b| b.is_ascii_hexdigit());
            if !ok {
                return Err(Error::Remote(
                    Kind::Protocol,
                    format!("{url}: {rel:?} has the hash {short:?}, not hex digits"),
                ));
            }
            let short = short.to_ascii_lowercase();
            let file_url = format!("{}/file/{}/{short}", self.index, &short[..2]);
            let data = self.must_get(&file_url, MAX_FILE, "file")?;
            let full = hex(&Sha256::digest(&data));
            if !full.starts_with(&short) {
                return Err(Error::Remote(
                    Kind::Protocol,
                    format!(
                        "{file_url}: its SHA-256 is {full}, not the {short}... the index gives \
                         for {rel}: refused (nothing was installed)"
                    ),
                ));
            }
            self.keep(rel, data)?;
        }
        for (rel, file) in &pkg.urls {
            let file_url = if is_url(file) {
                rewrite_url(file, version)
            } else {
                // Relative to the package.json, as mip on a board takes it.
                format!("{}/{file}", url.rsplit_once('/').map_or(url, |(d, _)| d))
            };
            let data = self.must_get(&file_url, MAX_FILE, "file")?;
            self.keep(rel, data)?;
        }
        for (dep, v) in &pkg.deps {
            let v = v.as_str().filter(|v| !v.is_empty() && *v != "latest");
            self.package(dep, v, depth + 1)?;
        }
        Ok(())
    }

    fn keep(&mut self, rel: &str, data: Vec<u8>) -> Result<()> {
        let path = board_path(&self.target, rel)?;
        self.total += data.len() as u64;
        if self.total > MAX_TOTAL || self.files.len() >= MAX_FILES {
            return Err(Error::Limit(crate::error::Limit::PackageFiles {
                most_bytes: MAX_TOTAL,
                most_files: MAX_FILES,
            }));
        }
        // Two packages with one file: the first keeps it, as mip's order
        // would leave the last one's; either is the same file in practice.
        if !self.files.iter().any(|f| f.path == path) {
            self.files.push(File { path, data });
        }
        Ok(())
    }

    fn must_get(&self, url: &str, limit: u64, what: &str) -> Result<Vec<u8>> {
        self.fetch
            .get(url, limit)?
            .ok_or_else(|| Error::Remote(Kind::NotFound, format!("{what} not found: {url}")))
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    struct Files(HashMap<String, Vec<u8>>);

    impl Fetch for Files {
        fn get(&self, url: &str, limit: u64) -> Result<Option<Vec<u8>>> {
            Ok(self.0.get(url).filter(|d| d.len() as u64 <= limit).cloned())
        }
    }

    fn short(data: &[u8]) -> String {
        hex(&Sha256::digest(data))[..8].to_string()
    }

    #[test]
    fn specs_split_at_the_last_at_sign_after_the_last_slash() {
        let s = |a| Spec::parse(a).map(|s| (s.name, s.version));
        assert_eq!(s("aioble").unwrap(), ("aioble".into(), None));
        assert_eq!(
            s("aioble@0.4").unwrap(),
            ("aioble".into(), Some("0.4".into()))
        );
        assert_eq!(
            s("github:org/repo/pkg@dev").unwrap(),
            ("github:org/repo/pkg".into(), Some("dev".into()))
        );
        assert_eq!(
            s("https://u@host/x.py").unwrap(),
            ("https://u@host/x.py".into(), None)
        );
        assert!(s("x@").is_err());
        assert!(s("@1").is_err());
        assert!(s("bad name").is_err());
        assert!(s("x@../y").is_err());
        assert!(s("x/../y").is_err());
    }

    #[test]
    fn github_and_gitlab_become_raw_urls() {
        assert_eq!(
            rewrite_url("github:org/repo/a/b.py", None),
            "https://raw.githubusercontent.com/org/repo/HEAD/a/b.py"
        );
        assert_eq!(
            rewrite_url("gitlab:org/repo/p.json", Some("v1")),
            "https://gitlab.com/org/repo/-/raw/v1/p.json"
        );
        assert_eq!(rewrite_url("http://h/x", Some("v1")), "http://h/x");
    }

    #[test]
    fn a_package_with_a_dependency_resolves_to_checked_files() {
        let (a, b) = (b"import dep\n".to_vec(), b"X = 1\n".to_vec());
        let mut m = HashMap::new();
        let i = "http://i";
        m.insert(
            format!("{i}/package/py/pkg/latest.json"),
            format!(
                r#"{{"hashes":[["pkg/__init__.py","{}"]],"deps":[["dep","latest"]]}}"#,
                short(&a)
            )
            .into_bytes(),
        );
        m.insert(
            format!("{i}/package/6/dep/latest.json"),
            format!(r#"{{"hashes":[["dep.py","{}"]]}}"#, short(&b)).into_bytes(),
        );
        m.insert(
            format!("{i}/file/{}/{}", &short(&a)[..2], short(&a)),
            a.clone(),
        );
        m.insert(
            format!("{i}/file/{}/{}", &short(&b)[..2], short(&b)),
            b.clone(),
        );
        let f = Files(m);
        let mut r = Resolver::new(&f, "http://i/", "/lib", Some(6));
        r.add(&Spec::parse("pkg").unwrap()).unwrap();
        assert_eq!(
            r.files,
            vec![
                File {
                    path: "/lib/pkg/__init__.py".into(),
                    data: a
                },
                File {
                    path: "/lib/dep.py".into(),
                    data: b
                }
            ]
        );
    }

    #[test]
    fn an_unknown_package_names_the_urls_tried() {
        let f = Files(HashMap::new());
        let mut r = Resolver::new(&f, "http://i", "/lib", Some(6));
        let e = r.add(&Spec::parse("nope@1.0").unwrap()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "package nope (1.0) not found: the index has no \
             http://i/package/6/nope/1.0.json nor http://i/package/py/nope/1.0.json"
        );
    }

    #[test]
    fn a_file_that_is_not_what_its_hash_says_is_refused() {
        let mut m = HashMap::new();
        m.insert(
            "http://i/package/py/p/latest.json".to_string(),
            br#"{"hashes":[["p.py","0123abcd"]]}"#.to_vec(),
        );
        m.insert("http://i/file/01/0123abcd".to_string(), b"evil".to_vec());
        let f = Files(m);
        let mut r = Resolver::new(&f, "http://i", "/lib", None);
        let e = r.add(&Spec::parse("p").unwrap()).unwrap_err().to_string();
        assert!(e.contains("not the 0123abcd"), "{e}");
        assert!(r.files.is_empty());
    }

    #[test]
    fn a_package_cannot_name_a_file_outside_the_target() {
        let data = b"x".to_vec();
        let mut m = HashMap::new();
        m.insert(
            "http://i/package/py/p/latest.json".to_string(),
            format!(r#"{{"hashes":[["../boot.py","{}"]]}}"#, short(&data)).into_bytes(),
        );
        let s = short(&data);
        m.insert(format!("http://i/file/{}/{s}", &s[..2]), data);
        let f = Files(m);
        let mut r = Resolver::new(&f, "http://i", "/lib", None);
        let e = r.add(&Spec::parse("p").unwrap()).unwrap_err().to_string();
        assert!(e.contains("\"../boot.py\""), "{e}");
    }
}
