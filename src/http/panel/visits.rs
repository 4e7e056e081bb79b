//! Visits in the panel: the day's board, a visit's page (events, messages, exceptions, a time
//! correction), and the exception queue. Scoped by the coordinator's tenant; others' ids are 404.

use axum::{
    Form, Router,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use chrono::{NaiveDate, NaiveDateTime, Utc};
use serde::Deserialize;
use uuid::Uuid;

use super::{Coordinator, session, views, visit_views as page};
use crate::{
    app::AppState,
    audit::Actor,
    auth,
    domains::care::{
        exceptions::{self, Correction, Resolution},
        visits,
    },
    error::{AppError, AppResult},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/visits", get(board))
        .route("/visits/{id}", get(detail))
        .route("/visits/{id}/correct", post(correct))
        .route("/visit-exceptions", get(queue))
        .route("/visit-exceptions/{id}/resolve", post(resolve))
}

#[derive(Deserialize)]
struct BoardQuery {
    date: Option<NaiveDate>,
}

async fn board(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Query(query): Query<BoardQuery>,
) -> Result<Response, AppError> {
    let mut conn = state.pool.acquire().await?;
    let date = match query.date {
        Some(date) => date,
        None => visits::today(&mut conn, coordinator.tenant_id).await?,
    };
    let rows = visits::on_date(&mut conn, coordinator.tenant_id, date, None).await?;
    let caregivers: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT id, first_name || ' ' || last_name FROM workers WHERE tenant_id = $1",
    )
    .bind(coordinator.tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    let open: Vec<(Uuid, String)> = sqlx::query_as(
        "SELECT visit_id, code FROM visit_exceptions WHERE tenant_id = $1 AND resolved_at IS NULL AND visit_id = ANY($2)",
    )
    .bind(coordinator.tenant_id)
    .bind(rows.iter().map(|v| v.id).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let html = page::board(&coordinator, date, &rows, &caregivers, &open);
    Ok(Html(html.into_string()).into_response())
}

async fn detail(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    render_detail(&state, &coordinator, id, None, StatusCode::OK).await
}

async fn render_detail(
    state: &AppState,
    coordinator: &Coordinator,
    id: Uuid,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let mut conn = state.pool.acquire().await?;
    let visit = match visits::get(&mut conn, coordinator.tenant_id, id).await {
        Ok(visit) => visit,
        Err(AppError::NotFound(_)) => return Ok(not_found(coordinator)),
        Err(other) => return Err(other),
    };
    let caregiver: String = sqlx::query_scalar(
        "SELECT first_name || ' ' || last_name FROM workers WHERE tenant_id = $1 AND id = $2",
    )
    .bind(coordinator.tenant_id)
    .bind(visit.caregiver_id)
    .fetch_one(&mut *conn)
    .await?;
    let events: Vec<page::EventRow> = sqlx::query_as(
        "SELECT e.kind, e.method, COALESCE(e.event_time, e.received_at) AS at, e.received_at,
                e.latitude::float8 AS latitude, e.longitude::float8 AS longitude, e.accuracy_m, e.distance_m,
                e.verified, w.first_name || ' ' || w.last_name AS worker
         FROM visit_events e JOIN workers w ON w.tenant_id = e.tenant_id AND w.id = e.worker_id
         WHERE e.tenant_id = $1 AND e.visit_id = $2 ORDER BY e.received_at",
    )
    .bind(coordinator.tenant_id)
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let messages: Vec<page::MessageRow> = sqlx::query_as(
        "SELECT m.created_at, m.direction = 'inbound' AS inbound, m.body, m.status
         FROM messages m WHERE m.tenant_id = $1 AND m.related_entity_type = 'visit' AND m.related_entity_id = $2
         ORDER BY m.created_at",
    )
    .bind(coordinator.tenant_id)
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let found = exceptions::list(&mut conn, coordinator.tenant_id, false, Some(id)).await?;
    let html = page::detail(
        coordinator,
        &visit,
        &caregiver,
        &events,
        &messages,
        &found,
        error.as_deref(),
    );
    Ok((status, Html(html.into_string())).into_response())
}

fn not_found(coordinator: &Coordinator) -> Response {
    (
        StatusCode::NOT_FOUND,
        Html(
            views::signed_in_message(
                coordinator,
                "Not found",
                "There is no such visit in your organisation.",
            )
            .into_string(),
        ),
    )
        .into_response()
}

#[derive(Deserialize)]
struct CorrectInput {
    csrf_token: String,
    #[serde(default)]
    check_in_at: String,
    #[serde(default)]
    check_out_at: String,
    #[serde(default)]
    reason: String,
}

fn local(field: &str, raw: &str, time_zone: &str) -> AppResult<Option<chrono::DateTime<Utc>>> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(None);
    }
    let tz: chrono_tz::Tz = time_zone.parse().unwrap_or(chrono_tz::UTC);
    let naive = NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M")
        .map_err(|_| AppError::field(field, "give a date and time"))?;
    let at = naive
        .and_local_timezone(tz)
        .earliest()
        .ok_or_else(|| AppError::field(field, "that time does not exist in this time zone"))?;
    Ok(Some(at.with_timezone(&Utc)))
}

async fn correct(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Path(id): Path<Uuid>,
    Form(input): Form<CorrectInput>,
) -> Result<Response, AppError> {
    if !auth::constant_time_eq(&input.csrf_token, &coordinator.csrf_token) {
        return Ok(session::csrf_refused());
    }
    let outcome = async {
        let correction = Correction {
            check_in_at: local("check_in_at", &input.check_in_at, &coordinator.time_zone)?,
            check_out_at: local("check_out_at", &input.check_out_at, &coordinator.time_zone)?,
            reason: input.reason.clone(),
        };
        let mut tx = state.pool.begin().await?;
        exceptions::correct(
            &mut tx,
            coordinator.tenant_id,
            id,
            &correction,
            Actor::User(coordinator.user_id),
        )
        .await?;
        tx.commit().await?;
        AppResult::Ok(())
    }
    .await;
    finish(&state, &coordinator, id, outcome).await
}

async fn finish(
    state: &AppState,
    coordinator: &Coordinator,
    visit_id: Uuid,
    outcome: AppResult<()>,
) -> Result<Response, AppError> {
    match outcome {
        Ok(()) => Ok(Redirect::to(&format!("/panel/visits/{visit_id}")).into_response()),
        Err(AppError::NotFound(_)) => Ok(not_found(coordinator)),
        Err(error) if error.status_code().is_client_error() => {
            let status = error.status_code();
            render_detail(state, coordinator, visit_id, Some(error.explain()), status).await
        }
        Err(error) => Err(error),
    }
}

async fn queue(
    State(state): State<AppState>,
    coordinator: Coordinator,
) -> Result<Response, AppError> {
    let mut conn = state.pool.acquire().await?;
    let open = exceptions::list(&mut conn, coordinator.tenant_id, true, None).await?;
    Ok(Html(page::queue(&coordinator, &open).into_string()).into_response())
}

#[derive(Deserialize)]
struct ResolveInput {
    csrf_token: String,
    #[serde(default)]
    resolution_code: String,
    #[serde(default)]
    note: String,
    /// Where to go back to: the queue, or the visit's page.
    #[serde(default)]
    back: String,
}

async fn resolve(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Path(id): Path<Uuid>,
    Form(input): Form<ResolveInput>,
) -> Result<Response, AppError> {
    if !auth::constant_time_eq(&input.csrf_token, &coordinator.csrf_token) {
        return Ok(session::csrf_refused());
    }
    let visit_id: Option<Uuid> = sqlx::query_scalar(
        "SELECT visit_id FROM visit_exceptions WHERE tenant_id = $1 AND id = $2",
    )
    .bind(coordinator.tenant_id)
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    let Some(visit_id) = visit_id else {
        return Ok(not_found(&coordinator));
    };
    let resolution = Resolution {
        resolution_code: input.resolution_code.clone(),
        note: input.note.clone(),
    };
    let mut tx = state.pool.begin().await?;
    let outcome = exceptions::resolve(
        &mut tx,
        coordinator.tenant_id,
        id,
        &resolution,
        Some(coordinator.user_id),
        Actor::User(coordinator.user_id),
    )
    .await;
    if outcome.is_ok() {
        tx.commit().await?;
        if input.back == "queue" {
            return Ok(Redirect::to("/panel/visit-exceptions").into_response());
        }
    } else {
        drop(tx);
    }
    finish(&state, &coordinator, visit_id, outcome).await
}
