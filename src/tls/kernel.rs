//! Handing a finished handshake's session to the kernel (kTLS), sans I/O: which kernel cipher
//! a negotiated suite needs, and the keys rustls extracts laid out for the kernel. The engine
//! installs them on the socket ([`crate::sys::ktls_install`]) and from then on sends and
//! receives plaintext, file bodies with `sendfile` again.

use rustls::{CipherSuite, ConnectionTrafficSecrets, ProtocolVersion, SupportedCipherSuite};

use crate::sys::{CryptoInfo, KtlsCipher};

/// The kernel cipher the records of `suite` use.
pub fn cipher_of(suite: SupportedCipherSuite) -> Option<KtlsCipher> {
    match suite.suite() {
        CipherSuite::TLS13_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 => Some(KtlsCipher::Aes128Gcm),
        CipherSuite::TLS13_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
        | CipherSuite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 => Some(KtlsCipher::Aes256Gcm),
        CipherSuite::TLS13_CHACHA20_POLY1305_SHA256
        | CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
        | CipherSuite::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256 => {
            Some(KtlsCipher::Chacha20Poly1305)
        }
        _ => None,
    }
}

/// One direction's extracted keys, `seq` the number of its next record, as the kernel takes
/// them.
pub fn crypto_info(
    version: ProtocolVersion,
    (seq, secrets): (u64, ConnectionTrafficSecrets),
) -> Option<CryptoInfo> {
    let tls13 = version == ProtocolVersion::TLSv1_3;
    let (cipher, key, iv) = match &secrets {
        ConnectionTrafficSecrets::Aes128Gcm { key, iv } => (KtlsCipher::Aes128Gcm, key, iv),
        ConnectionTrafficSecrets::Aes256Gcm { key, iv } => (KtlsCipher::Aes256Gcm, key, iv),
        ConnectionTrafficSecrets::Chacha20Poly1305 { key, iv } => {
            (KtlsCipher::Chacha20Poly1305, key, iv)
        }
        _ => return None,
    };
    let iv: &[u8; 12] = iv.as_ref().try_into().ok()?;
    CryptoInfo::new(cipher, tls13, key.as_ref(), iv, seq)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_suite_the_server_offers_has_a_kernel_cipher() {
        let config = crate::tls::tests::localhost_config();
        let suites = &config.crypto_provider().cipher_suites;
        assert!(!suites.is_empty());
        for &suite in suites {
            assert!(cipher_of(suite).is_some(), "{:?}", suite.suite());
        }
    }
}
