//! One client connection: the byte stream (plain TCP, or TLS from the start or after STARTTLS), the
//! input buffer the session parses from, and the replies waiting to be sent.
//!
//! - **Bounded input.** A command line is read into the buffer only up to its limit; past it, the
//!   rest of the line is read and dropped. Reading never buffers more than one limit plus one read.
//! - **Replies are batched** (RFC 2920): a reply is queued, and the queue is written when the session
//!   needs more input than it has, so a pipelining client gets its replies in one packet.
//! - **Every wait has a deadline**: reading a line, reading DATA, writing replies, the TLS handshake.
//! - **STARTTLS starts clean.** The upgrade is refused while plaintext input is still buffered (the
//!   session checks [`Conn::has_input`]), so nothing sent before the handshake is read as if it had
//!   come through TLS (CVE-2011-0411).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

use super::reply::Reply;

const READ_CHUNK: usize = 8 * 1024;

/// Why no line (or no data) could be read.
#[derive(Debug)]
pub(super) enum ReadError {
    /// The client sent nothing for the whole timeout.
    Timeout,
    /// The client closed the connection (or it broke).
    Closed,
}

/// A line read, or one that was too long (its bytes are dropped).
pub(super) enum Line {
    /// The line without its CRLF (or LF).
    Complete(Vec<u8>),
    TooLong,
}

enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    /// Only while the stream is being upgraded, or after a failed upgrade.
    Gone,
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Stream::Gone => Poll::Ready(Err(io::ErrorKind::NotConnected.into())),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Stream::Gone => Poll::Ready(Ok(())),
        }
    }
}

pub(super) struct Conn {
    stream: Stream,
    input: Vec<u8>,
    /// Start of the unread input in `input`.
    pos: usize,
    output: Vec<u8>,
    /// Deadline for writing queued replies.
    write_timeout: Duration,
}

impl Conn {
    pub fn plain(stream: TcpStream, write_timeout: Duration) -> Conn {
        Conn::new(Stream::Plain(stream), write_timeout)
    }

    pub fn tls(stream: TlsStream<TcpStream>, write_timeout: Duration) -> Conn {
        Conn::new(Stream::Tls(Box::new(stream)), write_timeout)
    }

    fn new(stream: Stream, write_timeout: Duration) -> Conn {
        Conn {
            stream,
            input: Vec::new(),
            pos: 0,
            output: Vec::new(),
            write_timeout,
        }
    }

    pub fn is_tls(&self) -> bool {
        matches!(self.stream, Stream::Tls(_))
    }

    /// Whether unread input is buffered (a pipelining check).
    pub fn has_input(&self) -> bool {
        self.pos < self.input.len()
    }

    /// Unread input.
    pub fn input(&self) -> &[u8] {
        &self.input[self.pos..]
    }

    pub fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.input.len());
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        }
    }

    /// Queues a reply; it is sent with the next [`Conn::flush`] or before the next wait for input.
    pub fn queue(&mut self, reply: &Reply) {
        reply.render(&mut self.output);
    }

    /// Writes the queued replies.
    pub async fn flush(&mut self) -> io::Result<()> {
        if self.output.is_empty() {
            return Ok(());
        }
        let output = std::mem::take(&mut self.output);
        let write = async {
            self.stream.write_all(&output).await?;
            self.stream.flush().await
        };
        tokio::time::timeout(self.write_timeout, write)
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))?
    }

    /// Sends a last reply and closes the connection, ignoring errors (the client may be gone).
    pub async fn close_with(&mut self, reply: &Reply) {
        self.queue(reply);
        self.close().await;
    }

    /// Sends the queued replies and closes the connection, ignoring errors.
    pub async fn close(&mut self) {
        let _ = self.flush().await;
        let _ = tokio::time::timeout(self.write_timeout, self.stream.shutdown()).await;
    }

    /// Reads more input (after flushing queued replies): the number of bytes read, 0 at the end.
    async fn fill(&mut self) -> io::Result<usize> {
        self.flush().await?;
        if self.pos > 0 && self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        }
        if self.input.is_empty() && self.input.capacity() > 4 * READ_CHUNK {
            // A long burst of input is over: an idle session does not keep its buffer.
            self.input.shrink_to(READ_CHUNK);
        }
        // Straight into the buffer's spare capacity: no zeroed array on the stack (it would be
        // cleared on every read and held in the session's future while it waits).
        self.input.reserve(READ_CHUNK);
        self.stream.read_buf(&mut self.input).await
    }

    /// Reads what has arrived without waiting; true when the client sent anything (or closed).
    pub async fn has_spoken(&mut self, wait: Duration) -> bool {
        if self.has_input() {
            return true;
        }
        if wait.is_zero() {
            use futures::FutureExt;
            return match self.fill().now_or_never() {
                Some(Ok(n)) => n > 0,
                Some(Err(_)) => true,
                None => false,
            };
        }
        match tokio::time::timeout(wait, self.fill()).await {
            Ok(Ok(n)) => n > 0,
            Ok(Err(_)) => true,
            Err(_) => false,
        }
    }

    /// Reads one line of at most `max` octets (without its line ending) within `timeout`. A line
    /// ends at LF, with or without CR before it (commands only: DATA has its own rules).
    pub async fn read_line(&mut self, max: usize, timeout: Duration) -> Result<Line, ReadError> {
        match tokio::time::timeout(timeout, self.read_line_inner(max)).await {
            Ok(result) => result,
            Err(_) => Err(ReadError::Timeout),
        }
    }

    async fn read_line_inner(&mut self, max: usize) -> Result<Line, ReadError> {
        let mut too_long = false;
        loop {
            let unread = &self.input[self.pos..];
            if let Some(at) = unread.iter().position(|&b| b == b'\n') {
                let mut line = unread[..at].to_vec();
                self.consume(at + 1);
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                if too_long || line.len() > max {
                    return Ok(Line::TooLong);
                }
                return Ok(Line::Complete(line));
            }
            if unread.len() > max {
                // Drop what was read of the line (keeping a CR that may precede its LF), and go on
                // reading until its end.
                too_long = true;
                let keep = usize::from(unread.last() == Some(&b'\r'));
                self.consume(unread.len() - keep);
            }
            match self.fill().await {
                Ok(0) | Err(_) => return Err(ReadError::Closed),
                Ok(_) => {}
            }
        }
    }

    /// Waits within `timeout` for more input, for the DATA reader, which takes what it needs with
    /// [`Conn::input`] and [`Conn::consume`].
    pub async fn read_more(&mut self, timeout: Duration) -> Result<(), ReadError> {
        match tokio::time::timeout(timeout, self.fill()).await {
            Ok(Ok(0) | Err(_)) => Err(ReadError::Closed),
            Ok(Ok(_)) => Ok(()),
            Err(_) => Err(ReadError::Timeout),
        }
    }

    /// Upgrades the plain connection to TLS within `timeout` (the `220` was flushed). On failure the
    /// connection is unusable and the session ends.
    pub async fn start_tls(&mut self, acceptor: &TlsAcceptor, timeout: Duration) -> io::Result<()> {
        self.flush().await?;
        self.input.clear();
        self.pos = 0;
        let Stream::Plain(tcp) = std::mem::replace(&mut self.stream, Stream::Gone) else {
            return Err(io::Error::other("the connection is not a plain one"));
        };
        let tls = tokio::time::timeout(timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        self.stream = Stream::Tls(Box::new(tls));
        Ok(())
    }
}
