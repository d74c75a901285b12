//! Request signing, so receivers can check that a delivery comes from this Strata.
//!
//! With a `secret` configured, each delivery carries
//!
//! ```text
//! X-Strata-Timestamp: <unix seconds>
//! X-Strata-Signature: sha256=<lowercase hex HMAC-SHA256(secret, "<timestamp>.<body>")>
//! ```
//!
//! A receiver recomputes the HMAC over the timestamp header, a `.`, and the raw body bytes,
//! compares in constant time, and refuses timestamps too far from its clock (replays).
//! [`verify`] is that recipe. Every delivery, signed or not, also carries
//! `Idempotency-Key: <notification id>:<integration index>`, the same on every retry.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";
pub const TIMESTAMP_HEADER: &str = "X-Strata-Timestamp";
pub const SIGNATURE_HEADER: &str = "X-Strata-Signature";

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, ts: i64, body: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length.
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `X-Strata-Signature` value for `body` sent at `ts` (unix seconds).
pub fn sign(secret: &str, ts: i64, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(mac(secret, ts, body).finalize().into_bytes())
    )
}

/// Why a signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("signature header is not 'sha256=<hex>'")]
    Malformed,
    #[error("timestamp is {0} s away from now, beyond the tolerance")]
    Stale(i64),
    #[error("signature does not match")]
    Mismatch,
}

/// Checks a delivery: `header` is `X-Strata-Signature`, `ts` is `X-Strata-Timestamp`, both
/// unix seconds like `now`. The comparison is constant-time.
pub fn verify(
    secret: &str,
    ts: i64,
    body: &[u8],
    header: &str,
    now: i64,
    tolerance: Duration,
) -> Result<(), VerifyError> {
    let hex_sig = header
        .strip_prefix("sha256=")
        .ok_or(VerifyError::Malformed)?;
    let expected = hex::decode(hex_sig).map_err(|_| VerifyError::Malformed)?;
    let skew = now.saturating_sub(ts).saturating_abs();
    if u64::try_from(skew).unwrap_or(u64::MAX) > tolerance.as_secs() {
        return Err(VerifyError::Stale(skew));
    }
    mac(secret, ts, body)
        .verify_slice(&expected)
        .map_err(|_| VerifyError::Mismatch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN: Duration = Duration::from_secs(300);

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        // The documented recipe, computed by hand.
        let mut m = HmacSha256::new_from_slice(b"s3cret").unwrap();
        m.update(b"1700000000.{\"a\":1}");
        let want = format!("sha256={}", hex::encode(m.finalize().into_bytes()));
        assert_eq!(sign("s3cret", 1_700_000_000, b"{\"a\":1}"), want);
        // Always 64 lowercase hex digits after the prefix.
        assert_eq!(sign("key", 0, b"x").len(), "sha256=".len() + 64);
    }

    #[test]
    fn verify_accepts_good_and_refuses_tampering() {
        let body = br#"{"status":"firing"}"#;
        let ts = 1_700_000_000;
        let sig = sign("s3cret", ts, body);
        assert_eq!(verify("s3cret", ts, body, &sig, ts + 10, FIVE_MIN), Ok(()));
        assert_eq!(verify("s3cret", ts, body, &sig, ts - 10, FIVE_MIN), Ok(()));
        // Tampered body.
        assert_eq!(
            verify(
                "s3cret",
                ts,
                br#"{"status":"resolved"}"#,
                &sig,
                ts,
                FIVE_MIN
            ),
            Err(VerifyError::Mismatch)
        );
        // Wrong secret.
        assert_eq!(
            verify("other", ts, body, &sig, ts, FIVE_MIN),
            Err(VerifyError::Mismatch)
        );
        // Timestamp moved (the signature covers it).
        assert_eq!(
            verify("s3cret", ts + 1, body, &sig, ts, FIVE_MIN),
            Err(VerifyError::Mismatch)
        );
        // Stale: a replay an hour later.
        assert_eq!(
            verify("s3cret", ts, body, &sig, ts + 3600, FIVE_MIN),
            Err(VerifyError::Stale(3600))
        );
        // Malformed headers.
        for bad in ["", "sha1=00", "sha256=zz", "deadbeef"] {
            assert_eq!(
                verify("s3cret", ts, body, bad, ts, FIVE_MIN),
                Err(VerifyError::Malformed),
                "{bad}"
            );
        }
        // A truncated signature does not match.
        assert_eq!(
            verify("s3cret", ts, body, &sig[..sig.len() - 2], ts, FIVE_MIN),
            Err(VerifyError::Mismatch)
        );
    }
}
