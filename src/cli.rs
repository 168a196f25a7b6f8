//! The command line: clap definitions, what they become, and exit codes.
//! What the commands do is in `commands`, `copy` and `mount`.

use crate::board::Transfer;
use crate::cache::{self, patterns};
use crate::connection::Conn;
use crate::error::{Error, Holder, Kind, NotInterrupting, Result};
use crate::mount::{MountOptions, Ready};
use crate::options;
use crate::session::Target;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "webrepl-mount",
    version,
    about = "A MicroPython board's files and REPL over WebREPL",
    override_usage = "webrepl-mount [OPTIONS] HOST[:PORT] MOUNTPOINT\n       webrepl-mount <COMMAND> ...",
    subcommand_negates_reqs = true
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub mount: MountArgs,
    /// How to reach the board: the same before or after a command.
    #[command(flatten)]
    pub conn: ConnArgs,
    /// More log output (-v: transfers, -vv: everything); RUST_LOG overrides.
    /// To cp, mv, rm, mkdir, rmdir and touch, -v is coreutils' -v: what
    /// was done, on stdout (-vv: the transfers' log too).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// The board of mpremote's `:PATH` form (`cp main.py :`, `cat :boot.py`)
    /// and of `exec CODE` or `run FILE` without one: HOST[:PORT], NAME, URL
    /// or a mountpoint. Without it, this user's mount if there is one only.
    #[arg(
        long = "board",
        id = "default_board",
        value_name = "BOARD",
        env = "WEBREPL_BOARD",
        global = true
    )]
    pub default_board: Option<String>,
}

/// Mounting: `webrepl-mount HOST[:PORT] MOUNTPOINT`.
#[derive(Args, Debug)]
pub struct MountArgs {
    /// The board: HOST[:PORT], ws://HOST[:PORT]/, wss://..., or a name
    /// from ~/.config/webrepl-mount/boards.toml.
    #[arg(required = true)]
    pub board: Option<String>,
    /// An empty directory to mount the board's filesystem on.
    #[arg(required = true, value_hint = clap::ValueHint::DirPath)]
    pub mountpoint: Option<PathBuf>,
    /// Return once mounted and run in the background.
    #[arg(long)]
    pub daemon: bool,
    /// Megabytes of unchanged file contents kept in memory.
    #[arg(long, default_value_t = 64)]
    pub cache_size: usize,
    /// Seconds the kernel may trust attributes.
    #[arg(long, default_value_t = 1.0)]
    pub attr_timeout: f64,
    /// Seconds a directory listing is trusted before the board is asked again.
    #[arg(long, default_value_t = 300.0)]
    pub dir_cache_time: f64,
    /// Upload a changed file this many seconds after its last write instead
    /// of when it is closed (close then cannot report upload errors).
    #[arg(long, value_name = "SECONDS")]
    pub writeback_delay: Option<f64>,
    /// Seconds close() waits for its file to reach the board. Past it, the
    /// file is safe in the local journal, close() succeeds and the upload
    /// goes on when the board can take it (errors then show in `status`
    /// and the log). Larger: every upload error is reported by close().
    #[arg(long, value_name = "SECONDS", default_value_t = 2.0)]
    pub close_wait: f64,
    /// Send the unsent changes kept for another board that had this
    /// address (the mount names it) to this board.
    #[arg(long)]
    pub adopt_journal: bool,
    /// Names that live only in the mount, never on the board (shell
    /// patterns; repeat for several; replaces the default list of editor
    /// droppings: .*.swp .*.swx 4913 *~ .goutputstream-* #*# .#*).
    #[arg(long, value_name = "PATTERN")]
    pub local_only: Vec<String>,
    /// Mount options, as mount(8) takes them: allow_other (other users may
    /// use the mount, as its modes allow: the kernel checks them, as with
    /// sshfs), allow_root, ro, auto_unmount, uid=N, gid=N, nonempty (mount
    /// over a directory that has files), noexec, nosuid, nodev, sync; any of
    /// this tool's long options as key=value (password_file=FILE,
    /// cache_size=16, ...) for fstab lines; mount(8)'s own (noauto, user,
    /// _netdev, nofail, x-*) are ignored.
    #[arg(short = 'o', value_name = "OPTION")]
    pub options: Vec<String>,
    /// What `-o` gave the FUSE mount itself (filled in by `prepare`).
    #[arg(skip)]
    pub fuse: options::Fuse,
    /// Serve the board's page (terminal and files) too, on [ADDR:]PORT
    /// (127.0.0.1 unless ADDR says otherwise); the address is printed.
    #[arg(long, value_name = "[ADDR:]PORT")]
    pub web: Option<String>,
    /// Stop a running program (Ctrl-C) whenever the raw REPL is needed.
    #[arg(long, conflicts_with = "no_interrupt")]
    pub interrupt: bool,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Flush every change to the board, unmount, and wait for the daemon to
    /// exit; cleans up a mount whose daemon died.
    Unmount {
        #[arg(value_hint = clap::ValueHint::DirPath)]
        mountpoint: PathBuf,
    },
    /// What a mount is doing (cache use, files not yet on the board,
    /// transfers, traffic), or a board's firmware and free space.
    Status {
        /// A mountpoint (or a path in it), or HOST[:PORT] when nothing is
        /// mounted.
        target: String,
    },
    /// The REPL of a mounted board (Ctrl-] detaches, the mount goes on), or
    /// of HOST[:PORT] like `repl`.
    Term {
        /// A mountpoint (or a path in it), or HOST[:PORT], NAME or URL.
        #[arg(value_hint = clap::ValueHint::AnyPath)]
        target: String,
    },
    /// Soft-reset the board (a mount flushes first and re-reads the tree).
    Reset { target: String },
    /// The board's REPL in this terminal (Ctrl-] to exit).
    Repl {
        /// HOST[:PORT], NAME (boards.toml), ws://HOST[:PORT]/ or wss://...
        board: String,
    },
    /// Copy files to or from boards: one side is HOST[:PORT]:PATH (or
    /// NAME:PATH for a named board, URL:PATH for a URL). Files
    /// the board already has (same size and hash) are skipped. Several
    /// boards after the sources get the same files, at once.
    Cp {
        /// Sources, then the destination (or several boards).
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
        /// Copy directories recursively.
        #[arg(short, long)]
        recursive: bool,
        /// Send every file, also those the board already has.
        #[arg(short, long)]
        force: bool,
        /// Never overwrite an existing file (no clobber), either way.
        #[arg(short, long)]
        no_clobber: bool,
        /// Only files that are missing or differ (by size and hash: board
        /// clocks are not to be trusted); what uploads always do.
        #[arg(short, long)]
        update: bool,
        /// Accepted as cp's: a board keeps no modes, owners or settable
        /// times, so there is nothing more to keep (as rsync ignores what a
        /// filesystem lacks).
        #[arg(short, long)]
        preserve: bool,
        /// -r -p, as cp -a.
        #[arg(short, long)]
        archive: bool,
        /// Not supported (it would ask before each overwrite): -n keeps
        /// every existing file, -u copies only those that differ.
        #[arg(short, long)]
        interactive: bool,
    },
    /// List directories or files on a board: HOST[:PORT]:PATH (PATH
    /// defaults to /), or paths in a mount; several are each listed under
    /// its name, as ls does.
    // `-h` is human sizes here, as to ls; help is `--help`.
    #[command(disable_help_flag = true)]
    Ls {
        #[arg(required = true)]
        targets: Vec<String>,
        /// Names starting with a dot too (-A as well; this tool's own files
        /// on the board stay hidden).
        #[arg(short = 'a', visible_short_alias = 'A', long)]
        all: bool,
        /// One name per line (what ls always prints here; accepted for it).
        #[arg(short = '1')]
        one_per_line: bool,
        /// Sizes and types.
        #[arg(short, long)]
        long: bool,
        /// Sizes in human units (KB, MB) with -l, as ls -lh.
        #[arg(short = 'h', long)]
        human_readable: bool,
        /// Print help.
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
        /// The whole tree below PATH (-r as well, as mpremote's users type).
        #[arg(short = 'R', visible_short_alias = 'r', long)]
        recursive: bool,
    },
    /// Remove files from a board: HOST[:PORT]:PATH (NAME:PATH, URL:PATH)
    /// or a path in a mount, as for cp.
    Rm {
        #[arg(required = true)]
        paths: Vec<String>,
        /// Directories too, with what they hold.
        #[arg(short, long)]
        recursive: bool,
        /// A missing file is no error. (-v, as for every command, says
        /// what was removed, as rm -v.)
        #[arg(short, long)]
        force: bool,
    },
    /// Make directories on a board.
    Mkdir {
        #[arg(required = true)]
        paths: Vec<String>,
        /// Parents too; an existing directory is no error.
        #[arg(short, long)]
        parents: bool,
    },
    /// Remove empty directories from a board.
    Rmdir {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// Rename or move files and directories within a board, or between
    /// here and a board or two boards (copied, then the sources removed
    /// once all arrived); into DST when it is a directory, as several
    /// sources must be.
    Mv {
        /// Sources, then the destination.
        #[arg(required = true, num_args = 2..)]
        paths: Vec<String>,
    },
    /// Print files of a board.
    Cat {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// A board's free space (HOST[:PORT], NAME, URL or a mountpoint).
    // `-h` is human sizes here, as to df (they always are); help is `--help`.
    #[command(disable_help_flag = true)]
    Df {
        target: String,
        /// Sizes in human units, as df -h (the default: accepted for it).
        #[arg(short = 'h', long)]
        human_readable: bool,
        /// Print help.
        #[arg(long, action = clap::ArgAction::Help)]
        help: Option<bool>,
    },
    /// Make empty files on a board (an existing one is left as it is).
    Touch {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// SHA-256 of files on a board, as sha256sum prints them.
    Sha256sum {
        #[arg(required = true)]
        paths: Vec<String>,
    },
    /// The tree below a directory of a board: HOST[:PORT][:PATH].
    Tree { target: String },
    /// Packages for a board, as MicroPython's mip installs them: this
    /// machine fetches them, so the board needs no internet of its own.
    Mip {
        #[command(subcommand)]
        command: MipCommand,
    },
    /// Run CODE on a board and print its output ("-" reads CODE from
    /// stdin). BOARD is a mountpoint (or a path in it), HOST[:PORT], NAME
    /// or URL; without it, --board's (WEBREPL_BOARD), or the one mount.
    #[command(override_usage = "webrepl-mount exec [OPTIONS] [BOARD] CODE")]
    Exec {
        /// A mountpoint (or a path in it), HOST[:PORT], NAME or URL; the
        /// code when it comes alone.
        #[arg(value_name = "BOARD")]
        board: String,
        /// Python code (a local file goes with `run`).
        code: Option<String>,
    },
    /// Run a local Python file on a board and print its output, as exec
    /// runs CODE: BOARD first, or none (--board's, or the one mount), as
    /// mpremote's `run FILE`. The older `run FILE BOARD` still works.
    #[command(override_usage = "webrepl-mount run [OPTIONS] [BOARD] FILE")]
    Run {
        /// A mountpoint (or a path in it), HOST[:PORT], NAME or URL; the
        /// file when it comes alone.
        #[arg(value_name = "BOARD", value_hint = clap::ValueHint::AnyPath)]
        board: String,
        /// The local Python file.
        #[arg(value_hint = clap::ValueHint::FilePath)]
        file: Option<String>,
    },
    /// A host directory as the board's /remote and current directory:
    /// `import x` on the board reads DIR/x.py, files it writes land in DIR.
    /// Nothing is copied to flash. To a mountpoint, the mount's daemon
    /// serves it until `share --stop MOUNTPOINT`; to a board, the board's
    /// REPL is here (Ctrl-] ends it).
    Share {
        #[arg(value_hint = clap::ValueHint::DirPath, required_unless_present = "stop")]
        dir: Option<PathBuf>,
        /// A mountpoint, or HOST[:PORT], NAME or URL.
        #[arg(required_unless_present = "stop")]
        board: Option<String>,
        /// The board may read DIR but not change it.
        #[arg(long)]
        read_only: bool,
        /// End the share a mount's daemon serves.
        #[arg(long, value_name = "MOUNTPOINT", conflicts_with_all = ["dir", "board", "read_only"])]
        stop: Option<String>,
    },
    /// The board in a browser tab: its REPL and its files, sharing the
    /// mount's connection (MOUNTPOINT) or a board's (HOST[:PORT]).
    Web {
        /// A mountpoint (or a path in it), or HOST[:PORT], NAME or URL.
        #[arg(value_hint = clap::ValueHint::AnyPath)]
        target: String,
        /// Where to listen: [ADDR:]PORT (default: 127.0.0.1, a free port).
        #[arg(long, value_name = "[ADDR:]PORT", default_value = "127.0.0.1:0")]
        listen: String,
        /// Open the page in the desktop's browser.
        #[arg(long)]
        open: bool,
    },
    /// Print a shell's completion script (scripts/install.sh installs them).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff).
    #[command(hide = true)]
    Man,
}

#[derive(Subcommand, Debug)]
pub enum MipCommand {
    /// Install packages (with their dependencies) from micropython-lib's
    /// index, or from github:ORG/REPO[/PATH][@BRANCH] or a URL of a
    /// package.json, .py or .mpy file. Files the board already has are
    /// skipped; `.mpy` files for the board's version where the index has
    /// them.
    Install {
        /// A mountpoint (or a path in it), or HOST[:PORT], NAME or URL.
        #[arg(value_hint = clap::ValueHint::AnyPath)]
        board: String,
        /// NAME[@VERSION], github:ORG/REPO[/PATH][@BRANCH], or a URL.
        #[arg(required = true)]
        packages: Vec<String>,
        /// The board directory to install into (default: the first entry
        /// of the board's sys.path ending in /lib).
        #[arg(long, value_name = "DIR")]
        target: Option<String>,
        /// The package index.
        #[arg(long, value_name = "URL", default_value = crate::mip::DEFAULT_INDEX)]
        index: String,
        /// `.py` sources, never compiled `.mpy` files.
        #[arg(long)]
        no_mpy: bool,
        /// Send every file, also those the board already has.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Args, Debug, Clone)]
pub struct ConnArgs {
    /// The WebREPL password. It lands in shell history (and in `ps` for the
    /// instant before it is moved to the environment): prefer
    /// WEBREPL_PASSWORD or --password-file.
    /// (No short option: `-p` is cp's "preserve".)
    #[arg(long, env = "WEBREPL_PASSWORD", hide_env_values = true, global = true)]
    pub password: Option<String>,
    /// Read the password from the first line of this file.
    #[arg(long, value_name = "FILE", global = true)]
    pub password_file: Option<PathBuf>,
    /// Never stop a running program with Ctrl-C; fail instead.
    #[arg(long, global = true)]
    pub no_interrupt: bool,
    /// Seconds the board may make no progress, and an operation may wait
    /// for a lost link.
    #[arg(long, default_value_t = 10.0, global = true)]
    pub timeout: f64,
    /// GET acks in flight at most, each pulling 256 bytes (1: stop-and-wait,
    /// like webrepl_cli.py); fewer are used when the link is slow. [default:
    /// 128 in a mount, 512 for a command's own downloads]
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=1024), global = true)]
    pub get_window: Option<u64>,
    /// How file contents travel.
    #[arg(long, value_enum, default_value_t = TransferArg::Auto, global = true)]
    pub transfer: TransferArg,
    /// Send uploads as they are, never compressed (by default, files that
    /// compress go as small-window zlib streams the board inflates, when
    /// that is faster than the link).
    #[arg(long, global = true)]
    pub no_compress: bool,
    /// wss://: also trust the certificate authorities in this PEM file (the
    /// system's store, SSL_CERT_FILE included, is always trusted).
    #[arg(long, value_name = "FILE", global = true)]
    pub ca_file: Option<PathBuf>,
    /// wss://: trust exactly the certificate with this fingerprint
    /// (SHA256:... as an untrusted certificate's error shows it), as ssh
    /// trusts a known host.
    #[arg(long, value_name = "SHA256:...", global = true)]
    pub tls_fingerprint: Option<String>,
}

#[derive(ValueEnum, Debug, Clone, Copy)]
pub enum TransferArg {
    /// Binary PUT for uploads; downloads by binary GET or, where the board
    /// throttles it (ESP8266), a program on the text channel, measured per
    /// connection; raw-paste for paths over 63 bytes.
    Auto,
    /// Downloads always by binary GET.
    Get,
    /// Downloads over 1 KB always by the text channel.
    Text,
    /// Raw-paste programs with base64, both ways (firmware without file
    /// transfer).
    Paste,
}

impl From<&ConnArgs> for Conn {
    fn from(a: &ConnArgs) -> Self {
        Conn {
            password: a.password.clone(),
            password_file: a.password_file.clone(),
            no_interrupt: a.no_interrupt,
            timeout: a.timeout,
            get_window: a.get_window,
            transfer: match a.transfer {
                TransferArg::Auto => Transfer::Auto,
                TransferArg::Paste => Transfer::Paste,
                TransferArg::Get => Transfer::Get,
                TransferArg::Text => Transfer::Text,
            },
            no_compress: a.no_compress,
            ca_file: a.ca_file.clone(),
            tls_fingerprint: a.tls_fingerprint.clone(),
        }
    }
}

impl ConnArgs {
    /// What boards.toml adds to the command line's settings.
    fn adopt(&mut self, c: Conn) {
        self.password_file = c.password_file;
        self.ca_file = c.ca_file;
        self.tls_fingerprint = c.tls_fingerprint;
    }
}

impl MountArgs {
    /// Everything the mount needs; the password is asked for here, before
    /// a daemon loses its terminal.
    pub fn options(&self, conn: &Conn) -> Result<MountOptions> {
        let (Some(board), Some(mountpoint)) = (&self.board, &self.mountpoint) else {
            return Err(Error::Usage(crate::error::Usage::MountUsage));
        };
        let password = conn.password()?;
        let local_only = if self.local_only.is_empty() {
            patterns::DEFAULT_LOCAL_ONLY
                .iter()
                .map(|s| s.to_string())
                .collect()
        } else {
            self.local_only
                .iter()
                .filter(|p| !p.is_empty())
                .cloned()
                .collect()
        };
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let (uid, gid) = (self.fuse.uid.unwrap_or(uid), self.fuse.gid.unwrap_or(gid));
        let state = cache::attrs::state_file(board);
        Ok(MountOptions {
            board: board.clone(),
            mountpoint: mountpoint.clone(),
            session: conn.config(board, password)?,
            transfer: conn.transfer,
            compress: !conn.no_compress,
            cache: cache::Options {
                cache_bytes: self.cache_size << 20,
                dir_ttl: Duration::from_secs_f64(self.dir_cache_time.max(0.0)),
                local_only,
                state_file: state.clone(),
                uid,
                gid,
                writeback: self
                    .writeback_delay
                    .map(|s| Duration::from_secs_f64(s.max(0.0))),
                journal: state.as_ref().map(|f| f.with_extension("journal")),
                close_wait: Duration::from_secs_f64(self.close_wait.max(0.0)),
                adopt_journal: self.adopt_journal,
            },
            attr_ttl: Duration::from_secs_f64(self.attr_timeout.max(0.0)),
            fuse: self.fuse.clone(),
            interrupt: if self.interrupt {
                Some(true)
            } else if conn.no_interrupt {
                Some(false)
            } else {
                None
            },
            foreground: !self.daemon,
            log: state
                .filter(|_| self.daemon)
                .map(|f| f.with_extension("log")),
            web: self
                .web
                .as_deref()
                .map(crate::web::parse_listen)
                .transpose()?,
        })
    }
}

/// A bare word that is no board of boards.toml but close to a command's
/// name was a mistyped command (`umount`, `cta`), not a host; so is any
/// bare word followed by a board path where the mountpoint goes (`rn
/// kb:/x`): clap's error, with a "did you mean".
fn not_a_command(board: &str, mountpoint: Option<&std::path::Path>) -> Result<()> {
    if board.contains(['.', ':', '/', '[']) || board == "localhost" {
        return Ok(());
    }
    let cmd = <Cli as clap::CommandFactory>::command();
    let commands = clap::Command::new("webrepl-mount")
        .subcommands(cmd.get_subcommands().cloned())
        .disable_help_subcommand(true);
    let said = |e: clap::Error| {
        e.render()
            .to_string()
            .trim()
            .trim_start_matches("error: ")
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with("Usage:"))
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let boards_toml = "(a board named so goes in boards.toml)".to_string();
    let Err(e) = commands.try_get_matches_from(["webrepl-mount", board]) else {
        return Ok(());
    };
    if e.get(clap::error::ContextKind::SuggestedSubcommand)
        .is_some()
    {
        // The hint belongs with the error, before clap's pointer to --help.
        let mut lines = said(e);
        let at = lines
            .iter()
            .position(|l| l.starts_with("For more information"))
            .unwrap_or(lines.len());
        lines.insert(at, boards_toml);
        return Err(Error::Usage(crate::error::Usage::UnknownCommand { lines }));
    }
    // A host may well be one letter from a command (`web1`): only a board
    // path where the mountpoint goes makes it a command.
    let board_path = mountpoint
        .and_then(|m| m.to_str())
        .is_some_and(|m| m.contains(':') && !std::path::Path::new(m).exists());
    if !board_path {
        return Ok(());
    }
    // clap's suggestion misses a swap of two letters (`cta`).
    let near = cmd
        .get_subcommands()
        .map(|c| c.get_name())
        .find(|n| one_typo(board, n));
    let mut lines = vec![format!("unrecognized subcommand '{board}'")];
    if let Some(n) = near {
        lines.push(format!("  tip: a similar subcommand exists: '{n}'"));
    }
    lines.push(boards_toml);
    lines.push("For more information, try '--help'.".into());
    Err(Error::Usage(crate::error::Usage::UnknownCommand { lines }))
}

/// `a` is `b` with one letter changed, added, dropped, or two side by side
/// swapped.
fn one_typo(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a == b || a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let start = a.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let (ra, rb) = (&a[start..], &b[start..]);
    // Swapped, changed, dropped, added: the rest is then the same.
    (ra.len() >= 2 && rb.len() >= 2 && ra[0] == rb[1] && ra[1] == rb[0] && ra[2..] == rb[2..])
        || (!ra.is_empty() && !rb.is_empty() && ra[1..] == rb[1..])
        || (!ra.is_empty() && ra[1..] == *rb)
        || (!rb.is_empty() && *ra == rb[1..])
}

/// What would make the mount fail, said before the board is touched: the
/// directory is missing, already a mount, or the board is held by this
/// user's own mount.
fn check_mountpoint(mp: &std::path::Path, board: &str) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::metadata(mp) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Mountpoint(crate::error::Mountpoint::Missing {
                at: mp.to_path_buf(),
            }));
        }
        // ENOTCONN: a FUSE mount whose daemon died; the mount replaces it.
        Err(e) if e.raw_os_error() == Some(libc::ENOTCONN) => return Ok(()),
        Err(e) => return Err(Error::local(mp, e)),
    };
    if !meta.is_dir() {
        return Err(Error::Mountpoint(crate::error::Mountpoint::NotADirectory {
            at: mp.to_path_buf(),
        }));
    }
    let abs = std::path::absolute(mp).unwrap_or_else(|_| mp.to_path_buf());
    let parent_dev = abs
        .parent()
        .and_then(|p| std::fs::metadata(p).ok())
        .map(|m| m.dev());
    if parent_dev.is_some_and(|d| d != meta.dev()) {
        return Err(Error::Mountpoint(
            crate::error::Mountpoint::AlreadyAMountPoint {
                at: mp.to_path_buf(),
            },
        ));
    }
    if let Some(other) = crate::mount::mounted_board(board) {
        let shown = Target::parse(board)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| board.to_string());
        return Err(Error::Busy {
            what: shown,
            holder: Holder::YourMount(other),
        });
    }
    Ok(())
}

impl Cli {
    /// How much to log: `-v` of a file command is coreutils' lines on
    /// stdout, as `cp -v` or `rm -v` print them, not log lines (`-vv`
    /// adds those).
    pub fn log_verbosity(&self) -> u8 {
        match self.command {
            Some(
                Command::Cp { .. }
                | Command::Mv { .. }
                | Command::Rm { .. }
                | Command::Mkdir { .. }
                | Command::Rmdir { .. }
                | Command::Touch { .. },
            ) => self.verbose.saturating_sub(1),
            _ => self.verbose,
        }
    }

    /// Before anything runs, and before a daemon forks: a named board
    /// becomes its address and settings, and `-o` becomes what the FUSE
    /// mount gets and this tool's own options.
    pub fn prepare(&mut self) -> Result<()> {
        if self.command.is_some() {
            return Ok(());
        }
        let Some(board) = self.mount.board.clone() else {
            return Ok(());
        };
        let (address, conn, named) = Conn::from(&self.conn).for_board(&board)?;
        if named.is_none() {
            not_a_command(&board, self.mount.mountpoint.as_deref())?;
        }
        self.conn.adopt(conn);
        self.mount.board = Some(address);
        // The command line's options come last: they add to the board's.
        let mut given: Vec<String> = named.map(|n| n.options).into_iter().collect();
        given.append(&mut self.mount.options);
        let (fuse, ours) = options::parse(&given)?;
        self.mount.fuse = fuse;
        ours.into_iter().try_for_each(|o| self.absorb(o))?;
        match (&self.mount.mountpoint, &self.mount.board) {
            (Some(mp), Some(board)) => check_mountpoint(mp, board),
            _ => Ok(()),
        }
    }

    /// `-o key=value` as if `--key value` had been given.
    fn absorb(&mut self, o: options::Ours) -> Result<()> {
        let (m, c) = (&mut self.mount, &mut self.conn);
        let bad = |why: &'static str| {
            Error::Usage(crate::error::Usage::OurMountOption {
                key: o.key.clone(),
                value: o.value.clone(),
                why,
            })
        };
        let text = || o.value.clone().ok_or_else(|| bad("a value is needed"));
        let number = || -> Result<f64> {
            text()?
                .parse::<f64>()
                .ok()
                .filter(|n| n.is_finite() && *n >= 0.0)
                .ok_or_else(|| bad("a number is needed"))
        };
        let flag = || {
            o.value
                .is_none()
                .then_some(true)
                .ok_or_else(|| bad("takes no value"))
        };
        match o.key.as_str() {
            "password_file" => c.password_file = Some(text()?.into()),
            "cache_size" => m.cache_size = number()? as usize,
            "attr_timeout" => m.attr_timeout = number()?,
            "dir_cache_time" => m.dir_cache_time = number()?,
            "writeback_delay" => m.writeback_delay = Some(number()?),
            "close_wait" => m.close_wait = number()?,
            "local_only" => m.local_only.push(text()?),
            "interrupt" => m.interrupt = flag()?,
            "no_interrupt" => c.no_interrupt = flag()?,
            "no_compress" => c.no_compress = flag()?,
            "timeout" => c.timeout = number()?,
            "get_window" => {
                c.get_window = Some(
                    Some(number()? as u64)
                        .filter(|w| (1..=1024).contains(w))
                        .ok_or_else(|| bad("1 to 1024"))?,
                )
            }
            "transfer" => {
                c.transfer = TransferArg::from_str(&text()?, true)
                    .map_err(|_| bad("auto, get, text or paste"))?
            }
            "ca_file" => c.ca_file = Some(text()?.into()),
            "tls_fingerprint" => c.tls_fingerprint = Some(text()?),
            _ => return Err(bad("not an option of this tool")),
        }
        Ok(())
    }
}

/// Bash: also the boards boards.toml names (as `NAME:`, no space after,
/// as scp completes `host:`) and the mountpoints of this user's mounts,
/// wherever a board or a path may go.
const BASH_NAMES: &str = r#"
_webrepl_mount_boards() {
    local f="${XDG_CONFIG_HOME:-$HOME/.config}/webrepl-mount/boards.toml"
    [[ -r $f ]] && sed -n 's/^[[:space:]]*\[\([^]]*\)\][[:space:]]*$/\1/p' "$f"
}
_webrepl_mount_mounts() {
    awk -v u="$(id -u)" '$1 ~ /^webrepl:/ && $4 ~ ("(^|,)user_id=" u "(,|$)") {print $2}' /proc/self/mounts 2>/dev/null
}
_webrepl_mount_with_names() {
    _webrepl__mount "$@"
    local cur="${COMP_WORDS[COMP_CWORD]}"
    [[ $cur == -* ]] && return 0
    local b boards=()
    for b in $(compgen -W "$(_webrepl_mount_boards)" -- "$cur"); do boards+=("$b:"); done
    COMPREPLY+=( "${boards[@]}" $(compgen -W "$(_webrepl_mount_mounts)" -- "$cur") )
    # A board's name goes on with its path, as scp completes `host:`.
    if (( ${#boards[@]} )) && (( ${#COMPREPLY[@]} == ${#boards[@]} )); then
        compopt -o nospace 2>/dev/null
    fi
    return 0
}
complete -F _webrepl_mount_with_names -o bashdefault -o default webrepl-mount
"#;

/// Zsh: the same names, added by a wrapper around clap's function (renamed
/// `_webrepl-mount_clap` in its script by [`completion_script`]); a board
/// as `NAME:` with no space after, as scp completes `host:`.
const ZSH_NAMES: &str = r#"
_webrepl-mount() {
    if [[ $PREFIX != -* ]]; then
        local f="${XDG_CONFIG_HOME:-$HOME/.config}/webrepl-mount/boards.toml"
        local -a boards mounts
        [[ -r $f ]] && boards+=(${(f)"$(sed -n 's/^[[:space:]]*\[\([^]]*\)\][[:space:]]*$/\1:/p' "$f")"})
        mounts+=(${(f)"$(awk -v u="$(id -u)" '$1 ~ /^webrepl:/ && $4 ~ ("(^|,)user_id=" u "(,|$)") {print $2}' /proc/self/mounts 2>/dev/null)"})
        (( ${#boards} )) && compadd -S '' -- $boards
        (( ${#mounts} )) && compadd -- $mounts
    fi
    _webrepl-mount_clap "$@"
}

if [ "$funcstack[1]" = "_webrepl-mount" ]; then
    _webrepl-mount "$@"
else
    compdef _webrepl-mount webrepl-mount
fi
"#;

/// Fish: the same names wherever an argument goes (files stay offered); a
/// board as `NAME:`, which fish completes with no space after.
const FISH_NAMES: &str = r#"
function __webrepl_mount_names
    set -l config $HOME/.config
    set -q XDG_CONFIG_HOME; and set config $XDG_CONFIG_HOME
    set -l f $config/webrepl-mount/boards.toml
    test -r $f; and sed -n 's/^[[:space:]]*\[\([^]]*\)\][[:space:]]*$/\1:/p' $f
    awk -v u=(id -u) '$1 ~ /^webrepl:/ && $4 ~ ("(^|,)user_id=" u "(,|$)") {print $2}' /proc/self/mounts 2>/dev/null
end
complete -c webrepl-mount -a '(__webrepl_mount_names)'
"#;

/// clap's completion script for `shell`, with the names boards.toml gives
/// and this user's mountpoints added for bash, zsh and fish.
fn completion_script(shell: clap_complete::Shell) -> Result<String> {
    use clap_complete::Shell;
    let mut cmd = <Cli as clap::CommandFactory>::command();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut cmd, "webrepl-mount", &mut script);
    let script = String::from_utf8_lossy(&script).into_owned();
    let clap_fn = "_webrepl-mount() {\n";
    let dispatch = "\nif [ \"$funcstack[1]\" = \"_webrepl-mount\" ]; then";
    Ok(match shell {
        // clap_complete names a dashed binary's subcommands two ways
        // (`cmd=webrepl__mount__subcmd__cp`, `webrepl__subcmd__mount__subcmd__cp)`):
        // one, so that their options complete.
        Shell::Bash => script.replace("webrepl__subcmd__mount", "webrepl__mount") + BASH_NAMES,
        Shell::Fish => script + FISH_NAMES,
        // clap's function becomes ours to wrap; its own dispatch at the end
        // goes, ours calls the wrapper.
        Shell::Zsh => match (script.find(clap_fn), script.rfind(dispatch)) {
            (Some(_), Some(end)) => {
                script[..end].replacen(clap_fn, "_webrepl-mount_clap() {\n", 1) + ZSH_NAMES
            }
            _ => {
                return Err(Error::Bug(crate::error::Bug::ZshScript));
            }
        },
        _ => script,
    })
}

pub async fn run(cli: Cli, ready: Option<Ready>) -> Result<()> {
    let conn = &Conn::from(&cli.conn);
    let Some(command) = cli.command else {
        return crate::mount::run(cli.mount.options(conn)?, ready).await;
    };
    use crate::commands as c;
    let given = cli.default_board.as_deref();
    // mpremote's `:PATH`, on the default board, wherever a path goes.
    let colon = |paths: Vec<String>| c::colon_paths(paths, given);
    let r = match command {
        Command::Unmount { mountpoint } => {
            // `unmount kit`, kit a board (boards.toml, HOST[:PORT]) this
            // user has mounted: that board's mount.
            let named = mountpoint
                .to_str()
                .filter(|n| !mountpoint.exists() && !n.starts_with(['/', '.', '~']))
                .and_then(|n| conn.for_board(n).ok())
                .and_then(|(address, _, _)| crate::mount::mounted_board(&address));
            let mountpoint = named.map_or(mountpoint, std::path::PathBuf::from);
            crate::mount::unmount_command(&mountpoint).await
        }
        Command::Status { target } => c::status(&target, conn).await,
        Command::Term { target } => c::term(&target, conn).await,
        Command::Reset { target } => c::reset(&target, conn).await,
        Command::Repl { board } => c::repl(&board, conn).await,
        Command::Mip {
            command:
                MipCommand::Install {
                    board,
                    packages,
                    target,
                    index,
                    no_mpy,
                    force,
                },
        } => {
            let how = crate::mip::Install {
                packages,
                index,
                target,
                no_mpy,
                force,
            };
            crate::mip::install(&board, how, conn).await
        }
        Command::Exec { board, code } => {
            let (board, code) = match code {
                Some(code) => (board, code),
                None if c::names_a_board(&board) => {
                    return Err(Error::Invalid(format!(
                        "exec {board}: the code to run is missing (webrepl-mount exec {board} CODE; \
                         a file is webrepl-mount run {board} FILE)"
                    )));
                }
                None => (c::default_board(given, "exec CODE")?.0, board),
            };
            c::exec(&c::through_mount(&board, conn, true), &code, conn).await
        }
        Command::Run { board, file } => {
            let args = [Some(board), file].into_iter().flatten().collect();
            let (board, file) = c::run_args(args, given)?;
            let board = c::through_mount(&board, conn, true);
            c::run(std::path::Path::new(&file), &board, conn).await
        }
        Command::Share {
            dir,
            board,
            read_only,
            stop,
        } => match (stop, dir, board) {
            (Some(mountpoint), ..) => c::unshare(&mountpoint).await,
            (None, Some(dir), Some(board)) => c::share(&dir, &board, read_only, conn).await,
            _ => Err(crate::error::Error::Usage(crate::error::Usage::ShareUsage)),
        },
        Command::Rm {
            paths,
            recursive,
            force,
        } => {
            let paths = c::through_mounts(colon(paths)?, conn, false);
            c::rm(&paths, recursive, force, cli.verbose > 0, conn).await
        }
        Command::Mkdir { paths, parents } => {
            let paths = c::through_mounts(colon(paths)?, conn, false);
            c::mkdir(&paths, parents, cli.verbose > 0, conn).await
        }
        Command::Rmdir { paths } => {
            let paths = c::through_mounts(colon(paths)?, conn, false);
            c::rmdir(&paths, cli.verbose > 0, conn).await
        }
        Command::Mv { paths } => {
            let paths = colon(paths)?
                .into_iter()
                .map(c::named_root)
                .collect::<Result<Vec<_>>>()?;
            let crosses = c::crosses(&paths) || c::across_boards(&paths, conn);
            let mut paths = c::through_mounts(paths, conn, false);
            if crosses {
                let how = crate::copy::How {
                    recursive: true,
                    verbose: cli.verbose > 0,
                    remove_sources: true,
                    ..Default::default()
                };
                return crate::copy::run(paths, how, conn).await;
            }
            let dst = paths.pop().unwrap_or_default();
            c::mv(&paths, &dst, cli.verbose > 0, conn).await
        }
        Command::Cat { paths } => c::cat(&c::through_mounts(colon(paths)?, conn, true), conn).await,
        Command::Df { target, .. } => c::df(&c::through_mount(&target, conn, true), conn).await,
        Command::Touch { paths } => {
            let paths = c::through_mounts(colon(paths)?, conn, false);
            c::touch(&paths, conn).await?;
            c::kept_in_journal(&paths).await
        }
        Command::Sha256sum { paths } => {
            c::sha256sum(&c::through_mounts(colon(paths)?, conn, true), conn).await
        }
        Command::Tree { target } => {
            let target = colon(vec![target])?.remove(0);
            c::tree(&c::through_mount(&target, conn, true), conn).await
        }
        Command::Web {
            target,
            listen,
            open,
        } => c::web(&target, &listen, open, conn).await,
        Command::Completions { shell } => {
            use std::io::Write;
            let script = completion_script(shell)?;
            Ok(std::io::stdout().write_all(script.as_bytes())?)
        }
        Command::Man => {
            let cmd = <Cli as clap::CommandFactory>::command();
            Ok(clap_mangen::Man::new(cmd).render(&mut std::io::stdout())?)
        }
        Command::Ls {
            targets,
            all,
            long,
            human_readable,
            recursive,
            ..
        } => {
            let how = c::ListHow {
                long,
                human_sizes: human_readable,
                recursive,
                all,
            };
            c::ls(&c::through_mounts(colon(targets)?, conn, true), how, conn).await
        }
        Command::Cp {
            paths,
            recursive,
            force,
            no_clobber,
            update,
            archive,
            interactive,
            ..
        } => {
            if interactive {
                return Err(Error::Invalid(
                    "cp -i (ask before each overwrite) is not supported: -n keeps every \
                     existing file, -u copies only the files that differ"
                        .into(),
                ));
            }
            let how = crate::copy::How {
                recursive: recursive || archive,
                force,
                verbose: cli.verbose > 0,
                no_clobber,
                update,
                remove_sources: false,
            };
            let paths = colon(paths)?
                .into_iter()
                .map(c::named_root)
                .collect::<Result<Vec<_>>>()?;
            if let Some(r) = crate::copy::to_several_boards(&paths, how, conn).await {
                return r;
            }
            let paths = c::through_mounts(paths, conn, true);
            crate::copy::run(paths.clone(), how, conn).await?;
            c::kept_in_journal(&paths[paths.len().saturating_sub(1)..]).await
        }
    };
    match r {
        Err(Error::Running { why, waited, .. }) if conn.no_interrupt => Err(Error::Running {
            why,
            waited,
            kept: Some(NotInterrupting::DropNoInterrupt),
        }),
        r => r,
    }
}

/// The exit code for an error: one per kind of trouble a script may want
/// to tell apart.
pub fn exit_code(e: &Error) -> i32 {
    match e.kind() {
        Kind::Invalid => 2,
        Kind::WrongPassword => 3,
        Kind::Busy => 4,
        Kind::NotWebRepl => 5,
        Kind::Timeout => 6,
        Kind::NotFound => 7,
        Kind::Unreachable => 8,
        Kind::LinkLost => 9,
        Kind::Running => 10,
        Kind::Traceback => 11,
        // As a shell reports a program ended by SIGINT (Python's own exit).
        Kind::Interrupted => 130,
        Kind::Os(_) | Kind::Conflict => 12,
        Kind::Tls => 13,
        Kind::LowMemory => 14,
        Kind::Protocol | Kind::Io => 1,
    }
}
