//! Clients of Herald's SMTP submission server for the tests: a raw TCP client that writes exactly
//! the bytes a test gives it (pipelining, hostile input), and a test CA with a certificate for
//! `localhost` and 127.0.0.1 written as PEM files (STARTTLS and SMTPS with smtplib and swaks).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for a reply before failing (a deadline, not a measurement).
const REPLY_DEADLINE: Duration = Duration::from_secs(20);

/// A raw SMTP connection.
pub struct RawSmtp {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl RawSmtp {
    /// Connects without reading the greeting.
    pub async fn connect(addr: SocketAddr) -> RawSmtp {
        RawSmtp {
            stream: TcpStream::connect(addr).await.expect("connect to the SMTP listener"),
            buf: Vec::new(),
        }
    }

    /// Connects and reads the greeting, which must be 220.
    pub async fn open(addr: SocketAddr) -> RawSmtp {
        let mut client = RawSmtp::connect(addr).await;
        let greeting = client.reply().await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        client
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to the SMTP server");
    }

    /// Reads one complete reply (all its lines), as text with CRLF line endings.
    pub async fn reply(&mut self) -> String {
        match tokio::time::timeout(REPLY_DEADLINE, self.read_reply()).await {
            Ok(Some(reply)) => reply,
            Ok(None) => panic!(
                "the server closed the connection instead of replying (buffered: {:?})",
                String::from_utf8_lossy(&self.buf)
            ),
            Err(_) => panic!(
                "no reply within {REPLY_DEADLINE:?} (buffered: {:?})",
                String::from_utf8_lossy(&self.buf)
            ),
        }
    }

    async fn read_reply(&mut self) -> Option<String> {
        let mut start = 0;
        loop {
            while let Some(at) = self.buf[start..].windows(2).position(|w| w == b"\r\n") {
                let line = &self.buf[start..start + at];
                start += at + 2;
                if line.len() < 4 || line[3] == b' ' {
                    let reply = String::from_utf8_lossy(&self.buf[..start]).into_owned();
                    self.buf.drain(..start);
                    return Some(reply);
                }
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Sends a command line (CRLF added) and returns the reply.
    pub async fn command(&mut self, line: &str) -> String {
        self.send(format!("{line}\r\n").as_bytes()).await;
        self.reply().await
    }

    /// Reads until the server closes the connection; returns what it sent meanwhile. Fails if the
    /// server keeps it open past the deadline.
    pub async fn until_closed(&mut self) -> String {
        let read = async {
            let mut chunk = [0u8; 4096];
            loop {
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        };
        assert!(
            tokio::time::timeout(REPLY_DEADLINE, read).await.is_ok(),
            "the server did not close the connection"
        );
        String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned()
    }
}

/// A private CA and a server certificate signed by it, as PEM files in a temporary directory.
pub struct TestCa {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    _dir: TempDir,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        // Distinct names: OpenSSL (smtplib, swaks) takes a certificate whose subject is its issuer
        // for a self-signed one.
        ca_params.distinguished_name.push(DnType::CommonName, "Herald test CA");
        let ca_key = KeyPair::generate().unwrap();
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let mut server_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).unwrap();
        server_params.distinguished_name.push(DnType::CommonName, "localhost");
        let server_cert = server_params.signed_by(&server_key, &ca).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, pem: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        TestCa {
            ca: write("ca.pem", ca.pem()),
            cert: write("cert.pem", server_cert.pem()),
            key: write("key.pem", server_key.serialize_pem()),
            _dir: dir,
        }
    }
}
