//! Connecting to PostgreSQL, creating the database when it is missing, and migrating.

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    PgPool,
    migrate::Migrator,
    postgres::{PgConnectOptions, PgPoolOptions, PgSslMode},
};

use crate::config::DatabaseUrl;

/// The product's one schema, embedded in the binary.
pub static MIGRATOR: Migrator = sqlx::migrate!("./migrations");

/// A pooled connection idle longer than this is pinged before it is handed out.
const RECHECK_IDLE_AFTER: Duration = Duration::from_secs(1);

/// Connects, creating the database first when the server is there but the database is not.
pub async fn connect(url: &DatabaseUrl, max_connections: u32) -> anyhow::Result<PgPool> {
    let options = connect_options(url)?;
    let pool_options = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5))
        // sqlx pings every connection when it comes back to the pool; pinging it again when it
        // is taken out doubled that round trip on every statement run outside a transaction.
        // Only a connection idle for a while (one the server may have closed) is checked again.
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for > RECHECK_IDLE_AFTER {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        });
    match pool_options.clone().connect_with(options.clone()).await {
        Ok(pool) => Ok(pool),
        Err(err) if is_missing_database(&err) => {
            create_database(url).await?;
            pool_options
                .connect_with(options)
                .await
                .map_err(|e| unreachable_hint(url, e))
        }
        Err(err) => Err(unreachable_hint(url, err)),
    }
}

/// How every connection to `url` is made, the pool's and the one that creates the database.
fn connect_options(url: &DatabaseUrl) -> anyhow::Result<PgConnectOptions> {
    let options: PgConnectOptions = url.expose().parse().map_err(|e| unreachable_hint(url, e))?;
    // sqlx, like libpq, prefers TLS whenever the server offers it. To a server on this machine
    // TLS protects nothing, and it cost about a tenth of the CPU per reply (the load benchmark,
    // with and without, docs/performance.md); a URL or PGSSLMODE that names a mode is obeyed.
    Ok(if url.loopback_without_ssl_mode() {
        options.ssl_mode(PgSslMode::Disable)
    } else {
        options
    })
}

fn is_missing_database(err: &sqlx::Error) -> bool {
    // 3D000: invalid_catalog_name, what PostgreSQL says for an unknown database.
    matches!(err, sqlx::Error::Database(db) if db.code().as_deref() == Some("3D000"))
}

fn unreachable_hint(url: &DatabaseUrl, err: sqlx::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "cannot reach the database at {url}: {err} (is PostgreSQL running? start it, or set DATABASE_URL to one that is)"
    )
}

async fn create_database(url: &DatabaseUrl) -> anyhow::Result<()> {
    let name = url.database_name().to_owned();
    let admin_url = url.with_database("postgres");
    let admin = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(connect_options(&admin_url)?)
        .await
        .map_err(|e| unreachable_hint(&admin_url, e))?;
    let quoted = format!("\"{}\"", name.replace('"', "\"\""));
    // The name comes from our own configuration and is quoted as an identifier.
    match sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {quoted}")))
        .execute(&admin)
        .await
    {
        Ok(_) => tracing::info!(database = %name, "created the database"),
        // Another process created it between our two attempts: that is what we wanted.
        Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("42P04") => {}
        Err(err) => {
            return Err(err).with_context(|| format!("cannot create database {name:?} at {url}"));
        }
    }
    admin.close().await;
    Ok(())
}

/// Applies apalis-postgres's migrations (kept in the `apalis` schema), then the product's: some
/// of the product's adjust the job queue's table.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    apalis_postgres::PostgresStorage::<()>::setup(pool)
        .await
        .context("setting up the job queue tables")?;
    MIGRATOR
        .run(pool)
        .await
        .context("applying the database migrations")?;
    // Two of apalis-postgres 1.0's indexes repeat others: `unique_job_id` the primary key (both
    // on `id`), `lidx` its own `idx_apalis_jobs_lock_by` (both on `lock_by`; its index clean-up
    // migration dropped the other old ones but not this). Every job's insert and each of its
    // three status changes (none of them HOT, `status` being in an index predicate) wrote both
    // twice. At every start, after its migrations, since a later one could create them again.
    sqlx::query("DROP INDEX IF EXISTS apalis.unique_job_id, apalis.lidx")
        .execute(pool)
        .await
        .context("dropping the job queue's duplicate indexes")?;
    Ok(())
}

/// Whether every embedded migration has been applied, so `/readyz` can say "not yet".
pub async fn migrations_current(pool: &PgPool) -> Result<bool, sqlx::Error> {
    let applied: Vec<i64> =
        sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
            .fetch_all(pool)
            .await?;
    let expected: Vec<i64> = MIGRATOR
        .iter()
        .filter(|m| m.migration_type.is_up_migration())
        .map(|m| m.version)
        .collect();
    Ok(expected.iter().all(|v| applied.contains(v)))
}

/// Begins a transaction whose commit does not wait for the disk: for work nobody outside hears
/// of until a later transaction commits normally, whose flush then writes this one too (the log
/// is written in order). Storing from the inbox and routing qualify: the person hears nothing
/// until the send job's `sending` row commits, and the job that did the work is finished by a
/// normal commit. A database crash can only undo such a transaction together with that job's
/// end, so the job runs again (each is idempotent). Not for anything a provider or a person is
/// told of: webhook acknowledgements and sends keep the normal commit.
pub async fn begin_internal(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    pool.begin_with("BEGIN; SET LOCAL synchronous_commit = off")
        .await
}

/// Whether `err` means the database could not be reached or went away for a moment (a restart,
/// a failover, a cut connection), so the same work may succeed if tried again.
pub fn unreachable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => true,
        // Class 08: connection exception; class 57: operator intervention (shutdown, cut).
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57")),
        _ => false,
    }
}
