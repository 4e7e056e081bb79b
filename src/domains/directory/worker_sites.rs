//! Which sites a worker covers, and which one is their primary: what automatic assignment reads.

use serde::{Deserialize, Serialize};
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::{
    audit::{self, Actor},
    domains::crud::{RecordError, RecordResult},
    error::Invalid,
};

#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, sqlx::FromRow)]
#[serde(deny_unknown_fields)]
pub struct SiteCoverage {
    pub site_id: Uuid,
    /// Primary workers are offered the site's work first.
    #[serde(default)]
    pub is_primary: bool,
}

async fn exists(
    conn: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    worker_id: Uuid,
) -> RecordResult<()> {
    let found: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM workers WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL)",
    )
    .bind(tenant_id)
    .bind(worker_id)
    .fetch_one(conn)
    .await?;
    if found {
        Ok(())
    } else {
        Err(RecordError::NotFound("worker"))
    }
}

async fn coverage(
    conn: &mut sqlx::PgConnection,
    tenant_id: Uuid,
    worker_id: Uuid,
) -> RecordResult<Vec<SiteCoverage>> {
    Ok(sqlx::query_as(
        "SELECT site_id, is_primary FROM worker_sites WHERE tenant_id = $1 AND worker_id = $2
         ORDER BY is_primary DESC, created_at",
    )
    .bind(tenant_id)
    .bind(worker_id)
    .fetch_all(conn)
    .await?)
}

/// The sites a worker covers.
pub async fn get(
    pool: &PgPool,
    tenant_id: Uuid,
    worker_id: Uuid,
) -> RecordResult<Vec<SiteCoverage>> {
    let mut conn = pool.acquire().await?;
    exists(&mut conn, tenant_id, worker_id).await?;
    coverage(&mut conn, tenant_id, worker_id).await
}

const MAX_SITES_PER_WORKER: usize = 200;

/// Replaces the sites a worker covers (an empty list removes them all).
pub async fn replace(
    pool: &PgPool,
    tenant_id: Uuid,
    actor: Actor,
    id: Uuid,
    sites: &[SiteCoverage],
) -> RecordResult<Vec<SiteCoverage>> {
    // One statement per site below: a bound keeps one request from holding a connection for long.
    if sites.len() > MAX_SITES_PER_WORKER {
        return Err(RecordError::from(Invalid::field(
            "sites",
            format!("a worker covers at most {MAX_SITES_PER_WORKER} sites"),
        )));
    }
    let mut tx = audit::begin(pool, actor).await?;
    exists(&mut tx, tenant_id, id).await?;
    sqlx::query("DELETE FROM worker_sites WHERE tenant_id = $1 AND worker_id = $2")
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    for site in sites {
        // The composite foreign key refuses another organisation's site (422, naming site_id).
        sqlx::query(
            "INSERT INTO worker_sites (tenant_id, worker_id, site_id, is_primary) VALUES ($1, $2, $3, $4)
             ON CONFLICT ON CONSTRAINT worker_sites_worker_site_key DO UPDATE SET is_primary = EXCLUDED.is_primary",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(site.site_id)
        .bind(site.is_primary)
        .execute(&mut *tx)
        .await?;
    }
    let after = coverage(&mut tx, tenant_id, id).await?;
    tx.commit().await?;
    Ok(after)
}
