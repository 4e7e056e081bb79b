//! Visit timers, one delayed job per visit that moves through the stages: remind the caregiver
//! before the visit; no check-in 15 minutes after the start, nudge; at 30, mark it late and
//! alert the coordinators; at the end of its window, mark it missed; no check-out 15 minutes
//! after the end, remind. Each stage works out its time from the visit as it is now, waits
//! again if the visit was moved later, and does nothing if the visit has moved on.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use sqlx::PgConnection;
use uuid::Uuid;

use super::visits::VisitStatus;
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

pub const REMIND_BEFORE: TimeDelta = TimeDelta::minutes(60);
pub const NUDGE_AFTER: TimeDelta = TimeDelta::minutes(15);
pub const LATE_AFTER: TimeDelta = TimeDelta::minutes(30);
pub const CHECK_OUT_GRACE: TimeDelta = TimeDelta::minutes(15);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Stage {
    Remind,
    Nudge,
    Late,
    Missed,
    CheckOutReminder,
}

impl Stage {
    fn next(self) -> Option<Self> {
        match self {
            Self::Remind => Some(Self::Nudge),
            Self::Nudge => Some(Self::Late),
            Self::Late => Some(Self::Missed),
            Self::Missed => Some(Self::CheckOutReminder),
            Self::CheckOutReminder => None,
        }
    }

    fn due(self, start: DateTime<Utc>, end: DateTime<Utc>) -> DateTime<Utc> {
        match self {
            Self::Remind => start - REMIND_BEFORE,
            Self::Nudge => start + NUDGE_AFTER,
            Self::Late => start + LATE_AFTER,
            Self::Missed => end,
            Self::CheckOutReminder => end + CHECK_OUT_GRACE,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct VisitTimer {
    pub tenant_id: Uuid,
    pub visit_id: Uuid,
    pub stage: Stage,
}

impl Job for VisitTimer {
    const QUEUE: &'static str = "visit-timers";
}

fn delay_until(at: DateTime<Utc>) -> Duration {
    (at - Utc::now()).to_std().unwrap_or(Duration::ZERO)
}

/// Starts a new visit's timers.
pub async fn start(conn: &mut PgConnection, tenant_id: Uuid, visit_id: Uuid) -> anyhow::Result<()> {
    let (start, end): (DateTime<Utc>, DateTime<Utc>) = sqlx::query_as(
        "SELECT scheduled_start, scheduled_end FROM visits WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(visit_id)
    .fetch_one(&mut *conn)
    .await?;
    let stage = Stage::Remind;
    let timer = VisitTimer {
        tenant_id,
        visit_id,
        stage,
    };
    jobs::enqueue(conn, &timer, delay_until(stage.due(start, end))).await
}

#[derive(sqlx::FromRow)]
struct Watched {
    caregiver_id: Uuid,
    status: VisitStatus,
    scheduled_start: DateTime<Utc>,
    scheduled_end: DateTime<Utc>,
    late: bool,
    patient_name: String,
    caregiver_name: String,
    time_zone: String,
}

#[tracing::instrument(skip_all, fields(visit_id = %job.visit_id, stage = ?job.stage))]
pub async fn visit_timer(
    job: VisitTimer,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let mut tx = audit::begin(&messaging.pool, audit::Actor::System).await?;
    let visit: Option<Watched> = sqlx::query_as(
        "SELECT v.caregiver_id, v.status, v.scheduled_start, v.scheduled_end, v.late_at IS NOT NULL AS late,
                p.first_name || ' ' || p.last_name AS patient_name,
                w.first_name || ' ' || w.last_name AS caregiver_name, t.time_zone
         FROM visits v
         JOIN patients p ON p.tenant_id = v.tenant_id AND p.id = v.patient_id
         JOIN workers w ON w.tenant_id = v.tenant_id AND w.id = v.caregiver_id
         JOIN tenants t ON t.id = v.tenant_id
         WHERE v.tenant_id = $1 AND v.id = $2
         FOR UPDATE OF v",
    )
    .bind(job.tenant_id)
    .bind(job.visit_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(visit) = visit else {
        return Ok(());
    };
    if matches!(
        visit.status,
        VisitStatus::Cancelled | VisitStatus::Completed
    ) {
        tracing::debug!("the visit has moved on: no more timers");
        return Ok(());
    }
    // Once checked in, only the check-out reminder is left to wait for.
    let job = VisitTimer {
        stage: if visit.status == VisitStatus::InProgress {
            Stage::CheckOutReminder
        } else {
            job.stage
        },
        ..job
    };
    let due = job.stage.due(visit.scheduled_start, visit.scheduled_end);
    // The visit was moved later: wait for the new time.
    if Utc::now() + TimeDelta::seconds(1) < due {
        jobs::enqueue(&mut tx, &job, delay_until(due)).await?;
        tx.commit().await?;
        return Ok(());
    }
    let tz = crate::types::TimeZone::stored(&visit.time_zone);
    let time = visit
        .scheduled_start
        .with_timezone(&tz)
        .format("%H:%M")
        .to_string();
    let scheduled = visit.status == VisitStatus::Scheduled;
    let tell = async |tx: &mut PgConnection, key: &'static str| -> anyhow::Result<()> {
        // A caregiver removed since: nobody to remind.
        let Some(contact) =
            contacts::for_live_worker(tx, job.tenant_id, visit.caregiver_id).await?
        else {
            return Ok(());
        };
        let values = Values::new()
            .with("patient", &visit.patient_name)
            .with("time", &time);
        // Reminders and nudges are courtesies (essential = false in care.toml).
        let mut notification = Notification::new(job.tenant_id, contact, key, values);
        notification.related = Some(("visit", job.visit_id));
        notify::notify(tx, &messaging.templates, &notification).await?;
        Ok(())
    };
    match job.stage {
        // Only if there is still time: a visit created at the last minute needs no reminder.
        Stage::Remind if scheduled && Utc::now() < visit.scheduled_start => {
            tell(&mut tx, "visit_reminder").await?;
        }
        Stage::Nudge if scheduled => tell(&mut tx, "visit_nudge").await?,
        Stage::Late if scheduled && !visit.late => {
            sqlx::query("UPDATE visits SET late_at = now() WHERE tenant_id = $1 AND id = $2")
                .bind(job.tenant_id)
                .bind(job.visit_id)
                .execute(&mut *tx)
                .await?;
            super::exceptions::raise(
                &mut tx,
                job.tenant_id,
                job.visit_id,
                None,
                "late",
                "no check-in 30 min after the start",
            )
            .await?;
            let text = format!(
                "{} has not checked in at {}'s (due {time})",
                visit.caregiver_name, visit.patient_name
            );
            alerts::raise(
                &mut tx,
                &messaging.templates,
                job.tenant_id,
                AlertKind::VisitLate,
                About::Visit(job.visit_id),
                &text,
            )
            .await?;
        }
        Stage::Missed if scheduled => {
            sqlx::query("UPDATE visits SET status = 'missed' WHERE tenant_id = $1 AND id = $2")
                .bind(job.tenant_id)
                .bind(job.visit_id)
                .execute(&mut *tx)
                .await?;
            super::exceptions::raise(
                &mut tx,
                job.tenant_id,
                job.visit_id,
                None,
                "missed",
                "no check-in by the end of the visit's window",
            )
            .await?;
            tx.commit().await?;
            tracing::info!("visit missed");
            return Ok(());
        }
        Stage::CheckOutReminder if visit.status == VisitStatus::InProgress => {
            super::exceptions::raise(
                &mut tx,
                job.tenant_id,
                job.visit_id,
                None,
                "no_check_out",
                "no check-out 15 min after the scheduled end",
            )
            .await?;
            tell(&mut tx, "visit_check_out_reminder").await?;
        }
        _ => {}
    }
    if let Some(next) = job.stage.next() {
        let timer = VisitTimer { stage: next, ..job };
        jobs::enqueue(
            &mut tx,
            &timer,
            delay_until(next.due(visit.scheduled_start, visit.scheduled_end)),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(())
}
