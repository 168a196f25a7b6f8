//! First contact: the first program of ours that calls the helpers, on a
//! board that may not have them (just booted: only their file on flash;
//! fresh flash: not even that). It goes checked (it fails at once, having
//! done nothing, unless this version of the helpers is defined, and says
//! whether their file is on flash); then, after one binary PUT of the file
//! if it was not, with the helpers defined from their file in the same
//! program. Never a failing call and a
//! separate `load` program each (`load` in programs.py costs four
//! round trips of the raw-paste window; this a single exchange).

use super::*;
use std::sync::atomic::Ordering;

impl Board {
    /// `code`'s output if the first-contact steps ran it; None once the
    /// helpers are known to be defined, or if these steps could not define
    /// them (the caller's `define_helpers` then tries its way).
    pub(super) async fn first_helper_call(&self, code: &str, how: Run) -> Result<Option<Vec<u8>>> {
        if self.helpers_seen.load(Ordering::SeqCst) {
            return Ok(None);
        }
        let out = self.run_ours(sn::checked(code), how).await?;
        if out.stderr.is_empty() {
            self.helpers_seen.store(true, Ordering::SeqCst);
            return Ok(Some(out.stdout));
        }
        if !missing(&out.stderr) {
            return Err(Error::Traceback(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ));
        }
        // No file on flash (fresh): it goes first, so that the next
        // program defines the helpers and makes the call.
        if String::from_utf8_lossy(&out.stderr).contains("OSError") {
            match self.send_helpers().await {
                Err(e @ (Error::LinkLost(_) | Error::Running { .. })) => return Err(e),
                Err(e) => debug!("cannot write the helpers' file ({e})"),
                Ok(()) => {}
            }
        }
        self.define_with(code, how).await
    }

    /// `code` run after the helpers are defined from their file in the
    /// same program, the file sent first if it is missing; None if that
    /// could not define them.
    pub(super) async fn define_with(&self, code: &str, how: Run) -> Result<Option<Vec<u8>>> {
        for sent in [false, true] {
            let out = self.run_ours(sn::loading(code), how).await?;
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
            match self.send_helpers().await {
                Ok(()) => {}
                Err(e @ (Error::LinkLost(_) | Error::Running { .. })) => return Err(e),
                Err(e) => {
                    debug!("cannot write the helpers' file ({e})");
                    break;
                }
            }
        }
        Ok(None)
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
/// this version): the program did nothing.
fn missing(stderr: &[u8]) -> bool {
    let tb = String::from_utf8_lossy(stderr);
    [
        "NameError",
        "AttributeError",
        "ZeroDivisionError",
        "TypeError",
        "OSError",
    ]
    .iter()
    .any(|e| tb.contains(e))
}
