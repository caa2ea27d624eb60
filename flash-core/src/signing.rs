//! HMAC-SHA256 keys and the key ring used to sign cookies.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

use crate::error::{Error, ErrorKind};

type HmacSha256 = Hmac<Sha256>;

/// Length in bytes of a signature (HMAC-SHA256).
pub const SIGNATURE_LEN: usize = 32;

/// The base64url length of a signature, without padding.
const SIGNATURE_B64_LEN: usize = (SIGNATURE_LEN * 4).div_ceil(3);

/// A signature written in base64url without padding (43 characters), as flash's tokens and
/// Django's signed cookies carry it. Only the canonical text is accepted, so a signature has one
/// spelling (Django compares the text).
///
/// ```
/// use flash_core::{storage::{SIGNATURE_LEN, decode_signature}};
/// assert_eq!(decode_signature(&"A".repeat(43))?, [0; SIGNATURE_LEN]);
/// assert!(decode_signature("AAAA").is_err());
/// assert!(decode_signature(&"B".repeat(43)).is_err(), "not canonical");
/// # Ok::<(), flash_core::Error>(())
/// ```
///
/// # Errors
/// [`ErrorKind::Integrity`] when the text has the wrong length or is not canonical base64url.
pub fn decode_signature(text: &str) -> crate::Result<[u8; SIGNATURE_LEN]> {
    let wrong_length = || Error::new(ErrorKind::Integrity, "the signature has the wrong length");
    if text.len() != SIGNATURE_B64_LEN {
        return Err(wrong_length());
    }
    let mut bytes = [0u8; SIGNATURE_LEN + 1];
    match URL_SAFE_NO_PAD.decode_slice(text, &mut bytes) {
        Ok(SIGNATURE_LEN) => {
            let mut signature = [0u8; SIGNATURE_LEN];
            signature.copy_from_slice(&bytes[..SIGNATURE_LEN]);
            Ok(signature)
        }
        Ok(_) => Err(wrong_length()),
        Err(err) => Err(Error::with_source(
            ErrorKind::Integrity,
            "the signature is not base64url",
            err,
        )),
    }
}

/// The shortest raw key accepted, in bytes.
pub const MIN_KEY_LEN: usize = 32;

/// A secret HMAC-SHA256 key. Its `Debug` shows no key material.
///
/// Keep a `Key` for the life of the application: it holds the keyed MAC state, so signing does
/// not re-key.
///
/// ```
/// use flash_core::Key;
/// let key = Key::derive("a long application secret, from the environment", "flash.id");
/// assert_eq!(format!("{key:?}"), "Key(..)");
/// assert!(Key::try_from_bytes(b"short").is_err());
/// ```
#[derive(Clone)]
pub struct Key {
    mac: HmacSha256,
}

impl Key {
    /// A key from raw random bytes (at least [`MIN_KEY_LEN`]).
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when `bytes` is shorter than [`MIN_KEY_LEN`].
    pub fn try_from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() < MIN_KEY_LEN {
            return Err(Error::new(
                ErrorKind::Config,
                format!(
                    "a signing key needs at least {MIN_KEY_LEN} bytes, got {}",
                    bytes.len()
                ),
            ));
        }
        Ok(Key::from_mac_key(bytes))
    }

    /// A key from raw random bytes.
    ///
    /// # Panics
    /// When `bytes` is shorter than [`MIN_KEY_LEN`]; see [`Key::try_from_bytes`].
    pub fn from_bytes(bytes: &[u8]) -> Self {
        match Key::try_from_bytes(bytes) {
            Ok(key) => key,
            Err(err) => panic!("{err}"),
        }
    }

    /// A key derived from an application secret for one purpose (`"flash.id"`, `"flash.cookie"`).
    ///
    /// The derivation is SHA-256 over the length-prefixed parts, so two different
    /// (purpose, secret) pairs never give the same key, and a key for one purpose signs nothing
    /// another purpose accepts.
    pub fn derive(secret: impl AsRef<[u8]>, purpose: &str) -> Self {
        let mut hasher = Sha256::new();
        for part in [
            b"flash-key-v1".as_slice(),
            purpose.as_bytes(),
            secret.as_ref(),
        ] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part);
        }
        Key::from_mac_key(&hasher.finalize())
    }

    /// A random key, for tests and for single-process development.
    ///
    /// # Panics
    /// When the operating system's random generator fails; [`Key::try_generate`] returns the
    /// error instead.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        crate::random::fill(&mut bytes);
        Key::from_mac_key(&bytes)
    }

    /// A random key, or an [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) error when
    /// the operating system's random generator fails.
    ///
    /// ```
    /// let key = flash_core::Key::try_generate()?;
    /// # let _ = key;
    /// # Ok::<(), flash_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// When the random generator fails.
    pub fn try_generate() -> crate::Result<Self> {
        let mut bytes = [0u8; 32];
        crate::random::try_fill(&mut bytes)?;
        Ok(Key::from_mac_key(&bytes))
    }

    /// A fresh random secret to configure (`FLASH_SECRET`, or a development secret): 64
    /// lowercase hex digits, 32 bytes from the operating system's generator, so twice
    /// [`MIN_KEY_LEN`].
    ///
    /// ```
    /// let secret = flash_core::Key::random_secret()?;
    /// assert_eq!(secret.len(), 64);
    /// assert!(secret.len() >= flash_core::storage::MIN_KEY_LEN);
    /// # Ok::<(), flash_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`ErrorKind::Unavailable`](crate::ErrorKind::Unavailable) when the random generator fails.
    pub fn random_secret() -> crate::Result<String> {
        let mut bytes = [0u8; 32];
        crate::random::try_fill(&mut bytes)?;
        Ok(crate::keyed::hex(&bytes))
    }

    /// A key used as the HMAC key exactly as given, with no length check (for foreign formats
    /// such as Django's, whose key derivation is fixed).
    pub fn from_mac_key(bytes: &[u8]) -> Self {
        Key {
            mac: HmacSha256::new_from_slice(bytes).expect("HMAC accepts keys of any length"),
        }
    }

    /// The MAC state keyed with this key, ready for `update`.
    ///
    /// For flash's own codecs (Django's salted HMAC): its type is the `hmac` crate's, which
    /// flash-core's public API does not promise, so it is hidden.
    #[doc(hidden)]
    pub fn mac(&self) -> HmacSha256 {
        self.mac.clone()
    }

    /// The signature of `parts`, each length-prefixed so part boundaries are bound too.
    pub fn sign_parts(&self, parts: &[&[u8]]) -> [u8; SIGNATURE_LEN] {
        let mut mac = self.mac();
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Keys for signing and verifying: the first signs, every key verifies (rotation).
///
/// To rotate, put the new key first and keep the old one after it until every cookie it signed
/// has expired.
///
/// ```
/// use flash_core::{Key, Keys};
/// let old = Keys::new(Key::derive("old secret, long enough to be a real one", "flash.id"));
/// let token = old.sign_token("flash_id", b"value");
/// let rotated = Keys::new(Key::derive("new secret, long enough to be a real one", "flash.id"))
///     .with_fallback(Key::derive("old secret, long enough to be a real one", "flash.id"));
/// assert_eq!(rotated.verify_token("flash_id", &token).as_deref(), Some(&b"value"[..]));
/// assert_eq!(rotated.verify_token("other_name", &token), None);
/// ```
#[derive(Clone, Debug)]
pub struct Keys {
    keys: Vec<Key>,
}

impl Keys {
    /// A ring with one key.
    pub fn new(signing: Key) -> Self {
        Keys {
            keys: vec![signing],
        }
    }

    /// Adds an older key that still verifies but no longer signs.
    #[must_use]
    pub fn with_fallback(mut self, key: Key) -> Self {
        self.keys.push(key);
        self
    }

    /// The signing key.
    pub fn signing(&self) -> &Key {
        &self.keys[0]
    }

    /// Every key, the signing key first.
    pub fn all(&self) -> &[Key] {
        &self.keys
    }

    /// The signature of (`name`, `payload`) under the signing key.
    pub fn sign(&self, name: &str, payload: &[u8]) -> [u8; SIGNATURE_LEN] {
        self.signing().sign_parts(&[name.as_bytes(), payload])
    }

    /// Whether `signature` signs (`name`, `payload`) under any key, compared in constant time.
    pub fn verify(&self, name: &str, payload: &[u8], signature: &[u8]) -> bool {
        self.keys.iter().any(|key| {
            let mut mac = key.mac();
            for part in [name.as_bytes(), payload] {
                mac.update(&(part.len() as u64).to_be_bytes());
                mac.update(part);
            }
            mac.verify_slice(signature).is_ok()
        })
    }

    /// `base64url(payload) "." base64url(signature)`, both without padding: a signed token for
    /// the cookie `name` (flash's cookie format and the keyed stores' id cookie).
    ///
    /// ```
    /// use flash_core::{Key, Keys};
    /// let keys = Keys::new(Key::derive("a long application secret, from the environment", "x"));
    /// let token = keys.sign_token("messages", b"[]");
    /// assert_eq!(keys.open_token("messages", &token)?, b"[]");
    /// assert!(keys.open_token("other", &token).is_err());
    /// # Ok::<(), flash_core::Error>(())
    /// ```
    pub fn sign_token(&self, name: &str, payload: &[u8]) -> String {
        let mut out = String::with_capacity(Keys::token_len(payload.len()));
        self.sign_token_into(name, payload, &mut out);
        out
    }

    /// The length of the token [`Keys::sign_token`] makes for a payload of `payload_len` bytes.
    pub const fn token_len(payload_len: usize) -> usize {
        (payload_len * 4).div_ceil(3) + 1 + SIGNATURE_B64_LEN
    }

    /// Appends the token [`Keys::sign_token`] makes to `out`.
    pub fn sign_token_into(&self, name: &str, payload: &[u8], out: &mut String) {
        let signature = self.sign(name, payload);
        URL_SAFE_NO_PAD.encode_string(payload, out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(signature, out);
    }

    /// The payload of a token made by [`Keys::sign_token`] for `name`, or `None` when it is
    /// malformed, tampered with or signed by an unknown key.
    pub fn verify_token(&self, name: &str, token: &str) -> Option<Vec<u8>> {
        self.open_token(name, token).ok()
    }

    /// As [`Keys::verify_token`], saying why a token is refused.
    ///
    /// # Errors
    /// [`ErrorKind::Integrity`] when the token has no separator, a signature of the wrong
    /// length or not in base64url, a payload not in base64url, or a signature no key made.
    pub fn open_token(&self, name: &str, token: &str) -> crate::Result<Vec<u8>> {
        let mut payload = Vec::new();
        self.open_token_into(name, token, &mut payload)?;
        Ok(payload)
    }

    /// [`Keys::open_token`] into `payload` (cleared first), so a caller can lend a buffer it
    /// reuses. On an error `payload` is left empty.
    ///
    /// # Errors
    /// As [`Keys::open_token`].
    pub fn open_token_into(
        &self,
        name: &str,
        token: &str,
        payload: &mut Vec<u8>,
    ) -> crate::Result<()> {
        let integrity = |context: &'static str| Error::new(ErrorKind::Integrity, context);
        payload.clear();
        let (encoded, signature) = token
            .rsplit_once('.')
            .ok_or_else(|| integrity("no signature separator"))?;
        let mac = decode_signature(signature)?;
        let opened = URL_SAFE_NO_PAD
            .decode_vec(encoded, payload)
            .map_err(|err| {
                Error::with_source(ErrorKind::Integrity, "the payload is not base64url", err)
            })
            .and_then(|()| {
                if self.verify(name, payload, &mac) {
                    Ok(())
                } else {
                    Err(integrity("the signature does not match any key"))
                }
            });
        if opened.is_err() {
            payload.clear();
        }
        opened
    }
}

impl From<Key> for Keys {
    fn from(key: Key) -> Self {
        Keys::new(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secret: &str) -> Keys {
        Keys::new(Key::derive(secret, "test"))
    }

    #[test]
    fn tokens_verify_only_under_their_name_and_keys() {
        let ring = keys("first secret, long enough for the test");
        let token = ring.sign_token("id", b"payload");
        assert_eq!(
            ring.verify_token("id", &token).as_deref(),
            Some(&b"payload"[..])
        );
        assert_eq!(ring.verify_token("id2", &token), None);
        assert_eq!(
            keys("another secret entirely, long enough").verify_token("id", &token),
            None
        );
        for bad in [
            "",
            ".",
            "abc",
            "abc.",
            ".abc",
            "!!!.???",
            &token[..token.len() - 1],
        ] {
            assert_eq!(ring.verify_token("id", bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_lent_buffer_holds_only_a_verified_payload() {
        let ring = keys("first secret, long enough for the test");
        let token = ring.sign_token("id", b"payload");
        let mut buffer = b"left over".to_vec();
        ring.open_token_into("id", &token, &mut buffer)
            .expect("opened");
        assert_eq!(buffer, b"payload");
        // Refused: nothing of the refused payload, nor of the last one, is left.
        let err = ring
            .open_token_into("id2", &token, &mut buffer)
            .expect_err("another name");
        assert_eq!(err.kind(), ErrorKind::Integrity);
        assert!(buffer.is_empty());
        assert!(ring.open_token_into("id", "!!!.???", &mut buffer).is_err());
        assert!(buffer.is_empty());
    }

    #[test]
    fn rotation_signs_with_the_first_and_verifies_with_all() {
        let old = keys("old secret, long enough for the test...");
        let new = Keys::new(Key::derive(
            "new secret, long enough for the test...",
            "test",
        ))
        .with_fallback(Key::derive(
            "old secret, long enough for the test...",
            "test",
        ));
        let from_old = old.sign_token("n", b"v");
        assert!(new.verify_token("n", &from_old).is_some());
        let from_new = new.sign_token("n", b"v");
        assert!(old.verify_token("n", &from_new).is_none());
    }

    #[test]
    fn derivation_separates_purpose_and_secret() {
        let a = Key::derive("ab", "c").sign_parts(&[b"x"]);
        let b = Key::derive("b", "ac").sign_parts(&[b"x"]);
        let c = Key::derive("abc", "").sign_parts(&[b"x"]);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert_ne!(b, c);
        // Part boundaries are bound too.
        let key = Key::generate();
        assert_ne!(
            key.sign_parts(&[b"ab", b"c"]),
            key.sign_parts(&[b"a", b"bc"])
        );
    }

    #[test]
    fn short_raw_keys_are_refused_and_debug_hides_keys() {
        let err = Key::try_from_bytes(&[7u8; 31]).expect_err("short key");
        assert_eq!(err.kind(), ErrorKind::Config);
        let key = Key::from_bytes(&[7u8; 32]);
        assert_eq!(format!("{key:?}"), "Key(..)");
        assert!(!format!("{:?}", Keys::new(key)).contains('7'));
    }
}
