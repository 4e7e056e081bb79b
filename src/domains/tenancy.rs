//! Tenants, the coordinators and admins who sign in to them, and their API tokens.

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::{
    auth,
    types::{Email, Locale, Slug, TimeZone},
};

#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub slug: String,
    pub time_zone: String,
    pub default_locale: String,
    pub created_at: DateTime<Utc>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Coordinator,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Coordinator => "coordinator",
            Self::Admin => "admin",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(raw: &str) -> Result<Self, String> {
        match raw {
            "admin" => Ok(Self::Admin),
            "coordinator" => Ok(Self::Coordinator),
            other => Err(format!("{other:?} is not a role: use admin or coordinator")),
        }
    }
}

crate::text_sql!(Role);

#[derive(Debug, thiserror::Error)]
pub enum TenancyError {
    #[error("no organisation has the slug {0:?} (list them with `fieldline tenant list`)")]
    UnknownTenant(String),
    #[error("an organisation with the slug {0:?} already exists")]
    SlugTaken(String),
    #[error("{0} already has an account in this organisation")]
    EmailTaken(String),
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub struct NewTenant {
    pub name: String,
    pub slug: Slug,
    pub time_zone: TimeZone,
    pub locale: Locale,
}

pub async fn create_tenant(
    conn: &mut PgConnection,
    new: &NewTenant,
) -> Result<Tenant, TenancyError> {
    let name = new.name.trim();
    if name.is_empty() {
        return Err(TenancyError::Invalid(
            "the organisation name must not be empty".into(),
        ));
    }
    let tenant: Option<Tenant> = sqlx::query_as(
        "INSERT INTO tenants (id, name, slug, time_zone, default_locale) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT ON CONSTRAINT tenants_slug_key DO NOTHING
         RETURNING id, name, slug, time_zone, default_locale, created_at",
    )
    .bind(Uuid::now_v7())
    .bind(name)
    .bind(new.slug.as_str())
    .bind(new.time_zone.name())
    .bind(new.locale.as_str())
    .fetch_optional(&mut *conn)
    .await?;
    let tenant = tenant.ok_or_else(|| TenancyError::SlugTaken(new.slug.as_str().to_owned()))?;
    Ok(tenant)
}

pub async fn find_tenant(pool: &PgPool, slug: &str) -> Result<Tenant, TenancyError> {
    sqlx::query_as(
        "SELECT id, name, slug, time_zone, default_locale, created_at FROM tenants WHERE slug = $1 AND deleted_at IS NULL",
    )
    .bind(slug)
    .fetch_optional(pool)
    .await?
    .ok_or_else(|| TenancyError::UnknownTenant(slug.to_owned()))
}

pub async fn list_tenants(pool: &PgPool) -> Result<Vec<Tenant>, TenancyError> {
    Ok(sqlx::query_as(
        "SELECT id, name, slug, time_zone, default_locale, created_at FROM tenants WHERE deleted_at IS NULL ORDER BY slug",
    )
    .fetch_all(pool)
    .await?)
}

/// Creates a user, or with `reset_existing` sets a new password and role on the existing one.
pub async fn upsert_user(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    email: &Email,
    full_name: Option<&str>,
    role: Role,
    password: &str,
    reset_existing: bool,
) -> Result<Uuid, TenancyError> {
    auth::check_password_strength(password).map_err(TenancyError::Invalid)?;
    let hash = auth::hash_password(password)?;
    let id: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO users (id, tenant_id, email, full_name, password_hash, role) VALUES ($1, $2, $3, $4, $5, $6)
         ON CONFLICT (tenant_id, email) DO UPDATE
            SET password_hash = EXCLUDED.password_hash, role = EXCLUDED.role,
                full_name = COALESCE(EXCLUDED.full_name, users.full_name), active = true
          WHERE $7
         RETURNING id",
    )
    .bind(Uuid::now_v7())
    .bind(tenant_id)
    .bind(email.as_str())
    .bind(full_name)
    .bind(hash)
    .bind(role.as_str())
    .bind(reset_existing)
    .fetch_optional(&mut *conn)
    .await?;
    let id = id.ok_or_else(|| TenancyError::EmailTaken(email.as_str().to_owned()))?;
    Ok(id)
}

/// Gives a user the number coordinator alerts are messaged to (`None` stops them).
pub async fn set_user_phone(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    user_id: Uuid,
    phone: Option<&crate::types::PhoneNumber>,
) -> Result<(), TenancyError> {
    sqlx::query("UPDATE users SET phone = $3 WHERE tenant_id = $1 AND id = $2")
        .bind(tenant_id)
        .bind(user_id)
        .bind(phone.map(|p| p.as_str()))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Creates an API token and returns it; it is never retrievable again.
pub async fn create_api_token(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    name: &str,
    role: Role,
) -> Result<(Uuid, String), TenancyError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(TenancyError::Invalid(
            "give the token a name that says who uses it".into(),
        ));
    }
    let token = auth::new_token("fl_api_");
    let id = Uuid::now_v7();
    sqlx::query("INSERT INTO api_tokens (id, tenant_id, name, token_hash, token_prefix, role) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(id)
        .bind(tenant_id)
        .bind(name)
        .bind(auth::token_hash(&token))
        .bind(&token[..11])
        .bind(role.as_str())
        .execute(&mut *conn)
        .await?;
    Ok((id, token))
}
