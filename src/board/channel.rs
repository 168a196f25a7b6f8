//! Which channel a download takes on this connection: the binary GET, or a
//! program printing the file on the text channel ([`super::stream`]). Some
//! ports (ESP8266: `MICROPY_PY_WEBREPL_DELAY`) sleep 20 ms after every
//! binary chunk, capping a GET near 12.8 KB/s however fast the link; their
//! text channel is not throttled. Elsewhere the GET is better (base64
//! costs a third more bytes). The choice is made from what this
//! connection's transfers showed, by [`choose`]: each channel's time for
//! the file, the text channel's slices counted.

use super::stream;

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
    /// Bytes/s of file data a text download delivered while its slices
    /// printed (from each slice's first piece to its end).
    pub text_rate: Option<f64>,
    /// Seconds a text download spends outside its slices' printing: the
    /// first slice's (its program pasted whole), then each further one's
    /// (a short call: a round trip, the REPL's turn).
    pub text_costs: Option<(f64, f64)>,
    /// Bytes/s the link carries (text from the board, or uploads' pace):
    /// a GET as slow as the link is the link's doing, not the board's.
    pub link_rate: Option<f64>,
    /// Bytes/s a GET of at least [`RATE_CHUNKS`] chunks delivered: a lower
    /// bound of the link's rate (a board may throttle it).
    pub get_rate: Option<f64>,
}

/// A GET chunk's data.
const CHUNK: f64 = 256.0;
/// Slower than this per chunk, a GET is throttled (or its link is below
/// 17 KB/s, where a text download's first measure corrects the guess).
pub const THROTTLED_CHUNK_SECS: f64 = 0.015;
/// A throttled GET's pace at least: the port's 20 ms sleep and the
/// chunk's own time on the board (a probe of a chunk or two times less).
const THROTTLE_SECS: f64 = 0.021;
/// A GET of fewer chunks shows the board's pause after a chunk, not the
/// link's rate: one chunk's "pace" is the time from it to the end's
/// chunk, which came in the same read (a 7-byte file measured the link at
/// 256 MB/s, and the next small read brought 24 KB of its neighbours).
pub const RATE_CHUNKS: u32 = 8;
/// Files up to this go by GET anyway: a program costs its own pasting,
/// about what a few throttled chunks cost.
pub const SMALL: u64 = 1024;
/// The text channel must beat the GET by this much to take over.
const MARGIN: f64 = 1.05;
/// File data per byte of the text channel (base64, and a line end per
/// piece).
const TEXT_YIELD: f64 = 0.74;
/// A text download's costs before one has shown them (10 ms round trip:
/// the first slice pastes ~800 bytes of program, the next ones a call).
const GUESS_COSTS: (f64, f64) = (0.15, 0.03);
/// A transfer this far off (as a factor, and in seconds) from what the
/// figures foretold shows that the link changed since they were measured.
const DEPART: f64 = 1.6;
const DEPART_SECS: f64 = 0.5;

impl Measured {
    /// A GET's figures: `secs` from its first chunk to its end, for
    /// `chunks` chunks (each after the first, and the end, came one pace
    /// later: the board sleeps after the end's chunk too).
    pub fn get(secs: f64, chunks: u32) -> Measured {
        let pace = secs / f64::from(chunks.max(1));
        Measured {
            chunk_secs: Some(pace),
            get_rate: (chunks >= RATE_CHUNKS && pace > 0.0).then(|| CHUNK / pace),
            ..Measured::default()
        }
    }

    /// Adds a GET's figures (`fresh`, from [`Measured::get`]; halfway to
    /// the new figure: one slow transfer on a busy link does not flip the
    /// choice alone).
    /// A big GET's pace is its link's as much as the board's (256 B at
    /// 15 KB/s is 17 ms, an ESP8266's sleep 20 ms): it tells the rate, and
    /// the pause per chunk only until a small file's GET has shown that
    /// (averaged in, three downloads at 15 KB/s read as a throttled board,
    /// and downloads went by the text channel, 45% slower).
    pub fn binary(&mut self, fresh: &Measured) {
        let avg = |old: Option<f64>, new: Option<f64>| match (old, new) {
            (Some(o), Some(n)) => Some((o + n) / 2.0),
            (o, n) => n.or(o),
        };
        if fresh.get_rate.is_none() || self.chunk_secs.is_none() {
            self.chunk_secs = avg(self.chunk_secs, fresh.chunk_secs);
        }
        self.get_rate = avg(self.get_rate, fresh.get_rate);
    }

    /// Adds a text download's rate and costs (`first`, `each`: see
    /// `text_costs`; None for a download of one slice).
    pub fn text(&mut self, rate: f64, first: f64, each: Option<f64>) {
        let avg = |old: Option<f64>, new: f64| old.map_or(new, |o| (o + new) / 2.0);
        self.text_rate = Some(avg(self.text_rate, rate));
        let (f0, e0) = self.text_costs.unzip();
        let e = match each {
            Some(e) => avg(e0, e),
            None => e0.unwrap_or(GUESS_COSTS.1),
        };
        self.text_costs = Some((avg(f0, first), e));
    }

    /// The link changed under the figures: only what `channel` just showed
    /// is kept (`fresh`, this connection's figures from that transfer
    /// alone); the other channel and the link are measured again.
    pub fn remeasure(&mut self, channel: Channel, fresh: &Measured) {
        *self = match channel {
            // The pause per chunk is the board's: a small file's GET shows
            // it again (see `binary`).
            Channel::Binary => Measured {
                chunk_secs: fresh
                    .get_rate
                    .is_none()
                    .then_some(fresh.chunk_secs)
                    .flatten(),
                get_rate: fresh.get_rate,
                ..Measured::default()
            },
            Channel::Text => Measured {
                text_rate: fresh.text_rate,
                text_costs: fresh.text_costs,
                ..Measured::default()
            },
        };
    }
}

/// Whether a transfer that took `took` seconds where the figures foretold
/// `expected` shows that the link changed since they were measured.
pub fn departs(expected: f64, took: f64) -> bool {
    (took - expected).abs() > DEPART_SECS && (took > expected * DEPART || took * DEPART < expected)
}

/// Seconds a binary GET of `size` bytes takes at `chunk_secs` a chunk.
fn binary_secs(chunk_secs: f64, size: u64) -> f64 {
    (size as f64 / CHUNK).ceil().max(1.0) * chunk_secs
}

/// Seconds a text download of `size` bytes takes: its printing at `rate`
/// and its slices' costs.
fn text_secs(rate: f64, (first, each): (f64, f64), size: u64) -> f64 {
    let slice = (stream::slice_pieces(Some(rate), false) * stream::PIECE as u64) as f64;
    let slices = (size as f64 / slice).ceil().max(1.0);
    first + size as f64 / rate.max(1.0) + (slices - 1.0) * each
}

/// What the figures foretell for `size` bytes by `channel`, in seconds
/// (None: not measured).
pub fn foretold(m: &Measured, channel: Channel, size: u64) -> Option<f64> {
    match channel {
        // A big GET's rate, and a pause per chunk; an unthrottled small
        // file's pace alone foretells nothing of a big file (each first
        // download "departed" from 0.01 s).
        Channel::Binary => {
            let paced = m.chunk_secs.map(|c| binary_secs(c, size));
            match (m.get_rate, paced) {
                (Some(r), p) => Some((size as f64 / r.max(1.0)).max(p.unwrap_or(0.0))),
                (None, p) => p.filter(|_| m.chunk_secs >= Some(THROTTLED_CHUNK_SECS)),
            }
        }
        Channel::Text => m
            .text_rate
            .map(|r| text_secs(r, m.text_costs.unwrap_or(GUESS_COSTS), size)),
    }
}

/// Bytes/s the board's side of the link carries, as far as this
/// connection has shown it: the link's measured rate, else a text
/// download's, else a GET's of several chunks (a lower bound: a board
/// may throttle it).
pub fn from_board(m: &Measured) -> Option<f64> {
    m.link_rate
        .or(m.text_rate.map(|t| t / TEXT_YIELD))
        .or(m.get_rate)
        .filter(|r| r.is_finite() && *r > 0.0)
}

/// Whether a GET this slow may be the link's doing: its rate, measured,
/// tells (see [`choose`]).
pub fn wants_link_rate(m: &Measured) -> bool {
    m.text_rate.is_none()
        && m.link_rate.is_none()
        && m.chunk_secs.is_some_and(|c| c >= THROTTLED_CHUNK_SECS)
}

/// The channel for a download of `size` bytes (`u64::MAX`: a large one),
/// and why, in words for `status` and the log: the one whose time for
/// `size` is the shorter, the text channel's slices and first program
/// counted.
pub fn choose(m: &Measured, size: u64) -> (Channel, String) {
    let Some(c) = m.chunk_secs else {
        return (
            Channel::Binary,
            "binary GET (the channels are not measured yet)".into(),
        );
    };
    let ms = c * 1000.0;
    let binary = CHUNK / c.max(1e-6);
    let kb = |r: f64| r / 1000.0;
    // The text channel's printing rate: measured, else the link's less
    // base64's share, else (a GET that looks throttled, the link not
    // measured) beyond the GET's.
    let (rate, why) = match (m.text_rate, m.link_rate) {
        (Some(t), _) => (
            Some(t),
            format!(
                "a text download moved {:.1} KB/s, a binary GET {:.1} KB/s ({ms:.1} ms a chunk)",
                kb(t),
                kb(binary)
            ),
        ),
        _ if c < THROTTLED_CHUNK_SECS => {
            return (
                Channel::Binary,
                format!("binary GET: binary GETs take {ms:.1} ms a chunk"),
            );
        }
        (None, Some(l)) => (
            Some(l * TEXT_YIELD),
            format!(
                "binary GETs take {ms:.1} ms a chunk ({:.1} KB/s) where the link carries {:.1} KB/s",
                kb(binary),
                kb(l)
            ),
        ),
        (None, None) => (
            None,
            format!("binary GETs take {ms:.1} ms a chunk: throttled by the board"),
        ),
    };
    let costs = m.text_costs.unwrap_or(GUESS_COSTS);
    let throttled_pace = if c >= THROTTLED_CHUNK_SECS {
        c.max(THROTTLE_SECS)
    } else {
        c
    };
    let b = binary_secs(throttled_pace, size);
    let t = rate.map_or(costs.0, |r| text_secs(r, costs, size));
    let text = size > SMALL && t * MARGIN < b;
    let throttled = if text && rate.is_some() && m.text_rate.is_none() {
        ": throttled by the board"
    } else {
        ""
    };
    let est = if size < u64::MAX {
        format!(" ({size} B: text {t:.2} s, binary GET {b:.2} s)")
    } else {
        String::new()
    };
    match text {
        true => (
            Channel::Text,
            format!("text channel: {why}{throttled}{est}"),
        ),
        false => (Channel::Binary, format!("binary GET: {why}{est}")),
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    const BIG: u64 = 100_000;

    #[test]
    fn big_gets_slowed_by_a_slow_link_keep_the_binary_get() {
        // A small file's GET: no pause after its chunk.
        let mut m = Measured::get(0.0001, 1);
        // Big GETs at 15 KB/s (17 ms a chunk); the link read high.
        for _ in 0..4 {
            m.binary(&Measured::get(0.0177 * 780.0, 780));
        }
        m.link_rate = Some(21_700.0);
        assert_eq!(choose(&m, 200_000).0, Channel::Binary);
        assert!(!wants_link_rate(&m));
        // The link changed: measured again, the board's pause is not
        // taken from the big GET.
        m.remeasure(Channel::Binary, &Measured::get(0.0177 * 780.0, 780));
        assert_eq!(m.chunk_secs, None);
        assert_eq!(choose(&m, 200_000).0, Channel::Binary);
        // What a big GET foretells is its rate's.
        let t = foretold(&m, Channel::Binary, 200_000).unwrap_or(0.0);
        assert!((12.0..16.0).contains(&t), "{t}");
    }

    #[test]
    fn unmeasured_the_binary_get_is_kept() {
        assert_eq!(choose(&Measured::default(), BIG).0, Channel::Binary);
    }

    #[test]
    fn a_throttled_get_sends_large_files_to_the_text_channel() {
        let m = Measured {
            chunk_secs: Some(0.0205),
            text_rate: None,
            text_costs: None,
            link_rate: None,
            get_rate: None,
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
                text_costs: None,
                link_rate: None,
                get_rate: None,
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
            text_costs: None,
            link_rate: None,
            get_rate: None,
        };
        assert_eq!(choose(&slow_link, BIG).0, Channel::Binary);
        let throttled = Measured {
            chunk_secs: Some(0.021),
            text_rate: Some(600_000.0),
            text_costs: None,
            link_rate: None,
            get_rate: None,
        };
        assert_eq!(choose(&throttled, BIG).0, Channel::Text);
        // Within the margin, the GET stays.
        let close = Measured {
            chunk_secs: Some(0.02),
            text_rate: Some(13_000.0),
            text_costs: None,
            link_rate: None,
            get_rate: None,
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
            text_costs: None,
            link_rate: Some(12_000.0),
            get_rate: None,
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
                text_costs: None,
                link_rate: Some(link),
                get_rate: None,
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
        m.binary(&Measured::get(0.02, 1));
        m.binary(&Measured::get(0.0, 1));
        assert_eq!(m.chunk_secs, Some(0.01));
        m.text(100.0, 0.2, None);
        m.text(300.0, 0.4, Some(0.02));
        assert_eq!(m.text_rate, Some(200.0));
        assert_eq!(m.text_costs, Some((0.30000000000000004, 0.025)));
    }

    #[test]
    fn the_text_channels_slices_are_counted() {
        // The throttled board behind a 20 KB/s link: text prints 14.5 KB/s
        // of data, the GET 12.5 KB/s. Slices that paste their program
        // again (0.18 s each) lose to the GET; slices that call the one
        // kept (0.03 s) win.
        let mut m = Measured {
            chunk_secs: Some(0.0205),
            text_rate: Some(14_500.0),
            text_costs: Some((0.2, 0.18)),
            link_rate: None,
            get_rate: None,
        };
        let (c, why) = choose(&m, BIG);
        assert_eq!(c, Channel::Binary, "{why}");
        m.text_costs = Some((0.2, 0.03));
        let (c, why) = choose(&m, BIG);
        assert_eq!(c, Channel::Text, "{why}");
        assert!(why.contains("100000 B: text 7."), "{why}");
        // A file of one slice pays the first program alone.
        assert_eq!(choose(&m, 2_000).0, Channel::Binary);
        let b = foretold(&m, Channel::Binary, 2_560).unwrap();
        assert!((b - 0.205).abs() < 1e-9, "{b}");
    }

    #[test]
    fn a_transfer_far_from_what_was_foretold_departs() {
        assert!(departs(1.4, 9.0));
        assert!(departs(8.0, 1.5));
        // Noise: a little off, or off by little time.
        assert!(!departs(8.0, 9.5));
        assert!(!departs(0.1, 0.4));
        let mut m = Measured {
            chunk_secs: Some(0.0205),
            text_rate: Some(600_000.0),
            text_costs: Some((0.1, 0.02)),
            link_rate: Some(1e6),
            get_rate: None,
        };
        let fresh = Measured {
            text_rate: Some(7_000.0),
            text_costs: Some((0.3, 0.05)),
            ..Measured::default()
        };
        m.remeasure(Channel::Text, &fresh);
        assert_eq!(m, fresh);
        // Unmeasured again: the next large download measures the GET.
        assert_eq!(choose(&m, BIG).0, Channel::Binary);
    }

    #[test]
    fn a_get_of_a_chunk_or_two_does_not_measure_the_links_rate() {
        // A 7-byte file: its chunk and the end's came together.
        let mut m = Measured::default();
        m.binary(&Measured::get(0.000_02, 1));
        assert_eq!(from_board(&m), None);
        assert!(m.chunk_secs.is_some(), "the pace still tells a throttle");
        // 20 KB at 20 KB/s: 80 chunks, 12.9 ms each.
        m.binary(&Measured::get(80.0 * 0.0129, 80));
        let r = from_board(&m).unwrap();
        assert!((19_000.0..21_000.0).contains(&r), "{r}");
        // A later one-chunk GET leaves the rate as it was.
        m.binary(&Measured::get(0.0, 1));
        assert_eq!(from_board(&m), Some(r));
    }
}
