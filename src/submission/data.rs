//! Reading a message after `354`: un-dot-stuffing, the end-of-data line, and what makes a message
//! unacceptable, decided while the bytes stream in, without keeping more than the limit.
//!
//! - **Only `CRLF . CRLF` ends the message.** A bare LF (or CR) is never a line ending here: `\n.\n`,
//!   `\n.\r\n` or `\r.\r` inside the data are ordinary bytes. A server that accepted them as the end
//!   of the message while the relay further on does not (or the reverse) lets a client smuggle a
//!   second message past the first one's checks (SMTP smuggling, 2023). So a message holding a bare
//!   CR or LF anywhere is read to its real end and then refused (`550 5.6.2`), never passed on or
//!   rewritten: what Herald accepts it relays byte for byte.
//! - **Dot-stuffing** (RFC 5321 §4.5.2): a line that starts with `.` loses that dot.
//! - **Size.** Only the first `max` bytes of the message are kept; past them the rest is read and
//!   dropped until the end-of-data line, then the message is refused `552 5.3.4`.
//! - **Memory.** What is kept is paid for from the listener's [`MemoryBudget`](super::budget), a
//!   chunk at a time; when the budget is spent the message is no longer kept, read to its end, and
//!   refused for now (`452 4.3.1`), unless it is also refused for good (too large, bare CR/LF, a
//!   long line), which wins: a client must not retry a message that can never pass.
//! - **Line length.** A line longer than 1000 octets with its CRLF (§4.5.3.1.6) is refused too
//!   (`550 5.6.0`): relays may split or refuse such a line, which would break what was signed.
//!
//! [`DataReader`] is a pure state machine fed by the session with whatever arrived, so the rules are
//! unit-tested here byte by byte.

use super::budget::Reservation;

/// Longest line of a message, without its CRLF (RFC 5321 §4.5.3.1.6: 1000 octets with it).
pub(super) const MAX_LINE: usize = 998;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line (after CRLF, or at the very beginning).
    LineStart,
    /// Inside a line.
    InLine,
    /// After a CR inside a line: LF makes a line ending, anything else a bare CR.
    Cr,
    /// A line that started with `.`: the dot is dropped.
    Dot,
    /// `.` CR at the start of a line: LF ends the message.
    DotCr,
}

/// Why a message read to its end is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    TooLarge,
    BareLineEnding,
    LineTooLong,
    /// The listener's memory budget is spent: a temporary refusal.
    NoMemory,
}

pub(super) struct DataReader {
    state: State,
    /// The message so far (after `prefix`), un-dot-stuffed.
    out: Vec<u8>,
    prefix_len: usize,
    max: usize,
    /// Bytes of the message read so far (kept or not), against `max`.
    seen: usize,
    /// What `out` holds of the memory budget.
    reservation: Reservation,
    line_len: usize,
    refusal: Option<Refusal>,
    done: bool,
}

impl DataReader {
    /// A reader for a message of at most `max` bytes, appended after `prefix` (the trace header),
    /// which does not count; what it keeps is paid for by `reservation`.
    pub fn new(prefix: Vec<u8>, max: usize, reservation: Reservation) -> DataReader {
        let mut reader = DataReader {
            state: State::LineStart,
            prefix_len: prefix.len(),
            out: Vec::new(),
            max,
            seen: 0,
            reservation,
            line_len: 0,
            refusal: None,
            done: false,
        };
        if reader.reserve(prefix.len()) {
            reader.out.extend_from_slice(&prefix);
        } else {
            reader.refuse(Refusal::NoMemory);
        }
        reader
    }

    /// Whether the end-of-data line has been read.
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Reads from `input` up to and including the end-of-data line; returns how many bytes it took
    /// (what follows belongs to the next command).
    pub fn feed(&mut self, input: &[u8]) -> usize {
        for (i, &byte) in input.iter().enumerate() {
            if self.done {
                return i;
            }
            self.step(byte);
        }
        input.len()
    }

    /// The prefix and the message, or why it is refused, and what the bytes hold of the memory
    /// budget (to keep until they are stored). Call once [`DataReader::is_done`].
    pub fn finish(self) -> (Result<Vec<u8>, Refusal>, Reservation) {
        let verdict = match self.refusal {
            Some(refusal) => Err(refusal),
            None => Ok(self.out),
        };
        (verdict, self.reservation)
    }

    /// Bytes of the message kept so far (without the prefix).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.out.len() - self.prefix_len
    }

    fn step(&mut self, byte: u8) {
        match (self.state, byte) {
            (State::LineStart, b'.') => self.state = State::Dot,
            (State::Dot, b'\r') => self.state = State::DotCr,
            (State::DotCr, b'\n') => self.done = true,
            (State::DotCr, _) => {
                // `.` CR and not LF: the dot was stuffing, the CR is bare.
                self.refuse(Refusal::BareLineEnding);
                self.emit(b'\r');
                self.in_line(byte);
            }
            (State::Cr, b'\n') => {
                self.emit(b'\n');
                self.line_len = 0;
                self.state = State::LineStart;
            }
            (State::Cr, _) => {
                self.refuse(Refusal::BareLineEnding);
                self.in_line(byte);
            }
            (State::LineStart | State::InLine | State::Dot, _) => self.in_line(byte),
        }
    }

    /// A byte inside a line (a CR waits for its LF).
    fn in_line(&mut self, byte: u8) {
        match byte {
            b'\r' => self.state = State::Cr,
            b'\n' => {
                self.refuse(Refusal::BareLineEnding);
                self.state = State::InLine;
            }
            _ => self.state = State::InLine,
        }
        self.emit(byte);
        if byte != b'\r' && byte != b'\n' {
            self.line_len += 1;
            if self.line_len > MAX_LINE {
                self.refuse(Refusal::LineTooLong);
            }
        }
    }

    fn emit(&mut self, byte: u8) {
        self.seen = self.seen.saturating_add(1);
        if self.seen > self.max {
            self.refuse(Refusal::TooLarge);
        }
        if self.refusal.is_some() {
            return;
        }
        if self.out.len() >= self.reservation.held() && !self.reserve(self.out.len() + 1) {
            self.refuse(Refusal::NoMemory);
            return;
        }
        self.out.push(byte);
    }

    /// Makes `out` able to hold `needed` bytes, paid for from the budget (a chunk at a time, never
    /// more than the prefix and a message of `max` bytes). False when the budget is spent.
    fn reserve(&mut self, needed: usize) -> bool {
        let ceiling = self.prefix_len.saturating_add(self.max);
        if !self.reservation.ensure(needed, ceiling) {
            return false;
        }
        let room = self.reservation.held().saturating_sub(self.out.len());
        self.out.reserve_exact(room);
        true
    }

    /// Records the reason to refuse the message and lets go of what was kept (and of its budget):
    /// the rest is only read to find the end. The first reason stays, except that a refusal for
    /// good replaces the temporary one (no memory).
    fn refuse(&mut self, refusal: Refusal) {
        let replaces = match self.refusal {
            None => true,
            Some(Refusal::NoMemory) => refusal != Refusal::NoMemory,
            Some(_) => false,
        };
        if replaces {
            self.refusal = Some(refusal);
        }
        self.out = Vec::new();
        self.prefix_len = 0;
        self.reservation.release();
    }
}

#[cfg(test)]
mod tests {
    use super::super::budget::{CHUNK, MemoryBudget};
    use super::*;
    use prometheus_client::metrics::gauge::Gauge;

    fn unlimited() -> Reservation {
        Reservation::new(MemoryBudget::new(usize::MAX, Gauge::default()))
    }

    /// Feeds `input` in pieces of `chunk` bytes; returns the verdict and the bytes left unread.
    fn read(input: &[u8], max: usize, chunk: usize) -> (Option<Result<Vec<u8>, Refusal>>, Vec<u8>) {
        let mut reader = DataReader::new(Vec::new(), max, unlimited());
        let mut rest = input;
        while !rest.is_empty() && !reader.is_done() {
            let piece = &rest[..chunk.min(rest.len())];
            let used = reader.feed(piece);
            rest = &rest[used..];
        }
        let done = reader.is_done();
        (done.then(|| reader.finish().0), rest.to_vec())
    }

    fn whole(input: &[u8]) -> Result<Vec<u8>, Refusal> {
        for chunk in [1, 2, 3, 7, input.len().max(1)] {
            let (verdict, rest) = read(input, 1 << 20, chunk);
            let first = read(input, 1 << 20, 1 << 20).0;
            assert_eq!(verdict, first, "chunk {chunk} gives another verdict");
            let _ = rest;
        }
        read(input, 1 << 20, 1 << 20).0.expect("the message ends")
    }

    #[test]
    fn the_message_ends_at_crlf_dot_crlf_and_the_rest_is_left() {
        let (verdict, rest) = read(b"Subject: a\r\n\r\nbody\r\n.\r\nQUIT\r\n", 100, 5);
        assert_eq!(verdict, Some(Ok(b"Subject: a\r\n\r\nbody\r\n".to_vec())));
        assert_eq!(rest, b"QUIT\r\n");
    }

    #[test]
    fn an_empty_message_is_just_the_dot() {
        assert_eq!(whole(b".\r\n"), Ok(Vec::new()));
    }

    #[test]
    fn a_leading_dot_is_unstuffed() {
        assert_eq!(
            whole(b"..hidden\r\n...\r\n.x\r\n.\r\n"),
            Ok(b".hidden\r\n..\r\nx\r\n".to_vec())
        );
        // A dot inside a line is data.
        assert_eq!(whole(b"a.b\r\n a\r\n.\r\n"), Ok(b"a.b\r\n a\r\n".to_vec()));
    }

    #[test]
    fn a_bare_lf_neither_ends_the_message_nor_passes() {
        // `\n.\n` and `\n.\r\n` are not the end: the message goes on to the real end and is refused.
        let (verdict, rest) = read(b"a\n.\nMAIL FROM:<x@y>\r\nb\r\n.\r\nNEXT", 100, 4);
        assert_eq!(verdict, Some(Err(Refusal::BareLineEnding)));
        assert_eq!(rest, b"NEXT");
        assert_eq!(whole(b"a\r\n.\nb\r\n.\r\n"), Err(Refusal::BareLineEnding));
        assert_eq!(whole(b"line\n.\r\n.\r\n"), Err(Refusal::BareLineEnding));
        let (verdict, _) = read(b"a\n.\n", 100, 1);
        assert_eq!(verdict, None, "a bare-LF dot line must not end DATA");
    }

    #[test]
    fn a_bare_cr_is_refused() {
        assert_eq!(whole(b"a\rb\r\n.\r\n"), Err(Refusal::BareLineEnding));
        assert_eq!(whole(b"a\r\n.\rX\r\n.\r\n"), Err(Refusal::BareLineEnding));
        assert_eq!(whole(b"a\r\r\n.\r\n"), Err(Refusal::BareLineEnding));
        let (verdict, _) = read(b"a\r.\r\n", 100, 1);
        assert_eq!(verdict, None, "CR . CRLF is not the end");
    }

    #[test]
    fn a_message_over_the_limit_is_read_to_its_end_and_refused() {
        let body = [b"x".repeat(50), b"\r\n".to_vec()].concat().repeat(10);
        let input = [body.clone(), b".\r\nRSET\r\n".to_vec()].concat();
        let (verdict, rest) = read(&input, 100, 9);
        assert_eq!(verdict, Some(Err(Refusal::TooLarge)));
        assert_eq!(rest, b"RSET\r\n");
        let (verdict, _) = read(&input, body.len(), 9);
        assert_eq!(verdict, Some(Ok(body)), "exactly the limit is accepted");
    }

    #[test]
    fn a_refused_message_keeps_nothing() {
        let mut reader = DataReader::new(Vec::new(), 10, unlimited());
        reader.feed(&b"y".repeat(500));
        assert_eq!(reader.len(), 0);
        assert!(reader.out.capacity() <= 16, "{}", reader.out.capacity());
    }

    #[test]
    fn a_line_over_1000_octets_is_refused() {
        let fits = [b"a".repeat(MAX_LINE), b"\r\n.\r\n".to_vec()].concat();
        assert!(whole(&fits).is_ok());
        let long = [b"a".repeat(MAX_LINE + 1), b"\r\n.\r\n".to_vec()].concat();
        assert_eq!(whole(&long), Err(Refusal::LineTooLong));
        // A stuffed dot does not count.
        let stuffed = [b".".repeat(MAX_LINE + 1), b"\r\n.\r\n".to_vec()].concat();
        assert!(whole(&stuffed).is_ok());
    }

    #[test]
    fn the_prefix_is_kept_and_not_counted() {
        let mut reader = DataReader::new(b"Received: x\r\n".to_vec(), 6, unlimited());
        reader.feed(b"abcd\r\n.\r\n");
        assert!(reader.is_done());
        assert_eq!(reader.finish().0, Ok(b"Received: x\r\nabcd\r\n".to_vec()));
    }

    #[test]
    fn eight_bit_and_utf8_bytes_pass_unchanged() {
        let text = "Subject: Grüße ✓\r\n\r\nçà\r\n".as_bytes();
        assert_eq!(whole(&[text, b".\r\n"].concat()), Ok(text.to_vec()));
    }

    #[test]
    fn what_is_kept_is_paid_for_from_the_budget_and_given_back() {
        let budget = MemoryBudget::new(4 * CHUNK, Gauge::default());
        let body = [b"x".repeat(100), b"\r\n".to_vec()].concat().repeat(1000);
        let mut reader = DataReader::new(b"Received: x\r\n".to_vec(), 1 << 20, Reservation::new(budget.clone()));
        reader.feed(&body);
        assert!(
            budget.used() >= reader.len(),
            "{} held for {} kept",
            budget.used(),
            reader.len()
        );
        assert!(budget.used() <= reader.len() + 13 + CHUNK);
        reader.feed(b".\r\n");
        let (verdict, reservation) = reader.finish();
        assert_eq!(verdict.map(|b| b.len()), Ok(13 + body.len()));
        assert!(budget.used() > 0, "held until the message is stored");
        drop(reservation);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn a_message_the_budget_cannot_hold_is_read_to_its_end_and_refused_for_now() {
        let budget = MemoryBudget::new(2 * CHUNK, Gauge::default());
        let mut other = Reservation::new(budget.clone());
        assert!(other.ensure(1, usize::MAX));
        let mut reader = DataReader::new(Vec::new(), 1 << 20, Reservation::new(budget.clone()));
        let line = [b"y".repeat(998), b"\r\n".to_vec()].concat();
        let used = reader.feed(&[line.repeat(100), b".\r\nQUIT\r\n".to_vec()].concat());
        assert!(reader.is_done());
        assert_eq!(used, 1000 * 100 + 3);
        assert_eq!(reader.len(), 0);
        let (verdict, reservation) = reader.finish();
        assert_eq!(verdict, Err(Refusal::NoMemory));
        assert_eq!(reservation.held(), 0, "nothing is held once refused");
        assert_eq!(budget.used(), CHUNK, "only the other session's");
    }

    #[test]
    fn a_refusal_for_good_wins_over_no_memory() {
        let budget = MemoryBudget::new(CHUNK, Gauge::default());
        let mut other = Reservation::new(budget.clone());
        assert!(other.ensure(CHUNK, usize::MAX));
        let read = |input: &[u8], max: usize| {
            let mut reader = DataReader::new(Vec::new(), max, Reservation::new(budget.clone()));
            reader.feed(input);
            assert!(reader.is_done());
            reader.finish().0
        };
        let long = [b"z\r\n".repeat(100), b".\r\n".to_vec()].concat();
        assert_eq!(read(&long, 10), Err(Refusal::TooLarge));
        assert_eq!(read(b"a\nb\r\n.\r\n", 100), Err(Refusal::BareLineEnding));
        assert_eq!(read(b"ab\r\n.\r\n", 100), Err(Refusal::NoMemory));
        assert_eq!(budget.used(), CHUNK);
    }
}
