//! Which channel a download takes on this connection: the binary GET, or a
//! program printing the file on the text channel ([`super::stream`]). Some
//! ports (ESP8266: `MICROPY_PY_WEBREPL_DELAY`) sleep 20 ms after every
//! binary chunk, capping a GET near 12.8 KB/s however fast the link; their
//! text channel is not throttled. Elsewhere the GET is better (base64
//! costs a third more bytes). The choice is made from what this
//! connection's transfers showed, by [`choose`].

/// How a download moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Binary,
    Text,
}

/// What this connection's downloads showed.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Measured {
    /// Seconds between a GET's chunks after its first (acks pipelined):
    /// about 0.020 on a throttled board whatever the link.
    pub chunk_secs: Option<f64>,
    /// Bytes/s of file data a text download delivered, from its first
    /// piece to its end.
    pub text_rate: Option<f64>,
    /// Bytes/s the link carries (text from the board, or uploads' pace):
    /// a GET as slow as the link is the link's doing, not the board's.
    pub link_rate: Option<f64>,
}

/// A GET chunk's data.
const CHUNK: f64 = 256.0;
/// Slower than this per chunk, a GET is throttled (or its link is below
/// 17 KB/s, where a text download's first measure corrects the guess).
pub const THROTTLED_CHUNK_SECS: f64 = 0.015;
/// Files up to this go by GET anyway: a program costs its own pasting,
/// about what a few throttled chunks cost.
pub const SMALL: u64 = 1024;
/// The text channel must beat the GET by this much to take over.
const MARGIN: f64 = 1.1;
/// File data per byte of the text channel (base64, and a line end per
/// piece).
const TEXT_YIELD: f64 = 0.74;

impl Measured {
    /// Adds a GET's pace (halfway to the new figure: one slow transfer on
    /// a busy link does not flip the choice alone).
    pub fn binary(&mut self, chunk_secs: f64) {
        self.chunk_secs = Some(
            self.chunk_secs
                .map_or(chunk_secs, |c| (c + chunk_secs) / 2.0),
        );
    }

    pub fn text(&mut self, rate: f64) {
        self.text_rate = Some(self.text_rate.map_or(rate, |r| (r + rate) / 2.0));
    }
}

/// Bytes/s the board's side of the link carries, as far as this
/// connection has shown it: the link's measured rate, else a text
/// download's, else a GET's (a lower bound: a board may throttle it).
pub fn from_board(m: &Measured) -> Option<f64> {
    m.link_rate
        .or(m.text_rate.map(|t| t / TEXT_YIELD))
        .or(m.chunk_secs.map(|c| CHUNK / c.max(1e-6)))
        .filter(|r| r.is_finite() && *r > 0.0)
}

/// Whether a GET this slow may be the link's doing: its rate, measured,
/// tells (see [`choose`]).
pub fn wants_link_rate(m: &Measured) -> bool {
    m.text_rate.is_none()
        && m.link_rate.is_none()
        && m.chunk_secs.is_some_and(|c| c >= THROTTLED_CHUNK_SECS)
}

/// The channel for a download of `size` bytes, and why, in words for
/// `status` and the log.
pub fn choose(m: &Measured, size: u64) -> (Channel, String) {
    let Some(c) = m.chunk_secs else {
        return (
            Channel::Binary,
            "binary GET (the channels are not measured yet)".into(),
        );
    };
    let ms = c * 1000.0;
    let binary = CHUNK / c.max(1e-6);
    let (text, why) = match m.text_rate {
        Some(t) => (
            t > binary * MARGIN,
            format!(
                "a text download moved {:.1} KB/s, a binary GET {:.1} KB/s ({ms:.1} ms a chunk)",
                t / 1000.0,
                binary / 1000.0
            ),
        ),
        None if c >= THROTTLED_CHUNK_SECS => match m.link_rate {
            Some(l) => (
                l * TEXT_YIELD > binary * MARGIN,
                format!(
                    "binary GETs take {ms:.1} ms a chunk ({:.1} KB/s) where the link carries {:.1} KB/s{}",
                    binary / 1000.0,
                    l / 1000.0,
                    if l * TEXT_YIELD > binary * MARGIN {
                        ": throttled by the board"
                    } else {
                        ""
                    }
                ),
            ),
            None => (
                true,
                format!("binary GETs take {ms:.1} ms a chunk: throttled by the board"),
            ),
        },
        None => (false, format!("binary GETs take {ms:.1} ms a chunk")),
    };
    match (text, size > SMALL) {
        (true, true) => (Channel::Text, format!("text channel: {why}")),
        (true, false) => (
            Channel::Binary,
            format!("binary GET for files up to {SMALL} B; larger ones by the text channel: {why}"),
        ),
        (false, _) => (Channel::Binary, format!("binary GET: {why}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 100_000;

    #[test]
    fn unmeasured_the_binary_get_is_kept() {
        assert_eq!(choose(&Measured::default(), BIG).0, Channel::Binary);
    }

    #[test]
    fn a_throttled_get_sends_large_files_to_the_text_channel() {
        let m = Measured {
            chunk_secs: Some(0.0205),
            text_rate: None,
            link_rate: None,
        };
        let (c, why) = choose(&m, BIG);
        assert_eq!(c, Channel::Text);
        assert!(why.contains("throttled"), "{why}");
        assert_eq!(choose(&m, 300).0, Channel::Binary);
    }

    #[test]
    fn an_unthrottled_get_keeps_downloads_on_fast_and_slow_links() {
        // 10 ms RTT with 64 acks in flight; an ESP32 at 20 KB/s (258-byte
        // chunks arrive every 12.9 ms).
        for c in [0.0002, 0.0129] {
            let m = Measured {
                chunk_secs: Some(c),
                text_rate: None,
                link_rate: None,
            };
            assert_eq!(choose(&m, BIG).0, Channel::Binary, "{c}");
        }
    }

    #[test]
    fn measured_rates_decide_once_both_are_known() {
        // A slow link, not a throttled board: text came slower.
        let slow_link = Measured {
            chunk_secs: Some(0.021),
            text_rate: Some(9_000.0),
            link_rate: None,
        };
        assert_eq!(choose(&slow_link, BIG).0, Channel::Binary);
        let throttled = Measured {
            chunk_secs: Some(0.021),
            text_rate: Some(600_000.0),
            link_rate: None,
        };
        assert_eq!(choose(&throttled, BIG).0, Channel::Text);
        // Within the margin, the GET stays.
        let close = Measured {
            chunk_secs: Some(0.02),
            text_rate: Some(13_000.0),
            link_rate: None,
        };
        assert_eq!(choose(&close, BIG).0, Channel::Binary);
    }

    #[test]
    fn a_get_as_slow_as_the_link_is_not_the_boards_throttle() {
        // An unthrottled board on a 12 KB/s link: 256-byte chunks come
        // every 21.5 ms, as slow as a throttled board's.
        let slow_link = Measured {
            chunk_secs: Some(0.0215),
            text_rate: None,
            link_rate: Some(12_000.0),
        };
        assert!(!wants_link_rate(&slow_link));
        let (c, why) = choose(&slow_link, BIG);
        assert_eq!(c, Channel::Binary, "{why}");
        assert!(!why.contains("throttled"), "{why}");
        // The throttled board on a fast link, and on an ESP32's 20 KB/s.
        for link in [1_000_000.0, 20_000.0] {
            let throttled = Measured {
                chunk_secs: Some(0.0202),
                text_rate: None,
                link_rate: Some(link),
            };
            let (c, why) = choose(&throttled, BIG);
            assert_eq!(c, Channel::Text, "{link}: {why}");
            assert!(why.contains("throttled"), "{why}");
        }
        // Only a slow GET needs the link's rate to be judged.
        let mut m = Measured {
            chunk_secs: Some(0.0215),
            ..Measured::default()
        };
        assert!(wants_link_rate(&m));
        m.chunk_secs = Some(0.002);
        assert!(!wants_link_rate(&m));
    }

    #[test]
    fn measures_are_averaged() {
        let mut m = Measured::default();
        m.binary(0.02);
        m.binary(0.0);
        assert_eq!(m.chunk_secs, Some(0.01));
        m.text(100.0);
        m.text(300.0);
        assert_eq!(m.text_rate, Some(200.0));
    }
}
