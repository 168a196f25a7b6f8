//! `-o` mount options as mount(8), fstab and sshfs users write them: the
//! kernel's and FUSE's own, the ones only mount(8) reads (ignored here), and
//! this tool's long options in `key=value` form (for fstab lines).

use crate::error::{Error, Result};

/// What the FUSE mount itself is given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fuse {
    /// Other users may use the mount, as its modes allow.
    pub allow_other: bool,
    /// root may use the mount too, as its modes allow.
    pub allow_root: bool,
    pub nonempty: bool,
    pub read_only: bool,
    /// The kernel unmounts when the daemon dies (through fusermount3).
    pub auto_unmount: bool,
    /// The owner files are shown with (default: whoever mounts).
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Flags passed on as they are: noexec, nosuid, nodev, sync, ...
    pub flags: Vec<fuser::MountOption>,
}

/// One of our own long options, `cache_size=16` for `--cache-size 16`.
#[derive(Debug, Clone, PartialEq)]
pub struct Ours {
    pub key: String,
    pub value: Option<String>,
}

/// Our long options that make sense in an fstab line.
pub const OURS: &[&str] = &[
    "password_file",
    "cache_size",
    "attr_timeout",
    "dir_cache_time",
    "writeback_delay",
    "close_wait",
    "local_only",
    "interrupt",
    "no_interrupt",
    "timeout",
    "get_window",
    "transfer",
    "no_compress",
    "ca_file",
    "tls_fingerprint",
];

/// Read by mount(8) or systemd, meaningless to the mount itself.
fn ignored(o: &str) -> bool {
    matches!(
        o,
        "" | "defaults"
            | "auto"
            | "noauto"
            | "user"
            | "users"
            | "nouser"
            | "owner"
            | "group"
            | "_netdev"
            | "nofail"
            | "rw"
            | "relatime"
            | "norelatime"
            | "strictatime"
            | "lazytime"
            | "nolazytime"
            | "atime"
            | "noatime"
            | "diratime"
            | "nodiratime"
            | "silent"
            | "loud"
    ) || o.starts_with("x-")
        || o.starts_with("comment=")
        || o.starts_with("user=")
        || o.starts_with("helper=")
}

/// `-o a,b=c` (each given several times too) → what the mount gets and what
/// stands for our own options.
pub fn parse(given: &[String]) -> Result<(Fuse, Vec<Ours>)> {
    use fuser::MountOption as M;
    let mut fuse = Fuse::default();
    let mut ours = Vec::new();
    for o in given.iter().flat_map(|o| o.split(',')) {
        let (key, value) = match o.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (o, None),
        };
        let number = |v: Option<&str>| -> Result<u32> {
            v.and_then(|v| v.parse().ok()).ok_or_else(|| {
                Error::Usage(crate::error::Usage::NotANumber {
                    option: o.to_string(),
                })
            })
        };
        match (key, value) {
            ("allow_other", None) => fuse.allow_other = true,
            ("allow_root", None) => fuse.allow_root = true,
            // Always on when others are let in; alone it changes nothing
            // for the owner.
            ("default_permissions", None) => {}
            ("nonempty", None) => fuse.nonempty = true,
            ("ro", None) => fuse.read_only = true,
            ("auto_unmount", None) => fuse.auto_unmount = true,
            ("uid", v) => fuse.uid = Some(number(v)?),
            ("gid", v) => fuse.gid = Some(number(v)?),
            ("exec", None) => fuse.flags.push(M::Exec),
            ("noexec", None) => fuse.flags.push(M::NoExec),
            ("suid", None) => fuse.flags.push(M::Suid),
            ("nosuid", None) => fuse.flags.push(M::NoSuid),
            ("dev", None) => fuse.flags.push(M::Dev),
            ("nodev", None) => fuse.flags.push(M::NoDev),
            ("sync", None) => fuse.flags.push(M::Sync),
            ("async", None) => fuse.flags.push(M::Async),
            ("dirsync", None) => fuse.flags.push(M::DirSync),
            ("password", _) => {
                return Err(Error::Usage(crate::error::Usage::PasswordOption));
            }
            (k, v) if OURS.contains(&k) => ours.push(Ours {
                key: k.to_string(),
                value: v.map(str::to_string),
            }),
            _ if ignored(o) => {}
            _ => {
                return Err(Error::Usage(crate::error::Usage::UnknownMountOption {
                    option: o.to_string(),
                    ours: OURS,
                }));
            }
        }
    }
    if fuse.allow_other && fuse.allow_root {
        return Err(Error::Usage(crate::error::Usage::AllowOtherAndRoot));
    }
    Ok((fuse, ours))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &[&str]) -> Result<(Fuse, Vec<Ours>)> {
        parse(&s.iter().map(|s| s.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn what_mount_8_passes_from_an_fstab_line() {
        // As mount.fuse3 runs us for `noauto,user,password_file=...`.
        let (fuse, ours) =
            p(&["rw,noexec,nosuid,nodev,password_file=/etc/b.pass,allow_other"]).expect("parses");
        assert!(fuse.allow_other && !fuse.read_only);
        assert_eq!(
            fuse.flags,
            vec![
                fuser::MountOption::NoExec,
                fuser::MountOption::NoSuid,
                fuser::MountOption::NoDev
            ]
        );
        assert_eq!(
            ours,
            vec![Ours {
                key: "password_file".into(),
                value: Some("/etc/b.pass".into())
            }]
        );
    }

    #[test]
    fn ownership_read_only_and_repeats() {
        let (fuse, ours) = p(&[
            "ro",
            "uid=1000,gid=100",
            "cache_size=8,interrupt",
            "x-systemd.automount",
        ])
        .expect("parses");
        assert!(fuse.read_only);
        assert_eq!((fuse.uid, fuse.gid), (Some(1000), Some(100)));
        assert_eq!(ours.len(), 2);
        assert_eq!(ours[1].value, None);
    }

    #[test]
    fn refusals_say_why() {
        for (bad, word) in [
            (&["uid=alice"][..], "number"),
            (&["password=secret"][..], "password_file"),
            (&["frobnicate"][..], "unsupported"),
            (&["allow_other,allow_root"][..], "exclude"),
        ] {
            let e = p(bad).expect_err("refused").to_string();
            assert!(e.contains(word), "{bad:?}: {e}");
        }
    }
}
