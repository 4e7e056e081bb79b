//! Visits in the panel: the day's board, a visit's page (events, messages, exceptions, a time
//! correction), and the exception queue. Scoped by the coordinator's tenant; others' ids are 404.

use axum::{
    Router,
    extract::{Path, State},
    http::StatusCode,
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use chrono::{Datelike, NaiveDate};
use serde::Deserialize;
use uuid::Uuid;

use super::{Coordinator, CsrfForm, local_time, not_found, visit_views as page};
use crate::http::extract::Query;
use crate::{
    audit,
    domains::care::{
        CareError,
        exceptions::{self, Correction, Resolution},
        schedule::{self, AssignmentChange, NewAssignment, Scope},
        visits::{self, NewVisit},
    },
    http::AppState,
    http::error::{AppError, AppResult},
};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/visits", get(board).post(create_visit))
        .route("/visits/{id}", get(detail))
        .route("/visits/{id}/correct", post(correct))
        .route("/visits/{id}/cancel", post(cancel))
        .route("/assignments", get(assignments).post(create_assignment))
        .route("/assignments/{id}/cancel", post(cancel_assignment))
        .route("/assignments/{id}/change", post(change_assignment))
        .route("/assignments/{id}/reassign", post(reassign_assignment))
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
    let choices = Choices::load(&state, coordinator.tenant_id).await?;
    let html = page::board(
        &coordinator,
        date,
        (&rows, state.config.map_tiles.as_ref()),
        &caregivers,
        &open,
        &choices.caregivers,
        &choices.patients,
        None,
    );
    Ok(Html(html.into_string()).into_response())
}

/// Who can be chosen in the forms: active caregivers and patients.
struct Choices {
    caregivers: Vec<(Uuid, String)>,
    patients: Vec<(Uuid, String)>,
}

impl Choices {
    async fn load(state: &AppState, tenant_id: Uuid) -> AppResult<Self> {
        let mut conn = state.pool.acquire().await?;
        let caregivers = sqlx::query_as(
            "SELECT id, first_name || ' ' || last_name FROM workers
             WHERE tenant_id = $1 AND deleted_at IS NULL AND status = 'active' AND 'caregiver' = ANY (kinds) ORDER BY first_name",
        )
        .bind(tenant_id)
        .fetch_all(&mut *conn)
        .await?;
        let patients = sqlx::query_as(
            "SELECT id, first_name || ' ' || last_name FROM patients WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY first_name",
        )
        .bind(tenant_id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Self {
            caregivers,
            patients,
        })
    }
}

#[derive(Deserialize)]
struct OneVisitInput {
    #[serde(default)]
    caregiver_id: String,
    #[serde(default)]
    patient_id: String,
    #[serde(default)]
    service_type: String,
    #[serde(default)]
    date: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
}

/// A one-off visit from the board's form, in the organisation's local time.
async fn create_visit(
    State(state): State<AppState>,
    CsrfForm { coordinator, input }: CsrfForm<OneVisitInput>,
) -> Result<Response, AppError> {
    let outcome = async {
        let uuid = |field: &str, raw: &str| {
            Uuid::parse_str(raw).map_err(|_| AppError::field(field, "choose one from the list"))
        };
        let start = local_time(
            "from",
            &format!("{}T{}", input.date.trim(), input.from.trim()),
            &coordinator.time_zone,
        )?
        .ok_or_else(|| AppError::field("from", "give the date and time"))?;
        let end = local_time(
            "to",
            &format!("{}T{}", input.date.trim(), input.to.trim()),
            &coordinator.time_zone,
        )?
        .ok_or_else(|| AppError::field("to", "give the end time"))?;
        let new = NewVisit {
            caregiver_id: uuid("caregiver_id", &input.caregiver_id)?,
            patient_id: uuid("patient_id", &input.patient_id)?,
            service_type: input.service_type.clone(),
            scheduled_start: start,
            scheduled_end: end,
        };
        let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
        let visit = visits::create(&mut tx, coordinator.tenant_id, new).await?;
        tx.commit().await?;
        AppResult::Ok(visit.id)
    }
    .await;
    match outcome {
        Ok(id) => Ok(Redirect::to(&format!("/panel/visits/{id}")).into_response()),
        Err(error) if error.status_code().is_client_error() => {
            let status = error.status_code();
            let mut conn = state.pool.acquire().await?;
            let date = visits::today(&mut conn, coordinator.tenant_id).await?;
            let rows = visits::on_date(&mut conn, coordinator.tenant_id, date, None).await?;
            drop(conn);
            let choices = Choices::load(&state, coordinator.tenant_id).await?;
            let html = page::board(
                &coordinator,
                date,
                (&rows, state.config.map_tiles.as_ref()),
                &choices.caregivers,
                &[],
                &choices.caregivers,
                &choices.patients,
                Some(&error.explain()),
            );
            Ok((status, Html(html.into_string())).into_response())
        }
        Err(error) => Err(error),
    }
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
        Err(CareError::NotFound(_)) => return Ok(not_found(coordinator, "visit")),
        Err(other) => return Err(other.into()),
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
        "SELECT m.created_at, m.direction = 'inbound' AS inbound,
                COALESCE(c.display_name || ' ' || c.phone, c.phone) AS party, ch.kind AS channel_kind,
                m.body, m.status, m.fallback_reason
         FROM messages m
         JOIN contacts c ON c.tenant_id = m.tenant_id AND c.id = m.contact_id
         JOIN channels ch ON ch.tenant_id = m.tenant_id AND ch.id = m.channel_id
         WHERE m.tenant_id = $1 AND m.related_entity_type = 'visit' AND m.related_entity_id = $2
         ORDER BY m.created_at",
    )
    .bind(coordinator.tenant_id)
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let found = exceptions::list(&mut conn, coordinator.tenant_id, false, Some(id)).await?;
    let geofence_m: Option<f64> = sqlx::query_scalar(
        "SELECT coalesce(p.geofence_radius_m, t.default_geofence_radius_m)::float8
           FROM patients p JOIN tenants t ON t.id = p.tenant_id
          WHERE p.tenant_id = $1 AND p.id = $2",
    )
    .bind(coordinator.tenant_id)
    .bind(visit.patient_id)
    .fetch_optional(&mut *conn)
    .await?
    .flatten();
    let html = page::detail(
        coordinator,
        page::Detail {
            visit: &visit,
            caregiver: &caregiver,
            events: &events,
            messages: &messages,
            found: &found,
        },
        error.as_deref(),
        (state.config.map_tiles.as_ref(), geofence_m),
    );
    Ok((status, Html(html.into_string())).into_response())
}

#[derive(Deserialize)]
struct CorrectInput {
    #[serde(default)]
    check_in_at: String,
    #[serde(default)]
    check_out_at: String,
    #[serde(default)]
    reason: String,
}

async fn correct(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<CorrectInput>,
) -> Result<Response, AppError> {
    let outcome = async {
        let correction = Correction {
            check_in_at: local_time("check_in_at", &input.check_in_at, &coordinator.time_zone)?,
            check_out_at: local_time("check_out_at", &input.check_out_at, &coordinator.time_zone)?,
            reason: input.reason.clone(),
        };
        let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
        exceptions::correct(&mut tx, coordinator.tenant_id, id, &correction).await?;
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
    outcome: Result<(), impl Into<AppError>>,
) -> Result<Response, AppError> {
    match outcome.map_err(Into::into) {
        Ok(()) => Ok(Redirect::to(&format!("/panel/visits/{visit_id}")).into_response()),
        Err(AppError::NotFound(_)) => Ok(not_found(coordinator, "visit")),
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
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<ResolveInput>,
) -> Result<Response, AppError> {
    let visit_id: Option<Uuid> = sqlx::query_scalar(
        "SELECT visit_id FROM visit_exceptions WHERE tenant_id = $1 AND id = $2",
    )
    .bind(coordinator.tenant_id)
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    let Some(visit_id) = visit_id else {
        return Ok(not_found(&coordinator, "visit"));
    };
    let resolution = Resolution {
        resolution_code: input.resolution_code.clone(),
        note: input.note.clone(),
    };
    let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
    let outcome = exceptions::resolve(
        &mut tx,
        coordinator.tenant_id,
        id,
        &resolution,
        Some(coordinator.user_id),
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

#[derive(Deserialize)]
struct ReasonInput {
    #[serde(default)]
    reason: String,
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<ReasonInput>,
) -> Result<Response, AppError> {
    let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
    let reason = Some(input.reason.trim()).filter(|r| !r.is_empty());
    let outcome = schedule::cancel(
        &mut tx,
        &state.messaging.templates,
        coordinator.tenant_id,
        Scope::Visit(id),
        reason,
    )
    .await
    .map(drop);
    if outcome.is_ok() {
        tx.commit().await?;
    } else {
        drop(tx);
    }
    finish(&state, &coordinator, id, outcome).await
}

/// The assignments page's data: the list, and the people to choose from.
async fn assignments_page(
    state: &AppState,
    coordinator: &Coordinator,
    form: &page::AssignmentForm,
    error: Option<String>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let mut conn = state.pool.acquire().await?;
    let rows: Vec<page::AssignmentRow> = sqlx::query_as(
        "SELECT a.id, w.first_name || ' ' || w.last_name AS caregiver, p.first_name || ' ' || p.last_name AS patient,
                a.service_type, a.days_of_week, a.shift_start, a.shift_end, a.starts_on, a.ends_on, a.status
         FROM caregiver_assignments a
         JOIN workers w ON w.tenant_id = a.tenant_id AND w.id = a.caregiver_id
         JOIN patients p ON p.tenant_id = a.tenant_id AND p.id = a.patient_id
         WHERE a.tenant_id = $1 ORDER BY a.status = 'active' DESC, a.created_at DESC",
    )
    .bind(coordinator.tenant_id)
    .fetch_all(&mut *conn)
    .await?;
    drop(conn);
    let choices = Choices::load(state, coordinator.tenant_id).await?;
    let html = page::assignments(
        coordinator,
        &rows,
        &choices.caregivers,
        &choices.patients,
        form,
        error.as_deref(),
    );
    Ok((status, Html(html.into_string())).into_response())
}

async fn assignments(
    State(state): State<AppState>,
    coordinator: Coordinator,
) -> Result<Response, AppError> {
    let form = page::AssignmentForm {
        service_type: "personal_care".into(),
        shift_start: "09:00".into(),
        shift_end: "10:00".into(),
        ..page::AssignmentForm::default()
    };
    assignments_page(&state, &coordinator, &form, None, StatusCode::OK).await
}

async fn create_assignment(
    State(state): State<AppState>,
    CsrfForm {
        coordinator,
        input: pairs,
    }: CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let form = page::AssignmentForm::from_pairs(&pairs);
    let outcome = async {
        let field_uuid = |field: &str, raw: &str| {
            Uuid::parse_str(raw).map_err(|_| AppError::field(field, "choose one from the list"))
        };
        let date = |field: &str, raw: &str| -> AppResult<Option<NaiveDate>> {
            let raw = raw.trim();
            if raw.is_empty() {
                return Ok(None);
            }
            let day: NaiveDate = raw
                .parse()
                .map_err(|_| AppError::field(field, "give a date"))?;
            crate::types::check_year(day.year()).map_err(|why| AppError::field(field, why))?;
            Ok(Some(day))
        };
        let input = NewAssignment {
            caregiver_id: field_uuid("caregiver_id", &form.caregiver_id)?,
            patient_id: field_uuid("patient_id", &form.patient_id)?,
            service_type: form.service_type.clone(),
            starts_on: date("starts_on", &form.starts_on)?
                .ok_or_else(|| AppError::field("starts_on", "give the first day"))?,
            ends_on: date("ends_on", &form.ends_on)?,
            shift_start: form.shift_start.clone(),
            shift_end: form.shift_end.clone(),
            days_of_week: form.days.clone(),
        };
        let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
        schedule::create(&mut tx, coordinator.tenant_id, input).await?;
        tx.commit().await?;
        AppResult::Ok(())
    }
    .await;
    match outcome {
        Ok(()) => Ok(Redirect::to("/panel/assignments").into_response()),
        Err(error) if error.status_code().is_client_error() => {
            let status = error.status_code();
            assignments_page(&state, &coordinator, &form, Some(error.explain()), status).await
        }
        Err(error) => Err(error),
    }
}

async fn cancel_assignment(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<ReasonInput>,
) -> Result<Response, AppError> {
    let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
    let reason = Some(input.reason.trim()).filter(|r| !r.is_empty());
    match schedule::cancel(
        &mut tx,
        &state.messaging.templates,
        coordinator.tenant_id,
        Scope::Assignment(id),
        reason,
    )
    .await
    {
        Ok(_) => {
            tx.commit().await?;
            Ok(Redirect::to("/panel/assignments").into_response())
        }
        Err(CareError::NotFound(_)) => Ok(not_found(&coordinator, "visit")),
        Err(error) => Err(error.into()),
    }
}

/// After a change to an assignment: back to the list, or the list again with what to fix.
async fn assignment_outcome(
    state: &AppState,
    coordinator: &Coordinator,
    outcome: Result<(), impl Into<AppError>>,
) -> Result<Response, AppError> {
    match outcome.map_err(Into::into) {
        Ok(()) => Ok(Redirect::to("/panel/assignments").into_response()),
        Err(AppError::NotFound(_)) => Ok(not_found(coordinator, "visit")),
        Err(error) if error.status_code().is_client_error() => {
            let status = error.status_code();
            let form = page::AssignmentForm::default();
            assignments_page(state, coordinator, &form, Some(error.explain()), status).await
        }
        Err(error) => Err(error),
    }
}

async fn change_assignment(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm {
        coordinator,
        input: pairs,
    }: CsrfForm<Vec<(String, String)>>,
) -> Result<Response, AppError> {
    let form = page::AssignmentForm::from_pairs(&pairs);
    let outcome = async {
        let ends_on = match form.ends_on.trim() {
            "" => None,
            raw => {
                let day: NaiveDate = raw
                    .parse()
                    .map_err(|_| AppError::field("ends_on", "give a date"))?;
                crate::types::check_year(day.year())
                    .map_err(|why| AppError::field("ends_on", why))?;
                Some(day)
            }
        };
        let change = AssignmentChange {
            days_of_week: Some(form.days.clone()),
            shift_start: Some(form.shift_start.clone()),
            shift_end: Some(form.shift_end.clone()),
            ends_on,
        };
        let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
        schedule::change(
            &mut tx,
            &state.messaging.templates,
            coordinator.tenant_id,
            id,
            change,
        )
        .await?;
        tx.commit().await?;
        AppResult::Ok(())
    }
    .await;
    assignment_outcome(&state, &coordinator, outcome).await
}

#[derive(Deserialize)]
struct ReassignInput {
    #[serde(default)]
    caregiver_id: String,
}

async fn reassign_assignment(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<ReassignInput>,
) -> Result<Response, AppError> {
    let outcome = async {
        let caregiver = Uuid::parse_str(&input.caregiver_id)
            .map_err(|_| AppError::field("caregiver_id", "choose one from the list"))?;
        let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
        schedule::reassign(
            &mut tx,
            &state.messaging.templates,
            coordinator.tenant_id,
            Scope::Assignment(id),
            caregiver,
        )
        .await?;
        tx.commit().await?;
        AppResult::Ok(())
    }
    .await;
    assignment_outcome(&state, &coordinator, outcome).await
}
