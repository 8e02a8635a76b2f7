//! One connection's TLS state, sans I/O: ciphertext in, plaintext out for the HTTP/1 session,
//! and plaintext in, records out for the transport to write. rustls does the protocol; this
//! is the small surface the engine drives it through.

use std::io::{self, Read, Write};
use std::sync::Arc;

use rustls::{ServerConfig, ServerConnection};

/// Plaintext taken from rustls at a time when the transport asks for more to encrypt; keeps
/// the records a response has in flight to a few.
pub const CHUNK: usize = 16 * 1024;

/// Why a connection's TLS failed; the transport writes what alert rustls queued, then closes.
#[derive(Debug)]
pub struct Fatal(pub rustls::Error);

/// A TLS server connection.
pub struct Tls {
    conn: ServerConnection,
}

impl Tls {
    /// A connection about to receive its ClientHello, under `config`.
    pub fn new(config: &Arc<ServerConfig>) -> Result<Tls, Fatal> {
        ServerConnection::new(Arc::clone(config))
            .map(|conn| Tls { conn })
            .map_err(Fatal)
    }

    /// Takes the received ciphertext `data` whole and appends the plaintext it carried to
    /// `plain`. An error is fatal: the alert rustls queued is still to be written.
    pub fn receive(&mut self, mut data: &[u8], plain: &mut Vec<u8>) -> Result<(), Fatal> {
        while !data.is_empty() {
            // A slice never fails to read; rustls takes as much as its buffer has room for.
            let _ = self.conn.read_tls(&mut data);
            self.conn.process_new_packets().map_err(Fatal)?;
            self.drain_plaintext(plain);
        }
        Ok(())
    }

    fn drain_plaintext(&mut self, plain: &mut Vec<u8>) {
        let mut reader = self.conn.reader();
        let mut buf = [0; 4096];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => plain.extend_from_slice(&buf[..n]),
                // WouldBlock: nothing more for now; other errors surface as the peer's close.
                Err(_) => return,
            }
        }
    }

    /// Whether the handshake is done.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether records are waiting to be written.
    pub fn wants_write(&self) -> bool {
        self.conn.wants_write()
    }

    /// Writes waiting records to `sock` until they are all out or it would block.
    pub fn write_records(&mut self, sock: &mut impl Write) -> io::Result<()> {
        while self.conn.wants_write() {
            if self.conn.write_tls(sock)? == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
        }
        Ok(())
    }

    /// Encrypts as much of `plain` as rustls buffers (at least some once the handshake is
    /// done); returns how much it took.
    pub fn encrypt(&mut self, plain: &[u8]) -> usize {
        self.conn.writer().write(plain).unwrap_or(0)
    }

    /// Queues `close_notify`: the graceful end of the TLS stream (RFC 8446 §6.1).
    pub fn close(&mut self) {
        self.conn.send_close_notify();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_fatal_and_answered_with_an_alert() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = crate::tls::tests::self_signed(dir.path(), "localhost");
        let files = crate::tls::tests::files(&cert, &key);
        let (config, _) = crate::tls::server_config(&[files]).unwrap();
        let mut tls = Tls::new(&config).unwrap();
        let mut plain = Vec::new();
        assert!(tls
            .receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut plain)
            .is_err());
        assert!(plain.is_empty());
        assert!(tls.wants_write(), "an alert is queued");
    }
}
