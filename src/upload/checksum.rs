//! Checksums of upload bytes: tus `Upload-Checksum` (per request) and RFC 9530 digests (of
//! the whole file), with the RustCrypto hashers.

use md5::Md5;
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};

/// A supported algorithm, ordered weakest first (so the strongest offered can be picked).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Algorithm {
    /// MD5: only to check for accidents, as tus clients and `Content-MD5` habits use it.
    Md5,
    /// SHA-1: tus clients' common choice.
    Sha1,
    /// SHA-256.
    Sha256,
    /// SHA-512 (RFC 9530 `sha-512`).
    Sha512,
}

/// The tus names, as `Tus-Checksum-Algorithm` lists them.
pub const TUS_ALGORITHMS: &str = "md5,sha1,sha256";

impl Algorithm {
    /// The algorithm of a tus `Upload-Checksum` name.
    pub fn from_tus(name: &[u8]) -> Option<Algorithm> {
        match name {
            b"md5" => Some(Algorithm::Md5),
            b"sha1" => Some(Algorithm::Sha1),
            b"sha256" => Some(Algorithm::Sha256),
            _ => None,
        }
    }

    /// The algorithm of an RFC 9530 key (`sha-256`, `sha-512`, and the deprecated `md5`).
    pub fn from_rfc9530(key: &[u8]) -> Option<Algorithm> {
        match key {
            b"sha-256" => Some(Algorithm::Sha256),
            b"sha-512" => Some(Algorithm::Sha512),
            b"md5" => Some(Algorithm::Md5),
            _ => None,
        }
    }

    /// Digest length in bytes.
    pub fn digest_len(self) -> usize {
        match self {
            Algorithm::Md5 => 16,
            Algorithm::Sha1 => 20,
            Algorithm::Sha256 => 32,
            Algorithm::Sha512 => 64,
        }
    }
}

/// A running hash.
#[derive(Clone, Debug)]
pub enum Hasher {
    /// MD5
    Md5(Md5),
    /// SHA-1
    Sha1(Sha1),
    /// SHA-256
    Sha256(Sha256),
    /// SHA-512
    Sha512(Sha512),
}

impl Hasher {
    /// A fresh hasher for `algorithm`.
    pub fn new(algorithm: Algorithm) -> Hasher {
        match algorithm {
            Algorithm::Md5 => Hasher::Md5(Md5::new()),
            Algorithm::Sha1 => Hasher::Sha1(Sha1::new()),
            Algorithm::Sha256 => Hasher::Sha256(Sha256::new()),
            Algorithm::Sha512 => Hasher::Sha512(Sha512::new()),
        }
    }

    /// Hashes `data`.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
            Hasher::Sha256(h) => h.update(data),
            Hasher::Sha512(h) => h.update(data),
        }
    }

    /// The digest of everything hashed.
    pub fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Md5(h) => h.finalize().to_vec(),
            Hasher::Sha1(h) => h.finalize().to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
            Hasher::Sha512(h) => h.finalize().to_vec(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digests() {
        let hex = |v: Vec<u8>| v.iter().map(|b| format!("{b:02x}")).collect::<String>();
        let of = |a| {
            let mut h = Hasher::new(a);
            h.update(b"a");
            h.update(b"bc");
            hex(h.finish())
        };
        assert_eq!(of(Algorithm::Md5), "900150983cd24fb0d6963f7d28e17f72");
        assert_eq!(
            of(Algorithm::Sha1),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            of(Algorithm::Sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        for a in [
            Algorithm::Md5,
            Algorithm::Sha1,
            Algorithm::Sha256,
            Algorithm::Sha512,
        ] {
            assert_eq!(Hasher::new(a).finish().len(), a.digest_len());
        }
    }
}
