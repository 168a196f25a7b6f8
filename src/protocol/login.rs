//! Login: the board prompts `Password: `, we answer, it greets or refuses.

#[derive(Debug, PartialEq, Eq)]
pub enum LoginEvent {
    /// Waiting for more text.
    Pending,
    /// The board asks for the password.
    Prompt,
    Connected,
    Denied,
}

/// Accumulates login text (tolerating any frame split) and tells what it shows.
#[derive(Debug, Default)]
pub struct Login {
    seen: Vec<u8>,
    prompted: bool,
}

impl Login {
    /// Whether the board has asked for the password.
    pub fn prompted(&self) -> bool {
        self.prompted
    }

    pub fn feed(&mut self, text: &[u8]) -> LoginEvent {
        self.seen.extend_from_slice(text);
        if !self.prompted {
            if contains(&self.seen, b"Password: ") {
                self.prompted = true;
                self.seen.clear();
                return LoginEvent::Prompt;
            }
            self.keep_tail();
            return LoginEvent::Pending;
        }
        if contains(&self.seen, b"WebREPL connected") {
            LoginEvent::Connected
        } else if contains(&self.seen, b"Access denied") {
            LoginEvent::Denied
        } else {
            self.keep_tail();
            LoginEvent::Pending
        }
    }

    /// Only what may still be the start of a word we wait for is kept: a
    /// peer that talks and never says it costs no memory.
    fn keep_tail(&mut self) {
        const KEEP: usize = 32;
        if self.seen.len() > KEEP {
            self.seen.drain(..self.seen.len() - KEEP);
        }
    }
}

/// The password line. The board ends the password at `\r` and keeps at most
/// nine bytes, so anything the board would silently mangle is refused here.
pub fn password_line(password: &str) -> Result<Vec<u8>, &'static str> {
    if password.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err("the password cannot contain a line break");
    }
    if password.len() > 9 {
        return Err("board passwords are at most 9 bytes");
    }
    let mut v = password.as_bytes().to_vec();
    v.push(b'\r');
    Ok(v)
}

pub(crate) fn contains(hay: &[u8], needle: &[u8]) -> bool {
    find(hay, needle).is_some()
}

pub(crate) fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return Some(0);
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prompt_then_greeting_in_pieces() {
        let mut l = Login::default();
        assert_eq!(l.feed(b"Passw"), LoginEvent::Pending);
        assert_eq!(l.feed(b"ord: "), LoginEvent::Prompt);
        assert_eq!(l.feed(b"\r\nWebREPL conn"), LoginEvent::Pending);
        assert_eq!(l.feed(b"ected\r\n>>> "), LoginEvent::Connected);
    }

    #[test]
    fn denied() {
        let mut l = Login::default();
        l.feed(b"Password: ");
        assert_eq!(l.feed(b"\r\nAccess denied\r\n"), LoginEvent::Denied);
    }

    #[test]
    fn password_line_rules() {
        assert_eq!(password_line("secret").unwrap(), b"secret\r");
        assert!(password_line("a\rb").is_err());
        assert!(password_line("0123456789").is_err());
    }
}
