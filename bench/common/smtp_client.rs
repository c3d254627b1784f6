//! A blocking SMTP client for the benchmarks (std `TcpStream`): lockstep commands, no pipelining, a
//! panic on any unexpected reply.

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One connection; every method panics when the server answers something else than expected.
pub struct SmtpClient {
    writer: TcpStream,
    reader: BufReader<TcpStream>,
    line: String,
}

impl SmtpClient {
    /// Connects and reads the `220` greeting.
    pub fn connect(addr: SocketAddr) -> SmtpClient {
        let stream = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        stream.set_nodelay(true).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut client = SmtpClient {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
            line: String::new(),
        };
        client.expect(220);
        client
    }

    /// Reads one reply (all its lines) and checks its code.
    pub fn expect(&mut self, code: u16) {
        loop {
            self.line.clear();
            let n = self.reader.read_line(&mut self.line).expect("read an SMTP reply");
            assert!(n > 0, "the server closed the connection");
            let got: u16 = self.line.get(..3).and_then(|c| c.parse().ok()).unwrap_or(0);
            assert_eq!(got, code, "unexpected reply: {}", self.line.trim_end());
            if self.line.as_bytes().get(3) != Some(&b'-') {
                return;
            }
        }
    }

    pub fn command(&mut self, line: &str, code: u16) {
        self.writer.write_all(line.as_bytes()).unwrap();
        self.writer.write_all(b"\r\n").unwrap();
        self.expect(code);
    }

    /// One transaction; returns when the `250` after the final dot has been read.
    pub fn send(&mut self, content: &[u8]) {
        self.command("MAIL FROM:<bench@example.com>", 250);
        self.command("RCPT TO:<sink@example.com>", 250);
        self.command("DATA", 354);
        self.writer.write_all(content).unwrap();
        self.expect(250);
    }

    pub fn quit(&mut self) {
        let _ = self.writer.write_all(b"QUIT\r\n");
        self.line.clear();
        let _ = self.reader.read_line(&mut self.line);
    }
}
