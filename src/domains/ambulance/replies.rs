//! Ambulance crews by message: Accept or Decline a dispatch (a tap, a number, words), then each
//! step by a digit (1–6, 9, Ethiopic ፩–፱ too) or words, with a shared location updating where the
//! vehicle is. A reply applies to the crew's one active trip; with two, it asks which by trip code.

use async_trait::async_trait;
use uuid::Uuid;

use super::trips::{self, By, PROBLEM_DIGIT, Step, TripError, TripStatus};
use crate::{
    channels::ChannelKind,
    messaging::{
        router::{Handler, Outcome, Sender, Turn},
        templates::Values,
        understanding::{self, Context, Intent, IntentSet, normalize},
    },
};

pub struct CrewReplies;

/// What a crew member can mean about their unit's trip.
pub static CREW_INTENTS: IntentSet = IntentSet {
    name: "crew",
    intents: &[
        Intent {
            name: "problem",
            negated: None,
        },
        Intent {
            name: "decline",
            negated: None,
        },
        Intent {
            name: "accept",
            negated: Some("decline"),
        },
        Intent {
            name: "handover",
            negated: None,
        },
        Intent {
            name: "available",
            negated: None,
        },
        Intent {
            name: "at_destination",
            negated: None,
        },
        Intent {
            name: "leaving_pickup",
            negated: None,
        },
        Intent {
            name: "at_pickup",
            negated: None,
        },
        Intent {
            name: "en_route",
            negated: None,
        },
    ],
    opposites: &[("accept", "decline")],
};

#[derive(sqlx::FromRow)]
struct Active {
    id: Uuid,
    reference: String,
    status: TripStatus,
    acknowledged: bool,
    ambulance_id: Option<Uuid>,
}

/// What the crew member's message asks for.
enum Wanted {
    Accept,
    Decline,
    Step(Step),
    Problem,
}

fn is_crew(kinds: &[String]) -> bool {
    kinds.iter().any(|k| k == "ambulance_crew")
}

#[async_trait]
impl Handler for CrewReplies {
    fn name(&self) -> &'static str {
        "ambulance"
    }

    fn intents(&self) -> Option<&'static IntentSet> {
        Some(&CREW_INTENTS)
    }

    fn helps(&self, sender: &Sender) -> bool {
        matches!(sender, Sender::Worker { kinds, .. } if is_crew(kinds))
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
        if !is_crew(&kinds) {
            return Ok(Outcome::Pass);
        }
        let message = turn.message.clone();
        let tenant_id = turn.tenant.id;
        let active: Vec<Active> = sqlx::query_as(
            "SELECT t.id, t.reference, t.status, t.acknowledged_at IS NOT NULL AS acknowledged, t.ambulance_id
             FROM trips t JOIN trip_crew c ON c.tenant_id = t.tenant_id AND c.trip_id = t.id
             WHERE t.tenant_id = $1 AND c.worker_id = $2
               AND t.status IN ('assigned', 'en_route_to_pickup', 'at_pickup', 'en_route_to_dropoff',
                                'at_destination', 'handover_done')
             ORDER BY t.assigned_at",
        )
        .bind(tenant_id)
        .bind(worker_id)
        .fetch_all(&mut *turn.tx)
        .await?;
        let channel = match message.channel_kind {
            ChannelKind::Whatsapp => "whatsapp",
            ChannelKind::Sms => "sms",
        };
        // A shared location: where the vehicle is (the crew's roster vehicle, else the trip's).
        if let Some(at) = message.location {
            let vehicle: Option<Uuid> = sqlx::query_scalar(
                "SELECT ambulance_id FROM ambulance_crew_members WHERE tenant_id = $1 AND worker_id = $2 AND active",
            )
            .bind(tenant_id)
            .bind(worker_id)
            .fetch_optional(&mut *turn.tx)
            .await?
            .flatten()
            .or_else(|| active.first().and_then(|t| t.ambulance_id));
            let Some(vehicle) = vehicle else {
                return Ok(Outcome::Pass);
            };
            trips::record_position(
                &mut turn.tx,
                tenant_id,
                vehicle,
                Some(worker_id),
                at,
                None,
                channel,
            )
            .await?;
            if let Some(trip) = active.first() {
                turn.relate("trip", trip.id).await?;
            }
            turn.reply("trip_position_noted", Values::new()).await?;
            return Ok(Outcome::Handled);
        }
        if active.is_empty() {
            return Ok(Outcome::Pass);
        }
        let reading = turn.read(
            &CREW_INTENTS,
            Context {
                expected: if active.iter().any(|t| !t.acknowledged) {
                    &["accept", "decline"]
                } else {
                    &[]
                },
            },
        );
        // Which trip: the one the tapped message was about, the code written, or the only one.
        let replied_trip = message
            .replied_to
            .as_ref()
            .filter(|r| r.related_entity_type.as_deref() == Some("trip"))
            .and_then(|r| r.related_entity_id);
        let by_code = reading.reference.as_ref().and_then(|r| {
            active
                .iter()
                .find(|t| r.matches(&t.reference))
                .map(|t| t.id)
        });
        let digit = normalize(message.words())
            .split_whitespace()
            .filter_map(|w| w.parse::<u8>().ok())
            .find(|d| *d < 10);
        let wanted = match message.reply_id.as_deref() {
            // A number answering the dispatch's buttons is the button only while the dispatch is
            // unanswered; after that, "1" and "2" are steps.
            Some("accept")
                if active
                    .iter()
                    .any(|t| Some(t.id) == replied_trip && !t.acknowledged) =>
            {
                Some(Wanted::Accept)
            }
            Some("decline")
                if active
                    .iter()
                    .any(|t| Some(t.id) == replied_trip && !t.acknowledged) =>
            {
                Some(Wanted::Decline)
            }
            Some("accept" | "decline") if digit.is_none() => return Ok(Outcome::Pass),
            Some(other) if !matches!(other, "accept" | "decline") => return Ok(Outcome::Pass),
            _ => match digit {
                Some(d) if d == PROBLEM_DIGIT => Some(Wanted::Problem),
                Some(d) => Step::from_digit(d).map(Wanted::Step),
                None => {
                    if let Some(pair) = understanding::unsure(&CREW_INTENTS, &reading) {
                        turn.ask_between(&CREW_INTENTS, pair).await?;
                        return Ok(Outcome::Handled);
                    }
                    match reading.top() {
                        Some("accept") => Some(Wanted::Accept),
                        Some("decline") => Some(Wanted::Decline),
                        Some("problem") => Some(Wanted::Problem),
                        Some(intent) => Step::from_intent(intent).map(Wanted::Step),
                        None => None,
                    }
                }
            },
        };
        let chosen = replied_trip
            .filter(|id| active.iter().any(|t| t.id == *id))
            .or(by_code)
            .or_else(|| match (&wanted, active.as_slice()) {
                (_, [only]) => Some(only.id),
                // Accepting or declining is about the one trip still waiting for an answer.
                (Some(Wanted::Accept | Wanted::Decline), _) => {
                    let waiting: Vec<&Active> = active.iter().filter(|t| !t.acknowledged).collect();
                    (waiting.len() == 1).then(|| waiting[0].id)
                }
                _ => None,
            });
        let Some(trip_id) = chosen else {
            let references: Vec<&str> = active.iter().map(|t| t.reference.as_str()).collect();
            turn.reply(
                "trip_which",
                Values::new().with("references", references.join(", ")),
            )
            .await?;
            return Ok(Outcome::Handled);
        };
        let trip = active
            .iter()
            .find(|t| t.id == trip_id)
            .expect("chosen among active");
        turn.relate("trip", trip.id).await?;
        let by = By {
            kind: "crew",
            user_id: None,
            worker_id: Some(worker_id),
            channel: if channel == "whatsapp" {
                "whatsapp"
            } else {
                "sms"
            },
            position: None,
            message_id: Some(message.id),
        };
        let templates = &turn.messaging.templates;
        let reference = Values::new().with("reference", &trip.reference);
        let outcome = match wanted {
            None => {
                // Other words about the trip ("traffic is bad on Bole road"): on its timeline.
                if message.words().is_empty() {
                    return Ok(Outcome::Pass);
                }
                turn.reply("trip_noted", reference).await?;
                return Ok(Outcome::Handled);
            }
            Some(Wanted::Accept) => {
                trips::accept(&mut turn.tx, tenant_id, trip.id, &by).await?;
                Ok("trip_accepted")
            }
            Some(Wanted::Decline) => {
                let reason = reading.rest.clone();
                trips::decline(
                    &mut turn.tx,
                    templates,
                    tenant_id,
                    trip.id,
                    reason.as_deref(),
                    &by,
                )
                .await
                .map(|()| "trip_declined_noted")
            }
            Some(Wanted::Problem) => {
                let what = reading
                    .rest
                    .clone()
                    .or_else(|| Some(message.words().to_owned()));
                trips::vehicle_problem(
                    &mut turn.tx,
                    templates,
                    tenant_id,
                    trip.id,
                    what.as_deref(),
                    &by,
                )
                .await
                .map(|_| "trip_problem_noted")
            }
            Some(Wanted::Step(step)) => {
                trips::step(&mut turn.tx, templates, tenant_id, trip.id, step, &by)
                    .await
                    .map(|_| step_key(step))
            }
        };
        match outcome {
            Ok(key) => {
                turn.reply(key, reference).await?;
            }
            Err(TripError::NotNow(_)) => {
                let values = reference.with("status", trip.status.as_str().replace('_', " "));
                turn.reply("trip_step_refused", values).await?;
            }
            Err(other) => return Err(other.into()),
        }
        Ok(Outcome::Handled)
    }
}

fn step_key(step: Step) -> &'static str {
    match step {
        Step::EnRoute => "trip_step_en_route",
        Step::AtPickup => "trip_step_at_pickup",
        Step::LeavingPickup => "trip_step_leaving_pickup",
        Step::AtDestination => "trip_step_at_destination",
        Step::Handover => "trip_step_handover",
        Step::Available => "trip_step_available",
    }
}
