//! The binary file-transfer protocol: 82-byte request header, `WB` replies,
//! GET chunks answered one per `\x00` ack, PUT data in frames.
//!
//! Replies are parsed as one byte stream (the concatenated payloads of binary
//! frames), so nothing depends on how the board splits its writes.

use thiserror::Error;

pub const HEADER_LEN: usize = 82;
/// The board reads the name as a C string in a 64-byte field.
pub const MAX_NAME: usize = 63;
/// The board answers each GET ack with at most this much data.
pub const GET_CHUNK: u64 = 256;
/// Data frames of at most this size, each written whole: larger ones, or ones
/// that reach the board in pieces, lose bytes in the firmware's PUT code.
pub const PUT_FRAME: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Put = 1,
    Get = 2,
    GetVersion = 3,
}

#[derive(Debug, Clone, Error, PartialEq, Eq)]
pub enum TransferError {
    #[error("a path for the binary protocol is at most {MAX_NAME} bytes")]
    NameTooLong,
    #[error("a path cannot contain a NUL byte")]
    NulInName,
    #[error("the board answered {0:02x?} where a WB reply belongs")]
    BadReply(Vec<u8>),
    #[error("the board reported status {0} for a file transfer")]
    Status(u16),
    #[error("the board sent more file data than it announced")]
    Overrun,
    #[error("a file transfer is not that big on a board")]
    TooBig,
}

pub fn header(op: Op, name: &[u8], size: u64) -> Result<[u8; HEADER_LEN], TransferError> {
    if name.len() > MAX_NAME {
        return Err(TransferError::NameTooLong);
    }
    if name.contains(&0) {
        return Err(TransferError::NulInName);
    }
    let size = u32::try_from(size).map_err(|_| TransferError::TooBig)?;
    let mut h = [0u8; HEADER_LEN];
    h[0..2].copy_from_slice(b"WA");
    h[2] = op as u8;
    // flags (1) and offset (8) stay zero: the board ignores them.
    h[12..16].copy_from_slice(&size.to_le_bytes());
    h[16..18].copy_from_slice(&(name.len() as u16).to_le_bytes());
    h[18..18 + name.len()].copy_from_slice(name);
    Ok(h)
}

/// Binary reply bytes not yet consumed.
#[derive(Debug, Default)]
struct Replies {
    buf: Vec<u8>,
}

impl Replies {
    fn take(&mut self, n: usize) -> Option<Vec<u8>> {
        if self.buf.len() < n {
            return None;
        }
        Some(self.buf.drain(..n).collect())
    }

    /// A `WB` + u16 status reply, if complete.
    fn wb(&mut self) -> Result<Option<()>, TransferError> {
        let Some(r) = self.take(4) else {
            return Ok(None);
        };
        if &r[..2] != b"WB" {
            return Err(TransferError::BadReply(r));
        }
        match u16::from_le_bytes([r[2], r[3]]) {
            0 => Ok(Some(())),
            s => Err(TransferError::Status(s)),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GetState {
    Opening,
    Chunks,
    Closing,
    Done,
}

/// GET with pipelined acks. The number of acks in flight never exceeds the
/// chunks that remain plus the final one: a surplus `\x00` would be read by
/// the board as the start of the next header and corrupt the next transfer.
#[derive(Debug)]
pub struct Get {
    state: GetState,
    window: u64,
    /// Acks the file needs if its size is what `os.stat` said.
    needed: u64,
    sent: u64,
    answered: u64,
    expect: u64,
    /// Chunks past which a file that grows while read is a board that
    /// never ends it.
    limit: u64,
    data: Vec<u8>,
}

/// How far a file may grow while it is read: 1 MiB in chunks.
const GROWTH_CHUNKS: u64 = (1 << 20) / GET_CHUNK;

#[derive(Debug, PartialEq, Eq)]
pub enum GetOutcome {
    Pending,
    /// The whole file. `surplus` acks were sent that the board will read as
    /// header bytes (the file shrank after it was sized): the link must go.
    Done {
        surplus: u64,
    },
}

impl Get {
    pub fn new(size: u64, window: u64) -> Self {
        Get {
            state: GetState::Opening,
            window: window.max(1),
            needed: size.div_ceil(GET_CHUNK) + 1,
            sent: 0,
            answered: 0,
            expect: size,
            limit: size.div_ceil(GET_CHUNK) + 1 + GROWTH_CHUNKS,
            data: Vec::with_capacity(size.min(1 << 24) as usize),
        }
    }

    /// How many `\x00` acks to send now (all may go in one frame).
    pub fn acks_to_send(&mut self) -> usize {
        if self.state != GetState::Chunks {
            return 0;
        }
        let in_flight = self.sent - self.answered;
        if in_flight == 0 && self.sent >= self.needed {
            // The file grew since it was sized: go on one ack at a time.
            self.needed = self.sent + 1;
        }
        let n = self
            .window
            .saturating_sub(in_flight)
            .min(self.needed - self.sent);
        self.sent += n;
        n as usize
    }

    pub fn feed(
        &mut self,
        bytes: &[u8],
        replies: &mut Vec<u8>,
    ) -> Result<GetOutcome, TransferError> {
        let mut r = Replies {
            buf: std::mem::take(replies),
        };
        r.buf.extend_from_slice(bytes);
        let out = self.step(&mut r);
        *replies = r.buf;
        out
    }

    fn step(&mut self, r: &mut Replies) -> Result<GetOutcome, TransferError> {
        loop {
            match self.state {
                GetState::Opening => match r.wb()? {
                    Some(()) => self.state = GetState::Chunks,
                    None => return Ok(GetOutcome::Pending),
                },
                GetState::Chunks => {
                    if r.buf.len() < 2 {
                        return Ok(GetOutcome::Pending);
                    }
                    let len = u16::from_le_bytes([r.buf[0], r.buf[1]]) as usize;
                    if len as u64 > GET_CHUNK {
                        return Err(TransferError::BadReply(r.buf[..2].to_vec()));
                    }
                    let Some(chunk) = r.take(2 + len) else {
                        return Ok(GetOutcome::Pending);
                    };
                    if self.answered >= self.sent {
                        return Err(TransferError::Overrun);
                    }
                    if self.answered >= self.limit {
                        return Err(TransferError::TooBig);
                    }
                    self.answered += 1;
                    if len == 0 {
                        self.state = GetState::Closing;
                    } else {
                        self.data.extend_from_slice(&chunk[2..]);
                    }
                }
                GetState::Closing => match r.wb()? {
                    Some(()) => {
                        self.state = GetState::Done;
                        return Ok(GetOutcome::Done {
                            surplus: self.sent - self.answered,
                        });
                    }
                    None => return Ok(GetOutcome::Pending),
                },
                GetState::Done => {
                    return Ok(GetOutcome::Done {
                        surplus: self.sent - self.answered,
                    });
                }
            }
        }
    }

    pub fn expected_size(&self) -> u64 {
        self.expect
    }

    /// Acks to keep in flight from now on (the bound above still holds).
    pub fn set_window(&mut self, window: u64) {
        self.window = window.max(1);
    }

    /// Chunks answered so far (each answers one ack, in order).
    pub fn answered(&self) -> u64 {
        self.answered
    }

    /// The file data received since the last call: a reader may have it
    /// before the transfer ends.
    pub fn take_data(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.data)
    }

    pub fn into_data(self) -> Vec<u8> {
        self.data
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutStep {
    /// Waiting for the board to open the file.
    Opening,
    /// Opened: send the data now.
    SendData,
    /// Data sent, waiting for the board to close the file.
    Closing,
    Done,
}

/// PUT: header, `WB` (opened), data, `WB` (closed). The closing `WB` does not
/// mean the data arrived: firmware loses bytes and hides write errors, so
/// callers check the size on the board afterwards.
#[derive(Debug)]
pub struct Put {
    step: PutStep,
    replies: Replies,
    empty: bool,
}

impl Put {
    pub fn new(size: u64) -> Self {
        Put {
            step: PutStep::Opening,
            replies: Replies::default(),
            empty: size == 0,
        }
    }

    pub fn feed(&mut self, bytes: &[u8]) -> Result<PutStep, TransferError> {
        self.replies.buf.extend_from_slice(bytes);
        loop {
            match self.step {
                // An empty file is closed by the board right after opening.
                PutStep::Opening if self.replies.wb()?.is_some() => {
                    self.step = if self.empty {
                        PutStep::Closing
                    } else {
                        PutStep::SendData
                    }
                }
                PutStep::Closing if self.replies.wb()?.is_some() => self.step = PutStep::Done,
                _ => break,
            }
        }
        if self.step == PutStep::SendData && !self.replies.buf.is_empty() {
            return Err(TransferError::BadReply(self.replies.buf.clone()));
        }
        Ok(self.step)
    }

    /// The caller has written every data frame.
    pub fn data_sent(&mut self) -> Result<PutStep, TransferError> {
        if self.step == PutStep::SendData {
            self.step = PutStep::Closing;
        }
        self.feed(&[])
    }
}

/// GET_VER's answer: three bytes, no `WB`.
pub fn parse_version(reply: &[u8]) -> Result<(u8, u8, u8), TransferError> {
    match reply {
        [a, b, c] => Ok((*a, *b, *c)),
        other => Err(TransferError::BadReply(other.to_vec())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(data: &[u8]) -> Vec<u8> {
        let mut v = (data.len() as u16).to_le_bytes().to_vec();
        v.extend_from_slice(data);
        v
    }

    #[test]
    fn header_layout_matches_the_struct() {
        let h = header(Op::Put, "ä.py".as_bytes(), 300).unwrap();
        assert_eq!(&h[0..4], &[b'W', b'A', 1, 0]);
        assert_eq!(&h[4..12], &[0; 8]);
        assert_eq!(&h[12..16], &300u32.to_le_bytes());
        assert_eq!(&h[16..18], &5u16.to_le_bytes());
        assert_eq!(&h[18..23], "ä.py".as_bytes());
        assert!(h[23..].iter().all(|&b| b == 0));
        assert_eq!(header(Op::Get, &[b'a'; 63], 0).map(|h| h[80]), Ok(b'a'));
        assert_eq!(
            header(Op::Get, &[b'a'; 64], 0),
            Err(TransferError::NameTooLong)
        );
        assert_eq!(header(Op::Get, b"a\0b", 0), Err(TransferError::NulInName));
    }

    fn run_get(size: usize, window: u64, actual: &[u8]) -> (Vec<u8>, u64, u64) {
        // A board that answers each ack with the next chunk of `actual`.
        let mut g = Get::new(size as u64, window);
        let mut pending = Vec::new();
        let mut board_pos = 0usize;
        let mut finished = false;
        let mut max_in_flight = 0;
        assert_eq!(g.acks_to_send(), 0, "no acks before the file is open");
        let mut out = g.feed(b"WB\0\0", &mut pending).unwrap();
        let mut queued = 0u64;
        loop {
            if let GetOutcome::Done { surplus } = out {
                return (g.into_data(), surplus, max_in_flight);
            }
            queued += g.acks_to_send() as u64;
            max_in_flight = max_in_flight.max(queued);
            assert!(queued > 0, "stalled");
            // The board answers one ack.
            queued -= 1;
            let mut reply = Vec::new();
            if finished {
                unreachable!("ack after the end was answered");
            }
            let n = (actual.len() - board_pos).min(256);
            reply.extend(chunk(&actual[board_pos..board_pos + n]));
            board_pos += n;
            if n == 0 {
                reply.extend_from_slice(b"WB\0\0");
                finished = true;
            }
            out = g.feed(&reply, &mut pending).unwrap();
            if finished && let GetOutcome::Done { surplus } = out {
                assert_eq!(surplus, queued);
            }
        }
    }

    #[test]
    fn get_never_sends_more_acks_than_chunks_plus_one() {
        for size in [0usize, 1, 255, 256, 257, 1000, 100_000] {
            let data: Vec<u8> = (0..size).map(|i| i as u8).collect();
            let (got, surplus, max) = run_get(size, 8, &data);
            assert_eq!(got, data, "size {size}");
            assert_eq!(surplus, 0, "size {size}");
            assert!(max <= 8);
        }
    }

    #[test]
    fn get_of_a_grown_file_continues_one_ack_at_a_time() {
        let data = vec![1u8; 700];
        let (got, surplus, _) = run_get(300, 8, &data);
        assert_eq!((got.len(), surplus), (700, 0));
    }

    #[test]
    fn get_of_a_file_that_never_ends_is_refused_at_its_bound() {
        let mut g = Get::new(300, 8);
        let mut pending = Vec::new();
        g.feed(b"WB\0\0", &mut pending).unwrap();
        let mut chunks = 0u64;
        let err = loop {
            let acks = g.acks_to_send();
            assert!(acks > 0, "stalled");
            let mut reply = Vec::new();
            for _ in 0..acks {
                reply.extend(chunk(&[7; 256]));
            }
            chunks += acks as u64;
            match g.feed(&reply, &mut pending) {
                Ok(GetOutcome::Pending) => assert!(chunks < 10 * GROWTH_CHUNKS, "no bound"),
                other => break other,
            }
        };
        assert_eq!(err, Err(TransferError::TooBig));
        // The stat size, 1 MiB of growth, and the last chunks rounded up.
        assert!(g.into_data().len() as u64 <= 300 + (GROWTH_CHUNKS + 2) * GET_CHUNK);
    }

    #[test]
    fn get_of_a_shrunk_file_reports_the_surplus() {
        let data = vec![1u8; 10];
        let (got, surplus, _) = run_get(2000, 16, &data);
        assert_eq!(got.len(), 10);
        assert!(surplus > 0);
    }

    #[test]
    fn get_rejects_a_wrong_signature_and_oversized_chunks() {
        let mut g = Get::new(10, 4);
        let mut p = Vec::new();
        assert!(matches!(
            g.feed(b"XX\0\0", &mut p),
            Err(TransferError::BadReply(_))
        ));
        let mut g = Get::new(10, 4);
        g.feed(b"WB\0\0", &mut p).unwrap();
        g.acks_to_send();
        assert!(matches!(
            g.feed(&[0x01, 0x02], &mut p),
            Err(TransferError::BadReply(_))
        ));
        let mut g = Get::new(10, 4);
        g.feed(b"WB\x05\0", &mut p).map(|_| ()).unwrap_err();
        assert!(matches!(g.feed(b"", &mut p), Ok(GetOutcome::Pending)));
    }

    #[test]
    fn get_refuses_chunks_nobody_asked_for() {
        let mut g = Get::new(1000, 4);
        let mut p = Vec::new();
        g.feed(b"WB\0\0", &mut p).unwrap();
        assert_eq!(
            g.feed(&chunk(&[1; 256]), &mut p),
            Err(TransferError::Overrun)
        );
    }

    #[test]
    fn get_reassembles_replies_split_anywhere() {
        let data: Vec<u8> = (0..600).map(|i| (i * 7) as u8).collect();
        let mut wire = b"WB\0\0".to_vec();
        for c in data.chunks(256) {
            wire.extend(chunk(c));
        }
        wire.extend(chunk(&[]));
        wire.extend_from_slice(b"WB\0\0");
        let mut g = Get::new(600, 8);
        let mut p = Vec::new();
        let mut done = false;
        for b in wire {
            g.acks_to_send();
            if let GetOutcome::Done { surplus } = g.feed(&[b], &mut p).unwrap() {
                assert_eq!(surplus, 0);
                done = true;
            }
        }
        assert!(done);
        assert_eq!(g.into_data(), data);
    }

    #[test]
    fn put_steps() {
        let mut p = Put::new(5);
        assert_eq!(p.feed(b"WB").unwrap(), PutStep::Opening);
        assert_eq!(p.feed(b"\0\0").unwrap(), PutStep::SendData);
        assert_eq!(p.data_sent().unwrap(), PutStep::Closing);
        assert_eq!(p.feed(b"WB\0\0").unwrap(), PutStep::Done);
        let mut p = Put::new(5);
        assert_eq!(
            p.feed(b"WB\0\0WB\0\0").unwrap_err(),
            TransferError::BadReply(b"WB\0\0".to_vec())
        );
        let mut p = Put::new(0);
        assert_eq!(p.feed(b"WB\0\0WB\0\0").unwrap(), PutStep::Done);
        let mut p = Put::new(5);
        assert_eq!(p.feed(b"WB\x01\0"), Err(TransferError::Status(1)));
    }

    #[test]
    fn version_is_three_bytes() {
        assert_eq!(parse_version(&[1, 25, 0]), Ok((1, 25, 0)));
        assert!(parse_version(b"WB\0\0").is_err());
    }
}
