//! The one way tenant-owned records are created, read, listed, updated and soft-deleted.
//!
//! Each resource says how to validate its input and how to write it; this module does the rest the
//! same way for all of them: tenant scoping, keyset paging, JSON merge-patch updates (RFC 7386)
//! that re-run the same validation as create, soft delete, and an audit entry for every change.

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;
use sqlx::{PgConnection, PgPool, postgres::PgRow};
use uuid::Uuid;

use crate::{
    audit::{self, Actor},
    error::Invalid,
};

/// Why a record could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// Missing, deleted, or another organisation's (never revealed as such).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The body cannot be applied at all (not an object, a field of the wrong type).
    #[error("{0}")]
    Malformed(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type RecordResult<T> = Result<T, RecordError>;

pub const DEFAULT_PAGE_SIZE: i64 = 50;
pub const MAX_PAGE_SIZE: i64 = 200;

/// A tenant-owned table exposed through the API.
pub trait Resource: Serialize + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin + Sized {
    /// Singular, for messages and the audit log: "site".
    const NAME: &'static str;
    /// The table; every such table has `id`, `tenant_id` and `deleted_at`.
    const TABLE: &'static str;
    /// What a client sends on create, and what a merge patch is applied to on update.
    type Input: DeserializeOwned + Serialize + for<'a> From<&'a Self>;
    /// The input once every field has been parsed.
    type Valid: Send + Sync;

    fn validate(input: Self::Input) -> Result<Self::Valid, Invalid>;
    fn insert(
        conn: &mut PgConnection,
        tenant_id: Uuid,
        valid: &Self::Valid,
    ) -> impl Future<Output = sqlx::Result<Self>> + Send;
    fn update(
        conn: &mut PgConnection,
        tenant_id: Uuid,
        id: Uuid,
        valid: &Self::Valid,
    ) -> impl Future<Output = sqlx::Result<Self>> + Send;
}

/// Keyset paging over time-ordered (UUID v7) ids: stable under inserts, cheap at any depth.
pub fn page_size(limit: Option<i64>) -> RecordResult<i64> {
    match limit {
        None => Ok(DEFAULT_PAGE_SIZE),
        Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
        Some(_) => {
            Err(Invalid::field("limit", format!("must be between 1 and {MAX_PAGE_SIZE}")).into())
        }
    }
}

/// Splits one extra fetched row off to learn whether another page follows.
pub fn into_page<R>(
    mut rows: Vec<R>,
    limit: i64,
    id_of: impl Fn(&R) -> Uuid,
) -> (Vec<R>, Option<Uuid>) {
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let next = if more { rows.last().map(id_of) } else { None };
    (rows, next)
}

pub async fn get<R: Resource>(pool: &PgPool, tenant_id: Uuid, id: Uuid) -> RecordResult<R> {
    fetch::<R>(&mut *pool.acquire().await?, tenant_id, id, false).await
}

async fn fetch<R: Resource>(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    for_update: bool,
) -> RecordResult<R> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let sql = format!(
        "SELECT * FROM {} WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL{lock}",
        R::TABLE
    );
    // Table names are compile-time constants of the Resource impls; values are bound.
    sqlx::query_as::<_, R>(sqlx::AssertSqlSafe(sql))
        .bind(tenant_id)
        .bind(id)
        .fetch_optional(conn)
        .await?
        // Another tenant's row is "not found", never "forbidden": its existence is not ours to reveal.
        .ok_or(RecordError::NotFound(R::NAME))
}

pub async fn create<R: Resource>(
    pool: &PgPool,
    tenant_id: Uuid,
    actor: Actor,
    input: R::Input,
) -> RecordResult<R> {
    let valid = R::validate(input)?;
    let mut tx = audit::begin(pool, actor).await?;
    let created = R::insert(&mut tx, tenant_id, &valid).await?;
    tx.commit().await?;
    Ok(created)
}

/// Applies a JSON merge patch: fields given replace, `null` clears, absent fields stay.
pub async fn update<R: Resource>(
    pool: &PgPool,
    tenant_id: Uuid,
    actor: Actor,
    id: Uuid,
    patch: Value,
) -> RecordResult<R> {
    if !patch.is_object() {
        return Err(RecordError::Malformed(
            "send a JSON object with the fields to change".into(),
        ));
    }
    let mut tx = audit::begin(pool, actor).await?;
    let current = fetch::<R>(&mut tx, tenant_id, id, true).await?;
    let mut merged = serde_json::to_value(R::Input::from(&current)).map_err(anyhow::Error::from)?;
    merge_patch(&mut merged, &patch);
    let input: R::Input = serde_json::from_value(merged)
        .map_err(|e| RecordError::Malformed(format!("the JSON does not fit: {e}")))?;
    let valid = R::validate(input)?;
    let updated = R::update(&mut tx, tenant_id, id, &valid).await?;
    tx.commit().await?;
    Ok(updated)
}

/// Marks the row deleted; it disappears from reads but stays for history and references.
pub async fn soft_delete<R: Resource>(
    pool: &PgPool,
    tenant_id: Uuid,
    actor: Actor,
    id: Uuid,
) -> RecordResult<()> {
    let mut tx = audit::begin(pool, actor).await?;
    fetch::<R>(&mut tx, tenant_id, id, true).await?;
    let sql = format!(
        "UPDATE {} SET deleted_at = now() WHERE tenant_id = $1 AND id = $2",
        R::TABLE
    );
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(tenant_id)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// RFC 7386 JSON merge patch.
pub fn merge_patch(target: &mut Value, patch: &Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                if value.is_null() {
                    target.remove(key);
                } else {
                    merge_patch(target.entry(key.clone()).or_insert(Value::Null), value);
                }
            }
        }
        (target, patch) => *target = patch.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn merge_patch_follows_rfc_7386() {
        let mut doc = json!({"a": "b", "c": {"d": "e", "f": "g"}});
        merge_patch(&mut doc, &json!({"a": "z", "c": {"f": null}}));
        assert_eq!(doc, json!({"a": "z", "c": {"d": "e"}}));
        let mut doc = json!({"tags": ["x"]});
        merge_patch(&mut doc, &json!({"tags": ["y", "z"]}));
        assert_eq!(doc, json!({"tags": ["y", "z"]}));
    }

    #[test]
    fn page_size_is_bounded() {
        assert_eq!(page_size(None).unwrap(), DEFAULT_PAGE_SIZE);
        assert!(page_size(Some(0)).is_err());
        assert!(page_size(Some(MAX_PAGE_SIZE + 1)).is_err());
    }
}
