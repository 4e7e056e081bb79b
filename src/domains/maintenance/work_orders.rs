//! Work orders: created, assigned to the right worker, dispatched by message, and moved through
//! the state machine by whoever acts on them, with a history row for every step.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{
    state::{self, Action, Priority, Status, WorkKind},
    timers,
};
use crate::{
    domains::alerts::{self, About, AlertKind},
    error::{FieldErrors, Invalid},
    messaging::{
        MessageStatus, contacts,
        notify::{self, Notification, Notified},
        templates::{Templates, Values},
    },
    types::{optional_text, required_text},
};

/// Why a work-order change was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum WorkOrderError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("work order not found")]
    NotFound,
    /// The lifecycle does not allow `action` from where the order is.
    #[error("{reference} is {from}: {}", not_now(*.action))]
    NotNow {
        reference: String,
        from: Status,
        action: Action,
    },
    #[error("{0} has no worker yet: assign one first")]
    NoWorker(String),
    #[error("the worker on this work order was removed: assign someone else first")]
    WorkerRemoved,
    #[error(
        "the worker cannot be reached: no channel of this organisation can message their number"
    )]
    WorkerUnreachable,
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

fn not_now(action: Action) -> &'static str {
    match action {
        Action::Cancel => "it can no longer be cancelled",
        Action::Hold => "only accepted or started work can be put on hold",
        Action::Assign => "it cannot be assigned",
        _ => "that step does not apply now",
    }
}

pub type WorkOrderResult<T> = Result<T, WorkOrderError>;

#[derive(Debug, Clone, Serialize, ToSchema, sqlx::FromRow)]
pub struct WorkOrder {
    pub id: Uuid,
    pub reference: String,
    pub kind: WorkKind,
    pub request_type: String,
    pub title: String,
    pub description: Option<String>,
    pub priority: Priority,
    pub status: Status,
    pub site_id: Option<Uuid>,
    pub location_detail: Option<String>,
    pub asset_id: Option<Uuid>,
    pub required_specialty: Option<String>,
    pub requester_contact_id: Option<Uuid>,
    pub assigned_worker_id: Option<Uuid>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub expected_duration_minutes: Option<i32>,
    pub labour_hours: Option<f64>,
    pub parts_used: Option<String>,
    pub whatsapp_status: Option<MessageStatus>,
    pub assigned_at: Option<DateTime<Utc>>,
    pub accepted_at: Option<DateTime<Utc>>,
    pub started_at: Option<DateTime<Utc>>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
}

const COLUMNS: &str =
    "id, reference, kind, request_type, title, description, priority, status, site_id,
    location_detail, asset_id, required_specialty, requester_contact_id, assigned_worker_id,
    scheduled_at, expected_duration_minutes, labour_hours::float8 AS labour_hours, parts_used, whatsapp_status, assigned_at,
    accepted_at, started_at, completed_at, created_at";

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewWorkOrder {
    /// `maintenance` or `housekeeping`.
    pub kind: String,
    /// Maintenance: corrective, preventive, emergency, inspection. Housekeeping: cleaning,
    /// disinfection, linen, waste, spill. Defaults to corrective / cleaning.
    pub request_type: Option<String>,
    pub title: String,
    pub description: Option<String>,
    /// low, medium (default), high, urgent.
    pub priority: Option<Priority>,
    pub site_id: Option<Uuid>,
    pub location_detail: Option<String>,
    pub asset_id: Option<Uuid>,
    /// The trade needed (plumbing, electrical, hvac, cleaning, ...), matched against workers' specialties.
    pub required_specialty: Option<String>,
    /// The person to keep informed, by phone number in E.164.
    pub requester_phone: Option<String>,
    pub scheduled_at: Option<DateTime<Utc>>,
    pub expected_duration_minutes: Option<i32>,
}

/// Who made a change, for the history.
#[derive(Debug, Clone, Copy)]
pub enum Actor {
    System,
    Coordinator(Option<Uuid>),
    Worker(Uuid),
    /// The person who reported it, by message.
    Requester,
}

impl Actor {
    fn parts(self) -> (&'static str, Option<Uuid>, Option<Uuid>) {
        match self {
            Self::System => ("system", None, None),
            Self::Coordinator(user) => ("coordinator", user, None),
            Self::Worker(worker) => ("worker", None, Some(worker)),
            Self::Requester => ("requester", None, None),
        }
    }
}

/// Where a change came from, for the history: `api`, `panel`, `whatsapp`, `sms`, `system`.
pub type Channel = &'static str;

/// Records a new work order and offers it to the best worker.
pub async fn create(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    input: NewWorkOrder,
    actor: Actor,
    channel: Channel,
) -> WorkOrderResult<WorkOrder> {
    let order = record(conn, tenant_id, input, actor, channel).await?;
    assign_next(conn, templates, tenant_id, order.id, actor, channel).await?;
    get(conn, tenant_id, order.id).await
}

/// Records a new, pending work order: validated, referenced, in the history. Nobody is asked
/// yet; [`assign_next`] does that.
pub async fn record(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    input: NewWorkOrder,
    actor: Actor,
    channel: Channel,
) -> WorkOrderResult<WorkOrder> {
    let mut errors = FieldErrors::new();
    let kind = input.kind.trim().parse::<WorkKind>().unwrap_or_else(|_| {
        errors.add("kind", "use maintenance or housekeeping");
        WorkKind::Maintenance
    });
    let request_type = input.request_type.unwrap_or_else(|| {
        if kind == WorkKind::Housekeeping {
            "cleaning"
        } else {
            "corrective"
        }
        .to_owned()
    });
    let priority = input.priority.unwrap_or(Priority::Medium);
    let title = errors.check("title", required_text(&input.title, 200));
    let description = errors
        .check(
            "description",
            optional_text(input.description.as_deref(), 4000),
        )
        .flatten();
    let location_detail = errors
        .check(
            "location_detail",
            optional_text(input.location_detail.as_deref(), 500),
        )
        .flatten();
    let requester_phone = match input.requester_phone.as_deref() {
        Some(raw) => errors.check("requester_phone", crate::types::PhoneNumber::parse(raw)),
        None => None,
    };
    if input
        .expected_duration_minutes
        .is_some_and(|m| !(1..=10_080).contains(&m))
    {
        errors.add(
            "expected_duration_minutes",
            "use a number of minutes from 1 to 10080 (a week)",
        );
    }
    errors.into_result()?;

    let requester_contact_id: Option<Uuid> = match requester_phone {
        Some(phone) => Some(
            sqlx::query_scalar(
                "INSERT INTO contacts (tenant_id, phone) VALUES ($1, $2)
                 ON CONFLICT ON CONSTRAINT contacts_tenant_phone_key DO UPDATE SET phone = EXCLUDED.phone
                 RETURNING id",
            )
            .bind(tenant_id)
            .bind(phone.as_str())
            .fetch_one(&mut *conn)
            .await?,
        ),
        None => None,
    };
    let prefix = match kind {
        WorkKind::Housekeeping => "H",
        WorkKind::Maintenance => "M",
    };
    let number: i64 = sqlx::query_scalar(
        "INSERT INTO tenant_counters (tenant_id, name, last_value) VALUES ($1, 'work_order', 1001)
         ON CONFLICT ON CONSTRAINT tenant_counters_pkey DO UPDATE SET last_value = tenant_counters.last_value + 1
         RETURNING last_value",
    )
    .bind(tenant_id)
    .fetch_one(&mut *conn)
    .await?;
    let order: WorkOrder = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO work_orders (tenant_id, reference, kind, request_type, title, description, priority,
             site_id, location_detail, asset_id, required_specialty, requester_contact_id,
             scheduled_at, expected_duration_minutes)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         RETURNING {COLUMNS}"
    )))
    .bind(tenant_id)
    .bind(format!("{prefix}-{number}"))
    .bind(kind)
    .bind(&request_type)
    .bind(title)
    .bind(description)
    .bind(priority)
    .bind(input.site_id)
    .bind(location_detail)
    .bind(input.asset_id)
    .bind(input.required_specialty.map(|s| s.trim().to_lowercase()))
    .bind(requester_contact_id)
    .bind(input.scheduled_at)
    .bind(input.expected_duration_minutes)
    .fetch_one(&mut *conn)
    .await?;
    history(
        conn,
        tenant_id,
        order.id,
        None,
        Status::Pending,
        actor,
        channel,
        Some("reported"),
    )
    .await?;
    Ok(order)
}

/// What a list of work orders can be narrowed by.
#[derive(Debug, Default)]
pub struct Filter {
    pub status: Option<Status>,
    pub priority: Option<Priority>,
    pub site_id: Option<Uuid>,
    pub worker_id: Option<Uuid>,
    /// Past its scheduled time and not started, or in progress past its expected duration.
    pub overdue: bool,
    /// Leaves out completed and cancelled work.
    pub open_only: bool,
    /// Words in the reference, title or place.
    pub search: Option<String>,
    /// Newest first (the panel) instead of oldest first (the API's stable paging).
    pub newest_first: bool,
    pub after: Option<Uuid>,
}

/// The SQL behind [`Filter::overdue`], for lists and counts.
pub const OVERDUE: &str =
    "((status IN ('pending', 'assigned', 'accepted') AND scheduled_at < now())
      OR (status = 'in_progress' AND started_at + make_interval(mins => expected_duration_minutes) < now()))";

/// Oldest (or newest) first, keyset-paged: `limit + 1` rows, so the caller can tell whether more
/// follow.
pub async fn list(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    filter: &Filter,
    limit: i64,
) -> sqlx::Result<Vec<WorkOrder>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM work_orders
         WHERE tenant_id = $1
           AND ($2::text IS NULL OR status = $2)
           AND ($3::text IS NULL OR priority = $3)
           AND ($4::uuid IS NULL OR site_id = $4)
           AND ($5::uuid IS NULL OR assigned_worker_id = $5)
           AND ($6::uuid IS NULL OR CASE WHEN $11 THEN id < $6 ELSE id > $6 END)
           AND (NOT $8 OR {OVERDUE})
           AND (NOT $9 OR status NOT IN ('completed', 'cancelled'))
           AND ($10::text IS NULL
                OR strpos(lower(reference || ' ' || title || ' ' || COALESCE(location_detail, '')), lower($10)) > 0)
         ORDER BY CASE WHEN $11 THEN id END DESC, id LIMIT $7"
    )))
    .bind(tenant_id)
    .bind(filter.status)
    .bind(filter.priority)
    .bind(filter.site_id)
    .bind(filter.worker_id)
    .bind(filter.after)
    .bind(limit + 1)
    .bind(filter.overdue)
    .bind(filter.open_only)
    .bind(filter.search.as_deref())
    .bind(filter.newest_first)
    .fetch_all(conn)
    .await
}

pub async fn get(conn: &mut PgConnection, tenant_id: Uuid, id: Uuid) -> WorkOrderResult<WorkOrder> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM work_orders WHERE tenant_id = $1 AND id = $2"
    )))
    .bind(tenant_id)
    .bind(id)
    .fetch_optional(conn)
    .await?
    .ok_or(WorkOrderError::NotFound)
}

#[allow(clippy::too_many_arguments)]
async fn history(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    work_order_id: Uuid,
    from: Option<Status>,
    to: Status,
    actor: Actor,
    channel: Channel,
    note: Option<&str>,
) -> sqlx::Result<()> {
    let (actor_kind, user, worker) = actor.parts();
    sqlx::query(
        "INSERT INTO work_order_status_history (tenant_id, work_order_id, from_status, to_status,
             actor_kind, actor_user_id, actor_worker_id, channel, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(tenant_id)
    .bind(work_order_id)
    .bind(from.map(Status::as_str))
    .bind(to.as_str())
    .bind(actor_kind)
    .bind(user)
    .bind(worker)
    .bind(channel)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Candidate {
    id: Uuid,
    name: String,
    is_primary: bool,
    open_orders: i64,
}

/// Offers the work order to the best worker not yet asked: assigned to its site (primary first),
/// of the right kind and specialty, active, then the fewest open work orders. The reason is kept
/// in the history. With nobody left it stays pending and says so.
pub async fn assign_next(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    id: Uuid,
    actor: Actor,
    channel: Channel,
) -> WorkOrderResult<Option<Uuid>> {
    let order = get(conn, tenant_id, id).await?;
    let candidate: Option<Candidate> = sqlx::query_as(
        "SELECT w.id, w.first_name || ' ' || w.last_name AS name, bool_or(ws.is_primary) AS is_primary,
                (SELECT count(*) FROM work_orders o WHERE o.tenant_id = w.tenant_id AND o.assigned_worker_id = w.id
                   AND o.status IN ('assigned', 'accepted', 'in_progress', 'on_hold')) AS open_orders
         FROM workers w
         JOIN worker_sites ws ON ws.tenant_id = w.tenant_id AND ws.worker_id = w.id
         LEFT JOIN sites s ON s.tenant_id = w.tenant_id AND s.id = $3
         WHERE w.tenant_id = $1 AND w.deleted_at IS NULL AND w.status = 'active'
           AND $2 = ANY (w.kinds)
           AND ($3::uuid IS NULL OR ws.site_id = $3 OR ws.site_id = s.parent_id)
           AND ($4::text IS NULL OR $4 = ANY (w.specialties))
           AND NOT EXISTS (SELECT 1 FROM work_order_offers f WHERE f.tenant_id = w.tenant_id
                             AND f.work_order_id = $5 AND f.worker_id = w.id)
         GROUP BY w.id
         ORDER BY bool_or(ws.is_primary) DESC, open_orders, w.created_at
         LIMIT 1",
    )
    .bind(tenant_id)
    .bind(order.kind)
    .bind(order.site_id)
    .bind(&order.required_specialty)
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let from: Status = order.status;
    let Some(candidate) = candidate else {
        let note = "no available worker matches: a coordinator must assign it";
        history(
            conn,
            tenant_id,
            id,
            Some(from),
            from,
            Actor::System,
            "system",
            Some(note),
        )
        .await?;
        alerts::raise(
            conn,
            templates,
            tenant_id,
            AlertKind::NoWorkerAvailable,
            About::WorkOrder(id),
            &format!("{} ({}): {note}", order.reference, order.title),
        )
        .await?;
        tracing::warn!(reference = %order.reference, "no worker left to offer the work order to");
        return Ok(None);
    };
    let reason = format!(
        "{} site worker, {} open work orders{}",
        if candidate.is_primary {
            "primary"
        } else {
            "secondary"
        },
        candidate.open_orders,
        order
            .required_specialty
            .as_deref()
            .map(|s| format!(", {s}"))
            .unwrap_or_default()
    );
    assign_to(
        conn,
        templates,
        tenant_id,
        &order,
        candidate.id,
        &candidate.name,
        &reason,
        actor,
        channel,
    )
    .await?;
    Ok(Some(candidate.id))
}

/// A coordinator's choice: assigns (or reassigns) to `worker_id`, telling the previous worker.
pub async fn assign_by_hand(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    id: Uuid,
    worker_id: Uuid,
    actor: Actor,
    channel: Channel,
) -> WorkOrderResult<WorkOrder> {
    let order = get(conn, tenant_id, id).await?;
    let worker: Option<(String, String)> = sqlx::query_as(
        "SELECT first_name || ' ' || last_name, status FROM workers
         WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND $3 = ANY (kinds)",
    )
    .bind(tenant_id)
    .bind(worker_id)
    .bind(order.kind)
    .fetch_optional(&mut *conn)
    .await?;
    let Some((name, status)) = worker else {
        return Err(Invalid::field(
            "worker_id",
            format!("no {} worker of this organisation has this id", order.kind),
        )
        .into());
    };
    if status != "active" {
        return Err(Invalid::field(
            "worker_id",
            format!("{name} is {status}: choose an active worker"),
        )
        .into());
    }
    if let Some(previous) = order.assigned_worker_id.filter(|p| *p != worker_id) {
        sqlx::query(
            "UPDATE work_order_offers SET expired_at = now()
             WHERE tenant_id = $1 AND work_order_id = $2 AND worker_id = $3 AND declined_at IS NULL AND expired_at IS NULL",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(previous)
        .execute(&mut *conn)
        .await?;
        tell_worker(
            conn,
            templates,
            tenant_id,
            &order,
            previous,
            "wo_reassigned_away",
            Values::new(),
        )
        .await?;
    }
    assign_to(
        conn,
        templates,
        tenant_id,
        &order,
        worker_id,
        &name,
        "chosen by a coordinator",
        actor,
        channel,
    )
    .await?;
    get(conn, tenant_id, id).await
}

/// A coordinator cancels: the assigned worker is told not to go.
pub async fn cancel(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    id: Uuid,
    reason: Option<&str>,
    actor: Actor,
    channel: Channel,
) -> WorkOrderResult<WorkOrder> {
    let step = Step::new(Action::Cancel, actor, channel).with_note(reason);
    step_and_tell(
        conn,
        templates,
        tenant_id,
        id,
        step,
        "wo_cancelled",
        Values::new(),
    )
    .await
}

/// A coordinator puts the work on hold; the assigned worker is told why.
pub async fn hold(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    id: Uuid,
    reason: &str,
    actor: Actor,
    channel: Channel,
) -> WorkOrderResult<WorkOrder> {
    let reason = required_text(reason, 500).map_err(|e| Invalid::field("reason", e))?;
    let step = Step::new(Action::Hold, actor, channel).with_note(Some(&reason));
    let values = Values::new().with("reason", &reason);
    step_and_tell(
        conn,
        templates,
        tenant_id,
        id,
        step,
        "wo_put_on_hold",
        values,
    )
    .await
}

/// A coordinator lifts a hold: the work goes on (in progress) and the worker is told.
pub async fn resume(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    id: Uuid,
    actor: Actor,
    channel: Channel,
) -> WorkOrderResult<WorkOrder> {
    let step = Step::new(Action::Start, actor, channel).with_note(Some("hold lifted"));
    step_and_tell(
        conn,
        templates,
        tenant_id,
        id,
        step,
        "wo_resumed",
        Values::new(),
    )
    .await
}

/// A coordinator's move through the state machine, then `key` to the assigned worker, if any.
async fn step_and_tell(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    id: Uuid,
    step: Step<'_>,
    key: &'static str,
    values: Values,
) -> WorkOrderResult<WorkOrder> {
    let order = get(conn, tenant_id, id).await?;
    act(conn, templates, tenant_id, &order, step).await?;
    if let Some(worker) = order.assigned_worker_id {
        tell_worker(conn, templates, tenant_id, &order, worker, key, values).await?;
    }
    get(conn, tenant_id, id).await
}

/// A coordinator's note on the work order.
pub async fn comment(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    id: Uuid,
    user_id: Uuid,
    body: &str,
) -> WorkOrderResult<()> {
    let body = required_text(body, 2000).map_err(|e| Invalid::field("body", e))?;
    get(conn, tenant_id, id).await?;
    sqlx::query(
        "INSERT INTO work_order_comments (tenant_id, work_order_id, author_kind, author_user_id, body)
         VALUES ($1, $2, 'coordinator', $3, $4)",
    )
    .bind(tenant_id)
    .bind(id)
    .bind(user_id)
    .bind(body)
    .execute(conn)
    .await?;
    Ok(())
}

/// What the assigned worker said about the work, by message, on its timeline.
pub async fn worker_note(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    order: &WorkOrder,
    worker_id: Uuid,
    body: &str,
    message_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO work_order_comments (tenant_id, work_order_id, author_kind, author_worker_id, body, message_id)
         VALUES ($1, $2, 'worker', $3, $4, $5)",
    )
    .bind(tenant_id)
    .bind(order.id)
    .bind(worker_id)
    .bind(body)
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Photos the assigned worker sent, attached to the work order (fetched by the media job).
pub async fn worker_photos(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    order: &WorkOrder,
    worker_id: Uuid,
    media_ids: &[Uuid],
    message_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO work_order_attachments (tenant_id, work_order_id, uploaded_by_kind,
             uploaded_by_worker_id, media_id, message_id)
         SELECT $1, $2, 'worker', $3, media_id, $5 FROM unnest($4::uuid[]) AS media_id",
    )
    .bind(tenant_id)
    .bind(order.id)
    .bind(worker_id)
    .bind(media_ids)
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where the assigned worker is, as they shared it: on the history, the status unchanged.
pub async fn worker_position(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    order: &WorkOrder,
    worker_id: Uuid,
    channel: Channel,
    at: crate::types::Coordinates,
    message_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO work_order_status_history (tenant_id, work_order_id, from_status, to_status,
             actor_kind, actor_worker_id, channel, note, latitude, longitude, message_id)
         VALUES ($1, $2, $3, $3, 'worker', $4, $5, 'shared location', $6, $7, $8)",
    )
    .bind(tenant_id)
    .bind(order.id)
    .bind(order.status)
    .bind(worker_id)
    .bind(channel)
    .bind(at.latitude)
    .bind(at.longitude)
    .bind(message_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// A coordinator's own words to the assigned worker, on the work order's timeline.
pub async fn message_worker(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    id: Uuid,
    text: &str,
) -> WorkOrderResult<()> {
    let text = required_text(text, 1000).map_err(|e| Invalid::field("text", e))?;
    let order = get(conn, tenant_id, id).await?;
    let Some(worker) = order.assigned_worker_id else {
        return Err(WorkOrderError::NoWorker(order.reference));
    };
    let tenant: String = sqlx::query_scalar("SELECT name FROM tenants WHERE id = $1")
        .bind(tenant_id)
        .fetch_one(&mut *conn)
        .await?;
    let Some(contact) = contacts::for_live_worker(conn, tenant_id, worker).await? else {
        return Err(WorkOrderError::WorkerRemoved);
    };
    let values = Values::new().with("tenant", tenant).with("text", text);
    let mut notification = Notification::new(tenant_id, contact, "coordinator_message", values);
    notification.related = Some(("work_order", order.id));
    match notify::notify(conn, templates, &notification).await? {
        Notified::Queued(_) => Ok(()),
        Notified::OptedOut | Notified::NoChannel => Err(WorkOrderError::WorkerUnreachable),
    }
}

/// Messages a worker about the work order: `values` has the reference added.
async fn tell_worker(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    order: &WorkOrder,
    worker_id: Uuid,
    key: &'static str,
    values: Values,
) -> WorkOrderResult<()> {
    // A worker who was removed has nobody to tell.
    let Some(contact) = contacts::for_live_worker(conn, tenant_id, worker_id).await? else {
        return Ok(());
    };
    let mut notification = Notification::new(
        tenant_id,
        contact,
        key,
        values.with("reference", &order.reference),
    );
    notification.related = Some(("work_order", order.id));
    notify::notify(conn, templates, &notification).await?;
    Ok(())
}

/// Assigns to `worker_id` and sends the dispatch message with Accept and Decline.
#[allow(clippy::too_many_arguments)]
async fn assign_to(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    order: &WorkOrder,
    worker_id: Uuid,
    worker_name: &str,
    reason: &str,
    actor: Actor,
    channel: Channel,
) -> WorkOrderResult<()> {
    let from: Status = order.status;
    let to = state::next(from, Action::Assign).ok_or_else(|| WorkOrderError::NotNow {
        reference: order.reference.clone(),
        from,
        action: Action::Assign,
    })?;
    // Someone has it now: "nobody left to offer it to" has done its job.
    alerts::settle(
        conn,
        tenant_id,
        AlertKind::NoWorkerAvailable,
        About::WorkOrder(order.id),
    )
    .await?;
    let worker_contact = contacts::for_worker(conn, tenant_id, worker_id).await?;
    let (location, requester): (String, String) = sqlx::query_as(
        // A reporter who wrote "Block B, Bole Garden" named the site already: it is not repeated.
        "SELECT CASE WHEN strpos(lower(wo.location_detail), lower(s.name)) > 0 THEN wo.location_detail
                     ELSE concat_ws(', ', s.name, wo.location_detail) END,
                COALESCE(c.display_name || ' ' || c.phone, c.phone, '-')
         FROM work_orders wo
         LEFT JOIN sites s ON s.tenant_id = wo.tenant_id AND s.id = wo.site_id
         LEFT JOIN contacts c ON c.tenant_id = wo.tenant_id AND c.id = wo.requester_contact_id
         WHERE wo.tenant_id = $1 AND wo.id = $2",
    )
    .bind(tenant_id)
    .bind(order.id)
    .fetch_one(&mut *conn)
    .await?;
    let values = Values::new()
        .with("reference", &order.reference)
        .with("title", &order.title)
        .with_term("priority", format!("priority_{}", order.priority))
        .with(
            "location",
            if location.is_empty() {
                "-".to_owned()
            } else {
                location
            },
        )
        .with("requester", requester);
    let mut dispatch = Notification::new(tenant_id, worker_contact, "wo_dispatch", values);
    dispatch.related = Some(("work_order", order.id));
    dispatch.urgent = order.priority == Priority::Urgent;
    let message_id = match notify::notify(conn, templates, &dispatch).await? {
        Notified::Queued(id) => Some(id),
        _ => None,
    };
    let offer_id: Uuid = sqlx::query_scalar(
        "INSERT INTO work_order_offers (tenant_id, work_order_id, worker_id, reason, message_id)
         VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(tenant_id)
    .bind(order.id)
    .bind(worker_id)
    .bind(reason)
    .bind(message_id)
    .fetch_one(&mut *conn)
    .await?;
    timers::start(conn, tenant_id, order.id, offer_id, order.priority).await?;
    sqlx::query(
        "UPDATE work_orders SET status = $3, assigned_worker_id = $4, assigned_at = now(),
             accepted_at = NULL, dispatch_message_id = $5, whatsapp_status = CASE WHEN $5 IS NULL THEN NULL ELSE 'queued' END
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(order.id)
    .bind(to.as_str())
    .bind(worker_id)
    .bind(message_id)
    .execute(&mut *conn)
    .await?;
    let note = format!("assigned to {worker_name}: {reason}");
    history(
        conn,
        tenant_id,
        order.id,
        Some(from),
        to,
        actor,
        channel,
        Some(&note),
    )
    .await?;
    tell_requester(
        conn,
        templates,
        tenant_id,
        order,
        "wo_requester_assigned",
        Some(worker_name),
    )
    .await?;
    Ok(())
}

/// What a worker reported with "done".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Completion {
    pub labour_hours: Option<f64>,
    pub parts_used: Option<String>,
}

/// One step in a work order's life: what is asked, by whom, through which door, and what the
/// person said with it.
pub struct Step<'a> {
    pub action: Action,
    pub actor: Actor,
    pub channel: Channel,
    pub note: Option<&'a str>,
    pub completion: Option<Completion>,
}

impl<'a> Step<'a> {
    pub fn new(action: Action, actor: Actor, channel: Channel) -> Self {
        Self {
            action,
            actor,
            channel,
            note: None,
            completion: None,
        }
    }

    pub fn with_note(self, note: Option<&'a str>) -> Self {
        Self { note, ..self }
    }
}

/// Moves a work order one step: the new status, or [`WorkOrderError::NotNow`] when the lifecycle
/// does not allow it from where the order is (nothing changed). Any other error rolls the
/// caller back.
pub async fn act(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    order: &WorkOrder,
    step: Step<'_>,
) -> WorkOrderResult<Status> {
    let Step {
        action,
        actor,
        channel,
        note,
        completion,
    } = step;
    let from: Status = order.status;
    let Some(to) = state::next(from, action) else {
        return Err(WorkOrderError::NotNow {
            reference: order.reference.clone(),
            from,
            action,
        });
    };
    let completion = completion.unwrap_or_default();
    let started_at: Option<DateTime<Utc>> = sqlx::query_scalar(
        "UPDATE work_orders SET status = $3,
             accepted_at = CASE WHEN $4 = 'accept' THEN now() ELSE accepted_at END,
             started_at = CASE WHEN $4 = 'start' THEN COALESCE(started_at, now()) ELSE started_at END,
             completed_at = CASE WHEN $3 = 'completed' THEN now() ELSE completed_at END,
             cancelled_at = CASE WHEN $3 = 'cancelled' THEN now() ELSE cancelled_at END,
             assigned_worker_id = CASE WHEN $4 = 'decline' THEN NULL ELSE assigned_worker_id END,
             labour_hours = COALESCE($5, labour_hours),
             parts_used = COALESCE($6, parts_used)
         WHERE tenant_id = $1 AND id = $2
         RETURNING started_at",
    )
    .bind(tenant_id)
    .bind(order.id)
    .bind(to.as_str())
    .bind(action_key(action))
    .bind(completion.labour_hours)
    .bind(&completion.parts_used)
    .fetch_one(&mut *conn)
    .await?;
    match action {
        Action::Accept => {
            if let Some(at) = order.scheduled_at {
                timers::watch_start(conn, tenant_id, order.id, at).await?;
            }
        }
        // The clock runs from the first start; resuming after a hold does not reset it.
        Action::Start if order.started_at.is_none() => {
            if let (Some(started), Some(minutes)) = (started_at, order.expected_duration_minutes) {
                let due = started + chrono::TimeDelta::minutes(minutes.into());
                timers::watch_duration(conn, tenant_id, order.id, due).await?;
            }
        }
        _ => {}
    }
    let text = match (action, note) {
        (Action::OnMyWay, _) => Some("on my way"),
        (_, note) => note,
    };
    history(
        conn,
        tenant_id,
        order.id,
        Some(from),
        to,
        actor,
        channel,
        text,
    )
    .await?;
    let worker_name: Option<String> = match order.assigned_worker_id {
        Some(w) => sqlx::query_scalar(
            "SELECT first_name || ' ' || last_name FROM workers WHERE tenant_id = $1 AND id = $2",
        )
        .bind(tenant_id)
        .bind(w)
        .fetch_optional(&mut *conn)
        .await?,
        None => None,
    };
    match action {
        Action::Decline => {
            if let Actor::Worker(worker) = actor {
                sqlx::query(
                    "UPDATE work_order_offers SET declined_at = now(), decline_reason = $4
                     WHERE tenant_id = $1 AND work_order_id = $2 AND worker_id = $3 AND declined_at IS NULL",
                )
                .bind(tenant_id)
                .bind(order.id)
                .bind(worker)
                .bind(note)
                .execute(&mut *conn)
                .await?;
            }
            // The next candidate is asked at once.
            assign_next(
                conn,
                templates,
                tenant_id,
                order.id,
                Actor::System,
                "system",
            )
            .await?;
        }
        Action::OnMyWay => {
            tell_requester(
                conn,
                templates,
                tenant_id,
                order,
                "wo_requester_on_the_way",
                worker_name.as_deref(),
            )
            .await?;
        }
        Action::Complete => {
            if let Some(asset) = order.asset_id {
                super::preventive::completed(conn, tenant_id, asset).await?;
            }
            tell_requester(conn, templates, tenant_id, order, "wo_requester_done", None).await?;
            crate::domains::patients::surveys::schedule(
                conn,
                tenant_id,
                crate::domains::patients::surveys::Subject::WorkOrder(order.id),
            )
            .await?;
        }
        _ => {}
    }
    Ok(to)
}

fn action_key(action: Action) -> &'static str {
    match action {
        Action::Accept => "accept",
        Action::Decline => "decline",
        Action::Start => "start",
        _ => "other",
    }
}

async fn tell_requester(
    conn: &mut PgConnection,
    templates: &Templates,
    tenant_id: Uuid,
    order: &WorkOrder,
    key: &'static str,
    worker: Option<&str>,
) -> WorkOrderResult<()> {
    let Some(requester) = order.requester_contact_id else {
        return Ok(());
    };
    let mut values = Values::new().with("reference", &order.reference);
    if let Some(worker) = worker {
        values = values.with("worker", worker);
    }
    let mut notification = Notification::new(tenant_id, requester, key, values);
    notification.related = Some(("work_order", order.id));
    notify::notify(conn, templates, &notification).await?;
    Ok(())
}
