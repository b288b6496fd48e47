//! `X-Hub-Signature` verification, identical for Bitbucket Cloud and Server.
//!
//! The header is `sha256=<lowercase hex>` of HMAC-SHA256 over the raw body bytes, keyed with the
//! secret's UTF-8 bytes. Only sha256 is accepted: a `sha1=` header is rejected, not downgraded.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

type HmacSha256 = Hmac<Sha256>;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the X-Hub-Signature header is missing")]
    Missing,
    #[error("the X-Hub-Signature header is not of the form sha256=<hex>")]
    Malformed,
    #[error("only sha256 signatures are accepted")]
    UnsupportedAlgorithm,
    #[error("the signature does not match the body")]
    Mismatch,
}

impl SignatureError {
    /// Short machine-readable label, used as a metric label and in logs.
    pub fn label(self) -> &'static str {
        match self {
            Self::Missing => "missing_signature",
            Self::Malformed => "malformed_signature",
            Self::UnsupportedAlgorithm => "unsupported_signature",
            Self::Mismatch => "bad_signature",
        }
    }
}

/// The header value Bitbucket would send for `body` signed with `secret`.
pub fn sign(secret: &[u8], body: &[u8]) -> String {
    format!("sha256={}", hex::encode(mac(secret, body)))
}

/// Verifies `header` (the raw `X-Hub-Signature` value, if any) against `body`.
///
/// The comparison of the digests runs in constant time.
pub fn verify_signature(
    secret: &[u8],
    body: &[u8],
    header: Option<&[u8]>,
) -> Result<(), SignatureError> {
    let header = header.ok_or(SignatureError::Missing)?;
    let header = std::str::from_utf8(header).map_err(|_| SignatureError::Malformed)?;
    let (algorithm, digest_hex) = header
        .trim()
        .split_once('=')
        .ok_or(SignatureError::Malformed)?;
    if !algorithm.eq_ignore_ascii_case("sha256") {
        return Err(SignatureError::UnsupportedAlgorithm);
    }
    let mut given = [0u8; 32];
    hex::decode_to_slice(digest_hex, &mut given).map_err(|_| SignatureError::Malformed)?;
    let expected = mac(secret, body);
    if bool::from(expected.as_slice().ct_eq(&given)) {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

fn mac(secret: &[u8], body: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so `new_from_slice` cannot fail here.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(body);
    mac.finalize().into_bytes().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_vector() {
        // RFC 4231 test case 2.
        let header = sign(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            header,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(
            verify_signature(
                b"Jefe",
                b"what do ya want for nothing?",
                Some(header.as_bytes())
            ),
            Ok(())
        );
    }

    #[test]
    fn uppercase_hex_is_accepted() {
        let header = sign(b"k", b"body")
            .to_uppercase()
            .replacen("SHA256", "sha256", 1);
        assert_eq!(
            verify_signature(b"k", b"body", Some(header.as_bytes())),
            Ok(())
        );
    }

    #[test]
    fn failures_are_typed() {
        let body = b"{}";
        assert_eq!(
            verify_signature(b"k", body, None),
            Err(SignatureError::Missing)
        );
        assert_eq!(
            verify_signature(b"k", body, Some(b"nonsense")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(b"k", body, Some(b"sha256=zz")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(b"k", body, Some(b"sha256=abcd")),
            Err(SignatureError::Malformed)
        );
        assert_eq!(
            verify_signature(
                b"k",
                body,
                Some(b"sha1=0123456789abcdef0123456789abcdef01234567")
            ),
            Err(SignatureError::UnsupportedAlgorithm)
        );
        assert_eq!(
            verify_signature(b"k", body, Some(sign(b"other", body).as_bytes())),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_signature(b"k", body, Some(&[0xff, 0xfe])),
            Err(SignatureError::Malformed)
        );
    }

    proptest! {
        #[test]
        fn sign_then_verify_roundtrips(secret in proptest::collection::vec(any::<u8>(), 0..80),
                                       body in proptest::collection::vec(any::<u8>(), 0..512)) {
            let header = sign(&secret, &body);
            prop_assert_eq!(verify_signature(&secret, &body, Some(header.as_bytes())), Ok(()));
        }

        #[test]
        fn arbitrary_headers_never_panic(header in proptest::collection::vec(any::<u8>(), 0..100)) {
            let _ = verify_signature(b"secret", b"body", Some(&header));
        }
    }
}
