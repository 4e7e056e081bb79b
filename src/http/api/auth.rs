//! `Authorization: Bearer <api token>`: the token, never the request body, decides the tenant.

use axum::{extract::FromRequestParts, http::request::Parts};
use uuid::Uuid;

use crate::{audit::Actor, auth, domains::tenancy::Role, http::AppState, http::error::AppError};

/// A caller authenticated by an API token, and the one tenant it may touch.
#[derive(Clone, Copy, Debug)]
pub struct ApiCaller {
    pub tenant_id: Uuid,
    pub token_id: Uuid,
    pub role: Role,
}

impl ApiCaller {
    pub fn actor(&self) -> Actor {
        Actor::ApiToken(self.token_id)
    }

    /// Refuses callers whose token is not an admin's, saying how to get one.
    pub fn require_admin(&self, what: &str) -> Result<(), AppError> {
        match self.role {
            Role::Admin => Ok(()),
            Role::Coordinator => Err(AppError::Forbidden(format!(
                "only an admin token may {what}: ask your operator for one (`fieldline token create --role admin`)"
            ))),
        }
    }
}

impl FromRequestParts<AppState> for ApiCaller {
    type Rejection = AppError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .ok_or_else(|| AppError::Unauthorized("send an API token: Authorization: Bearer <token> (create one with `fieldline token create`)".into()))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                AppError::Unauthorized("the Authorization header must read: Bearer <token>".into())
            })?;

        // Looked up by its SHA-256: the lookup reveals nothing about tokens that do not match.
        let row: Option<(Uuid, Uuid, Role)> = sqlx::query_as(
            "UPDATE api_tokens t
                SET last_used_at = now()
               FROM tenants
              WHERE t.token_hash = $1
                AND tenants.id = t.tenant_id AND tenants.deleted_at IS NULL
                AND t.revoked_at IS NULL
                AND (t.expires_at IS NULL OR t.expires_at > now())
          RETURNING t.id, t.tenant_id, t.role",
        )
        .bind(auth::token_hash(token))
        .fetch_optional(&state.pool)
        .await
        .map_err(AppError::Unavailable)?;
        match row {
            Some((token_id, tenant_id, role)) => Ok(Self {
                tenant_id,
                token_id,
                role,
            }),
            None => Err(AppError::Unauthorized(
                "the API token is unknown, revoked or expired".into(),
            )),
        }
    }
}
