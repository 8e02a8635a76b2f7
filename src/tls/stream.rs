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
            // rustls takes as much as its buffer has room for, which the drain below keeps
            // free; it takes nothing once the peer's close_notify has arrived, and then what
            // follows is dropped.
            match self.conn.read_tls(&mut data) {
                Ok(0) => break,
                Ok(_) => {}
                Err(_) => return Err(Fatal(rustls::Error::General("input overflow".into()))),
            }
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

    /// A client that takes any certificate: these tests are about the stream, not trust.
    #[derive(Debug)]
    struct AnyCert;

    impl rustls::client::danger::ServerCertVerifier for AnyCert {
        fn verify_server_cert(
            &self,
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &[rustls::pki_types::CertificateDer<'_>],
            _: &rustls::pki_types::ServerName<'_>,
            _: &[u8],
            _: rustls::pki_types::UnixTime,
        ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        }

        fn verify_tls12_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }

        fn verify_tls13_signature(
            &self,
            _: &[u8],
            _: &rustls::pki_types::CertificateDer<'_>,
            _: &rustls::DigitallySignedStruct,
        ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
            Ok(rustls::client::danger::HandshakeSignatureValid::assertion())
        }

        fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
            vec![rustls::SignatureScheme::ECDSA_NISTP256_SHA256]
        }
    }

    /// A server state and a client that have finished their handshake in memory.
    fn connected() -> (Tls, rustls::ClientConnection) {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = crate::tls::tests::self_signed(dir.path(), "localhost");
        let files = crate::tls::tests::files(&cert, &key);
        let (config, _) = crate::tls::server_config(&[files]).unwrap();
        let mut server = Tls::new(&config).unwrap();
        #[allow(deprecated)] // the server's provider (see certs.rs)
        let provider = rustls::crypto::ring::default_provider();
        let client_config = rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert))
            .with_no_client_auth();
        let name = "localhost".try_into().unwrap();
        let mut client = rustls::ClientConnection::new(Arc::new(client_config), name).unwrap();
        let mut plain = Vec::new();
        while client.is_handshaking() || server.is_handshaking() {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.receive(&wire, &mut plain).unwrap();
            let mut back = Vec::new();
            server.write_records(&mut back).unwrap();
            client.read_tls(&mut &back[..]).unwrap();
            client.process_new_packets().unwrap();
        }
        (server, client)
    }

    #[test]
    fn plaintext_crosses_both_ways() {
        let (mut server, mut client) = connected();
        client
            .writer()
            .write_all(b"GET / HTTP/1.1\r\n\r\n")
            .unwrap();
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        let mut plain = Vec::new();
        server.receive(&wire, &mut plain).unwrap();
        assert_eq!(plain, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(server.encrypt(b"HTTP/1.1 200 OK\r\n\r\n"), 19);
        let mut back = Vec::new();
        server.write_records(&mut back).unwrap();
        client.read_tls(&mut &back[..]).unwrap();
        client.process_new_packets().unwrap();
        let mut got = vec![0; 19];
        client.reader().read_exact(&mut got).unwrap();
        assert_eq!(got, b"HTTP/1.1 200 OK\r\n\r\n");
    }

    #[test]
    fn input_after_close_notify_is_dropped_not_looped_on() {
        let (mut server, mut client) = connected();
        client.send_close_notify();
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        // More than rustls reads at a time follows the close_notify in the same input: once
        // it has the close_notify it takes no more, and the rest must be dropped, not retried.
        for _ in 0..8 {
            wire.extend_from_slice(&[0x17, 0x03, 0x03, 0x10, 0x00]);
            wire.extend_from_slice(&[0; 0x1000]);
        }
        let mut plain = Vec::new();
        assert!(server.receive(&wire, &mut plain).is_ok());
        assert!(plain.is_empty());
    }
}
