//! Opaque secrets (refresh tokens, authorization codes, client secrets, CSRF tokens), their storage digests,
//! constant-time comparison, and argon2id password hashing.
//!
//! Opaque secrets are 256 random bits, so a fast SHA-256 digest is enough to store them: nobody can
//! brute-force 2^256 candidates, and a slow hash would only cost the token endpoint its throughput.
//! Passwords are low-entropy and get argon2id.

use std::fmt;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use argon2::password_hash::PasswordHasher as _;
use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// Bytes of randomness in every opaque secret: 256 bits (RFC 6749 §10.10, RFC 9700 §4.13).
pub const OPAQUE_TOKEN_BYTES: usize = 32;

/// Why a secret operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The operating system's random number generator failed.
    #[error("the operating system random number generator failed")]
    Random,
    /// A stored password hash is not a valid PHC string.
    #[error("stored password hash is malformed")]
    MalformedHash,
    /// argon2 refused its input (e.g. a password longer than it accepts).
    #[error("password hashing failed: {0}")]
    Hashing(String),
}

/// Fills `buffer` from the operating system's random number generator.
pub fn fill_random(buffer: &mut [u8]) -> Result<(), SecretError> {
    getrandom::fill(buffer).map_err(|_| SecretError::Random)
}

/// A freshly generated opaque secret, base64url without padding (43 characters).
///
/// The text zeroizes on drop and never shows in `Debug`; the holder sends it once and keeps only its
/// [`SecretDigest`].
///
/// ```
/// use auth_core::secret::{OpaqueToken, SecretDigest};
///
/// let token = OpaqueToken::generate();
/// let stored = SecretDigest::of(token.as_str());
/// assert!(stored.matches(token.as_str()));
/// assert_eq!(token.as_str().len(), 43);
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct OpaqueToken(Zeroizing<String>);

impl OpaqueToken {
    /// 256 bits from the OS RNG. If the OS RNG fails there is no safe fallback (weak randomness would
    /// be worse than stopping), so the process aborts; [`OpaqueToken::try_generate`] returns the error.
    pub fn generate() -> Self {
        match Self::try_generate() {
            Ok(token) => token,
            // getrandom only fails when the kernel interface is missing; there is no safe fallback.
            Err(_) => std::process::abort(),
        }
    }

    /// 256 bits from the OS RNG, or an error when the RNG fails.
    pub fn try_generate() -> Result<Self, SecretError> {
        let mut bytes = Zeroizing::new([0u8; OPAQUE_TOKEN_BYTES]);
        fill_random(bytes.as_mut())?;
        Ok(Self(Zeroizing::new(URL_SAFE_NO_PAD.encode(bytes.as_ref()))))
    }

    /// The token text, to send to its holder.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The digest to store.
    pub fn digest(&self) -> SecretDigest {
        SecretDigest::of(&self.0)
    }

    /// Gives up the text (for a response body).
    pub fn into_string(self) -> String {
        self.0.as_str().to_owned()
    }
}

impl fmt::Debug for OpaqueToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OpaqueToken(<redacted>)")
    }
}

/// The SHA-256 digest of an opaque secret: what the database stores and looks up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct SecretDigest([u8; 32]);

impl SecretDigest {
    /// The digest of a presented secret.
    pub fn of(secret: &str) -> Self {
        Self(Sha256::digest(secret.as_bytes()).into())
    }

    /// Rebuilds a digest from its 32 stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// Rebuilds a digest from its stored hex form.
    pub fn from_hex(text: &str) -> Option<Self> {
        if text.len() != 64 {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (index, pair) in text.as_bytes().chunks_exact(2).enumerate() {
            let high = (pair[0] as char).to_digit(16)?;
            let low = (pair[1] as char).to_digit(16)?;
            bytes[index] = u8::try_from(high * 16 + low).ok()?;
        }
        Some(Self(bytes))
    }

    /// The raw digest.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Lowercase hex, the stored text form.
    pub fn to_hex(&self) -> String {
        use fmt::Write;
        let mut text = String::with_capacity(64);
        for byte in self.0 {
            let _ = write!(text, "{byte:02x}");
        }
        text
    }

    /// Does `presented` hash to this digest? Compared in constant time.
    pub fn matches(&self, presented: &str) -> bool {
        constant_time_eq(&Self::of(presented).0, &self.0)
    }
}

impl fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A digest is not the secret, but there is no reason to put it in logs either.
        write!(f, "SecretDigest({}…)", &self.to_hex()[..8])
    }
}

/// HMAC-SHA256 under a server secret, for values the server issues and later checks (a CSRF token): only
/// the holder of the key can make a tag, so a value the server never issued does not verify.
#[derive(Clone)]
pub struct Mac(aws_lc_rs::hmac::Key);

impl fmt::Debug for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mac(<redacted>)")
    }
}

impl Mac {
    /// A MAC under `key` (32 random bytes, say).
    pub fn new(key: &[u8]) -> Self {
        Self(aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, key))
    }

    /// The tag of `parts`, base64url (43 characters). Each part is length-prefixed, so no two lists of
    /// parts share a tag.
    pub fn tag(&self, parts: &[&[u8]]) -> String {
        let mut context = aws_lc_rs::hmac::Context::with_key(&self.0);
        for part in parts {
            context.update(&(part.len() as u64).to_be_bytes());
            context.update(part);
        }
        URL_SAFE_NO_PAD.encode(context.sign().as_ref())
    }

    /// Does `tag` belong to `parts`? Compared in constant time.
    pub fn verify(&self, parts: &[&[u8]], tag: &str) -> bool {
        constant_time_eq(self.tag(parts).as_bytes(), tag.as_bytes())
    }
}

/// Constant-time equality of two byte strings (the length is not hidden).
pub fn constant_time_eq(left: &[u8], right: &[u8]) -> bool {
    bool::from(left.ct_eq(right))
}

/// The most memory a stored hash may ask a verification for (KiB). Our hashes use 19 MiB; a stored hash
/// asking for more was not written by this server, and is treated as malformed rather than allocated for.
pub const MAX_PASSWORD_HASH_MEMORY_KIB: u32 = 64 * 1024;

/// argon2id password hashing with the crate's default parameters (m = 19 MiB, t = 2, p = 1: OWASP's
/// recommended minimum; RFC 9106's recommended options need 64 MiB or more per hash), stored as PHC strings.
///
/// Both calls are CPU-heavy (tens of milliseconds): servers run them on a blocking thread pool, a bounded
/// number at a time. A verification reuses a memory buffer kept from an earlier one instead of allocating
/// 19 MiB: freed buffers of that size stay resident in the allocator, so a burst of logins would otherwise
/// leave the process holding one buffer per concurrent check for good. The buffers kept are as many as the
/// most checks that ran at once.
#[derive(Clone)]
pub struct PasswordHasher {
    inner: Arc<HasherInner>,
}

struct HasherInner {
    argon2: Argon2<'static>,
    /// A hash of a random password, verified against when the user does not exist, so that a wrong
    /// username costs the same work as a wrong password (no user enumeration by timing). Made by
    /// [`PasswordHasher::prepare`], or by the first unknown-user check if that comes first.
    dummy_hash: std::sync::OnceLock<String>,
    buffers: Mutex<Vec<Vec<Block>>>,
    evaluations: AtomicU64,
}

impl fmt::Debug for PasswordHasher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordHasher").finish_non_exhaustive()
    }
}

impl PasswordHasher {
    /// A hasher with default argon2id parameters, its dummy hash made (one argon2 run).
    pub fn new() -> Result<Self, SecretError> {
        let hasher = Self::deferred();
        hasher.prepare()?;
        Ok(hasher)
    }

    /// A hasher whose dummy hash is not made yet: hashing and verifying stored hashes work at once, and
    /// [`PasswordHasher::prepare`] (on a blocking thread, once a server is up) makes the dummy before the
    /// first unknown-user check needs it. A server starts one argon2 run sooner.
    pub fn deferred() -> Self {
        Self {
            inner: Arc::new(HasherInner {
                argon2: Argon2::default(),
                dummy_hash: std::sync::OnceLock::new(),
                buffers: Mutex::new(Vec::new()),
                evaluations: AtomicU64::new(0),
            }),
        }
    }

    /// Makes the dummy hash unless it exists (one argon2 run).
    pub fn prepare(&self) -> Result<(), SecretError> {
        if self.inner.dummy_hash.get().is_none() {
            let dummy = self.make_dummy()?;
            let _ = self.inner.dummy_hash.set(dummy);
        }
        Ok(())
    }

    fn make_dummy(&self) -> Result<String, SecretError> {
        let random = OpaqueToken::try_generate()?;
        self.hash(random.as_str())
    }

    /// The dummy hash, made now if [`PasswordHasher::prepare`] has not run yet.
    fn dummy(&self) -> &str {
        self.inner.dummy_hash.get_or_init(|| {
            // Only a failing random number generator gets here without a hash; the check then costs
            // nothing and still answers false.
            self.make_dummy().unwrap_or_default()
        })
    }

    /// Hashes a password with a fresh random salt into a PHC string.
    pub fn hash(&self, password: &str) -> Result<String, SecretError> {
        Ok(self
            .inner
            .argon2
            .hash_password(password.as_bytes())
            .map_err(|error| SecretError::Hashing(error.to_string()))?
            .to_string())
    }

    /// Checks a password against a stored PHC string (argon2id, as [`PasswordHasher::hash`] writes it).
    pub fn verify(&self, password: &str, stored: &str) -> Result<bool, SecretError> {
        let parsed = PasswordHash::new(stored).map_err(|_| SecretError::MalformedHash)?;
        let algorithm =
            Algorithm::new(parsed.algorithm.as_str()).map_err(|_| SecretError::MalformedHash)?;
        let version = match parsed.version {
            Some(version) => Version::try_from(version).map_err(|_| SecretError::MalformedHash)?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(|_| SecretError::MalformedHash)?;
        if params.m_cost() > MAX_PASSWORD_HASH_MEMORY_KIB {
            return Err(SecretError::MalformedHash);
        }
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Err(SecretError::MalformedHash);
        };
        let blocks = params.block_count();
        let argon2 = Argon2::new(algorithm, version, params);
        let mut computed = Zeroizing::new(vec![0u8; expected.len()]);
        let mut memory = self.take_buffer(blocks);
        let outcome = argon2.hash_password_into_with_memory(
            password.as_bytes(),
            salt.as_ref(),
            &mut computed,
            &mut memory[..blocks],
        );
        self.give_back(memory);
        self.inner.evaluations.fetch_add(1, Ordering::Relaxed);
        outcome.map_err(|error| SecretError::Hashing(error.to_string()))?;
        Ok(constant_time_eq(&computed, expected.as_bytes()))
    }

    /// Spends the work of one verification and answers `false`: for logins naming an unknown user.
    pub fn verify_unknown_user(&self, password: &str) -> bool {
        // The dummy hash is this hasher's own: the result is always Ok(false), and the work is real.
        let verified = std::hint::black_box(self.verify(password, self.dummy()));
        debug_assert!(matches!(verified, Ok(false)));
        false
    }

    /// How many argon2 evaluations this hasher has run (verifications, real or dummy).
    pub fn evaluations(&self) -> u64 {
        self.inner.evaluations.load(Ordering::Relaxed)
    }

    /// Checks a password hash given by an operator (a configuration file's `password_hash`): an argon2id
    /// PHC string of version 19 with a salt and an output, whose costs are no higher than this hasher's, so
    /// that a declared user can never make each of its logins cost more than anyone else's.
    pub fn check_given_hash(stored: &str) -> Result<(), String> {
        let parsed = PasswordHash::new(stored)
            .map_err(|_| "not a PHC string ($argon2id$v=19$m=…,t=…,p=…$salt$hash)".to_owned())?;
        if parsed.algorithm.as_str() != "argon2id" {
            return Err(format!("{} is not argon2id", parsed.algorithm.as_str()));
        }
        if parsed.version != Some(0x13) {
            return Err("the argon2 version must be 19 (v=19)".into());
        }
        let params = Params::try_from(&parsed)
            .map_err(|_| "the argon2 parameters do not parse".to_owned())?;
        let ours = Params::DEFAULT;
        if params.m_cost() > ours.m_cost()
            || params.t_cost() > ours.t_cost()
            || params.p_cost() > ours.p_cost()
        {
            return Err(format!(
                "costs m={},t={},p={} are higher than the server's m={},t={},p={}",
                params.m_cost(),
                params.t_cost(),
                params.p_cost(),
                ours.m_cost(),
                ours.t_cost(),
                ours.p_cost()
            ));
        }
        if parsed.salt.is_none() || parsed.hash.is_none() {
            return Err("the hash has no salt or no output".into());
        }
        Ok(())
    }

    /// A kept buffer of at least `blocks` blocks, or a new one.
    fn take_buffer(&self, blocks: usize) -> Vec<Block> {
        let kept = self
            .inner
            .buffers
            .lock()
            .ok()
            .and_then(|mut buffers| buffers.pop());
        match kept {
            Some(buffer) if buffer.len() >= blocks => buffer,
            _ => vec![Block::new(); blocks],
        }
    }

    fn give_back(&self, buffer: Vec<Block>) {
        if let Ok(mut buffers) = self.inner.buffers.lock() {
            buffers.push(buffer);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_hashes_must_be_argon2id_at_no_higher_cost_than_ours() {
        let hasher = PasswordHasher::new().unwrap();
        let ours = hasher.hash("correct horse").unwrap();
        assert!(PasswordHasher::check_given_hash(&ours).is_ok());
        let costly = ours.replace("m=19456", "m=65536");
        assert!(
            PasswordHasher::check_given_hash(&costly)
                .unwrap_err()
                .contains("higher")
        );
        let argon2i = ours.replace("$argon2id$", "$argon2i$");
        assert!(PasswordHasher::check_given_hash(&argon2i).is_err());
        assert!(PasswordHasher::check_given_hash("plain text").is_err());
        let cheaper = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(8192, 1, 1, None).unwrap(),
        )
        .hash_password(b"pw")
        .unwrap()
        .to_string();
        assert!(PasswordHasher::check_given_hash(&cheaper).is_ok());
        assert!(hasher.verify("pw", &cheaper).unwrap());
    }

    #[test]
    fn opaque_tokens_are_256_bits_base64url() {
        let token = OpaqueToken::generate();
        let decoded = URL_SAFE_NO_PAD.decode(token.as_str()).unwrap();
        assert_eq!(decoded.len(), 32);
        assert_ne!(token, OpaqueToken::generate());
        assert_eq!(format!("{token:?}"), "OpaqueToken(<redacted>)");
    }

    #[test]
    fn digest_known_answer_and_hex_round_trip() {
        // SHA-256("abc"), FIPS 180-2 Appendix B.1.
        let digest = SecretDigest::of("abc");
        assert_eq!(
            digest.to_hex(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(SecretDigest::from_hex(&digest.to_hex()), Some(digest));
        assert_eq!(SecretDigest::from_hex("zz"), None);
        assert_eq!(SecretDigest::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn digest_matches_only_its_secret() {
        let token = OpaqueToken::generate();
        let digest = token.digest();
        assert!(digest.matches(token.as_str()));
        assert!(!digest.matches("something else"));
        assert!(!digest.matches(""));
    }

    #[test]
    fn mac_tags_verify_only_under_their_key_and_parts() {
        let mac = Mac::new(b"a key of thirty-two bytes, maybe");
        let tag = mac.tag(&[b"browser", b""]);
        assert_eq!(tag.len(), 43);
        assert!(mac.verify(&[b"browser", b""], &tag));
        // Length-prefixed: moving bytes between parts changes the tag.
        assert!(!mac.verify(&[b"browse", b"r"], &tag));
        assert!(!mac.verify(&[b"browser", b"session"], &tag));
        assert!(!Mac::new(b"another key").verify(&[b"browser", b""], &tag));
        assert!(!mac.verify(&[b"browser", b""], "A".repeat(43).as_str()));
        assert_eq!(format!("{mac:?}"), "Mac(<redacted>)");
    }

    #[test]
    fn constant_time_eq_compares_content_and_length() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }

    #[test]
    fn password_hash_and_verify() {
        let hasher = PasswordHasher::new().unwrap();
        let stored = hasher.hash("correct horse").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(hasher.verify("correct horse", &stored).unwrap());
        assert!(!hasher.verify("wrong horse", &stored).unwrap());
        assert!(!hasher.verify("", &stored).unwrap());
        for malformed in [
            "not a phc string",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA",
            // Asks for 1 GiB: not ours, and not allocated for.
            "$argon2id$v=19$m=1048576,t=2,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(
                matches!(
                    hasher.verify("x", malformed),
                    Err(SecretError::MalformedHash)
                ),
                "{malformed}"
            );
        }
        // Two hashes of one password differ by their salt.
        assert_ne!(stored, hasher.hash("correct horse").unwrap());
    }

    #[test]
    fn hashes_verify_with_the_stock_argon2_verifier_and_the_other_way_round() {
        use argon2::password_hash::PasswordVerifier as _;
        let hasher = PasswordHasher::new().unwrap();
        let ours = hasher.hash("pw").unwrap();
        let stock = Argon2::default();
        assert!(stock.verify_password(b"pw", ours.as_str()).is_ok());
        let theirs = stock.hash_password(b"pw").unwrap().to_string();
        assert!(hasher.verify("pw", &theirs).unwrap());
        assert!(!hasher.verify("other", &theirs).unwrap());
    }

    #[test]
    fn a_deferred_hasher_works_at_once_and_makes_its_dummy_when_first_needed() {
        let hasher = PasswordHasher::deferred();
        let stored = hasher.hash("pw").unwrap();
        assert!(hasher.verify("pw", &stored).unwrap());
        assert!(
            hasher.inner.dummy_hash.get().is_none(),
            "no argon2 run spent on it yet"
        );
        assert!(!hasher.verify_unknown_user("pw"));
        assert!(hasher.inner.dummy_hash.get().is_some());
        assert_eq!(
            hasher.evaluations(),
            2,
            "the unknown user cost a real verification"
        );
        let prepared = PasswordHasher::deferred();
        prepared.prepare().unwrap();
        let dummy = prepared.inner.dummy_hash.get().cloned();
        prepared.prepare().unwrap();
        assert_eq!(prepared.inner.dummy_hash.get().cloned(), dummy, "made once");
    }

    #[test]
    fn an_unknown_user_costs_one_real_verification_with_the_same_parameters() {
        let hasher = PasswordHasher::new().unwrap();
        let real = hasher.hash("pw").unwrap();
        // The dummy hash has exactly the parameters of a real one: same algorithm, version, m, t, p, length.
        let dummy = PasswordHash::new(hasher.dummy()).unwrap();
        let real_parsed = PasswordHash::new(&real).unwrap();
        assert_eq!(dummy.algorithm, real_parsed.algorithm);
        assert_eq!(dummy.version, real_parsed.version);
        assert_eq!(dummy.params, real_parsed.params);
        assert_eq!(
            dummy.hash.map(|hash| hash.len()),
            real_parsed.hash.map(|hash| hash.len())
        );
        // And it is evaluated: one argon2 run per unknown-user check, as per wrong password.
        let before = hasher.evaluations();
        assert!(!hasher.verify_unknown_user("pw"));
        assert_eq!(hasher.evaluations(), before + 1);
        assert!(!hasher.verify("wrong", &real).unwrap());
        assert_eq!(hasher.evaluations(), before + 2);
    }

    #[test]
    fn verifications_reuse_their_memory() {
        let hasher = PasswordHasher::new().unwrap();
        let stored = hasher.hash("pw").unwrap();
        for _ in 0..3 {
            assert!(hasher.verify("pw", &stored).unwrap());
        }
        // Three checks one after the other kept one buffer, of one verification's size (19 MiB).
        let buffers = hasher.inner.buffers.lock().unwrap();
        assert_eq!(buffers.len(), 1);
        assert_eq!(buffers[0].len(), Params::default().block_count());
    }
}
