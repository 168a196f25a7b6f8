//! WebSocket framing as boards speak it (RFC 6455, client side).
//!
//! Our own codec rather than tungstenite's reader: boards send text frames
//! that are not valid UTF-8 on their own (one frame per output call), and
//! every reader in tungstenite rejects those. Payloads here are raw bytes.

use thiserror::Error;

/// The board implements only the 7- and 16-bit length forms.
pub const MAX_PAYLOAD: usize = 65535;
/// Anything longer from the board is a broken peer, not a WebREPL board.
const MAX_INCOMING: u64 = 1 << 20;
/// A message in fragments is joined up to this much; boards send whole
/// frames of at most 64 KiB, so more is a peer that would fill our memory.
pub const MAX_MESSAGE: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub kind: FrameKind,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum FrameError {
    #[error("reserved WebSocket opcode {0:#x}")]
    BadOpcode(u8),
    #[error("WebSocket frame of {0} bytes is larger than any board sends")]
    TooLong(u64),
    #[error("fragmented WebSocket message over {MAX_MESSAGE} bytes")]
    MessageTooLong,
    #[error("continuation frame without a first frame")]
    StrayContinuation,
}

/// Encodes one client frame, masked with `mask` as RFC 6455 requires.
/// Callers keep payloads at or below [`MAX_PAYLOAD`]; longer ones are a bug.
pub fn encode(kind: FrameKind, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    assert!(payload.len() <= MAX_PAYLOAD, "frame payload over 64 KiB");
    let opcode = match kind {
        FrameKind::Text => 0x1,
        FrameKind::Binary => 0x2,
        FrameKind::Close => 0x8,
        FrameKind::Ping => 0x9,
        FrameKind::Pong => 0xA,
    };
    let mut out = Vec::with_capacity(payload.len() + 8);
    out.push(0x80 | opcode);
    if payload.len() < 126 {
        out.push(0x80 | payload.len() as u8);
    } else {
        out.push(0x80 | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// Incremental decoder for the board's (unmasked) frames.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Kind and collected payload of a message sent in fragments.
    partial: Option<(FrameKind, Vec<u8>)>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if the buffer holds one. Fragmented messages
    /// come out whole; control frames come out as they arrive.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            let Some((fin, opcode, payload)) = self.take_raw()? else {
                return Ok(None);
            };
            let kind = match opcode {
                0x0 => {
                    let Some((kind, mut acc)) = self.partial.take() else {
                        return Err(FrameError::StrayContinuation);
                    };
                    if acc.len() + payload.len() > MAX_MESSAGE {
                        return Err(FrameError::MessageTooLong);
                    }
                    acc.extend_from_slice(&payload);
                    if fin {
                        return Ok(Some(Frame { kind, payload: acc }));
                    }
                    self.partial = Some((kind, acc));
                    continue;
                }
                0x1 => FrameKind::Text,
                0x2 => FrameKind::Binary,
                0x8 => FrameKind::Close,
                0x9 => FrameKind::Ping,
                0xA => FrameKind::Pong,
                other => return Err(FrameError::BadOpcode(other)),
            };
            if !fin && matches!(kind, FrameKind::Text | FrameKind::Binary) {
                self.partial = Some((kind, payload));
                continue;
            }
            return Ok(Some(Frame { kind, payload }));
        }
    }

    fn take_raw(&mut self) -> Result<Option<(bool, u8, Vec<u8>)>, FrameError> {
        let b = &self.buf;
        if b.len() < 2 {
            return Ok(None);
        }
        let fin = b[0] & 0x80 != 0;
        let opcode = b[0] & 0x0F;
        let masked = b[1] & 0x80 != 0;
        let (len, mut at) = match b[1] & 0x7F {
            126 if b.len() >= 4 => (u16::from_be_bytes([b[2], b[3]]) as u64, 4),
            127 if b.len() >= 10 => {
                let mut n = [0u8; 8];
                n.copy_from_slice(&b[2..10]);
                (u64::from_be_bytes(n), 10)
            }
            126 | 127 => return Ok(None),
            n => (n as u64, 2),
        };
        if len > MAX_INCOMING {
            return Err(FrameError::TooLong(len));
        }
        let mask = if masked {
            if b.len() < at + 4 {
                return Ok(None);
            }
            let m = [b[at], b[at + 1], b[at + 2], b[at + 3]];
            at += 4;
            Some(m)
        } else {
            None
        };
        let end = at + len as usize;
        if b.len() < end {
            return Ok(None);
        }
        let mut payload = b[at..end].to_vec();
        if let Some(m) = mask {
            payload
                .iter_mut()
                .enumerate()
                .for_each(|(i, x)| *x ^= m[i % 4]);
        }
        self.buf.drain(..end);
        Ok(Some((fin, opcode, payload)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_frame(first: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = vec![first];
        if payload.len() < 126 {
            v.push(payload.len() as u8);
        } else {
            v.push(126);
            v.extend_from_slice(&(payload.len() as u16).to_be_bytes());
        }
        v.extend_from_slice(payload);
        v
    }

    #[test]
    fn encodes_short_and_16_bit_lengths_masked() {
        let f = encode(FrameKind::Text, b"abc", [1, 2, 3, 4]);
        assert_eq!(
            f,
            vec![0x81, 0x83, 1, 2, 3, 4, b'a' ^ 1, b'b' ^ 2, b'c' ^ 3]
        );
        let big = vec![7u8; 1024];
        let f = encode(FrameKind::Binary, &big, [0; 4]);
        assert_eq!(&f[..4], &[0x82, 0x80 | 126, 0x04, 0x00]);
        assert_eq!(f.len(), 4 + 4 + 1024);
        let f = encode(FrameKind::Binary, &vec![0; MAX_PAYLOAD], [0; 4]);
        assert_eq!(&f[1..4], &[0x80 | 126, 0xFF, 0xFF]);
    }

    #[test]
    fn decodes_a_split_utf8_character_as_two_raw_text_frames() {
        let mut d = Decoder::default();
        let mut wire = server_frame(0x81, &[0xC3]);
        wire.extend(server_frame(0x81, &[0xBC]));
        for b in wire {
            d.push(&[b]);
        }
        assert_eq!(d.next_frame().unwrap().unwrap().payload, vec![0xC3]);
        assert_eq!(d.next_frame().unwrap().unwrap().payload, vec![0xBC]);
        assert_eq!(d.next_frame().unwrap(), None);
    }

    #[test]
    fn joins_continuation_frames_and_passes_control_frames_between() {
        let mut d = Decoder::default();
        d.push(&server_frame(0x02, b"WB"));
        d.push(&server_frame(0x89, b""));
        d.push(&server_frame(0x80, b"\0\0"));
        assert_eq!(d.next_frame().unwrap().unwrap().kind, FrameKind::Ping);
        let f = d.next_frame().unwrap().unwrap();
        assert_eq!((f.kind, f.payload), (FrameKind::Binary, b"WB\0\0".to_vec()));
    }

    #[test]
    fn decodes_16_bit_length_and_masked_frames() {
        let mut d = Decoder::default();
        let payload = vec![9u8; 300];
        d.push(&server_frame(0x82, &payload));
        assert_eq!(d.next_frame().unwrap().unwrap().payload, payload);
        let f = encode(FrameKind::Text, b"hi", [5, 6, 7, 8]);
        d.push(&f);
        assert_eq!(d.next_frame().unwrap().unwrap().payload, b"hi");
    }

    #[test]
    fn rejects_bad_opcodes_huge_lengths_and_stray_continuations() {
        let mut d = Decoder::default();
        d.push(&[0x83, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::BadOpcode(3)));
        let mut d = Decoder::default();
        d.push(&[0x82, 127, 0, 0, 0, 1, 0, 0, 0, 0]);
        assert!(matches!(d.next_frame(), Err(FrameError::TooLong(_))));
        let mut d = Decoder::default();
        d.push(&[0x80, 0]);
        assert_eq!(d.next_frame(), Err(FrameError::StrayContinuation));
    }

    #[test]
    fn a_message_in_endless_fragments_is_refused_at_its_bound() {
        let mut d = Decoder::default();
        d.push(&server_frame(0x02, &[1; 60_000]));
        let mut fragments = 1;
        let err = loop {
            d.push(&server_frame(0x00, &[1; 60_000]));
            fragments += 1;
            match d.next_frame() {
                Ok(None) => assert!(fragments * 60_000 <= MAX_MESSAGE + 60_000),
                other => break other,
            }
        };
        assert_eq!(err, Err(FrameError::MessageTooLong));
        assert_eq!(fragments, MAX_MESSAGE / 60_000 + 1);
    }
}
