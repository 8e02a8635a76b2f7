//! One connection's TLS state, sans I/O: ciphertext in, plaintext out for the HTTP/1 session,
//! and plaintext in, records out for the transport to write. rustls does the protocol through
//! its unbuffered API: the ciphertext waiting for the rest of its record and the records
//! waiting for the socket sit in buffers lent from the worker's [`BufferPool`] only while
//! they hold bytes, so an idle connection holds rustls's state and nothing more.

use std::io::{self, Write};
use std::sync::Arc;

use rustls::server::{ServerConnectionData, UnbufferedServerConnection};
use rustls::unbuffered::{ConnectionState, EncodeError, EncodeTlsData, EncryptError};
use rustls::ServerConfig;

use super::buffers::{BufferPool, Pending};
use super::kernel;
use crate::sys::{CryptoInfo, KtlsCipher, KtlsCiphers};

/// Plaintext taken from rustls at a time when the transport asks for more to encrypt; keeps
/// the records a response has in flight to a few.
pub const CHUNK: usize = 16 * 1024;

/// Room asked for one [`CHUNK`] of plaintext as records: one record's header, tag and
/// content type, with margin.
const RECORD_ROOM: usize = CHUNK + 64;

/// Why a connection's TLS failed; the transport writes what alert rustls queued, then closes.
#[derive(Debug)]
pub struct Fatal(pub rustls::Error);

/// A TLS server connection.
pub struct Tls {
    conn: UnbufferedServerConnection,
    /// Ciphertext received short of a whole record.
    incoming: Pending,
    /// Records to write.
    outgoing: Pending,
    /// The peer's close_notify arrived: what follows is dropped.
    peer_closed: bool,
}

impl Tls {
    /// A connection about to receive its ClientHello, under `config`.
    pub fn new(config: &Arc<ServerConfig>) -> Result<Tls, Fatal> {
        let conn = UnbufferedServerConnection::new(Arc::clone(config)).map_err(Fatal)?;
        Ok(Tls {
            conn,
            incoming: Pending::default(),
            outgoing: Pending::default(),
            peer_closed: false,
        })
    }

    /// Takes the received ciphertext `data` whole and appends the plaintext it carried to
    /// `plain`. An error is fatal: the alert rustls queued is still to be written.
    pub fn receive(
        &mut self,
        mut data: &[u8],
        plain: &mut Vec<u8>,
        pool: &mut BufferPool,
    ) -> Result<(), Fatal> {
        while !data.is_empty() && !self.peer_closed {
            let n = self.incoming.append(data, pool);
            data = &data[n..];
            if let Err(e) = self.process(plain, pool) {
                self.incoming.release(pool);
                self.queue_alert(pool);
                return Err(e);
            }
        }
        if self.peer_closed {
            self.incoming.release(pool);
        }
        Ok(())
    }

    /// Processes the whole records waiting in `incoming`: their plaintext to `plain`, the
    /// handshake messages they call for to `outgoing`.
    fn process(&mut self, plain: &mut Vec<u8>, pool: &mut BufferPool) -> Result<(), Fatal> {
        loop {
            let status = self.conn.process_tls_records(self.incoming.bytes_mut());
            let mut discard = status.discard;
            let more = match status.state.map_err(Fatal)? {
                ConnectionState::ReadTraffic(mut records) => {
                    while let Some(record) = records.next_record() {
                        let record = record.map_err(Fatal)?;
                        discard += record.discard;
                        plain.extend_from_slice(record.payload);
                    }
                    true
                }
                ConnectionState::EncodeTlsData(mut encode) => {
                    encode_into(&mut encode, &mut self.outgoing, pool);
                    true
                }
                // Its records wait in `outgoing` ahead of anything queued later, and leave
                // in that order.
                ConnectionState::TransmitTlsData(transmit) => {
                    transmit.done();
                    true
                }
                ConnectionState::PeerClosed => {
                    self.peer_closed = true;
                    false
                }
                // Early data is not enabled; waiting for input, or nothing to read.
                _ => false,
            };
            self.incoming.consume(discard, pool);
            if !more {
                return Ok(());
            }
        }
    }

    /// After a fatal error, moves the alert rustls queued to `outgoing`.
    fn queue_alert(&mut self, pool: &mut BufferPool) {
        loop {
            match self.conn.process_tls_records(&mut []).state {
                Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                    encode_into(&mut encode, &mut self.outgoing, pool);
                }
                Ok(ConnectionState::TransmitTlsData(transmit)) => transmit.done(),
                _ => return,
            }
        }
    }

    /// Whether the handshake is done.
    pub fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Whether records are waiting to be written.
    pub fn wants_write(&self) -> bool {
        !self.outgoing.is_empty()
    }

    /// Writes waiting records to `sock` until they are all out or it would block; the buffer
    /// they were in goes back to `pool`.
    pub fn write_records(
        &mut self,
        sock: &mut impl Write,
        pool: &mut BufferPool,
    ) -> io::Result<()> {
        while !self.outgoing.is_empty() {
            match sock.write(self.outgoing.bytes())? {
                0 => return Err(io::ErrorKind::WriteZero.into()),
                n => self.outgoing.consume(n, pool),
            }
        }
        Ok(())
    }

    /// Encrypts up to a [`CHUNK`] of `plain` into records waiting to be written, once the
    /// handshake is done; returns how much it took (0 before, or once the stream is closed).
    pub fn encrypt(&mut self, plain: &[u8], pool: &mut BufferPool) -> usize {
        let plain = &plain[..plain.len().min(CHUNK)];
        let status = self.conn.process_tls_records(self.incoming.bytes_mut());
        let discard = status.discard;
        let taken = match status.state {
            Ok(ConnectionState::WriteTraffic(mut traffic)) => {
                let mut room = RECORD_ROOM;
                loop {
                    let out = self.outgoing.room(room, pool);
                    match traffic.encrypt(plain, out) {
                        Ok(n) => {
                            self.outgoing.commit(n);
                            break plain.len();
                        }
                        Err(EncryptError::InsufficientSize(s)) => room = s.required_size,
                        Err(_) => break 0,
                    }
                }
            }
            // A handshake message queued since (a key update answered): out first.
            Ok(ConnectionState::EncodeTlsData(mut encode)) => {
                encode_into(&mut encode, &mut self.outgoing, pool);
                usize::MAX
            }
            Ok(ConnectionState::TransmitTlsData(transmit)) => {
                transmit.done();
                usize::MAX
            }
            _ => 0,
        };
        self.incoming.consume(discard, pool);
        if taken == usize::MAX {
            return self.encrypt(plain, pool);
        }
        if self.outgoing.is_empty() {
            self.outgoing.release(pool);
        }
        taken
    }

    /// Queues `close_notify`: the graceful end of the TLS stream (RFC 8446 §6.1).
    pub fn close(&mut self, pool: &mut BufferPool) {
        let status = self.conn.process_tls_records(&mut []);
        if let Ok(ConnectionState::WriteTraffic(mut traffic)) = status.state {
            let mut room = 64;
            loop {
                match traffic.queue_close_notify(self.outgoing.room(room, pool)) {
                    Ok(n) => return self.outgoing.commit(n),
                    Err(EncryptError::InsufficientSize(s)) => room = s.required_size,
                    Err(_) => return,
                }
            }
        }
    }

    /// The kernel cipher the session could go on with (kTLS), if it is among `ciphers` and
    /// the session is at a point where it can be handed over: handshake done, the peer not
    /// closed, nothing waiting in either direction.
    pub fn kernel_cipher(&self, ciphers: KtlsCiphers) -> Option<KtlsCipher> {
        let quiet = self.incoming.is_empty() && self.outgoing.is_empty() && !self.peer_closed;
        if ciphers.is_empty() || self.conn.is_handshaking() || !quiet {
            return None;
        }
        let cipher = kernel::cipher_of(self.conn.negotiated_cipher_suite()?)?;
        ciphers.contains(cipher).then_some(cipher)
    }

    /// Hands the session to the kernel: the keys to send with and to receive with, for
    /// [`crate::sys::ktls_install`]. Call only once [`Tls::kernel_cipher`] agreed (and with
    /// a configuration that allows extracting secrets); the user-space state is gone
    /// afterwards whatever the outcome. Key updates are not followed: a peer's key update
    /// ends the connection (its record fails the kernel's `recv`).
    pub fn into_kernel(self) -> Result<(CryptoInfo, CryptoInfo), Fatal> {
        let version = self.conn.protocol_version();
        let (secrets, _) = self
            .conn
            .dangerous_into_kernel_connection()
            .map_err(Fatal)?;
        let version = version.ok_or(Fatal(rustls::Error::HandshakeNotComplete))?;
        let tx = kernel::crypto_info(version, secrets.tx);
        let rx = kernel::crypto_info(version, secrets.rx);
        tx.zip(rx)
            .ok_or_else(|| Fatal(rustls::Error::General("no kernel cipher".into())))
    }

    /// Gives back the buffers a closing connection holds.
    pub fn release(&mut self, pool: &mut BufferPool) {
        self.incoming.release(pool);
        self.outgoing.release(pool);
    }
}

/// Encodes a handshake message rustls has ready into `out`, after what waits there.
fn encode_into(
    encode: &mut EncodeTlsData<'_, ServerConnectionData>,
    out: &mut Pending,
    pool: &mut BufferPool,
) {
    let mut room = 1;
    loop {
        match encode.encode(out.room(room, pool)) {
            Ok(n) => return out.commit(n),
            Err(EncodeError::InsufficientSize(s)) => room = s.required_size,
            Err(_) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn garbage_is_fatal_and_answered_with_an_alert() {
        let config = crate::tls::tests::localhost_config();
        let mut tls = Tls::new(&config).unwrap();
        let mut plain = Vec::new();
        let mut pool = BufferPool::default();
        assert!(tls
            .receive(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", &mut plain, &mut pool)
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
        let config = crate::tls::tests::localhost_config();
        let config = crate::tls::per_worker(&config, true);
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
        let mut pool = BufferPool::default();
        while client.is_handshaking() || server.is_handshaking() {
            let mut wire = Vec::new();
            client.write_tls(&mut wire).unwrap();
            server.receive(&wire, &mut plain, &mut pool).unwrap();
            let mut back = Vec::new();
            server.write_records(&mut back, &mut pool).unwrap();
            client.read_tls(&mut &back[..]).unwrap();
            client.process_new_packets().unwrap();
        }
        (server, client)
    }

    /// The records `client` sends for `plain`.
    fn records(client: &mut rustls::ClientConnection, plain: &[u8]) -> Vec<u8> {
        client.writer().write_all(plain).unwrap();
        let mut wire = Vec::new();
        client.write_tls(&mut wire).unwrap();
        wire
    }

    #[test]
    fn plaintext_crosses_both_ways() {
        let (mut server, mut client) = connected();
        let wire = records(&mut client, b"GET / HTTP/1.1\r\n\r\n");
        let mut plain = Vec::new();
        let mut pool = BufferPool::default();
        server.receive(&wire, &mut plain, &mut pool).unwrap();
        assert_eq!(plain, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(server.encrypt(b"HTTP/1.1 200 OK\r\n\r\n", &mut pool), 19);
        let mut back = Vec::new();
        server.write_records(&mut back, &mut pool).unwrap();
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
        let mut pool = BufferPool::default();
        assert!(server.receive(&wire, &mut plain, &mut pool).is_ok());
        assert!(plain.is_empty());
    }

    #[test]
    fn a_record_split_across_receives_waits_in_a_lent_buffer_until_whole() {
        let (mut server, mut client) = connected();
        let wire = records(&mut client, b"GET /a HTTP/1.1\r\n\r\n");
        let (first, rest) = wire.split_at(wire.len() / 2);
        let (mut plain, mut pool) = (Vec::new(), BufferPool::default());
        server.receive(first, &mut plain, &mut pool).unwrap();
        assert!(plain.is_empty());
        assert!(server.incoming.holds_buffer(), "half a record is kept");
        server.receive(rest, &mut plain, &mut pool).unwrap();
        assert_eq!(plain, b"GET /a HTTP/1.1\r\n\r\n");
        assert!(!server.incoming.holds_buffer());
    }

    #[test]
    fn an_idle_connection_holds_no_buffer() {
        let (mut server, mut client) = connected();
        let mut pool = BufferPool::default();
        let body = vec![b'x'; 3 * CHUNK + 5];
        let mut got = Vec::new();
        let mut sent = 0;
        while sent < body.len() {
            sent += server.encrypt(&body[sent..], &mut pool);
            let mut back = Vec::new();
            server.write_records(&mut back, &mut pool).unwrap();
            assert!(!server.outgoing.holds_buffer(), "given back once written");
            // rustls's client takes a few KiB at a time.
            let mut wire = &back[..];
            while !wire.is_empty() {
                client.read_tls(&mut wire).unwrap();
                client.process_new_packets().unwrap();
            }
            let mut buf = [0; 4096];
            while let Ok(n) = client.reader().read(&mut buf) {
                got.extend_from_slice(&buf[..n]);
            }
        }
        assert!(got == body, "{} bytes of {}", got.len(), body.len());
        assert!(!server.incoming.holds_buffer());
        assert_eq!(pool.free(), 1, "one buffer served the whole response");
        // A socket that takes nothing keeps the records, and their buffer, until it does.
        assert_eq!(server.encrypt(b"more", &mut pool), 4);
        struct Full;
        impl Write for Full {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::WouldBlock.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        assert!(server.write_records(&mut Full, &mut pool).is_err());
        assert!(server.wants_write() && server.outgoing.holds_buffer());
        server.release(&mut pool);
    }

    #[test]
    fn a_quiet_session_goes_to_the_kernel_with_its_keys() {
        let all = KtlsCiphers::all();
        let (mut server, mut client) = connected();
        // Waiting for the rest of a record: not now.
        let wire = records(&mut client, b"GET / HTTP/1.1\r\n\r\n");
        let (mut plain, mut pool) = (Vec::new(), BufferPool::default());
        server.receive(&wire[..3], &mut plain, &mut pool).unwrap();
        assert_eq!(server.kernel_cipher(all), None);
        assert_eq!(server.kernel_cipher(KtlsCiphers::default()), None);
        server.receive(&wire[3..], &mut plain, &mut pool).unwrap();
        let cipher = server
            .kernel_cipher(all)
            .expect("quiet after a whole record");
        let negotiated = client.negotiated_cipher_suite().unwrap();
        assert_eq!(Some(cipher), kernel::cipher_of(negotiated));
        assert!(server.into_kernel().is_ok());
    }

    /// The keys handed to the kernel are the session's: a record sealed with them as the
    /// kernel seals a TLS 1.3 record is read by the client.
    #[test]
    fn the_keys_for_the_kernel_seal_records_the_client_reads() {
        use ring::aead;
        let (server, mut client) = connected();
        let tls13 = Some(rustls::ProtocolVersion::TLSv1_3);
        assert_eq!(client.protocol_version(), tls13);
        let (tx, rx) = server.into_kernel().unwrap();
        // The key, and the nonce of the direction's next record (its iv xor its sequence).
        let key_nonce = |info: &CryptoInfo| {
            let join =
                |salt: &[u8], iv: &[u8]| -> [u8; 12] { [salt, iv].concat().try_into().unwrap() };
            let (alg, key, mut nonce, seq) = match info {
                CryptoInfo::Aes128Gcm(i) => {
                    let iv = join(&i.salt, &i.iv);
                    (&aead::AES_128_GCM, &i.key[..], iv, i.rec_seq)
                }
                CryptoInfo::Aes256Gcm(i) => {
                    let iv = join(&i.salt, &i.iv);
                    (&aead::AES_256_GCM, &i.key[..], iv, i.rec_seq)
                }
                CryptoInfo::Chacha20Poly1305(i) => {
                    (&aead::CHACHA20_POLY1305, &i.key[..], i.iv, i.rec_seq)
                }
            };
            for (n, s) in nonce[4..].iter_mut().zip(seq) {
                *n ^= s;
            }
            let key = aead::LessSafeKey::new(aead::UnboundKey::new(alg, key).unwrap());
            (key, aead::Nonce::assume_unique_for_key(nonce))
        };
        // Sent: a record sealed with the keys to send with.
        let (key, nonce) = key_nonce(&tx);
        let mut sealed = b"sealed as the kernel would".to_vec();
        sealed.push(0x17); // the inner content type: application data
        let len = sealed.len() + aead::MAX_TAG_LEN;
        let header = [0x17, 0x03, 0x03, (len >> 8) as u8, len as u8];
        key.seal_in_place_append_tag(nonce, aead::Aad::from(header), &mut sealed)
            .unwrap();
        let record = [&header[..], &sealed].concat();
        client.read_tls(&mut &record[..]).unwrap();
        client.process_new_packets().unwrap();
        let mut got = [0; 26];
        client.reader().read_exact(&mut got).unwrap();
        assert_eq!(&got, b"sealed as the kernel would");
        // Received: the client's next record opens with the keys to receive with.
        let mut wire = records(&mut client, b"GET / HTTP/1.1\r\n\r\n");
        let (key, nonce) = key_nonce(&rx);
        let header: [u8; 5] = wire[..5].try_into().unwrap();
        let opened = key
            .open_in_place(nonce, aead::Aad::from(header), &mut wire[5..])
            .unwrap();
        assert_eq!(opened, b"GET / HTTP/1.1\r\n\r\n\x17");
    }
}
