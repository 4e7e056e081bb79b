//! Work-order timers, all delayed jobs that do nothing if the work order has moved on.
//!
//! - Acceptance: no answer within the priority's time (per tenant) and the worker is reminded
//!   once; still none and the next candidate is asked; nobody left and the coordinators are alerted.
//! - Not started: accepted but not started by its scheduled time: the coordinators are alerted.
//! - Overdue: in progress past its expected duration: the coordinators are alerted.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{
    state::Priority,
    work_orders::{self, Actor, Step},
};
use crate::{
    audit,
    domains::alerts::{self, About, AlertKind},
    jobs::{self, Job},
    messaging::{
        Messaging, contacts,
        notify::{self, Notification},
        templates::Values,
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Check {
    /// Remind the worker of an unanswered offer.
    Remind { offer_id: Uuid },
    /// Still unanswered: offer to the next candidate.
    Reassign { offer_id: Uuid },
    /// Accepted, and its scheduled time has come.
    NotStarted,
    /// Started, and its expected duration has passed.
    Overdue,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WorkOrderTimer {
    pub tenant_id: Uuid,
    pub work_order_id: Uuid,
    pub check: Check,
}

impl Job for WorkOrderTimer {
    const QUEUE: &'static str = "work-order-timers";
}

/// How long a worker has to accept a work order of `priority`, from the tenant's settings.
pub async fn timeout(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    priority: Priority,
) -> sqlx::Result<Duration> {
    let secs: Option<i64> = sqlx::query_scalar(
        "SELECT (acceptance_timeout_secs ->> $2)::bigint FROM tenants WHERE id = $1",
    )
    .bind(tenant_id)
    .bind(priority)
    .fetch_one(conn)
    .await?;
    Ok(Duration::from_secs(secs.unwrap_or(3600).max(1) as u64))
}

/// Starts the clock on a new offer.
pub async fn start(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    work_order_id: Uuid,
    offer_id: Uuid,
    priority: Priority,
) -> anyhow::Result<()> {
    let wait = timeout(conn, tenant_id, priority).await?;
    let timer = WorkOrderTimer {
        tenant_id,
        work_order_id,
        check: Check::Remind { offer_id },
    };
    jobs::enqueue(conn, &timer, wait).await
}

/// Once accepted: check at its scheduled time that it has started.
pub async fn watch_start(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    work_order_id: Uuid,
    scheduled_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let timer = WorkOrderTimer {
        tenant_id,
        work_order_id,
        check: Check::NotStarted,
    };
    jobs::enqueue(conn, &timer, until(scheduled_at)).await
}

/// Once started: check when its expected duration is up that it is done.
pub async fn watch_duration(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    work_order_id: Uuid,
    due_at: DateTime<Utc>,
) -> anyhow::Result<()> {
    let timer = WorkOrderTimer {
        tenant_id,
        work_order_id,
        check: Check::Overdue,
    };
    jobs::enqueue(conn, &timer, until(due_at)).await
}

fn until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

#[derive(sqlx::FromRow)]
struct Pending {
    reference: String,
    title: String,
    priority: Priority,
    worker_id: Uuid,
    worker_name: String,
}

#[tracing::instrument(skip_all, fields(work_order_id = %job.work_order_id, check = ?job.check))]
pub async fn work_order_timer(
    job: WorkOrderTimer,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    match job.check {
        Check::Remind { offer_id } | Check::Reassign { offer_id } => {
            acceptance(job, offer_id, &messaging).await
        }
        Check::NotStarted | Check::Overdue => watch(job, &messaging).await,
    }
}

#[derive(sqlx::FromRow)]
struct Watched {
    reference: String,
    title: String,
    worker_name: Option<String>,
}

/// Alerts once if the work order is still accepted-not-started, or still in progress, past its time.
async fn watch(job: WorkOrderTimer, messaging: &Messaging) -> Result<(), BoxDynError> {
    let mut tx = audit::begin(&messaging.pool, audit::Actor::System).await?;
    let (condition, kind) = match job.check {
        Check::NotStarted => (
            "wo.status = 'accepted' AND wo.started_at IS NULL AND wo.scheduled_at <= now()",
            AlertKind::NotStarted,
        ),
        _ => (
            "wo.status = 'in_progress'
             AND wo.started_at + make_interval(mins => wo.expected_duration_minutes) <= now()",
            AlertKind::Overdue,
        ),
    };
    let watched: Option<Watched> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT wo.reference, wo.title, w.first_name || ' ' || w.last_name AS worker_name
         FROM work_orders wo
         LEFT JOIN workers w ON w.tenant_id = wo.tenant_id AND w.id = wo.assigned_worker_id
         WHERE wo.tenant_id = $1 AND wo.id = $2 AND {condition}
         FOR UPDATE OF wo"
    )))
    .bind(job.tenant_id)
    .bind(job.work_order_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(watched) = watched else {
        tracing::debug!("the work order has moved on: nothing to do");
        return Ok(());
    };
    let worker = watched.worker_name.as_deref().unwrap_or("nobody");
    let text = match kind {
        AlertKind::NotStarted => format!(
            "{} ({}) was accepted by {worker} but has not started at its scheduled time",
            watched.reference, watched.title
        ),
        _ => format!(
            "{} ({}) is still in progress with {worker}, past its expected duration",
            watched.reference, watched.title
        ),
    };
    alerts::raise(
        &mut tx,
        &messaging.templates,
        job.tenant_id,
        kind,
        About::WorkOrder(job.work_order_id),
        &text,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

async fn acceptance(
    job: WorkOrderTimer,
    offer_id: Uuid,
    messaging: &Messaging,
) -> Result<(), BoxDynError> {
    let mut tx = audit::begin(&messaging.pool, audit::Actor::System).await?;
    // Still assigned, on this very offer, unanswered: otherwise the work order has moved on.
    let pending: Option<Pending> = sqlx::query_as(
        "SELECT wo.reference, wo.title, wo.priority, f.worker_id, w.first_name || ' ' || w.last_name AS worker_name
         FROM work_orders wo
         JOIN work_order_offers f ON f.tenant_id = wo.tenant_id AND f.work_order_id = wo.id AND f.id = $3
         JOIN workers w ON w.tenant_id = wo.tenant_id AND w.id = f.worker_id
         WHERE wo.tenant_id = $1 AND wo.id = $2 AND wo.status = 'assigned'
           AND wo.assigned_worker_id = f.worker_id AND f.declined_at IS NULL AND f.expired_at IS NULL
         FOR UPDATE OF wo",
    )
    .bind(job.tenant_id)
    .bind(job.work_order_id)
    .bind(offer_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(pending) = pending else {
        tracing::debug!("the work order has moved on: nothing to do");
        return Ok(());
    };
    match job.check {
        Check::Remind { .. } => {
            let contact = contacts::for_worker(&mut tx, job.tenant_id, pending.worker_id).await?;
            let values = Values::new()
                .with("reference", &pending.reference)
                .with("title", &pending.title);
            let mut reminder = Notification::new(job.tenant_id, contact, "wo_reminder", values);
            reminder.related = Some(("work_order", job.work_order_id));
            notify::notify(&mut tx, &messaging.templates, &reminder).await?;
            sqlx::query(
                "UPDATE work_order_offers SET reminded_at = now() WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.tenant_id)
            .bind(offer_id)
            .execute(&mut *tx)
            .await?;
            let wait = timeout(&mut tx, job.tenant_id, pending.priority).await?;
            jobs::enqueue(
                &mut tx,
                &WorkOrderTimer {
                    check: Check::Reassign { offer_id },
                    ..job
                },
                wait,
            )
            .await?;
            tracing::info!(reference = %pending.reference, "acceptance reminder sent");
        }
        _ => {
            sqlx::query(
                "UPDATE work_order_offers SET expired_at = now() WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.tenant_id)
            .bind(offer_id)
            .execute(&mut *tx)
            .await?;
            let order = work_orders::get(&mut tx, job.tenant_id, job.work_order_id).await?;
            let note = format!("no answer from {} in time", pending.worker_name);
            // An order that moved on meanwhile is not offered again (NotNow fails the job).
            work_orders::act(
                &mut tx,
                &messaging.templates,
                job.tenant_id,
                &order,
                Step::new(super::state::Action::Decline, Actor::System, "system")
                    .with_note(Some(&note)),
            )
            .await?;
            tracing::info!(reference = %pending.reference, "no answer: offered to the next candidate");
        }
    }
    tx.commit().await?;
    Ok(())
}
