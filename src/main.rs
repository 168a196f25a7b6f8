use clap::Parser;
use webrepl_mount::cli::{self, Cli};
use webrepl_mount::mount::Ready;

fn main() {
    // The password is in memory for every reconnect: no core dump holds
    // it, and no other process of this user may ptrace or read our memory
    // (/proc/PID/mem, environ) without privilege.
    // SAFETY: prctl with plain integer arguments.
    unsafe { libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0) };
    raise_file_limit();
    quiet_broken_pipe();
    hide_password_from_ps();
    let mut cli = match mount_helper_args() {
        Some(args) => Cli::parse_from(args),
        None => Cli::parse(),
    };
    let level = match cli.log_verbosity() {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("webrepl_mount={level}")));
    // Colour only for a person at a terminal: never in a pipe, nor in the
    // daemon's log file, which becomes its stderr.
    let daemon = cli.command.is_none() && cli.mount.daemon;
    let ansi = !daemon && std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A person's REPL on this terminal (`repl`, `term`, `share`): the log
    // says its few words as plain lines between the board's, with no
    // colour codes, times or levels.
    let terminal = matches!(
        cli.command,
        Some(cli::Command::Repl { .. } | cli::Command::Term { .. } | cli::Command::Share { .. })
    );
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    if terminal {
        builder.event_format(Plain).init();
    } else {
        builder.init();
    }
    if let Err(e) = cli.prepare() {
        eprintln!("webrepl-mount: {e}");
        std::process::exit(cli::exit_code(&e));
    }
    let ready = if cli.command.is_none() && cli.mount.daemon {
        daemonize(&mut cli)
    } else {
        None
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("webrepl-mount: cannot start: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(cli::run(cli, ready)) {
        Ok(()) => 0,
        Err(webrepl_mount::error::Error::Io(e)) if e.kind() == std::io::ErrorKind::BrokenPipe => {
            141
        }
        Err(e) => {
            // No words: each was said as it happened (a command's operands).
            let said = e.to_string();
            if !said.is_empty() {
                eprintln!("webrepl-mount: {said}");
            }
            cli::exit_code(&e)
        }
    };
    // The stdin thread of a terminal may still be blocked in read().
    rt.shutdown_background();
    std::process::exit(code);
}

/// A log line in a person's terminal: `webrepl-mount: what happened`. The
/// terminal is raw while the REPL is on it: a line ends with CR LF there.
struct Plain;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for Plain
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut w: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let eol = if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            "\r\n"
        } else {
            "\n"
        };
        write!(w, "webrepl-mount: ")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        write!(w, "{eol}")
    }
}

/// `status MNT | head -1`: output to a closed pipe ends the command
/// quietly with 141, as coreutils' (killed by SIGPIPE) do. SIGPIPE itself
/// stays ignored: a closed socket must not kill a mount's daemon.
fn quiet_broken_pipe() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.contains("Broken pipe") || text.contains("BrokenPipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// The soft limit on open files raised to the hard one (as most servers
/// do): the soft 1024 was what clients of the page could use up.
fn raise_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: get/setrlimit on a valid struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// `--daemon`: asks for the password while there is a terminal, forks, and
/// lets the parent exit only when the child reports the mount ready (or
/// why it failed).
fn daemonize(cli: &mut Cli) -> Option<Ready> {
    use std::io::Read;
    use std::os::fd::FromRawFd;
    let password = match webrepl_mount::connection::Conn::from(&cli.conn).password() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("webrepl-mount: {e}");
            std::process::exit(cli::exit_code(&e));
        }
    };
    cli.conn.password = Some(password);
    cli.conn.password_file = None;
    let log = cli
        .mount
        .board
        .as_deref()
        .and_then(webrepl_mount::cache::attrs::state_file)
        .map(|f| f.with_extension("log"));
    // The log may name files and the page's address: ours alone.
    if let Some(dir) = log.as_ref().and_then(|l| l.parent())
        && let Err(e) = webrepl_mount::private::dir(dir)
    {
        eprintln!("webrepl-mount: {e}");
        std::process::exit(cli::exit_code(&e));
    }
    let mut fds = [0; 2];
    // SAFETY: plain pipe/fork/setsid/dup2 before any thread exists.
    unsafe {
        if libc::pipe(fds.as_mut_ptr()) != 0 {
            eprintln!("webrepl-mount: pipe: {}", std::io::Error::last_os_error());
            std::process::exit(1);
        }
        match libc::fork() {
            -1 => {
                eprintln!("webrepl-mount: fork: {}", std::io::Error::last_os_error());
                std::process::exit(1);
            }
            0 => {
                libc::close(fds[0]);
                libc::setsid();
                let null = libc::open(c"/dev/null".as_ptr(), libc::O_RDWR);
                if null >= 0 {
                    libc::dup2(null, 0);
                    libc::dup2(null, 1);
                    libc::dup2(null, 2);
                }
                // The daemon's messages (conflicts, files not flushed) go to
                // a log that `status` names.
                if let Some(log) = &log
                    && let Ok(f) = webrepl_mount::private::append(log)
                {
                    libc::dup2(std::os::fd::AsRawFd::as_raw_fd(&f), 2);
                }
                Some(Ready::new(
                    std::fs::File::from_raw_fd(fds[1]),
                    cli::exit_code,
                ))
            }
            _ => {
                libc::close(fds[1]);
                let mut answer = String::new();
                let _ = std::fs::File::from_raw_fd(fds[0]).read_to_string(&mut answer);
                // What the daemon has to tell its user before it is ready
                // (a journal set aside): its stderr is the log.
                let mut lines = answer.lines().peekable();
                while let Some(note) = lines.next_if(|l| l.starts_with("note ")) {
                    eprintln!("webrepl-mount: {}", &note[5..]);
                }
                match lines.next() {
                    Some("ok") => std::process::exit(0),
                    Some(line) => {
                        let (code, msg) = line.split_once(' ').unwrap_or(("1", line));
                        eprintln!("webrepl-mount: {msg}");
                        std::process::exit(code.parse().unwrap_or(1));
                    }
                    None => {
                        eprintln!("webrepl-mount: the mount daemon died before it was ready");
                        std::process::exit(1);
                    }
                }
            }
        }
    }
}

/// Run by mount(8) for an fstab line: as `mount.webrepl SOURCE DIR [-sfnv]
/// [-o OPTIONS]` through a link of that name, or by mount.fuse3 for the type
/// `fuse.webrepl-mount` (through `sh -c`). mount waits for its helper, so the
/// mount goes to the background once ready, as sshfs does.
fn mount_helper_args() -> Option<Vec<std::ffi::OsString>> {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let name = std::path::Path::new(args.first()?)
        .file_name()?
        .to_string_lossy()
        .into_owned();
    let linked = name.starts_with("mount.");
    if !linked && !started_by_mount() {
        return None;
    }
    let mut out = vec![args[0].clone(), "--daemon".into()];
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        match a.to_str() {
            // mount(8)'s own: sloppy, fake, no mtab; a namespace and the
            // type need their value skipped.
            Some("-s" | "-f" | "-n") if linked => {}
            Some("-N" | "-t") if linked => {
                it.next();
            }
            Some("--daemon") => {}
            _ => out.push(a.clone()),
        }
    }
    Some(out)
}

/// Whether mount(8) (or mount.fuse3 it ran) started us, directly or through
/// the shell mount.fuse3 runs its command in.
fn started_by_mount() -> bool {
    let parent = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name may hold spaces and parentheses: fields follow
        // the last ')'.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let comm = |pid: u32| std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    let mut pid = std::process::id();
    for _ in 0..2 {
        let Some(p) = parent(pid) else { return false };
        match comm(p).trim() {
            "mount" | "mount.fuse3" | "mount.fuse" => return true,
            "sh" | "dash" | "bash" => pid = p,
            _ => return false,
        }
    }
    false
}

/// A password given with `--password` is in the command line, which every user can
/// read (`ps`, /proc/PID/cmdline). Run again without it, the password in the
/// environment instead, which only its owner can read; same process.
fn hide_password_from_ps() {
    use std::os::unix::process::CommandExt;
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut kept = Vec::with_capacity(args.len());
    let mut password = None;
    let mut it = args.iter().skip(1);
    while let Some(a) = it.next() {
        let s = a.to_string_lossy();
        if s == "--" {
            kept.push(a.clone());
            kept.extend(it.by_ref().cloned());
            break;
        }
        if s == "--password" && password.is_none() {
            password = it.next().cloned();
        } else if let Some(v) = s.strip_prefix("--password=") {
            password = Some(v.into());
        } else {
            kept.push(a.clone());
        }
    }
    let (Some(password), Ok(exe)) = (password, std::env::current_exe()) else {
        return;
    };
    let err = std::process::Command::new(exe)
        .arg0(args.first().cloned().unwrap_or_default())
        .args(kept)
        .env("WEBREPL_PASSWORD", password)
        .exec();
    eprintln!("webrepl-mount: cannot restart without the password in the command line: {err}");
    std::process::exit(1);
}
