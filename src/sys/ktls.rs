//! Kernel TLS (kTLS): a TLS session's record keys handed to the kernel, which from then on
//! encrypts what the socket sends (so `sendfile` and `splice` stay zero-copy on HTTPS) and
//! decrypts what it receives. The handshake stays in user space (rustls); see
//! `Documentation/networking/tls.rst` in the kernel for the interface.

use std::io;
use std::mem::size_of;
use std::os::fd::{AsRawFd, BorrowedFd};

/// A record cipher the kernel may take over.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum KtlsCipher {
    /// AES-128-GCM.
    Aes128Gcm,
    /// AES-256-GCM.
    Aes256Gcm,
    /// ChaCha20-Poly1305.
    Chacha20Poly1305,
}

impl KtlsCipher {
    const ALL: [KtlsCipher; 3] = [
        KtlsCipher::Aes128Gcm,
        KtlsCipher::Aes256Gcm,
        KtlsCipher::Chacha20Poly1305,
    ];

    fn bit(self) -> u8 {
        1 << self as u8
    }

    /// Its name, as the start-up line gives it.
    pub fn name(self) -> &'static str {
        match self {
            KtlsCipher::Aes128Gcm => "AES-128-GCM",
            KtlsCipher::Aes256Gcm => "AES-256-GCM",
            KtlsCipher::Chacha20Poly1305 => "ChaCha20-Poly1305",
        }
    }
}

/// The ciphers the kernel takes over in both directions (found by [`probe_ktls`]).
#[derive(Clone, Copy, PartialEq, Eq, Debug, Default)]
pub struct KtlsCiphers(u8);

impl KtlsCiphers {
    /// All of them (tests of what is done with them).
    #[cfg(test)]
    pub fn all() -> KtlsCiphers {
        KtlsCiphers(0b111)
    }

    /// Whether `cipher` is among them.
    pub fn contains(self, cipher: KtlsCipher) -> bool {
        self.0 & cipher.bit() != 0
    }

    /// Whether there are none.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Their names, comma-separated.
    pub fn names(self) -> String {
        let names: Vec<_> = KtlsCipher::ALL
            .into_iter()
            .filter(|&c| self.contains(c))
            .map(KtlsCipher::name)
            .collect();
        names.join(", ")
    }
}

/// One direction's keys as the kernel takes them (`struct tls12_crypto_info_*`, used for TLS
/// 1.3 too).
#[derive(Clone, Copy)]
pub enum CryptoInfo {
    /// AES-128-GCM.
    Aes128Gcm(libc::tls12_crypto_info_aes_gcm_128),
    /// AES-256-GCM.
    Aes256Gcm(libc::tls12_crypto_info_aes_gcm_256),
    /// ChaCha20-Poly1305.
    Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305),
}

impl CryptoInfo {
    /// The keys of one direction: `key` and the 12-byte `iv` as TLS derives them (for AES-GCM
    /// the kernel takes its first 4 bytes as the salt and the rest as the nonce's start),
    /// `seq` the number of the next record. `None` if `key` is not the cipher's size.
    pub fn new(
        cipher: KtlsCipher,
        tls13: bool,
        key: &[u8],
        iv: &[u8; 12],
        seq: u64,
    ) -> Option<CryptoInfo> {
        let version = if tls13 {
            libc::TLS_1_3_VERSION
        } else {
            libc::TLS_1_2_VERSION
        };
        let rec_seq = seq.to_be_bytes();
        Some(match cipher {
            KtlsCipher::Aes128Gcm => CryptoInfo::Aes128Gcm(libc::tls12_crypto_info_aes_gcm_128 {
                info: libc::tls_crypto_info {
                    version,
                    cipher_type: libc::TLS_CIPHER_AES_GCM_128,
                },
                iv: iv[4..].try_into().ok()?,
                key: key.try_into().ok()?,
                salt: iv[..4].try_into().ok()?,
                rec_seq,
            }),
            KtlsCipher::Aes256Gcm => CryptoInfo::Aes256Gcm(libc::tls12_crypto_info_aes_gcm_256 {
                info: libc::tls_crypto_info {
                    version,
                    cipher_type: libc::TLS_CIPHER_AES_GCM_256,
                },
                iv: iv[4..].try_into().ok()?,
                key: key.try_into().ok()?,
                salt: iv[..4].try_into().ok()?,
                rec_seq,
            }),
            KtlsCipher::Chacha20Poly1305 => {
                CryptoInfo::Chacha20Poly1305(libc::tls12_crypto_info_chacha20_poly1305 {
                    info: libc::tls_crypto_info {
                        version,
                        cipher_type: libc::TLS_CIPHER_CHACHA20_POLY1305,
                    },
                    iv: *iv,
                    key: key.try_into().ok()?,
                    salt: [],
                    rec_seq,
                })
            }
        })
    }

    /// The structure's address and size, for `setsockopt`.
    fn raw(&self) -> (*const libc::c_void, libc::socklen_t) {
        fn raw<T>(v: &T) -> (*const libc::c_void, libc::socklen_t) {
            ((v as *const T).cast(), size_of::<T>() as libc::socklen_t)
        }
        match self {
            CryptoInfo::Aes128Gcm(i) => raw(i),
            CryptoInfo::Aes256Gcm(i) => raw(i),
            CryptoInfo::Chacha20Poly1305(i) => raw(i),
        }
    }
}

fn setsockopt(
    sock: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    (value, len): (*const libc::c_void, libc::socklen_t),
) -> io::Result<()> {
    // SAFETY: `sock` is open for the call; `value` points to `len` readable bytes that live
    // for the call (the caller's borrowed structure or slice).
    let rc = unsafe { libc::setsockopt(sock.as_raw_fd(), level, name, value, len) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Hands a connection's record keys to the kernel: installs the `tls` upper-layer protocol on
/// `sock`, then the keys to send with (`tx`) and to receive with (`rx`). From then on the
/// socket carries plaintext for its user; a record that is not application data (an alert,
/// a key update) makes a plain `recv` fail with `EIO`.
pub fn ktls_install(sock: BorrowedFd<'_>, tx: &CryptoInfo, rx: &CryptoInfo) -> io::Result<()> {
    let ulp = b"tls";
    setsockopt(
        sock,
        libc::SOL_TCP,
        libc::TCP_ULP,
        (ulp.as_ptr().cast(), ulp.len() as libc::socklen_t),
    )?;
    setsockopt(sock, libc::SOL_TLS, libc::TLS_TX, tx.raw())?;
    setsockopt(sock, libc::SOL_TLS, libc::TLS_RX, rx.raw())
}

/// Sends the TLS `close_notify` alert through the kernel's TLS on a socket given to it with
/// [`ktls_install`] (`sendmsg` with a `TLS_SET_RECORD_TYPE` control message: the record's
/// type is alert, 21). Non-blocking; best effort, as a close is.
pub fn ktls_close_notify(sock: BorrowedFd<'_>) -> io::Result<()> {
    const ALERT: u8 = 21;
    let mut alert = [1u8, 0]; // warning, close_notify
    let mut iov = libc::iovec {
        iov_base: alert.as_mut_ptr().cast(),
        iov_len: alert.len(),
    };
    // SAFETY: CMSG_SPACE only computes a size.
    let space = unsafe { libc::CMSG_SPACE(1) } as usize;
    let mut control = [0u64; 4]; // 32 bytes, aligned for cmsghdr; CMSG_SPACE(1) is 24
    debug_assert!(space <= size_of::<[u64; 4]>());
    // SAFETY: msghdr is plain data; every pointer set below stays valid for the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space as _;
    // SAFETY: `msg` describes `control`, which has room for one header and one byte of data
    // (CMSG_SPACE(1)); CMSG_FIRSTHDR therefore returns a pointer inside it.
    unsafe {
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        (*cmsg).cmsg_level = libc::SOL_TLS;
        (*cmsg).cmsg_type = libc::TLS_SET_RECORD_TYPE;
        (*cmsg).cmsg_len = libc::CMSG_LEN(1) as _;
        *libc::CMSG_DATA(cmsg) = ALERT;
    }
    // SAFETY: `msg`, `iov`, `alert` and `control` are live for the call; `sock` is open.
    let rc = unsafe {
        libc::sendmsg(
            sock.as_raw_fd(),
            &msg,
            libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Which ciphers the kernel takes over in both directions: each one is installed, with zero
/// keys, on a loopback connection made for the purpose. Fails with the kernel's reason when it
/// has no kTLS at all (ENOENT for `TCP_ULP "tls"`: a kernel built without `CONFIG_TLS`).
pub fn probe_ktls() -> io::Result<KtlsCiphers> {
    let mut found = KtlsCiphers::default();
    for cipher in KtlsCipher::ALL {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        let client = std::net::TcpStream::connect(listener.local_addr()?)?;
        let (_server, _) = listener.accept()?;
        let keys = CryptoInfo::new(cipher, true, &[0; 32][..key_len(cipher)], &[0; 12], 0)
            .ok_or(io::ErrorKind::InvalidInput)?;
        let sock = std::os::fd::AsFd::as_fd(&client);
        match ktls_install(sock, &keys, &keys) {
            Ok(()) => found.0 |= cipher.bit(),
            // No `tls` module: nothing will work.
            Err(e) if found.is_empty() && e.raw_os_error() == Some(libc::ENOENT) => return Err(e),
            Err(_) => {}
        }
    }
    if found.is_empty() {
        return Err(io::Error::other("no cipher taken in both directions"));
    }
    Ok(found)
}

fn key_len(cipher: KtlsCipher) -> usize {
    match cipher {
        KtlsCipher::Aes128Gcm => 16,
        KtlsCipher::Aes256Gcm | KtlsCipher::Chacha20Poly1305 => 32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_probe_agrees_with_the_kernels_list_of_ulps() {
        // Loaded modules list their ULP here; `tls` may also load on demand, so only a
        // listed `tls` is a firm expectation.
        let listed = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_available_ulp")
            .is_ok_and(|l| l.split_whitespace().any(|u| u == "tls"));
        match probe_ktls() {
            Ok(ciphers) => assert!(ciphers.contains(KtlsCipher::Aes128Gcm), "{ciphers:?}"),
            Err(e) => {
                assert!(!listed, "tls is listed but the probe failed: {e}");
                let why = e.raw_os_error();
                assert!(
                    matches!(why, Some(libc::ENOENT | libc::EPERM | libc::EOPNOTSUPP)),
                    "{e}"
                );
                println!("skipped: the kernel has no kTLS here ({e})");
            }
        }
    }

    /// The bytes the kernel reads, field by field, for AES-128-GCM under TLS 1.3
    /// (`struct tls12_crypto_info_aes_gcm_128`: version, cipher, iv[8], key[16], salt[4],
    /// rec_seq[8], 40 bytes).
    #[test]
    fn keys_are_laid_out_as_the_kernel_reads_them() {
        let key: Vec<u8> = (1..=16).collect();
        let iv: [u8; 12] = std::array::from_fn(|i| 0xa0 + i as u8);
        let info = CryptoInfo::new(KtlsCipher::Aes128Gcm, true, &key, &iv, 0x0102).unwrap();
        let (ptr, len) = info.raw();
        assert_eq!(len, 40);
        // SAFETY: `ptr` points to the `len` bytes of `info`, alive for this scope.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize) };
        assert_eq!(
            &bytes[..4],
            &[0x04, 0x03, 51, 0],
            "0x0304, cipher 51, little-endian"
        );
        assert_eq!(&bytes[4..12], &iv[4..], "the nonce's explicit part");
        assert_eq!(&bytes[12..28], &key[..]);
        assert_eq!(&bytes[28..32], &iv[..4], "the salt");
        assert_eq!(
            &bytes[32..40],
            &[0, 0, 0, 0, 0, 0, 1, 2],
            "big-endian sequence"
        );

        let chacha =
            CryptoInfo::new(KtlsCipher::Chacha20Poly1305, false, &[7; 32], &iv, 9).unwrap();
        let (ptr, len) = chacha.raw();
        assert_eq!(len, 56);
        // SAFETY: as above.
        let bytes = unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), len as usize) };
        assert_eq!(&bytes[..4], &[0x03, 0x03, 54, 0]);
        assert_eq!(&bytes[4..16], &iv[..], "the whole iv, no salt");
        assert_eq!(&bytes[48..56], &9u64.to_be_bytes());
        assert!(CryptoInfo::new(KtlsCipher::Aes256Gcm, true, &[0; 16], &iv, 0).is_none());
    }
}
