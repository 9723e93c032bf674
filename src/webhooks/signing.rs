//! Standard Webhooks signatures over `"id.timestamp.body"`:
//! - `v1,<base64 HMAC-SHA256>` with a symmetric `whsec_` secret (default);
//! - `v1a,<base64 Ed25519 signature>` with a `whsk_` signing key that
//!   chartwire keeps, whose `whpk_` public key the integrator verifies with.
//!
//! During a rotation both the new and the old key sign, space separated.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::ids;

pub const SECRET_PREFIX: &str = "whsec_";
pub const SIGNING_KEY_PREFIX: &str = "whsk_";
pub const PUBLIC_KEY_PREFIX: &str = "whpk_";

/// A new HMAC secret: `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(ids::random_bytes(32)))
}

/// A new Ed25519 signing key: `whsk_` + base64 of a 32-byte seed.
pub fn new_signing_key() -> String {
    format!(
        "{SIGNING_KEY_PREFIX}{}",
        STANDARD.encode(ids::random_bytes(32))
    )
}

/// The key bytes of a `whsec_…` secret.
pub fn secret_bytes(secret: &str) -> Option<Vec<u8>> {
    STANDARD.decode(secret.strip_prefix(SECRET_PREFIX)?).ok()
}

/// A key that signs webhooks.
#[derive(Clone)]
pub enum Signer {
    Hmac(Vec<u8>),
    Ed25519(ed25519_dalek::SigningKey),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Signer::Hmac(_) => "Signer::Hmac(…)",
            Signer::Ed25519(_) => "Signer::Ed25519(…)",
        })
    }
}

impl Signer {
    /// The signer for a stored secret (`whsec_…` or `whsk_…`).
    pub fn from_secret(secret: &str) -> Option<Signer> {
        if let Some(bytes) = secret_bytes(secret) {
            return Some(Signer::Hmac(bytes));
        }
        let seed: [u8; 32] = STANDARD
            .decode(secret.strip_prefix(SIGNING_KEY_PREFIX)?)
            .ok()?
            .try_into()
            .ok()?;
        Some(Signer::Ed25519(ed25519_dalek::SigningKey::from_bytes(
            &seed,
        )))
    }

    /// The `whpk_…` public key, for Ed25519 signers.
    pub fn public_key(&self) -> Option<String> {
        match self {
            Signer::Hmac(_) => None,
            Signer::Ed25519(key) => Some(format!(
                "{PUBLIC_KEY_PREFIX}{}",
                STANDARD.encode(key.verifying_key().to_bytes())
            )),
        }
    }

    /// One signature, `v1,…` or `v1a,…`.
    pub fn sign(&self, msg_id: &str, timestamp: i64, body: &[u8]) -> String {
        let mut message = Vec::with_capacity(msg_id.len() + body.len() + 24);
        message.extend_from_slice(msg_id.as_bytes());
        message.push(b'.');
        message.extend_from_slice(timestamp.to_string().as_bytes());
        message.push(b'.');
        message.extend_from_slice(body);
        match self {
            Signer::Hmac(key) => {
                let mut mac =
                    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
                mac.update(&message);
                format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()))
            }
            Signer::Ed25519(key) => {
                format!("v1a,{}", STANDARD.encode(key.sign(&message).to_bytes()))
            }
        }
    }
}

/// One `v1,…` HMAC signature.
pub fn sign(key: &[u8], msg_id: &str, timestamp: i64, body: &[u8]) -> String {
    Signer::Hmac(key.to_vec()).sign(msg_id, timestamp, body)
}

/// The `webhook-signature` header value: one signature per signer.
pub fn signature_header<'a>(
    signers: impl IntoIterator<Item = &'a Signer>,
    msg_id: &str,
    timestamp: i64,
    body: &[u8],
) -> String {
    signers
        .into_iter()
        .map(|signer| signer.sign(msg_id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Verifier;

    #[test]
    fn the_standard_webhooks_known_answer() {
        let key = secret_bytes("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
        let signature = sign(
            &key,
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1649367553,
            br#"{"email":"test@example.com","username":"test_user"}"#,
        );
        assert_eq!(signature, "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=");
    }

    #[test]
    fn ed25519_with_the_rfc_8032_key_pair() {
        // RFC 8032, section 7.1, test 1.
        let seed = hex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60");
        let public = hex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a");
        let secret = format!("{SIGNING_KEY_PREFIX}{}", STANDARD.encode(&seed));
        let signer = Signer::from_secret(&secret).unwrap();
        assert_eq!(
            signer.public_key().unwrap(),
            format!("{PUBLIC_KEY_PREFIX}{}", STANDARD.encode(&public))
        );
        let Signer::Ed25519(key) = &signer else {
            panic!("an ed25519 signer")
        };
        let empty = key.sign(b"").to_bytes();
        assert_eq!(
            empty.to_vec(),
            hex(
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
            )
        );
        let header = signer.sign("msg_1", 1649367553, b"{}");
        let raw = STANDARD
            .decode(header.strip_prefix("v1a,").unwrap())
            .unwrap();
        let signature = ed25519_dalek::Signature::from_slice(&raw).unwrap();
        assert!(
            key.verifying_key()
                .verify(b"msg_1.1649367553.{}", &signature)
                .is_ok()
        );
    }

    #[test]
    fn secrets_have_the_documented_shape() {
        let secret = new_secret();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(secret_bytes(&secret).unwrap().len(), 32);
        assert!(
            Signer::from_secret(&new_signing_key())
                .unwrap()
                .public_key()
                .unwrap()
                .starts_with("whpk_")
        );
        let signers = [
            Signer::Hmac(vec![1]),
            Signer::from_secret(&new_signing_key()).unwrap(),
        ];
        let both = signature_header(&signers, "m", 1, b"{}");
        assert!(both.starts_with("v1,") && both.contains(" v1a,"));
    }

    fn hex(text: &str) -> Vec<u8> {
        (0..text.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
            .collect()
    }
}
