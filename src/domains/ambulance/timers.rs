//! The trip's escalation ladder, on the delayed jobs every domain's timers use: a dispatch nobody
//! acknowledges is sent again, then the coordinators are alerted with the next unit to offer; a
//! crew at the destination without a handover is reminded, then the coordinators alerted. Each
//! step remembers the moment it counts from, and does nothing once that moment has changed (the
//! trip was acknowledged, redispatched, handed over).

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::trips::{self, TripStatus};
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
pub enum Stage {
    ResendDispatch,
    NotAcknowledged,
    HandoverReminder,
    HandoverDelay,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct TripTimer {
    pub tenant_id: Uuid,
    pub trip_id: Uuid,
    pub stage: Stage,
    /// When the trip was dispatched (ack stages) or reached the destination (handover stages).
    pub since: DateTime<Utc>,
}

impl Job for TripTimer {
    const QUEUE: &'static str = "trip-timers";
}

#[derive(sqlx::FromRow)]
struct Ladder {
    trip_ack_resend_secs: i32,
    trip_ack_alert_secs: i32,
    trip_handover_warn_minutes: i32,
    trip_handover_alert_minutes: i32,
}

async fn ladder(conn: &mut PgConnection, tenant_id: Uuid) -> sqlx::Result<Ladder> {
    sqlx::query_as(
        "SELECT trip_ack_resend_secs, trip_ack_alert_secs, trip_handover_warn_minutes, trip_handover_alert_minutes
         FROM tenants WHERE id = $1",
    )
    .bind(tenant_id)
    .fetch_one(conn)
    .await
}

impl Stage {
    fn after(self, l: &Ladder) -> TimeDelta {
        match self {
            Self::ResendDispatch => TimeDelta::seconds(l.trip_ack_resend_secs.into()),
            Self::NotAcknowledged => TimeDelta::seconds(l.trip_ack_alert_secs.into()),
            Self::HandoverReminder => TimeDelta::minutes(l.trip_handover_warn_minutes.into()),
            Self::HandoverDelay => TimeDelta::minutes(l.trip_handover_alert_minutes.into()),
        }
    }
}

/// Starts the ladder from `since` (a dispatch, or the arrival at the destination).
pub async fn start(
    conn: &mut PgConnection,
    tenant_id: Uuid,
    trip_id: Uuid,
    stage: Stage,
    since: DateTime<Utc>,
) -> anyhow::Result<()> {
    let l = ladder(conn, tenant_id).await?;
    let due = since + stage.after(&l);
    let timer = TripTimer {
        tenant_id,
        trip_id,
        stage,
        since,
    };
    jobs::enqueue(
        conn,
        &timer,
        (due - Utc::now()).to_std().unwrap_or(Duration::ZERO),
    )
    .await
}

#[tracing::instrument(skip_all, fields(trip_id = %job.trip_id, stage = ?job.stage))]
pub async fn trip_timer(
    job: TripTimer,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let mut tx = audit::begin(&messaging.pool, audit::Actor::System).await?;
    let trip = match trips::get(&mut tx, job.tenant_id, job.trip_id).await {
        Ok(trip) => trip,
        Err(trips::TripError::NotFound(_)) => return Ok(()),
        Err(other) => return Err(other.into()),
    };
    // The database keeps microseconds; the job, whatever the clock gave.
    let same = |at: Option<DateTime<Utc>>| {
        at.map(|a| a.timestamp_micros()) == Some(job.since.timestamp_micros())
    };
    let still = match job.stage {
        Stage::ResendDispatch | Stage::NotAcknowledged => {
            trip.status == TripStatus::Assigned
                && trip.acknowledged_at.is_none()
                && same(trip.assigned_at)
        }
        Stage::HandoverReminder | Stage::HandoverDelay => {
            trip.status == TripStatus::AtDestination && same(trip.at_destination_at)
        }
    };
    if !still {
        return Ok(());
    }
    let templates = &messaging.templates;
    let crew: Vec<Uuid> =
        sqlx::query_scalar("SELECT worker_id FROM trip_crew WHERE tenant_id = $1 AND trip_id = $2")
            .bind(job.tenant_id)
            .bind(job.trip_id)
            .fetch_all(&mut *tx)
            .await?;
    match job.stage {
        Stage::ResendDispatch | Stage::HandoverReminder => {
            let key = if job.stage == Stage::ResendDispatch {
                "trip_dispatch"
            } else {
                "trip_handover_reminder"
            };
            for worker in crew {
                let Some(contact) =
                    contacts::for_live_worker(&mut tx, job.tenant_id, worker).await?
                else {
                    continue;
                };
                let values = if key == "trip_dispatch" {
                    trips::dispatch_values(&trip)
                } else {
                    Values::new().with("reference", &trip.reference)
                };
                let mut message = Notification::new(job.tenant_id, contact, key, values);
                message.related = Some(("trip", trip.id));
                message.urgent = trip.request_type == trips::RequestType::Emergency;
                notify::notify(&mut tx, templates, &message).await?;
            }
            let next = if job.stage == Stage::ResendDispatch {
                Stage::NotAcknowledged
            } else {
                Stage::HandoverDelay
            };
            start(&mut tx, job.tenant_id, job.trip_id, next, job.since).await?;
        }
        Stage::NotAcknowledged => {
            let next = match trips::suggestions(&mut tx, job.tenant_id, trip.id).await {
                Ok(s) => s
                    .ranked
                    .first()
                    .map_or("no other unit is available".to_owned(), |u| {
                        format!("next unit to offer: {} ({})", u.registration_number, u.why)
                    }),
                Err(_) => "no pickup position to rank units".to_owned(),
            };
            let text = format!(
                "Trip {} ({}): {} has not acknowledged the dispatch; {next}.",
                trip.reference,
                trip.priority,
                trip.registration_number.as_deref().unwrap_or("the unit")
            );
            alerts::raise(
                &mut tx,
                templates,
                job.tenant_id,
                AlertKind::TripNotAcknowledged,
                About::Trip(trip.id),
                &text,
            )
            .await?;
        }
        Stage::HandoverDelay => {
            let text = format!(
                "Trip {}: {} has been at {} without a handover.",
                trip.reference,
                trip.registration_number.as_deref().unwrap_or("the unit"),
                trip.dropoff_address
            );
            alerts::raise(
                &mut tx,
                templates,
                job.tenant_id,
                AlertKind::HandoverDelay,
                About::Trip(trip.id),
                &text,
            )
            .await?;
        }
    }
    tx.commit().await?;
    Ok(())
}
