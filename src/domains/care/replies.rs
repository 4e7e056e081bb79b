//! Caregivers check in and out by message: a shared WhatsApp location, or "in" / "out" (and the
//! Amharic words), tied to the visit in progress or the next one.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    CareError,
    visits::{self, EventKind, Reading, VisitStatus},
};
use crate::{
    channels::ChannelKind,
    messaging::{
        router::{Handler, Outcome, Sender, Turn},
        templates::Values,
    },
};

pub struct CaregiverReplies;

const IN: &[&str] = &[
    "in",
    "check in",
    "checkin",
    "arrived",
    "i am here",
    "here",
    "ገብቻለሁ",
    "ደርሻለሁ",
];
const OUT: &[&str] = &[
    "out",
    "check out",
    "checkout",
    "leaving",
    "done",
    "finished",
    "ወጥቻለሁ",
    "ጨርሻለሁ",
];

#[derive(sqlx::FromRow)]
struct Current {
    id: Uuid,
    status: VisitStatus,
}

/// The visit in progress, else the next one due (from an hour before its start to its end),
/// else one just missed by a little.
async fn current_visit(turn: &mut Turn<'_>, worker_id: Uuid) -> sqlx::Result<Option<Current>> {
    sqlx::query_as(
        "SELECT id, status FROM visits
         WHERE tenant_id = $1 AND caregiver_id = $2
           AND (status = 'in_progress'
                OR (status = 'scheduled' AND scheduled_start < now() + interval '2 hours'
                    AND scheduled_end > now() - interval '1 hour'))
         ORDER BY status = 'in_progress' DESC, abs(extract(epoch FROM scheduled_start - now()))
         LIMIT 1",
    )
    .bind(turn.tenant.id)
    .bind(worker_id)
    .fetch_optional(&mut *turn.tx)
    .await
}

#[async_trait]
impl Handler for CaregiverReplies {
    fn name(&self) -> &'static str {
        "care"
    }

    async fn handle(&self, turn: &mut Turn<'_>) -> anyhow::Result<Outcome> {
        let Sender::Worker {
            id: worker_id,
            kinds,
            ..
        } = turn.sender.clone()
        else {
            return Ok(Outcome::Pass);
        };
        if !kinds.iter().any(|k| k == "caregiver") {
            return Ok(Outcome::Pass);
        }
        let message = turn.message.clone();
        let said = message.normalized.as_str();
        let wanted = if message.location.is_some() {
            None
        } else if IN.contains(&said) {
            Some(EventKind::CheckIn)
        } else if OUT.contains(&said) {
            Some(EventKind::CheckOut)
        } else {
            return Ok(Outcome::Pass);
        };
        let Some(visit) = current_visit(turn, worker_id).await? else {
            turn.reply("visit_none", Values::new()).await?;
            return Ok(Outcome::Handled);
        };
        // A shared location checks in, or out of the visit in progress.
        let kind = wanted.unwrap_or(if visit.status == VisitStatus::InProgress {
            EventKind::CheckOut
        } else {
            EventKind::CheckIn
        });
        turn.relate("visit", visit.id).await?;
        let reading = Reading {
            position: message.location,
            // WhatsApp does not say how precise a shared location is.
            accuracy_m: None,
            device_time: None,
            client_event_id: Some(format!("message:{}", message.id)),
            method: match message.channel_kind {
                ChannelKind::Whatsapp => "whatsapp",
                ChannelKind::Sms => "sms",
            },
            message_id: Some(message.id),
            ..Reading::default()
        };
        let tenant_id = turn.tenant.id;
        let result =
            match visits::record(&mut turn.tx, tenant_id, worker_id, visit.id, kind, reading).await
            {
                Ok(result) => result,
                // Said to the caregiver in their language; only a fault retries the job.
                Err(CareError::Refused(refusal)) => {
                    turn.reply(refusal.message_key(), Values::new()).await?;
                    return Ok(Outcome::Handled);
                }
                Err(other) => return Err(other.into()),
            };
        let time_zone: String = sqlx::query_scalar("SELECT time_zone FROM tenants WHERE id = $1")
            .bind(tenant_id)
            .fetch_one(&mut *turn.tx)
            .await?;
        let key = match (kind, result.verified) {
            (EventKind::CheckIn, true) => "visit_checked_in_verified",
            (EventKind::CheckIn, false) => "visit_checked_in_unverified",
            (EventKind::CheckOut, true) => "visit_checked_out_verified",
            (EventKind::CheckOut, false) => "visit_checked_out_unverified",
        };
        turn.reply(
            key,
            Values::new()
                .with("patient", &result.patient_name)
                .with("time", local_time(result.at, &time_zone)),
        )
        .await?;
        Ok(Outcome::Handled)
    }
}

fn local_time(at: DateTime<Utc>, time_zone: &str) -> String {
    let tz = crate::types::TimeZone::stored(time_zone);
    at.with_timezone(&tz).format("%H:%M").to_string()
}
