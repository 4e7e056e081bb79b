//! Credentials: argon2id passwords, random bearer tokens stored only as SHA-256.

use argon2::{Argon2, PasswordHash, PasswordHasher, PasswordVerifier, password_hash::SaltString};
use rand::{Rng, RngCore, distr::Alphanumeric};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

pub const MIN_PASSWORD_LEN: usize = 10;

/// Hashes with argon2id and the crate's recommended parameters (19 MiB, 2 passes).
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let mut salt_bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut salt_bytes);
    let salt = SaltString::encode_b64(&salt_bytes)
        .map_err(|e| anyhow::anyhow!("making a salt failed: {e}"))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| anyhow::anyhow!("hashing the password failed: {e}"))
}

/// Verifies in constant time; a malformed stored hash simply does not verify.
pub fn verify_password(password: &str, stored_hash: &str) -> bool {
    PasswordHash::new(stored_hash).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// How many password checks may wait for a turn before more are turned away.
const MAX_WAITING_CHECKS: usize = 32;

type Check = (String, String, tokio::sync::oneshot::Sender<bool>);

/// Password checks run on a few threads of their own, one per core, fed through a short queue.
/// Each check needs argon2's 19 MiB: on long-lived threads the allocator reuses that memory,
/// where fresh blocking threads would each keep an arena of their own, and a burst cannot start
/// more checks than there are cores.
static CHECKERS: std::sync::LazyLock<std::sync::mpsc::SyncSender<Check>> =
    std::sync::LazyLock::new(|| {
        let (queue, checks) = std::sync::mpsc::sync_channel::<Check>(MAX_WAITING_CHECKS);
        let checks = std::sync::Arc::new(std::sync::Mutex::new(checks));
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
        for n in 0..threads {
            let checks = checks.clone();
            std::thread::Builder::new()
                .name(format!("password-check-{n}"))
                .spawn(move || {
                    // One working memory per thread, allocated once and reused by every check.
                    let mut memory: Vec<argon2::Block> = Vec::new();
                    loop {
                        let next = checks.lock().map(|c| c.recv());
                        let Ok(Ok((password, stored_hash, answer))) = next else {
                            return;
                        };
                        let _ = answer.send(verify_in(&mut memory, &password, &stored_hash));
                    }
                })
                .expect("a password-check thread starts");
        }
        queue
    });

/// [`verify_password`] in the caller's working memory, grown to the hash's cost if needed.
fn verify_in(memory: &mut Vec<argon2::Block>, password: &str, stored_hash: &str) -> bool {
    let mut verified = || -> Option<bool> {
        let hash = PasswordHash::new(stored_hash).ok()?;
        let params = argon2::Params::try_from(&hash).ok()?;
        let algorithm = argon2::Algorithm::try_from(hash.algorithm).ok()?;
        let version = hash
            .version
            .map(argon2::Version::try_from)
            .transpose()
            .ok()?
            .unwrap_or_default();
        let expected = hash.hash?;
        let mut salt = [0u8; 64];
        let salt = hash.salt?.decode_b64(&mut salt).ok()?;
        memory.resize(params.block_count(), argon2::Block::default());
        let mut output = vec![0u8; expected.len()];
        Argon2::new(algorithm, version, params)
            .hash_password_into_with_memory(
                password.as_bytes(),
                salt,
                &mut output,
                memory.as_mut_slice(),
            )
            .ok()?;
        Some(output.ct_eq(expected.as_bytes()).into())
    };
    verified().unwrap_or(false)
}

/// Verifies off the async workers, at most one check per core at a time; `None` when so many
/// are already waiting that this one should be refused (the caller answers 429, Retry-After).
pub async fn verify_password_bounded(password: String, stored_hash: String) -> Option<bool> {
    let (answer, verified) = tokio::sync::oneshot::channel();
    CHECKERS.try_send((password, stored_hash, answer)).ok()?;
    verified.await.ok()
}

/// A hash that verifies nothing, checked against when the email is unknown, so that a wrong email
/// costs the same time as a wrong password and sign-in does not reveal who has an account.
pub fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| hash_password("not a password anyone has").expect("argon2 works"))
}

pub fn check_password_strength(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_LEN {
        Err(format!(
            "the password must be at least {MIN_PASSWORD_LEN} characters"
        ))
    } else {
        Ok(())
    }
}

/// A random token with a readable prefix (`fl_api_...`), 43 alphanumeric characters of entropy (~256 bits).
pub fn new_token(prefix: &str) -> String {
    let random: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(43)
        .map(char::from)
        .collect();
    format!("{prefix}{random}")
}

/// Tokens have enough entropy that a fast hash is safe; the database keeps only this.
pub fn token_hash(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

pub fn constant_time_eq(a: &str, b: &str) -> bool {
    a.as_bytes().ct_eq(b.as_bytes()).into()
}

/// A readable random password for generated accounts (demo data).
pub fn new_password() -> String {
    rand::rng()
        .sample_iter(&Alphanumeric)
        .take(16)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_hash_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("x", "not a hash"));
        let mut memory = Vec::new();
        assert!(verify_in(&mut memory, "correct horse battery", &hash));
        assert!(!verify_in(&mut memory, "wrong", &hash));
        assert!(!verify_in(&mut memory, "x", "not a hash"));
    }

    #[test]
    fn tokens_are_random_and_hash_to_32_bytes() {
        let (a, b) = (new_token("fl_api_"), new_token("fl_api_"));
        assert_ne!(a, b);
        assert!(a.starts_with("fl_api_") && a.len() == 50);
        assert_eq!(token_hash(&a).len(), 32);
        assert!(constant_time_eq(&a, &a.clone()) && !constant_time_eq(&a, &b));
    }
}
