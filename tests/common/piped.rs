//! A command on pipes (`term` without a tty): what it printed so far, and a
//! way to type into it.

use std::io::{Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

pub struct Piped {
    pub child: Child,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Piped {
    pub fn spawn(mut cmd: Command) -> Piped {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (sink, mut out) = (seen.clone(), child.stdout.take().expect("stdout"));
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n @ 1..) = out.read(&mut buf) {
                sink.lock().expect("lock").extend_from_slice(&buf[..n]);
            }
        });
        Piped { child, seen }
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().expect("lock")).into_owned()
    }

    pub fn type_keys(&mut self, keys: &[u8]) {
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(keys).expect("type");
        stdin.flush().expect("flush");
    }
}

impl Drop for Piped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
