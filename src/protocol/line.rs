//! The friendly REPL's input line as a person sees it, learnt from what the
//! board prints (readline echoes every edit: characters, `\b`, `ESC[nD`,
//! `ESC[K`), and the keys that type it back after a fresh prompt.
//!
//! The echo, not the keys, is the truth: history (Up arrow) and completion
//! (Tab) put text on the line that no key spelt out. A line that looks empty
//! is empty.

pub const PRIMARY: &[u8] = b">>> ";
pub const CONTINUATION: &[u8] = b"... ";
/// Paste mode (Ctrl-E): a person is pasting; their text is not ours to redo.
pub const PASTE: &[u8] = b"=== ";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    Primary,
    Continuation,
    Paste,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Esc {
    None,
    /// ESC seen.
    Start,
    Bracket(u32),
}

/// What a person has typed and not yet entered: the lines of a compound
/// statement already entered at `... ` prompts, the current line, and the
/// cursor's place in it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Typed {
    pub entered: Vec<Vec<u8>>,
    pub line: Vec<u8>,
    pub cursor: usize,
}

impl Typed {
    pub fn is_empty(&self) -> bool {
        self.entered.is_empty() && self.line.is_empty()
    }
}

/// The screen line the board's output last drew, and where its prompt ends.
#[derive(Debug, Clone)]
pub struct Screen {
    text: Vec<u8>,
    cursor: usize,
    esc: Esc,
    /// The prompt on this line and the column after it.
    prompt: Option<(Prompt, usize)>,
    /// Lines entered at the prompts of the statement being typed.
    entered: Vec<Vec<u8>>,
}

impl Default for Screen {
    fn default() -> Self {
        Screen {
            text: Vec::new(),
            cursor: 0,
            esc: Esc::None,
            prompt: None,
            entered: Vec::new(),
        }
    }
}

impl Screen {
    /// A screen that has just drawn a primary prompt (a new connection's
    /// greeting ends in one).
    pub fn at_prompt() -> Screen {
        let mut s = Screen::default();
        s.feed(PRIMARY);
        s
    }

    pub fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    fn byte(&mut self, b: u8) {
        match self.esc {
            Esc::Start => {
                self.esc = if b == b'[' {
                    Esc::Bracket(0)
                } else {
                    Esc::None
                };
                return;
            }
            Esc::Bracket(n) => {
                match b {
                    b'0'..=b'9' => {
                        self.esc =
                            Esc::Bracket(n.saturating_mul(10).saturating_add(u32::from(b - b'0')));
                        return;
                    }
                    b'D' => self.cursor = self.cursor.saturating_sub(n.max(1) as usize),
                    b'C' => self.cursor = (self.cursor + n.max(1) as usize).min(self.text.len()),
                    b'K' => self.text.truncate(self.cursor),
                    _ => {}
                }
                self.esc = Esc::None;
                return;
            }
            Esc::None => {}
        }
        match b {
            0x1b => self.esc = Esc::Start,
            b'\r' => self.cursor = 0,
            b'\n' => self.newline(),
            0x08 => self.cursor = self.cursor.saturating_sub(1),
            0x00..=0x1f | 0x7f => {}
            _ => {
                if self.cursor < self.text.len() {
                    self.text[self.cursor] = b;
                } else {
                    self.text.push(b);
                }
                self.cursor += 1;
                if self.prompt.is_none() {
                    self.notice_prompt();
                }
            }
        }
    }

    /// A prompt is what the board draws when a line is done, so only the
    /// first one on a screen line counts: a person typing `>>> ` after it is
    /// typing text.
    fn notice_prompt(&mut self) {
        let drawn = &self.text[..self.cursor];
        for (p, kind) in [
            (PRIMARY, Prompt::Primary),
            (CONTINUATION, Prompt::Continuation),
            (PASTE, Prompt::Paste),
        ] {
            if drawn.ends_with(p) {
                self.prompt = Some((kind, self.cursor));
                if kind == Prompt::Primary {
                    self.entered.clear();
                }
                return;
            }
        }
    }

    fn newline(&mut self) {
        // A line entered at a prompt whose statement goes on: remembered
        // until the statement ends at a primary prompt.
        if let Some((Prompt::Primary | Prompt::Continuation, at)) = self.prompt {
            let line = self.text.get(at..).unwrap_or(&[]).to_vec();
            self.entered.push(line);
        } else {
            self.entered.clear();
        }
        self.text.clear();
        self.cursor = 0;
        self.prompt = None;
    }

    /// The prompt the board waits at, if the screen line starts with one.
    pub fn prompt(&self) -> Option<Prompt> {
        self.prompt.map(|(p, _)| p)
    }

    /// The bytes that draw this line afresh over a terminal's current
    /// line, cursor in its place: a terminal opened now shows what the
    /// others show, without asking the board for a prompt.
    pub fn redraw(&self) -> Vec<u8> {
        let mut out = b"\r\x1b[K".to_vec();
        out.extend_from_slice(&self.text);
        out.extend(cursor_keys(&self.text, self.cursor));
        out
    }

    /// What is typed and not yet entered; `None` unless the board waits at
    /// a primary or continuation prompt.
    pub fn typed(&self) -> Option<Typed> {
        let (kind, at) = self.prompt?;
        if kind == Prompt::Paste {
            return None;
        }
        let entered = if kind == Prompt::Continuation {
            self.entered.clone()
        } else {
            Vec::new()
        };
        Some(Typed {
            entered,
            line: self.text.get(at..).unwrap_or(&[]).to_vec(),
            cursor: self.cursor.saturating_sub(at),
        })
    }
}

/// readline's Backspace: four spaces at once when only spaces (at least
/// four) stand before the cursor, else one character.
fn backspace(line: &mut Vec<u8>) {
    let n = if line.len() >= 4 && line.iter().all(|&b| b == b' ') {
        4
    } else {
        1
    };
    line.truncate(line.len().saturating_sub(n));
}

/// Keys that turn `shown` (what the board put on a fresh line: nothing at
/// `>>> `, its auto-indent at `... `) into `want`, cursor at the end.
pub fn keys_for(shown: &[u8], want: &[u8]) -> Vec<u8> {
    let mut keys = Vec::new();
    let mut now = shown.to_vec();
    // A space typed right after an auto-indent takes three spaces of it
    // away, so an indent that differs is removed first (Backspace also ends
    // that special case).
    let keeps = want.starts_with(&now) && want.get(now.len()) != Some(&b' ');
    if !keeps || now.len() > want.len() {
        let kept = |now: &[u8]| want.starts_with(now) && want.get(now.len()) != Some(&b' ');
        while !now.is_empty() && !kept(&now) {
            backspace(&mut now);
            keys.push(0x7f);
        }
    }
    keys.extend_from_slice(&want[now.len()..]);
    keys
}

/// Keys that move the cursor from the end of `line` back to `cursor`.
pub fn cursor_keys(line: &[u8], cursor: usize) -> Vec<u8> {
    b"\x1b[D".repeat(line.len().saturating_sub(cursor))
}

/// The indent readline puts on a continuation line after `entered` (its
/// `readline_auto_indent`): the previous line's indent, one level more after
/// a colon, none after two blank lines.
pub fn auto_indent(entered: &[Vec<u8>]) -> usize {
    let Some(prev) = entered.last() else { return 0 };
    let spaces = prev.iter().take_while(|&&b| b == b' ').count();
    if entered.len() > 1 && spaces == prev.len() {
        let before = &entered[entered.len() - 2];
        if before.iter().all(|&b| b == b' ') {
            return 0;
        }
    }
    4 * (spaces / 4 + usize::from(prev.last() == Some(&b':')))
}

/// Every key that types `typed` back at a fresh primary prompt: the entered
/// lines (each over the indent the board will add), the current line, and
/// the cursor moves. The board reads its input in order, so all of it can
/// go at once.
pub fn retype(typed: &Typed) -> Vec<u8> {
    let mut keys = Vec::new();
    for (i, l) in typed.entered.iter().enumerate() {
        let indent = vec![b' '; auto_indent(&typed.entered[..i])];
        keys.extend(keys_for(&indent, l));
        keys.push(b'\r');
    }
    let indent = vec![b' '; auto_indent(&typed.entered)];
    keys.extend(keys_for(&indent, &typed.line));
    keys.extend(cursor_keys(&typed.line, typed.cursor));
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(s: &Screen) -> (String, usize) {
        let t = s.typed().expect("at a prompt");
        (String::from_utf8_lossy(&t.line).to_string(), t.cursor)
    }

    #[test]
    fn follows_typing_backspace_and_cursor_moves_as_readline_echoes_them() {
        let mut s = Screen::at_prompt();
        s.feed(b"zz = 6");
        assert_eq!(typed(&s), ("zz = 6".into(), 6));
        // Backspace: "\b" then redraw from the cursor: erase, nothing, back.
        s.feed(b"\x08\x1b[K");
        assert_eq!(typed(&s), ("zz = ".into(), 5));
        // Left twice, then insert 'x': redraw "x= " and step back 2.
        s.feed(b"\x08\x08x= \x08\x08");
        assert_eq!(typed(&s), ("zz x= ".into(), 4));
        // Home and End.
        s.feed(b"\x08\x08\x08\x08");
        assert_eq!(typed(&s).1, 0);
        s.feed(b"zz x= ");
        assert_eq!(typed(&s), ("zz x= ".into(), 6));
        // Long moves come as ESC[nD.
        s.feed(b"\x1b[6D");
        assert_eq!(typed(&s).1, 0);
    }

    #[test]
    fn a_line_emptied_by_backspace_or_history_is_empty() {
        let mut s = Screen::at_prompt();
        s.feed(b"x\x08\x1b[K");
        assert_eq!(s.typed().unwrap(), Typed::default());
        // Up arrow with history: the line is replaced and redrawn.
        s.feed(b"print(1)");
        assert_eq!(typed(&s).0, "print(1)");
        s.feed(b"\x1b[8D\x1b[Kold()");
        assert_eq!(typed(&s), ("old()".into(), 5));
    }

    #[test]
    fn enter_output_and_the_next_prompt() {
        let mut s = Screen::at_prompt();
        s.feed(b"print(6*7)\r\n");
        assert_eq!(s.prompt(), None, "running");
        s.feed(b"42\r\n>>> ");
        assert_eq!(typed(&s), (String::new(), 0));
        // Output without a newline, then the prompt on the same line.
        s.feed(b"print('a', end='')\r\na>>> ");
        assert_eq!(s.prompt(), Some(Prompt::Primary));
        // Typing ">>> " at a prompt is text, not a new prompt.
        s.feed(b"'>>> x'");
        assert_eq!(typed(&s).0, "'>>> x'");
    }

    #[test]
    fn a_compound_statement_keeps_its_lines_until_a_primary_prompt() {
        let mut s = Screen::at_prompt();
        s.feed(b"for i in range(2):\r\n...     print(i");
        let t = s.typed().unwrap();
        assert_eq!(t.entered, vec![b"for i in range(2):".to_vec()]);
        assert_eq!(t.line, b"    print(i");
        s.feed(b")\r\n...     \r\n0\r\n1\r\n>>> ");
        assert_eq!(s.typed().unwrap(), Typed::default());
        // Paste mode is not a line to redo.
        s.feed(b"\r\npaste mode; Ctrl-C to cancel, Ctrl-D to finish\r\n=== x");
        assert_eq!(s.prompt(), Some(Prompt::Paste));
        assert_eq!(s.typed(), None);
    }

    #[test]
    fn keys_retype_a_line_over_an_auto_indent() {
        assert_eq!(keys_for(b"", b"zz = 6"), b"zz = 6");
        assert_eq!(keys_for(b"    ", b"    print(i)"), b"print(i)");
        // A deeper indent: the auto-indent goes first, then all of it.
        assert_eq!(keys_for(b"    ", b"      x"), b"\x7f      x");
        // A shallower one.
        assert_eq!(keys_for(b"        ", b"    y"), b"\x7fy");
        assert_eq!(keys_for(b"    ", b""), b"\x7f");
        assert_eq!(cursor_keys(b"abc", 1), b"\x1b[D\x1b[D");
    }

    #[test]
    fn auto_indent_follows_readline() {
        let l = |v: &[&str]| v.iter().map(|s| s.as_bytes().to_vec()).collect::<Vec<_>>();
        assert_eq!(auto_indent(&l(&[])), 0);
        assert_eq!(auto_indent(&l(&["for i in x:"])), 4);
        assert_eq!(auto_indent(&l(&["for i in x:", "    if i:"])), 8);
        assert_eq!(auto_indent(&l(&["def f():", "    a = 1"])), 4);
        assert_eq!(
            auto_indent(&l(&["def f():", "    a = 1", "    ", "    "])),
            0
        );
        let t = Typed {
            entered: l(&["for i in x:", "    if i:"]),
            line: b"        print(i)".to_vec(),
            cursor: 10,
        };
        let mut want = b"for i in x:\rif i:\rprint(i)".to_vec();
        want.extend(cursor_keys(b"        print(i)", 10));
        assert_eq!(retype(&t), want);
    }
}
