//! Secrets at rest: AES-256-GCM with the key from `RELAY_SECRET_KEY`.
//!
//! Stored form: `0x01 || nonce (12 bytes) || ciphertext+tag`. The leading version byte leaves
//! room for key rotation. The associated data binds each ciphertext to its integration and
//! field, so a ciphertext copied into another row or column fails to decrypt instead of
//! quietly becoming someone else's secret.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("RELAY_SECRET_KEY must be 32 random bytes, base64- or hex-encoded (generate one with `relay secret-key:generate`)")]
    InvalidKey,
    #[error("RELAY_SECRET_KEY is not set (generate one with `relay secret-key:generate`)")]
    MissingKey,
    #[error("a secret could not be encrypted")]
    Encrypt,
    #[error("a stored secret cannot be decrypted: RELAY_SECRET_KEY differs from the key it was encrypted with, or the row was altered")]
    Decrypt,
}

/// Which secret a ciphertext holds; part of the associated data.
#[derive(Debug, Clone, Copy)]
pub enum SecretField {
    OauthSecret,
    Token,
    WebhookSecret,
    DeployHookSecret,
    DeployReportToken,
}

impl SecretField {
    fn as_str(self) -> &'static str {
        match self {
            Self::OauthSecret => "oauth_secret",
            Self::Token => "token",
            Self::WebhookSecret => "webhook_secret",
            Self::DeployHookSecret => "deploy_hook_secret",
            Self::DeployReportToken => "deploy_report_token",
        }
    }
}

#[derive(Clone)]
pub struct SecretKey(Aes256Gcm);

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(..)")
    }
}

impl SecretKey {
    pub fn parse(encoded: &SecretString) -> Result<Self, SecretError> {
        let raw = encoded.expose_secret().trim();
        let bytes = if raw.len() == 64 && raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            hex::decode(raw).map_err(|_| SecretError::InvalidKey)?
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(raw)
                .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(raw))
                .map_err(|_| SecretError::InvalidKey)?
        };
        if bytes.len() != 32 {
            return Err(SecretError::InvalidKey);
        }
        Aes256Gcm::new_from_slice(&bytes)
            .map(Self)
            .map_err(|_| SecretError::InvalidKey)
    }

    pub fn from_config(value: Option<&SecretString>) -> Result<Self, SecretError> {
        Self::parse(value.ok_or(SecretError::MissingKey)?)
    }

    /// A fresh key, base64-encoded, for `relay secret-key:generate`.
    pub fn generate_encoded() -> String {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    pub fn encrypt(
        &self,
        integration_id: &str,
        field: SecretField,
        plaintext: &str,
    ) -> Result<Vec<u8>, SecretError> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let aad = associated_data(integration_id, field);
        let ciphertext = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| SecretError::Encrypt)?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + ciphertext.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&ciphertext);
        Ok(out)
    }

    pub fn decrypt(
        &self,
        integration_id: &str,
        field: SecretField,
        stored: &[u8],
    ) -> Result<SecretString, SecretError> {
        let (&version, rest) = stored.split_first().ok_or(SecretError::Decrypt)?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return Err(SecretError::Decrypt);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let aad = associated_data(integration_id, field);
        let plaintext = self
            .0
            .decrypt(
                Nonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| SecretError::Decrypt)?;
        String::from_utf8(plaintext)
            .map(SecretString::from)
            .map_err(|_| SecretError::Decrypt)
    }
}

fn associated_data(integration_id: &str, field: SecretField) -> Vec<u8> {
    format!("relay:v1:{integration_id}:{}", field.as_str()).into_bytes()
}

/// A random webhook secret: 32 bytes, URL-safe base64 so it pastes cleanly into Bitbucket.
pub fn generate_webhook_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// The token the deploy side sends with its deployment reports: `rpt_` and 32 random bytes.
pub fn generate_deploy_report_token() -> String {
    format!("rpt_{}", generate_webhook_secret())
}

/// A Standard Webhooks signing secret: `whsec_` and 32 random bytes in base64.
pub fn generate_deploy_hook_secret() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> SecretKey {
        SecretKey::parse(&SecretString::from(SecretKey::generate_encoded())).unwrap()
    }

    #[test]
    fn round_trip() {
        let key = key();
        let stored = key.encrypt("int1", SecretField::Token, "s3cr3t").unwrap();
        assert!(!stored.windows(6).any(|w| w == b"s3cr3t"));
        let plain = key.decrypt("int1", SecretField::Token, &stored).unwrap();
        assert_eq!(plain.expose_secret(), "s3cr3t");
    }

    #[test]
    fn bound_to_row_and_field() {
        let key = key();
        let stored = key.encrypt("int1", SecretField::Token, "s3cr3t").unwrap();
        assert!(key.decrypt("int2", SecretField::Token, &stored).is_err());
        assert!(key
            .decrypt("int1", SecretField::WebhookSecret, &stored)
            .is_err());
    }

    #[test]
    fn wrong_key_or_tampering_fails() {
        let stored = key().encrypt("i", SecretField::OauthSecret, "x").unwrap();
        assert!(key()
            .decrypt("i", SecretField::OauthSecret, &stored)
            .is_err());
        let key = key();
        let mut stored = key.encrypt("i", SecretField::OauthSecret, "x").unwrap();
        let last = stored.len() - 1;
        stored[last] ^= 1;
        assert!(key.decrypt("i", SecretField::OauthSecret, &stored).is_err());
        assert!(key.decrypt("i", SecretField::OauthSecret, &[]).is_err());
        assert!(key
            .decrypt("i", SecretField::OauthSecret, &[1, 2, 3])
            .is_err());
    }

    #[test]
    fn key_formats() {
        let hex_key = "00".repeat(32);
        assert!(SecretKey::parse(&SecretString::from(hex_key)).is_ok());
        for bad in ["", "short", &"00".repeat(16), "not base64 !!!"] {
            assert!(
                SecretKey::parse(&SecretString::from(bad.to_owned())).is_err(),
                "{bad}"
            );
        }
        assert!(matches!(
            SecretKey::from_config(None),
            Err(SecretError::MissingKey)
        ));
    }
}
