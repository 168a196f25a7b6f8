//! First contact: the first program of ours that calls the helpers, on a
//! board that may not have them (just booted: only their file on flash;
//! fresh flash: not even that). It goes as `snippets::first`: unless this
//! version of the helpers is defined, it defines them from their file,
//! whose loader it reads and runs, then makes the call; all of it within
//! the raw-paste window's first grant. Without the file (or with another
//! version's) it fails at once, having done nothing; the file goes by
//! one binary PUT and the same program again. Never the loader pasted
//! (eight raw-paste windows, a round trip each) nor a failing call and a
//! separate defining program.

use super::*;
use std::sync::atomic::Ordering;

/// The helpers' file on its way ([`Board::begin_helpers`]).
type Helpers = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

impl Board {
    /// `code` run after this version of the helpers is defined from their
    /// file on flash in the same program (if it was not), the file sent
    /// first if it is missing or another version's; None if that could
    /// not define them.
    pub(super) async fn define_with(&self, code: &str, mut how: Run) -> Result<Option<Vec<u8>>> {
        // The file's PUT when the program goes again right behind it.
        let mut put: Option<Helpers> = None;
        for sent in [false, true] {
            let out = self.run_ours(sn::first(code), how).await;
            if let Some(put) = put.take() {
                // Not sent if the PUT failed: its error is the one to tell.
                match put.await {
                    Ok(()) => {}
                    Err(e @ (Error::LinkLost(_) | Error::Running { .. })) => return Err(e),
                    Err(e) => {
                        debug!("cannot write the helpers' file ({e})");
                        break;
                    }
                }
            }
            let out = out?;
            if out.stderr.is_empty() {
                self.helpers_seen.store(true, Ordering::SeqCst);
                return Ok(Some(self.loaded(out.stdout)));
            }
            if !missing(&out.stderr) {
                return Err(Error::Traceback(
                    String::from_utf8_lossy(&out.stderr).trim().to_string(),
                ));
            }
            if sent {
                break;
            }
            // By binary PUT, the program again right behind its last byte
            // (not a round trip later: the program checks the file's
            // version and length before it runs it); else by programs.
            match self.begin_helpers() {
                Some(Ok((ticket, p))) => {
                    how.after = Some(ticket);
                    put = Some(p);
                }
                Some(Err(e)) => return Err(e),
                None => match self.send_helpers().await {
                    Ok(()) => {}
                    Err(e @ (Error::LinkLost(_) | Error::Running { .. })) => return Err(e),
                    Err(e) => {
                        debug!("cannot write the helpers' file ({e})");
                        break;
                    }
                },
            }
        }
        Ok(None)
    }

    /// The helpers' file's binary PUT, queued now, where the firmware
    /// takes one; None: it goes by programs (`send_helpers`).
    fn begin_helpers(&self) -> Option<Result<(PutTicket, Helpers)>> {
        if !self.binary_ok(sn::HELPERS_FILE) {
            return None;
        }
        let file = sn::helpers_file().as_bytes().to_vec();
        Some(
            self.session
                .put_begin(
                    None,
                    sn::HELPERS_FILE.as_bytes().to_vec(),
                    bytes::Bytes::from(file),
                    tokio::sync::watch::channel(0).0,
                )
                .map(|(ticket, put)| (ticket, Box::pin(put) as Helpers)),
        )
    }

    /// The output of a program that defined the helpers: its leading `M`
    /// lines (the free heap before and after) noted and taken off.
    fn loaded(&self, out: Vec<u8>) -> Vec<u8> {
        let mut mem = Vec::new();
        let mut rest = &out[..];
        while let Some(end) = rest.iter().position(|&b| b == b'\n') {
            let line = String::from_utf8_lossy(&rest[..end]);
            match Answer::parse(line.trim_end()) {
                Answer::Mem(n) => mem.push(n),
                _ => break,
            }
            rest = &rest[end + 1..];
        }
        if let [before, .., after] = mem[..] {
            let ram = Ram {
                free: Some(after),
                resident: Some(before.saturating_sub(after)),
                buffer: buffer_for(after),
            };
            debug!("helpers defined from their file: {ram:?}");
            *self.ram.lock().unwrap_or_else(|e| e.into_inner()) = ram;
        }
        rest.to_vec()
    }
}

/// A traceback of a program run before the helpers were there (or were
/// this version): the program did nothing. (A SyntaxError: the loader of
/// a file cut short.)
fn missing(stderr: &[u8]) -> bool {
    let tb = String::from_utf8_lossy(stderr);
    [
        "SyntaxError",
        "NameError",
        "AttributeError",
        "ZeroDivisionError",
        "TypeError",
        "OSError",
    ]
    .iter()
    .any(|e| tb.contains(e))
}
