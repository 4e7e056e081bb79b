//! The coordinators' panel: server-rendered HTML, session cookie, CSRF token on every form.

mod map;
mod patient_voice;
pub mod privacy;
mod session;
mod trips;
mod views;
mod visit_views;
mod visits;
mod work_order_views;
mod work_orders;

use axum::{
    Form, Router,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::get,
};
use axum_extra::extract::CookieJar;
use serde::Deserialize;

use crate::{
    audit, domains::dashboard, http::AppState, http::error::AppError, http::extract::ClientAddress,
};

pub use session::{Coordinator, CsrfForm};

/// 404 for a record another organisation has, or nobody: the same page either way.
fn not_found(coordinator: &Coordinator, what: &str) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(
            views::signed_in_message(
                coordinator,
                "Not found",
                &format!("There is no such {what} in your organisation."),
            )
            .into_string(),
        ),
    )
        .into_response()
}

/// A `datetime-local` field, in the organisation's time zone; empty is `None`.
fn local_time(
    field: &str,
    raw: &str,
    time_zone: &str,
) -> crate::http::error::AppResult<Option<chrono::DateTime<chrono::Utc>>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let naive = chrono::NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .map_err(|_| AppError::field(field, "give a date and time"))?;
    crate::types::check_year(chrono::Datelike::year(&naive))
        .map_err(|why| AppError::field(field, why))?;
    let at = naive
        .and_local_timezone(crate::types::TimeZone::stored(time_zone))
        .earliest()
        .ok_or_else(|| AppError::field(field, "that time does not exist in this time zone"))?;
    Ok(Some(at.with_timezone(&chrono::Utc)))
}

/// A form's change, in one transaction, then back to `page` saying what happened: a refusal (4xx)
/// is shown on the page with what to fix (`?error=`), a fault stays a fault.
async fn change_then_back<F>(
    state: &AppState,
    coordinator: &Coordinator,
    page: &str,
    done: &str,
    change: F,
) -> Result<Response, AppError>
where
    F: AsyncFnOnce(&mut sqlx::PgConnection) -> crate::http::error::AppResult<()>,
{
    let encode = |t: &str| url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>();
    let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
    match change(&mut tx).await {
        Ok(()) => {
            tx.commit().await?;
            Ok(Redirect::to(&format!("{page}?done={}", encode(done))).into_response())
        }
        Err(error) if error.status_code().is_client_error() => {
            Ok(Redirect::to(&format!("{page}?error={}", encode(&error.explain()))).into_response())
        }
        Err(error) => Err(error),
    }
}

const STYLESHEET: &str = include_str!("static/panel.css");
const LIVE_SCRIPT: &str = include_str!("static/live.js");
const MAP_SCRIPT: &str = include_str!("static/map.js");
/// Leaflet 1.9.4 from npm (BSD-2-Clause, `static/vendor/leaflet-1.9.4/LICENSE`), built into the
/// binary: no CDN.
const LEAFLET_SCRIPT: &str = include_str!("static/vendor/leaflet-1.9.4/leaflet.js");
const LEAFLET_STYLESHEET: &str = include_str!("static/vendor/leaflet-1.9.4/leaflet.css");

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(dashboard_page))
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/static/panel.css", get(stylesheet))
        .route("/static/live.js", get(live_script))
        .route(
            "/static/map.js",
            get(|| static_file("text/javascript", MAP_SCRIPT)),
        )
        .route(
            "/static/leaflet.js",
            get(|| static_file("text/javascript", LEAFLET_SCRIPT)),
        )
        .route(
            "/static/leaflet.css",
            get(|| static_file("text/css", LEAFLET_STYLESHEET)),
        )
        .route("/changes", get(changes))
        .merge(work_orders::routes())
        .merge(visits::routes())
        .merge(patient_voice::routes())
        .merge(trips::routes())
        .merge(privacy::routes())
}

async fn static_file(kind: &'static str, body: &'static str) -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, format!("{kind}; charset=utf-8")),
            (header::CACHE_CONTROL, "public, max-age=86400".to_owned()),
        ],
        body,
    )
}

async fn live_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        LIVE_SCRIPT,
    )
}

/// A token that changes whenever something a page shows changes for this organisation; the
/// pages poll it and reload (`static/live.js`).
async fn changes(
    State(state): State<AppState>,
    coordinator: Coordinator,
) -> Result<impl IntoResponse, AppError> {
    let token = dashboard::change_token(&state.pool, coordinator.tenant_id).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        token,
    ))
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        STYLESHEET,
    )
}

async fn dashboard_page(
    State(state): State<AppState>,
    coordinator: Coordinator,
) -> Result<Html<String>, AppError> {
    let counts =
        dashboard::counts(&state.pool, coordinator.tenant_id, &coordinator.time_zone).await?;
    let attention = dashboard::needs_attention(&state.pool, coordinator.tenant_id).await?;
    let since = chrono::Utc::now() - chrono::TimeDelta::days(30);
    let responses = dashboard::response_times(&state.pool, coordinator.tenant_id, since).await?;
    let punctuality = dashboard::punctuality(&state.pool, coordinator.tenant_id, since).await?;
    Ok(Html(
        views::dashboard(&coordinator, &counts, &attention, &responses, &punctuality).into_string(),
    ))
}

#[derive(Deserialize)]
struct LoginQuery {
    organisation: Option<String>,
}

async fn login_page(
    State(state): State<AppState>,
    jar: CookieJar,
    axum::extract::Query(query): axum::extract::Query<LoginQuery>,
) -> Response {
    let (jar, csrf) = session::login_csrf(jar, &state.config);
    let form = views::LoginForm {
        organisation: query.organisation.unwrap_or_default(),
        email: String::new(),
        csrf,
        error: None,
    };
    (jar, Html(views::login(&form).into_string())).into_response()
}

#[derive(Deserialize)]
struct LoginInput {
    organisation: String,
    email: String,
    password: String,
    csrf_token: String,
}

async fn login(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    jar: CookieJar,
    Form(input): Form<LoginInput>,
) -> Result<Response, AppError> {
    if !session::login_csrf_matches(&jar, &input.csrf_token) {
        return Ok(session::csrf_refused());
    }
    let user_agent = headers
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let outcome = session::sign_in(
        &state,
        &input.organisation,
        &input.email,
        &input.password,
        address,
        user_agent,
    )
    .await;
    match outcome {
        Ok(Some(cookie)) => Ok((jar.add(cookie), Redirect::to("/panel")).into_response()),
        Err(AppError::RetryLater {
            message,
            retry_after_secs,
        }) => {
            let (jar, csrf) = session::login_csrf(jar, &state.config);
            let form = views::LoginForm {
                organisation: input.organisation,
                email: input.email,
                csrf,
                error: Some(message),
            };
            Ok((
                StatusCode::TOO_MANY_REQUESTS,
                [(header::RETRY_AFTER, retry_after_secs.to_string())],
                jar,
                Html(views::login(&form).into_string()),
            )
                .into_response())
        }
        Err(other) => Err(other),
        Ok(None) => {
            let (jar, csrf) = session::login_csrf(jar, &state.config);
            let form = views::LoginForm {
                organisation: input.organisation,
                email: input.email,
                csrf,
                error: Some(
                    "That organisation, email and password do not match an active account.".into(),
                ),
            };
            Ok((
                StatusCode::UNAUTHORIZED,
                jar,
                Html(views::login(&form).into_string()),
            )
                .into_response())
        }
    }
}

async fn logout(
    State(state): State<AppState>,
    jar: CookieJar,
    CsrfForm { coordinator, .. }: CsrfForm<session::NoFields>,
) -> Result<Response, AppError> {
    session::sign_out(&state, &coordinator).await?;
    Ok((
        session::forget(jar, &state.config),
        Redirect::to("/panel/login"),
    )
        .into_response())
}
