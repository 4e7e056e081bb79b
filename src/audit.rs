//! The append-only audit log: who changed what, with before and after.

use serde_json::Value;
use sqlx::PgConnection;
use uuid::Uuid;

/// Who acted, as the audit log records it.
#[derive(Clone, Copy, Debug)]
pub enum Actor {
    System,
    Cli,
    User(Uuid),
    ApiToken(Uuid),
}

impl Actor {
    fn parts(self) -> (&'static str, Option<Uuid>) {
        match self {
            Self::System => ("system", None),
            Self::Cli => ("cli", None),
            Self::User(id) => ("user", Some(id)),
            Self::ApiToken(id) => ("api_token", Some(id)),
        }
    }
}

pub struct Entry<'a> {
    pub tenant_id: Option<Uuid>,
    pub actor: Actor,
    pub action: &'a str,
    pub entity_type: &'a str,
    pub entity_id: Option<Uuid>,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

/// Writes one entry on the caller's connection, inside the caller's transaction.
pub async fn record(conn: &mut PgConnection, entry: Entry<'_>) -> Result<(), sqlx::Error> {
    let (actor_kind, actor_id) = entry.actor.parts();
    sqlx::query(
        "INSERT INTO audit_log (tenant_id, actor_kind, actor_id, action, entity_type, entity_id, before, after)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(entry.tenant_id)
    .bind(actor_kind)
    .bind(actor_id)
    .bind(entry.action)
    .bind(entry.entity_type)
    .bind(entry.entity_id)
    .bind(entry.before)
    .bind(entry.after)
    .execute(conn)
    .await?;
    Ok(())
}
