//! OCSP stapling: a DER OCSP response (as `openssl ocsp -respout` or a CA's responder gives
//! it) is checked against its certificate before it is stapled, so a client is never handed
//! a response for another certificate, a revoked one, or one past its `nextUpdate`. The
//! response's signature is the client's to check, as it is with nginx without
//! `ssl_stapling_verify`.

use std::time::{SystemTime, UNIX_EPOCH};

use x509_cert::der::Decode;
use x509_cert::Certificate;
use x509_ocsp::{BasicOcspResponse, CertStatus, OcspResponse, OcspResponseStatus};

/// Checks the OCSP response `der` for the certificate `leaf` (DER) at `now`: a successful
/// basic response with a single response for the leaf's serial number that says good, issued
/// by `now` and not past its `nextUpdate`. The error says why not, for the operator.
pub fn check(der: &[u8], leaf: &[u8], now: SystemTime) -> Result<(), String> {
    let resp = OcspResponse::from_der(der).map_err(|e| format!("not an OCSP response ({e})"))?;
    if resp.response_status != OcspResponseStatus::Successful {
        return Err(format!("response status {:?}", resp.response_status));
    }
    let bytes = resp.response_bytes.ok_or("no response in it")?;
    let basic = BasicOcspResponse::from_der(bytes.response.as_bytes())
        .map_err(|e| format!("not a basic OCSP response ({e})"))?;
    let cert = Certificate::from_der(leaf).map_err(|e| format!("certificate ({e})"))?;
    let serial = &cert.tbs_certificate.serial_number;
    let single = basic
        .tbs_response_data
        .responses
        .iter()
        .find(|r| &r.cert_id.serial_number == serial)
        .ok_or("it is for another certificate")?;
    match single.cert_status {
        CertStatus::Good(_) => {}
        CertStatus::Revoked(_) => return Err("it says the certificate is revoked".into()),
        CertStatus::Unknown(_) => return Err("the responder does not know the certificate".into()),
    }
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    if single.this_update.0.to_unix_duration() > now {
        return Err("it is not valid yet".into());
    }
    match &single.next_update {
        Some(next) if next.0.to_unix_duration() <= now => Err("it has expired".into()),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_is_not_a_response() {
        let err = check(b"\x30\x03\x0a\x01\x00", b"", SystemTime::now()).unwrap_err();
        assert!(err.contains("no response in it"), "{err}");
        let err = check(b"nonsense", b"", SystemTime::now()).unwrap_err();
        assert!(err.starts_with("not an OCSP response"), "{err}");
        // Status 6: unauthorized.
        let err = check(b"\x30\x03\x0a\x01\x06", b"", SystemTime::now()).unwrap_err();
        assert!(err.starts_with("response status"), "{err}");
    }
}
