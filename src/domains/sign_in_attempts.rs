//! Limits on panel sign-in attempts, kept in the database so they hold across processes and
//! restarts. An attempt is written before the password is checked, so a flood of concurrent
//! guesses counts itself; one that succeeds stops counting. Counting and writing happen under
//! the account's and the address's locks: read-then-write let 6 to 9 of 200 simultaneous
//! guesses through a limit of 5.

use std::net::IpAddr;

use sqlx::PgPool;
use uuid::Uuid;

/// Why an attempt may not go ahead.
#[derive(Debug, thiserror::Error)]
pub enum SignInRefused {
    /// Too many failures for the account or from the address: wait this long.
    #[error("too many sign-in attempts for this account or from this address: try again in {} minutes", .retry_after_secs.div_ceil(60))]
    TooManyAttempts { retry_after_secs: u64 },
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Unsuccessful attempts at one account (organisation and email) in the window.
const PER_ACCOUNT: i64 = 5;
/// Unsuccessful attempts from one client address in the window, whatever the account.
const PER_ADDRESS: i64 = 20;
const WINDOW_MINUTES: i64 = 15;

/// One attempt, counted until it is marked successful.
#[derive(Debug, Clone, Copy)]
pub struct Attempt(Uuid);

/// The key an account's attempts are counted under.
pub fn account_key(organisation: &str, email: &str) -> String {
    format!(
        "{}/{}",
        organisation.trim().to_lowercase(),
        email.trim().to_lowercase()
    )
}

/// Counts this attempt, or refuses it with `Retry-After` when the account or the address has
/// used up its attempts. Refused attempts are not written: a flood cannot extend its own ban.
#[tracing::instrument(skip(pool, account))]
pub async fn begin(
    pool: &PgPool,
    account: &str,
    address: Option<IpAddr>,
) -> Result<Attempt, SignInRefused> {
    let mut tx = pool.begin().await?;
    // Always the account first, then the address: two attempts never wait on each other in turn.
    sqlx::query(
        "SELECT pg_advisory_xact_lock(hashtext('sign-in account'), hashtext($1)),
                pg_advisory_xact_lock(hashtext('sign-in address'), hashtext(coalesce($2, '')))",
    )
    .bind(account)
    .bind(address.map(|a| a.to_string()))
    .execute(&mut *tx)
    .await?;
    let (by_account, by_address, retry_after): (i64, i64, Option<f64>) = sqlx::query_as(
        "WITH recent AS (
             SELECT account = $1 AS same_account, address = $2::inet AS same_address, created_at
             FROM sign_in_attempts
             WHERE NOT succeeded AND created_at > now() - make_interval(mins => $3)
               AND (account = $1 OR address = $2::inet))
         SELECT count(*) FILTER (WHERE same_account),
                count(*) FILTER (WHERE same_address),
                extract(epoch FROM min(created_at) + make_interval(mins => $3) - now())::float8
         FROM recent",
    )
    .bind(account)
    .bind(address.map(|a| a.to_string()))
    .bind(WINDOW_MINUTES as i32)
    .fetch_one(&mut *tx)
    .await?;
    if by_account >= PER_ACCOUNT || by_address >= PER_ADDRESS {
        tracing::warn!(by_account, by_address, "sign-in refused: too many attempts");
        let retry_after_secs = retry_after.unwrap_or(60.0).ceil().max(1.0) as u64;
        return Err(SignInRefused::TooManyAttempts { retry_after_secs });
    }
    let id: Uuid = sqlx::query_scalar(
        "INSERT INTO sign_in_attempts (account, address) VALUES ($1, $2::inet) RETURNING id",
    )
    .bind(account)
    .bind(address.map(|a| a.to_string()))
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Attempt(id))
}

/// The password was right: this attempt and the account's earlier misses stop counting.
pub async fn succeeded(pool: &PgPool, account: &str, attempt: Attempt) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE sign_in_attempts SET succeeded = true
         WHERE id = $1 OR (account = $2 AND NOT succeeded)",
    )
    .bind(attempt.0)
    .bind(account)
    .execute(pool)
    .await?;
    Ok(())
}

/// Attempts only count for minutes: a day's worth is kept for looking into an incident.
pub async fn prune(conn: &mut sqlx::PgConnection) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM sign_in_attempts WHERE created_at < now() - interval '1 day'")
        .execute(conn)
        .await?;
    Ok(())
}
