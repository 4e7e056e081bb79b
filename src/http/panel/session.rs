//! Panel sessions: a random cookie token whose SHA-256 is the session row's key.
//!
//! CSRF: each session has its own token, embedded in every form and compared in constant time.
//! Before sign-in there is no session, so the sign-in form uses a double-submit cookie instead.

use crate::domains::tenancy::Role;
use std::net::IpAddr;

use axum::{
    extract::FromRequestParts,
    http::{StatusCode, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
};
use axum_extra::extract::{
    CookieJar,
    cookie::{Cookie, SameSite},
};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    audit::{self, Actor},
    auth,
    config::Config,
    domains::panel_sessions::ExpirePanelSession,
    domains::sign_in_attempts,
    http::AppState,
    http::error::AppError,
    jobs,
    types::Email,
};

pub const SESSION_COOKIE: &str = "fieldline_session";
const LOGIN_CSRF_COOKIE: &str = "fieldline_login_csrf";

/// A signed-in coordinator or admin, and the one tenant they see.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Coordinator {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub tenant_id: Uuid,
    pub tenant_name: String,
    pub time_zone: String,
    pub email: String,
    pub full_name: Option<String>,
    pub role: Role,
    pub csrf_token: String,
    pub expires_at: DateTime<Utc>,
}

impl Coordinator {
    /// Who the audit log says made this coordinator's changes.
    pub fn actor(&self) -> Actor {
        Actor::User(self.user_id)
    }
}

fn cookie(config: &Config, name: &'static str, value: String) -> Cookie<'static> {
    Cookie::build((name, value))
        .path("/panel")
        .http_only(true)
        .secure(config.serves_https())
        .same_site(SameSite::Lax)
        .build()
}

/// The sign-in form's CSRF token: reuses the cookie's when there is one, so two tabs both work.
pub fn login_csrf(jar: CookieJar, config: &Config) -> (CookieJar, String) {
    if let Some(existing) = jar
        .get(LOGIN_CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .filter(|v| v.len() >= 32)
    {
        return (jar, existing);
    }
    let token = auth::new_token("");
    (
        jar.add(cookie(config, LOGIN_CSRF_COOKIE, token.clone())),
        token,
    )
}

pub fn login_csrf_matches(jar: &CookieJar, submitted: &str) -> bool {
    jar.get(LOGIN_CSRF_COOKIE)
        .is_some_and(|c| !submitted.is_empty() && auth::constant_time_eq(c.value(), submitted))
}

pub fn csrf_refused() -> Response {
    (
        StatusCode::FORBIDDEN,
        Html(super::views::message_page(
            "Form expired",
            "This form could not be verified (its security token is missing or stale). Go back, reload the page and try again.",
        )
        .into_string()),
    )
        .into_response()
}

/// Checks the credentials; on success creates the session (and its expiry job) and returns its cookie.
#[tracing::instrument(skip(state, email, password, user_agent), fields(organisation = %organisation))]
pub async fn sign_in(
    state: &AppState,
    organisation: &str,
    email: &str,
    password: &str,
    address: Option<IpAddr>,
    user_agent: Option<String>,
) -> Result<Option<Cookie<'static>>, AppError> {
    let account = sign_in_attempts::account_key(organisation, email);
    // Counted before any work, so a flood is turned away before it costs a hash.
    let attempt = sign_in_attempts::begin(&state.pool, &account, address).await?;
    let email = Email::parse(email)
        .map(|e| e.as_str().to_owned())
        .unwrap_or_default();
    let user: Option<(Uuid, Uuid, String)> = sqlx::query_as(
        "SELECT u.id, u.tenant_id, u.password_hash
           FROM users u JOIN tenants t ON t.id = u.tenant_id
          WHERE t.slug = $1 AND t.deleted_at IS NULL AND u.email = $2 AND u.active",
    )
    .bind(organisation.trim().to_lowercase())
    .bind(&email)
    .fetch_optional(&state.pool)
    .await?;

    // Unknown users are checked against a dummy hash so both failures take the same time.
    let stored = user
        .as_ref()
        .map(|(_, _, hash)| hash.clone())
        .unwrap_or_else(|| auth::dummy_password_hash().to_owned());
    let Some(verified) = auth::verify_password_bounded(password.to_owned(), stored).await else {
        return Err(AppError::RetryLater {
            message: "sign-in is busy right now: try again in a few seconds".into(),
            retry_after_secs: 2,
        });
    };
    let Some((user_id, tenant_id, _)) = user.filter(|_| verified) else {
        tracing::info!("panel sign-in refused");
        return Ok(None);
    };
    sign_in_attempts::succeeded(&state.pool, &account, attempt).await?;

    let token = auth::new_token("");
    let ttl = state.config.panel_session_ttl;
    let session_id = Uuid::now_v7();
    let mut tx = audit::begin(&state.pool, Actor::User(user_id)).await?;
    sqlx::query(
        "INSERT INTO panel_sessions (id, tenant_id, user_id, token_hash, csrf_token, ip, user_agent, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6::inet, $7, now() + make_interval(secs => $8))",
    )
    .bind(session_id)
    .bind(tenant_id)
    .bind(user_id)
    .bind(auth::token_hash(&token))
    .bind(auth::new_token(""))
    .bind(address.map(|a| a.to_string()))
    .bind(user_agent)
    .bind(ttl.as_secs_f64())
    .execute(&mut *tx)
    .await?;
    sqlx::query("UPDATE users SET last_sign_in_at = now() WHERE id = $1")
        .bind(user_id)
        .execute(&mut *tx)
        .await?;
    jobs::enqueue(&mut tx, &ExpirePanelSession { session_id }, ttl).await?;
    audit::record(
        &mut tx,
        audit::Entry {
            tenant_id: Some(tenant_id),
            actor: Actor::User(user_id),
            action: "panel.signed_in",
            entity_type: "user",
            entity_id: Some(user_id),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(%user_id, "panel sign-in");
    Ok(Some(cookie(&state.config, SESSION_COOKIE, token)))
}

pub async fn sign_out(state: &AppState, coordinator: &Coordinator) -> Result<(), AppError> {
    let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
    sqlx::query("DELETE FROM panel_sessions WHERE id = $1 AND tenant_id = $2")
        .bind(coordinator.session_id)
        .bind(coordinator.tenant_id)
        .execute(&mut *tx)
        .await?;
    audit::record(
        &mut tx,
        audit::Entry {
            tenant_id: Some(coordinator.tenant_id),
            actor: Actor::User(coordinator.user_id),
            action: "panel.signed_out",
            entity_type: "user",
            entity_id: Some(coordinator.user_id),
            after: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

pub fn forget(jar: CookieJar, config: &Config) -> CookieJar {
    jar.remove(cookie(config, SESSION_COOKIE, String::new()))
}

/// Pages behind sign-in take a `Coordinator`; without a live session they send people to sign in.
impl FromRequestParts<AppState> for Coordinator {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let jar = CookieJar::from_headers(&parts.headers);
        let Some(token) = jar.get(SESSION_COOKIE).map(|c| c.value().to_owned()) else {
            return Err(Redirect::to("/panel/login").into_response());
        };
        let found: Option<Coordinator> = sqlx::query_as(
            "SELECT s.id AS session_id, u.id AS user_id, t.id AS tenant_id, t.name AS tenant_name, t.time_zone,
                    u.email, u.full_name, u.role, s.csrf_token, s.expires_at
               FROM panel_sessions s
               JOIN users u ON u.id = s.user_id AND u.tenant_id = s.tenant_id
               JOIN tenants t ON t.id = s.tenant_id
              WHERE s.token_hash = $1 AND s.expires_at > now() AND u.active AND t.deleted_at IS NULL",
        )
        .bind(auth::token_hash(&token))
        .fetch_optional(&state.pool)
        .await
        .map_err(|e| AppError::Unavailable(e).into_response())?;
        found.ok_or_else(|| Redirect::to("/panel/login").into_response())
    }
}

/// A form with nothing in it but its CSRF token (a button).
#[derive(serde::Deserialize)]
pub struct NoFields {}

/// A form posted by a signed-in coordinator, its CSRF token checked (in constant time) before
/// the handler runs: a missing or stale token gets the "form expired" page, and no handler can
/// forget the check.
pub struct CsrfForm<T> {
    pub coordinator: Coordinator,
    pub input: T,
}

impl<T: serde::de::DeserializeOwned> axum::extract::FromRequest<AppState> for CsrfForm<T> {
    type Rejection = Response;

    async fn from_request(
        request: axum::extract::Request,
        state: &AppState,
    ) -> Result<Self, Response> {
        let (mut parts, body) = request.into_parts();
        let coordinator = Coordinator::from_request_parts(&mut parts, state).await?;
        let request = axum::extract::Request::from_parts(parts, body);
        let axum::extract::RawForm(body) = axum::extract::RawForm::from_request(request, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).map_err(|e| {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("the form cannot be read: {e}"),
            )
                .into_response()
        })?;
        let token = fields
            .iter()
            .find(|(name, _)| name == "csrf_token")
            .map_or("", |(_, value)| value.as_str());
        if !auth::constant_time_eq(token, &coordinator.csrf_token) {
            return Err(csrf_refused());
        }
        // What no field can hold, whatever the form: refused here, so no handler stores it.
        let unreadable = |why: String| {
            (
                StatusCode::UNPROCESSABLE_ENTITY,
                Html(
                    super::views::message_page("Check the form", &crate::http::error::bounded(why))
                        .into_string(),
                ),
            )
                .into_response()
        };
        let mut errors = crate::error::FieldErrors::new();
        for (name, value) in &fields {
            crate::http::extract::check_untyped_text(&mut errors, name, value);
        }
        if let Err(invalid) = errors.into_result() {
            return Err(unreadable(format!("Go back and correct it: {invalid}.")));
        }
        let input = serde_urlencoded::from_bytes(&body)
            .map_err(|e| unreadable(format!("The form cannot be read: {e}.")))?;
        Ok(Self { coordinator, input })
    }
}
