//! Work orders in the panel: the list with filters and open alerts, the detail page with its
//! timeline, and the coordinator's actions (assign, hold, cancel, comment, message the worker).
//! Every query is scoped by the signed-in coordinator's tenant; another tenant's id is a 404.

use std::collections::HashMap;

use axum::{
    Router,
    extract::{Path, State},
    http::{StatusCode, header},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use serde::Deserialize;
use uuid::Uuid;

use super::{Coordinator, CsrfForm, local_time, map, not_found, session, work_order_views as page};
use crate::http::extract::Query;
use crate::messaging::media;
use crate::{
    audit,
    domains::{
        alerts,
        crud::RecordError,
        maintenance::{
            timeline,
            work_orders::{self, Actor, WorkOrderError},
        },
    },
    http::AppState,
    http::error::{AppError, AppResult},
};

const PAGE_SIZE: i64 = 50;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/work-orders", get(list).post(create))
        .route("/work-orders/new", get(new_form))
        .route("/work-orders/{id}", get(detail))
        .route("/work-orders/{id}/assign", post(assign))
        .route("/work-orders/{id}/hold", post(hold))
        .route("/work-orders/{id}/resume", post(resume))
        .route("/work-orders/{id}/cancel", post(cancel))
        .route("/work-orders/{id}/comment", post(comment))
        .route("/work-orders/{id}/message", post(message))
        .route("/alerts/{id}/resolve", post(resolve_alert))
        .route("/media/{id}", get(media))
}

/// The list's filters, as the GET form sends them: empty fields mean "any".
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub worker: String,
    #[serde(default)]
    pub overdue: Option<String>,
    /// Words in the reference, title or place.
    #[serde(default)]
    pub q: String,
    pub after: Option<Uuid>,
}

/// The status filter's choice for every status, closed ones too.
pub const ALL_STATUSES: &str = "all";

fn some(text: &str) -> Option<String> {
    Some(text.trim())
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

fn uuid_or_error(field: &str, text: &str) -> AppResult<Option<Uuid>> {
    some(text)
        .map(|t| {
            Uuid::parse_str(&t).map_err(|_| AppError::field(field, "choose one from the list"))
        })
        .transpose()
}

/// Names for ids: the tenant's sites, assets, and maintenance and housekeeping workers.
pub struct Lookups {
    pub sites: Vec<(Uuid, String)>,
    pub assets: Vec<(Uuid, String)>,
    pub workers: Vec<page::WorkerOption>,
}

impl Lookups {
    async fn load(state: &AppState, tenant_id: Uuid) -> AppResult<Self> {
        let mut conn = state.pool.acquire().await?;
        let sites = sqlx::query_as(
            "SELECT id, name FROM sites WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY name",
        )
        .bind(tenant_id)
        .fetch_all(&mut *conn)
        .await?;
        let workers = sqlx::query_as(
            "SELECT w.id, w.first_name || ' ' || w.last_name AS name, w.kinds, w.specialties, w.status,
                    (SELECT count(*) FROM work_orders wo
                     WHERE wo.tenant_id = w.tenant_id AND wo.assigned_worker_id = w.id
                       AND wo.status IN ('assigned', 'accepted', 'in_progress', 'on_hold')) AS open_work
             FROM workers w
             WHERE w.tenant_id = $1 AND w.deleted_at IS NULL
               AND w.kinds && ARRAY['maintenance', 'housekeeping']
             ORDER BY w.first_name, w.last_name",
        )
        .bind(tenant_id)
        .fetch_all(&mut *conn)
        .await?;
        let assets = sqlx::query_as(
            "SELECT id, name FROM assets WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY name",
        )
        .bind(tenant_id)
        .fetch_all(&mut *conn)
        .await?;
        Ok(Self {
            sites,
            assets,
            workers,
        })
    }

    pub fn site(&self, id: Option<Uuid>) -> Option<&str> {
        let id = id?;
        self.sites
            .iter()
            .find(|(s, _)| *s == id)
            .map(|(_, n)| n.as_str())
    }

    pub fn worker(&self, id: Option<Uuid>) -> Option<&str> {
        let id = id?;
        self.workers
            .iter()
            .find(|w| w.id == id)
            .map(|w| w.name.as_str())
    }
}

async fn list(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Query(query): Query<ListQuery>,
) -> Result<Response, AppError> {
    let lookups = Lookups::load(&state, coordinator.tenant_id).await?;
    let filter = (|| -> AppResult<work_orders::Filter> {
        // Newest first, open work only unless a status is chosen: new urgent work leads the
        // list instead of waiting on its last page behind closed orders.
        let status = query.status.parse().ok();
        Ok(work_orders::Filter {
            // Anything not a status or priority (an old link, a typo) means "any".
            status,
            priority: query.priority.parse().ok(),
            site_id: uuid_or_error("site", &query.site)?,
            worker_id: uuid_or_error("worker", &query.worker)?,
            overdue: query.overdue.is_some(),
            open_only: status.is_none() && query.status != ALL_STATUSES,
            search: some(&query.q),
            newest_first: true,
            after: query.after,
        })
    })();
    let filter = match filter {
        Ok(filter) => filter,
        Err(error) => {
            let html = page::list(
                &coordinator,
                &query,
                &lookups,
                (&[], maud::html! {}),
                None,
                &[],
                &[],
                Some(&error.explain()),
            );
            return Ok((error.status_code(), Html(html.into_string())).into_response());
        }
    };
    let mut conn = state.pool.acquire().await?;
    let mut rows = work_orders::list(&mut conn, coordinator.tenant_id, &filter, PAGE_SIZE).await?;
    let next = (rows.len() as i64 > PAGE_SIZE).then(|| {
        rows.truncate(PAGE_SIZE as usize);
        rows.last().map(|r| r.id)
    });
    let overdue: Vec<Uuid> = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
        "SELECT id FROM work_orders WHERE tenant_id = $1 AND id = ANY($2) AND {}",
        work_orders::OVERDUE
    )))
    .bind(coordinator.tenant_id)
    .bind(rows.iter().map(|r| r.id).collect::<Vec<_>>())
    .fetch_all(&mut *conn)
    .await?;
    let open_alerts = alerts::open(&mut conn, coordinator.tenant_id).await?;
    let references: HashMap<Uuid, String> = sqlx::query_as(
        "SELECT id, reference FROM work_orders WHERE tenant_id = $1 AND id = ANY($2)",
    )
    .bind(coordinator.tenant_id)
    .bind(
        open_alerts
            .iter()
            .filter_map(|a| a.work_order_id)
            .collect::<Vec<_>>(),
    )
    .fetch_all(&mut *conn)
    .await?
    .into_iter()
    .collect();
    let alerts: Vec<page::AlertRow> = open_alerts
        .into_iter()
        .map(|a| page::AlertRow {
            reference: a.work_order_id.and_then(|id| references.get(&id).cloned()),
            alert: a,
        })
        .collect();
    let sites: Vec<(Uuid, String, f64, f64, i64, bool)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT s.id, s.name, s.latitude::float8, s.longitude::float8, count(*),
                bool_or(wo.priority = 'urgent' OR {})
           FROM work_orders wo JOIN sites s ON s.tenant_id = wo.tenant_id AND s.id = wo.site_id
          WHERE wo.tenant_id = $1 AND wo.status NOT IN ('completed', 'cancelled')
            AND s.latitude IS NOT NULL AND s.longitude IS NOT NULL
          GROUP BY s.id, s.name, s.latitude, s.longitude",
            work_orders::OVERDUE
        )))
        .bind(coordinator.tenant_id)
        .fetch_all(&mut *conn)
        .await?;
    let points: Vec<map::Point> = sites
        .into_iter()
        .map(|(id, name, lat, lon, open, attention)| map::Point {
            lat,
            lon,
            label: format!("{name} · {open} open"),
            kind: if attention {
                map::Kind::Attention
            } else {
                map::Kind::Place
            },
            accuracy_m: None,
            href: Some(format!("/panel/work-orders?site_id={id}")),
        })
        .collect();
    let sites_map = map::map(
        state.config.map_tiles.as_ref(),
        "Sites with open work (red: urgent or overdue)",
        &points,
        &[],
    );
    let html = page::list(
        &coordinator,
        &query,
        &lookups,
        (&rows, sites_map),
        next.flatten(),
        &overdue,
        &alerts,
        None,
    );
    Ok(Html(html.into_string()).into_response())
}

/// The "new work order" form as typed: kept to show again when something needs fixing.
#[derive(Debug, Default, Deserialize)]
pub struct NewInput {
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub priority: String,
    #[serde(default)]
    pub site: String,
    #[serde(default)]
    pub location_detail: String,
    #[serde(default)]
    pub asset: String,
    #[serde(default)]
    pub required_specialty: String,
    #[serde(default)]
    pub requester_phone: String,
    /// `datetime-local`: the organisation's local time.
    #[serde(default)]
    pub scheduled_at: String,
    #[serde(default)]
    pub expected_duration_minutes: String,
}

impl NewInput {
    fn to_new_work_order(&self, time_zone: &str) -> AppResult<work_orders::NewWorkOrder> {
        let scheduled_at = local_time("scheduled_at", &self.scheduled_at, time_zone)?;
        let expected_duration_minutes = some(&self.expected_duration_minutes)
            .map(|m| {
                m.parse::<i32>().map_err(|_| {
                    AppError::field(
                        "expected_duration_minutes",
                        "give a whole number of minutes",
                    )
                })
            })
            .transpose()?;
        Ok(work_orders::NewWorkOrder {
            kind: self.kind.clone(),
            request_type: None,
            title: self.title.clone(),
            description: some(&self.description),
            priority: some(&self.priority)
                .map(|p| p.parse())
                .transpose()
                .map_err(|e: String| AppError::field("priority", e))?,
            site_id: uuid_or_error("site", &self.site)?,
            location_detail: some(&self.location_detail),
            asset_id: uuid_or_error("asset", &self.asset)?,
            required_specialty: some(&self.required_specialty),
            requester_phone: some(&self.requester_phone),
            scheduled_at,
            expected_duration_minutes,
        })
    }
}

async fn new_form(
    State(state): State<AppState>,
    coordinator: Coordinator,
) -> Result<Response, AppError> {
    let lookups = Lookups::load(&state, coordinator.tenant_id).await?;
    let input = NewInput {
        kind: "maintenance".into(),
        priority: "medium".into(),
        ..NewInput::default()
    };
    Ok(Html(page::new_form(&coordinator, &lookups, &input, None).into_string()).into_response())
}

async fn create(
    State(state): State<AppState>,
    CsrfForm { coordinator, input }: CsrfForm<NewInput>,
) -> Result<Response, AppError> {
    let created = async {
        let new = input.to_new_work_order(&coordinator.time_zone)?;
        let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
        let order = work_orders::create(
            &mut tx,
            &state.messaging.templates,
            coordinator.tenant_id,
            new,
            Actor::Coordinator(Some(coordinator.user_id)),
            "panel",
        )
        .await?;
        tx.commit().await?;
        AppResult::Ok(order)
    }
    .await;
    match created {
        Ok(order) => Ok(
            Redirect::to(&format!("/panel/work-orders/{}?done=created", order.id)).into_response(),
        ),
        Err(error) if error.status_code().is_client_error() => {
            let lookups = Lookups::load(&state, coordinator.tenant_id).await?;
            let html = page::new_form(&coordinator, &lookups, &input, Some(&error.explain()));
            Ok((error.status_code(), Html(html.into_string())).into_response())
        }
        Err(error) => Err(error),
    }
}

/// A finished action's one-line confirmation, or what went wrong.
pub enum Notice {
    Done(&'static str),
    Failed(String),
}

#[derive(Deserialize)]
struct DetailQuery {
    done: Option<String>,
}

async fn detail(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Path(id): Path<Uuid>,
    Query(query): Query<DetailQuery>,
) -> Result<Response, AppError> {
    let notice = query
        .done
        .as_deref()
        .and_then(done_notice)
        .map(Notice::Done);
    render_detail(&state, &coordinator, id, notice, StatusCode::OK).await
}

fn done_notice(action: &str) -> Option<&'static str> {
    Some(match action {
        "created" => "Work order created and offered to the best worker (see the timeline).",
        "assigned" => "Assigned: the worker has been sent the work order.",
        "held" => "Put on hold: the worker has been told.",
        "resumed" => "Hold lifted: the worker has been told to go on.",
        "cancelled" => "Cancelled: the worker has been told not to go.",
        "commented" => "Comment added.",
        "messaged" => "Message queued to the worker.",
        _ => return None,
    })
}

async fn render_detail(
    state: &AppState,
    coordinator: &Coordinator,
    id: Uuid,
    notice: Option<Notice>,
    status: StatusCode,
) -> Result<Response, AppError> {
    let mut conn = state.pool.acquire().await?;
    let order = match work_orders::get(&mut conn, coordinator.tenant_id, id).await {
        Ok(order) => order,
        Err(WorkOrderError::NotFound) => return Ok(not_found(coordinator, "work order")),
        Err(other) => return Err(other.into()),
    };
    let entries = timeline::timeline(&mut conn, coordinator.tenant_id, id).await?;
    let requester: Option<String> = sqlx::query_scalar(
        "SELECT COALESCE(display_name || ' ' || phone, phone) FROM contacts WHERE tenant_id = $1 AND id = $2",
    )
    .bind(coordinator.tenant_id)
    .bind(order.requester_contact_id)
    .fetch_optional(&mut *conn)
    .await?;
    drop(conn);
    let lookups = Lookups::load(state, coordinator.tenant_id).await?;
    let html = page::detail(
        coordinator,
        &order,
        requester.as_deref(),
        &lookups,
        &entries,
        notice.as_ref(),
    );
    Ok((status, Html(html.into_string())).into_response())
}

/// Runs a coordinator's action: CSRF first, then the change in one transaction, then back to
/// the detail page (303) or the page again with what to fix.
async fn perform<F>(
    state: &AppState,
    coordinator: &Coordinator,
    id: Uuid,
    done: &'static str,
    action: F,
) -> Result<Response, AppError>
where
    F: AsyncFnOnce(&mut sqlx::PgConnection) -> AppResult<()>,
{
    let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
    match action(&mut tx).await {
        Ok(()) => {
            tx.commit().await?;
            Ok(Redirect::to(&format!("/panel/work-orders/{id}?done={done}")).into_response())
        }
        Err(AppError::NotFound(_)) => Ok(not_found(coordinator, "work order")),
        Err(error) if error.status_code().is_client_error() => {
            drop(tx);
            let status = error.status_code();
            render_detail(
                state,
                coordinator,
                id,
                Some(Notice::Failed(error.explain())),
                status,
            )
            .await
        }
        Err(error) => Err(error),
    }
}

#[derive(Deserialize)]
struct AssignInput {
    #[serde(default)]
    worker_id: String,
}

async fn assign(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<AssignInput>,
) -> Result<Response, AppError> {
    let templates = &state.messaging.templates;
    let (tenant, user) = (coordinator.tenant_id, coordinator.user_id);
    perform(&state, &coordinator, id, "assigned", async |conn| {
        let worker = uuid_or_error("worker_id", &input.worker_id)?
            .ok_or_else(|| AppError::field("worker_id", "choose a worker"))?;
        work_orders::assign_by_hand(
            conn,
            templates,
            tenant,
            id,
            worker,
            Actor::Coordinator(Some(user)),
            "panel",
        )
        .await
        .map(drop)
        .map_err(AppError::from)
    })
    .await
}

#[derive(Deserialize)]
struct ReasonInput {
    #[serde(default)]
    reason: String,
}

async fn hold(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<ReasonInput>,
) -> Result<Response, AppError> {
    let templates = &state.messaging.templates;
    let (tenant, user) = (coordinator.tenant_id, coordinator.user_id);
    perform(&state, &coordinator, id, "held", async |conn| {
        work_orders::hold(
            conn,
            templates,
            tenant,
            id,
            &input.reason,
            Actor::Coordinator(Some(user)),
            "panel",
        )
        .await
        .map(drop)
        .map_err(AppError::from)
    })
    .await
}

async fn resume(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, .. }: CsrfForm<session::NoFields>,
) -> Result<Response, AppError> {
    let templates = &state.messaging.templates;
    let (tenant, user) = (coordinator.tenant_id, coordinator.user_id);
    perform(&state, &coordinator, id, "resumed", async |conn| {
        work_orders::resume(
            conn,
            templates,
            tenant,
            id,
            Actor::Coordinator(Some(user)),
            "panel",
        )
        .await
        .map(drop)
        .map_err(AppError::from)
    })
    .await
}

#[derive(Deserialize)]
struct CancelInput {
    #[serde(default)]
    reason: String,
    /// The "Yes, cancel it" box: a cancel cannot be undone, so one click is not enough.
    #[serde(default)]
    confirm: String,
}

async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<CancelInput>,
) -> Result<Response, AppError> {
    let templates = &state.messaging.templates;
    let (tenant, user) = (coordinator.tenant_id, coordinator.user_id);
    perform(&state, &coordinator, id, "cancelled", async |conn| {
        if input.confirm != "yes" {
            return Err(AppError::field(
                "confirm",
                "tick \"Yes, cancel it\" to confirm: a cancelled work order cannot be reopened",
            ));
        }
        let reason = some(&input.reason);
        work_orders::cancel(
            conn,
            templates,
            tenant,
            id,
            reason.as_deref(),
            Actor::Coordinator(Some(user)),
            "panel",
        )
        .await
        .map(drop)
        .map_err(AppError::from)
    })
    .await
}

#[derive(Deserialize)]
struct TextInput {
    #[serde(default)]
    text: String,
}

async fn comment(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<TextInput>,
) -> Result<Response, AppError> {
    let (tenant, user) = (coordinator.tenant_id, coordinator.user_id);
    perform(&state, &coordinator, id, "commented", async |conn| {
        Ok(work_orders::comment(conn, tenant, id, user, &input.text).await?)
    })
    .await
}

async fn message(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, input }: CsrfForm<TextInput>,
) -> Result<Response, AppError> {
    let templates = &state.messaging.templates;
    let tenant = coordinator.tenant_id;
    perform(&state, &coordinator, id, "messaged", async |conn| {
        Ok(work_orders::message_worker(conn, templates, tenant, id, &input.text).await?)
    })
    .await
}

async fn resolve_alert(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    CsrfForm { coordinator, .. }: CsrfForm<session::NoFields>,
) -> Result<Response, AppError> {
    let mut tx = audit::begin(&state.pool, coordinator.actor()).await?;
    match alerts::resolve(&mut tx, coordinator.tenant_id, id, coordinator.user_id).await {
        Ok(()) => {
            tx.commit().await?;
            Ok(Redirect::to("/panel/work-orders").into_response())
        }
        Err(RecordError::NotFound(_)) => {
            // Already resolved by someone else is fine: the list shows what is left.
            Ok(Redirect::to("/panel/work-orders").into_response())
        }
        Err(other) => Err(other.into()),
    }
}

/// A photo from a message, if it belongs to the coordinator's tenant and has been fetched.
async fn media(
    State(state): State<AppState>,
    coordinator: Coordinator,
    Path(id): Path<Uuid>,
) -> Result<Response, AppError> {
    let stored: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT storage_path, content_type FROM message_media WHERE tenant_id = $1 AND id = $2",
    )
    .bind(coordinator.tenant_id)
    .bind(id)
    .fetch_optional(&state.pool)
    .await?;
    let Some((Some(path), content_type)) = stored else {
        return Ok(not_found(&coordinator, "work order"));
    };
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| AppError::Internal(anyhow::anyhow!("reading media {path}: {e}")))?;
    // What the sender's provider declared is not trusted: only bytes that are a raster image
    // are shown inline; anything else (an SVG with a script, HTML, a PDF) is a download.
    let shown_as = media::raster_image_type(&bytes);
    let disposition = match shown_as {
        Some(_) => "inline".to_owned(),
        None => format!(
            "attachment; filename=\"{id}.{}\"",
            media::extension(content_type.as_deref())
        ),
    };
    Ok((
        [
            (
                header::CONTENT_TYPE,
                shown_as.unwrap_or("application/octet-stream").to_owned(),
            ),
            (header::CONTENT_DISPOSITION, disposition),
            (header::CACHE_CONTROL, "private, max-age=3600".into()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".into()),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; img-src 'self'; sandbox".into(),
            ),
        ],
        bytes,
    )
        .into_response())
}
