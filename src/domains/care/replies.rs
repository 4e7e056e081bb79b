//! Caregivers check in and out by message: a shared WhatsApp location, or words ("arrived",
//! "leaving now", "እዚህ ነኝ"), tied to the visit in progress or the next one. Other words during
//! a visit ("running 10 min late") are filed on it for the coordinator.

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
        understanding::{self, Context, Intent, IntentSet},
    },
};

pub struct CaregiverReplies;

/// What a caregiver can mean around a visit.
pub static CARE_INTENTS: IntentSet = IntentSet {
    name: "care",
    intents: &[
        Intent {
            name: "check_out",
            negated: None,
        },
        Intent {
            name: "check_in",
            negated: None,
        },
    ],
    opposites: &[("check_in", "check_out")],
};

#[derive(sqlx::FromRow)]
struct Current {
    id: Uuid,
    status: VisitStatus,
    patient_name: String,
}

/// The visit in progress, else the next one due (from two hours before its start to its end),
/// else one just missed by a little.
async fn current_visit(turn: &mut Turn<'_>, worker_id: Uuid) -> sqlx::Result<Option<Current>> {
    sqlx::query_as(
        "SELECT v.id, v.status, p.first_name || ' ' || p.last_name AS patient_name
         FROM visits v JOIN patients p ON p.tenant_id = v.tenant_id AND p.id = v.patient_id
         WHERE v.tenant_id = $1 AND v.caregiver_id = $2
           AND (v.status = 'in_progress'
                OR (v.status = 'scheduled' AND v.scheduled_start < now() + interval '2 hours'
                    AND v.scheduled_end > now() - interval '1 hour'))
         ORDER BY v.status = 'in_progress' DESC, abs(extract(epoch FROM v.scheduled_start - now()))
         LIMIT 1",
    )
    .bind(turn.tenant.id)
    .bind(worker_id)
    .fetch_optional(&mut *turn.tx)
    .await
}

fn kind_of(intent: &str) -> Option<EventKind> {
    match intent {
        "check_in" => Some(EventKind::CheckIn),
        "check_out" => Some(EventKind::CheckOut),
        _ => None,
    }
}

#[async_trait]
impl Handler for CaregiverReplies {
    fn name(&self) -> &'static str {
        "care"
    }

    fn intents(&self) -> Option<&'static IntentSet> {
        Some(&CARE_INTENTS)
    }

    fn helps(&self, sender: &Sender) -> bool {
        matches!(sender, Sender::Worker { kinds, .. } if kinds.iter().any(|k| k == "caregiver"))
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
        let clarified = turn.clarified(&CARE_INTENTS).await?;
        if message.reply_id.is_some() && clarified.is_none() {
            return Ok(Outcome::Pass);
        }
        let visit = current_visit(turn, worker_id).await?;
        let wanted = if message.location.is_some() {
            None
        } else {
            let intent = match clarified {
                Some((intent, _)) => intent,
                None => {
                    let expected: &[&str] = match visit.as_ref().map(|v| v.status) {
                        Some(VisitStatus::InProgress) => &["check_out"],
                        Some(_) => &["check_in"],
                        None => &[],
                    };
                    let reading = turn.read(&CARE_INTENTS, Context { expected });
                    if let Some(pair) = understanding::unsure(&CARE_INTENTS, &reading) {
                        turn.ask_between(&CARE_INTENTS, pair).await?;
                        return Ok(Outcome::Handled);
                    }
                    reading.top()
                }
            };
            match intent.and_then(kind_of) {
                Some(kind) => Some(kind),
                None => {
                    // Words that are no check-in or out, during a visit: the coordinator sees
                    // them on it. A caregiver who also does maintenance may mean a work order.
                    let also_maintenance = kinds.iter().any(|k| k != "caregiver");
                    let Some(visit) = visit.filter(|_| !also_maintenance) else {
                        return Ok(Outcome::Pass);
                    };
                    if message.words().is_empty() {
                        return Ok(Outcome::Pass);
                    }
                    turn.relate("visit", visit.id).await?;
                    turn.reply(
                        "visit_noted",
                        Values::new().with("patient", &visit.patient_name),
                    )
                    .await?;
                    return Ok(Outcome::Handled);
                }
            }
        };
        let Some(visit) = visit else {
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
