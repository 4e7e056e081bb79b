//! Acceptance timers: no answer within the priority's time (per tenant) and the worker is
//! reminded once; still none and the next candidate is asked; nobody left and the coordinators
//! are alerted. Each timer does nothing if the work order has moved on.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::work_orders::{self, Actor};
use crate::{
    jobs::{self, Job},
    messaging::{
        Messaging, contacts,
        notify::{self, Notification},
        templates::Values,
    },
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Remind,
    Reassign,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct AcceptanceTimer {
    pub tenant_id: Uuid,
    pub work_order_id: Uuid,
    pub offer_id: Uuid,
    pub stage: Stage,
}

impl Job for AcceptanceTimer {
    const QUEUE: &'static str = "work-order-acceptance";
}

/// How long a worker has to accept a work order of `priority`, from the tenant's settings.
pub async fn timeout(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    priority: &str,
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
    priority: &str,
) -> anyhow::Result<()> {
    let wait = timeout(conn, tenant_id, priority).await?;
    let timer = AcceptanceTimer {
        tenant_id,
        work_order_id,
        offer_id,
        stage: Stage::Remind,
    };
    jobs::enqueue(conn, &timer, wait).await
}

#[derive(sqlx::FromRow)]
struct Pending {
    reference: String,
    title: String,
    priority: String,
    worker_id: Uuid,
    worker_name: String,
}

#[tracing::instrument(skip_all, fields(work_order_id = %job.work_order_id, stage = ?job.stage))]
pub async fn acceptance_timer(
    job: AcceptanceTimer,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let mut tx = messaging.pool.begin().await?;
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
    .bind(job.offer_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(pending) = pending else {
        tracing::debug!("the work order has moved on: nothing to do");
        return Ok(());
    };
    match job.stage {
        Stage::Remind => {
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
            .bind(job.offer_id)
            .execute(&mut *tx)
            .await?;
            let wait = timeout(&mut tx, job.tenant_id, &pending.priority).await?;
            jobs::enqueue(
                &mut tx,
                &AcceptanceTimer {
                    stage: Stage::Reassign,
                    ..job
                },
                wait,
            )
            .await?;
            tracing::info!(reference = %pending.reference, "acceptance reminder sent");
        }
        Stage::Reassign => {
            sqlx::query(
                "UPDATE work_order_offers SET expired_at = now() WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.tenant_id)
            .bind(job.offer_id)
            .execute(&mut *tx)
            .await?;
            let order = work_orders::get(&mut tx, job.tenant_id, job.work_order_id).await?;
            let note = format!("no answer from {} in time", pending.worker_name);
            work_orders::act(
                &mut tx,
                &messaging.templates,
                job.tenant_id,
                &order,
                super::state::Action::Decline,
                Actor::System,
                "system",
                Some(&note),
                None,
            )
            .await?
            .map_err(|status| {
                format!(
                    "{} could not be offered again from {status}",
                    pending.reference
                )
            })?;
            tracing::info!(reference = %pending.reference, "no answer: offered to the next candidate");
        }
    }
    tx.commit().await?;
    Ok(())
}
