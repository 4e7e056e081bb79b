//! What maintenance and housekeeping workers send back: taps and a few words from the field.
//!
//! A reply is tied to a work order by the message it answers, else an explicit reference
//! ("M-1042 done"), else the worker's only open work order; when that is ambiguous the bot asks
//! which, with a button per work order, and applies the reply to the one tapped.

use async_trait::async_trait;
use serde_json::json;
use uuid::Uuid;

use super::{
    state::{Action, Status},
    work_orders::{self, Actor, Completion, Step, WorkOrderError},
};
use crate::{
    channels::{Button, ChannelKind},
    messaging::{
        router::{Handler, Outcome, Sender, Turn},
        templates::Values,
        understanding::{self, Context, Intent, IntentSet, Lexicons, Reading, Reference},
    },
};

pub struct WorkerReplies;

fn is_maintenance(kinds: &[String]) -> bool {
    kinds
        .iter()
        .any(|k| k == "maintenance" || k == "housekeeping")
}

/// What a worker can mean, in order of precedence when two are read equally well: the further
/// along the work, the more a message says ("ok, done" is done).
pub static WORKER_INTENTS: IntentSet = IntentSet {
    name: "maintenance",
    intents: &[
        Intent {
            name: "completed",
            negated: None,
        },
        Intent {
            name: "on_hold",
            negated: None,
        },
        Intent {
            name: "started",
            negated: None,
        },
        Intent {
            name: "on_my_way",
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
            name: "status",
            negated: None,
        },
    ],
    opposites: &[
        ("accept", "decline"),
        ("completed", "on_hold"),
        ("started", "on_hold"),
    ],
};

/// What the worker's words come to.
#[derive(Debug, Clone, PartialEq)]
pub enum Understood {
    /// Something to do to, or add to, a work order.
    Work(Command),
    /// "status", "my jobs": their open work.
    Status,
    /// Two readings too close to call: ask which.
    Ask(&'static str, &'static str),
}

/// What the worker asked for about a work order.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    Act {
        action: Action,
        note: Option<String>,
        completion: Option<Completion>,
    },
    Comment(String),
    Photo,
    Location,
}

/// The intents an open work order in `status` makes likely next.
fn expected(status: Status) -> &'static [&'static str] {
    match status {
        Status::Assigned => &["accept", "decline"],
        Status::Accepted => &["on_my_way", "started", "decline"],
        Status::InProgress => &["on_hold", "completed"],
        Status::OnHold => &["started", "completed"],
        _ => &[],
    }
}

/// Reads a worker's words, given what their open work makes likely.
pub fn understand(
    lexicons: &Lexicons,
    text: &str,
    open: &[Status],
) -> (Understood, Option<Reference>) {
    let mut likely: Vec<&'static str> = open.iter().flat_map(|s| expected(*s)).copied().collect();
    likely.dedup();
    let reading = understanding::read(
        lexicons,
        &WORKER_INTENTS,
        text,
        Context { expected: &likely },
    );
    let command = match understanding::unsure(&WORKER_INTENTS, &reading) {
        Some((first, second)) => Understood::Ask(first, second),
        None => command_for(reading.top(), &reading, text),
    };
    (command, reading.reference)
}

/// The command an intent stands for, with what the reading took from the words.
fn command_for(intent: Option<&str>, reading: &Reading, text: &str) -> Understood {
    let act = |action, note: Option<String>| {
        Understood::Work(Command::Act {
            action,
            note,
            completion: None,
        })
    };
    match intent {
        Some("accept") => act(Action::Accept, None),
        Some("decline") => act(Action::Decline, reading.rest.clone()),
        Some("on_my_way") => act(Action::OnMyWay, reading.rest.clone()),
        Some("started") => act(Action::Start, reading.rest.clone()),
        Some("on_hold") => act(Action::Hold, reading.rest.clone()),
        Some("completed") => Understood::Work(Command::Act {
            action: Action::Complete,
            note: None,
            completion: Some(Completion {
                labour_hours: reading.hours,
                parts_used: reading.rest.clone(),
            }),
        }),
        Some("status") => Understood::Status,
        _ => Understood::Work(Command::Comment(text.trim().to_owned())),
    }
}

fn from_button(id: &str) -> Option<Command> {
    let action = match id {
        "accept" => Action::Accept,
        "decline" => Action::Decline,
        _ => return None,
    };
    Some(Command::Act {
        action,
        note: None,
        completion: None,
    })
}

#[derive(sqlx::FromRow)]
struct Open {
    id: Uuid,
    reference: String,
    title: String,
    status: Status,
}

/// The worker's open work, oldest first.
async fn open_work(turn: &mut Turn<'_>, worker_id: Uuid) -> sqlx::Result<Vec<Open>> {
    sqlx::query_as(
        "SELECT id, reference, title, status FROM work_orders
         WHERE tenant_id = $1 AND assigned_worker_id = $2
           AND status IN ('assigned', 'accepted', 'in_progress', 'on_hold')
         ORDER BY created_at",
    )
    .bind(turn.tenant.id)
    .bind(worker_id)
    .fetch_all(&mut *turn.tx)
    .await
}

/// "status", "my jobs": one line per open work order.
async fn my_jobs(turn: &mut Turn<'_>, open: &[Open]) -> anyhow::Result<()> {
    if open.is_empty() {
        turn.reply("wo_my_jobs_none", Values::new()).await?;
        return Ok(());
    }
    let lines = open
        .iter()
        .map(|o| {
            (
                "wo_status_line".to_owned(),
                Values::new()
                    .with("reference", &o.reference)
                    .with("title", &o.title)
                    .with_term("state", format!("wo_state_{}", o.status.as_str())),
            )
        })
        .collect();
    turn.reply("wo_my_jobs", Values::new().with_lines("lines", lines))
        .await?;
    Ok(())
}

#[async_trait]
impl Handler for WorkerReplies {
    fn name(&self) -> &'static str {
        "maintenance"
    }

    fn intents(&self) -> Option<&'static IntentSet> {
        Some(&WORKER_INTENTS)
    }

    fn helps(&self, sender: &Sender) -> bool {
        matches!(sender, Sender::Worker { kinds, .. } if is_maintenance(kinds))
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
        if !is_maintenance(&kinds) {
            return Ok(Outcome::Pass);
        }
        let message = turn.message.clone();
        let tenant_id = turn.tenant.id;
        let open = open_work(turn, worker_id).await?;
        let statuses: Vec<Status> = open.iter().map(|o| o.status).collect();

        // A tap on "which work order?": the reply it was about, applied to the one chosen.
        let mut chosen_reference = None;
        let mut text = message.words().to_owned();
        if let Some(reference) = message
            .reply_id
            .as_deref()
            .and_then(|id| id.strip_prefix("wo:"))
        {
            // Read once: a later tap on an old question must not replay the words again.
            let pending: Option<String> = sqlx::query_scalar(
                "UPDATE conversations c SET bot_state = c.bot_state - 'maintenance'
                 FROM conversations old WHERE old.tenant_id = c.tenant_id AND old.id = c.id
                   AND c.tenant_id = $1 AND c.id = $2
                 RETURNING old.bot_state->'maintenance'->>'pending_text'",
            )
            .bind(tenant_id)
            .bind(message.conversation_id)
            .fetch_one(&mut *turn.tx)
            .await?;
            chosen_reference = Some(reference.to_owned());
            text = pending.unwrap_or_default();
        }
        // The answer to "which did you mean?": the chosen intent, read with the words it was about.
        let clarified = turn.clarified(&WORKER_INTENTS).await?;

        let mut written_reference = None;
        let understood = if let Some((intent, words)) = clarified {
            let reading = understanding::read(
                &turn.messaging.lexicons,
                &WORKER_INTENTS,
                &words,
                Context::default(),
            );
            written_reference = reading.reference;
            text = words;
            command_for(intent, &reading, &text)
        } else if chosen_reference.is_none()
            && let Some(id) = message.reply_id.as_deref()
        {
            match from_button(id) {
                Some(command) => Understood::Work(command),
                None => return Ok(Outcome::Pass),
            }
        } else if !message.media_ids.is_empty() && chosen_reference.is_none() {
            Understood::Work(Command::Photo)
        } else if message.location.is_some() && chosen_reference.is_none() {
            Understood::Work(Command::Location)
        } else if text.is_empty() {
            return Ok(Outcome::Pass);
        } else {
            let (understood, reference) = understand(&turn.messaging.lexicons, &text, &statuses);
            written_reference = reference;
            understood
        };
        let command = match understood {
            Understood::Work(command) => command,
            Understood::Ask(first, second) => {
                turn.ask_between(&WORKER_INTENTS, (first, second)).await?;
                return Ok(Outcome::Handled);
            }
            Understood::Status => {
                my_jobs(turn, &open).await?;
                return Ok(Outcome::Handled);
            }
        };

        // Which work order: the one tapped in answer to "which?", the replied-to message, a
        // reference in the words, the only open one.
        let replied: Option<Uuid> = message
            .replied_to
            .as_ref()
            .filter(|_| chosen_reference.is_none())
            .filter(|r| r.related_entity_type.as_deref() == Some("work_order"))
            .and_then(|r| r.related_entity_id);
        let target: Option<Uuid> = if let Some(id) = replied {
            Some(id)
        } else if let Some(reference) = &chosen_reference {
            sqlx::query_scalar("SELECT id FROM work_orders WHERE tenant_id = $1 AND reference = $2 AND assigned_worker_id = $3")
                .bind(tenant_id)
                .bind(reference)
                .bind(worker_id)
                .fetch_optional(&mut *turn.tx)
                .await?
        } else if let Some(reference) = written_reference {
            // "#1042" or "job 1042" names no letter: any of this worker's orders with that number,
            // open ones first.
            let candidates: Vec<(Uuid, String)> = sqlx::query_as(
                "SELECT id, reference FROM work_orders
                 WHERE tenant_id = $1 AND assigned_worker_id = $2 AND reference LIKE '%' || $3
                 ORDER BY status IN ('assigned', 'accepted', 'in_progress', 'on_hold') DESC, created_at DESC",
            )
            .bind(tenant_id)
            .bind(worker_id)
            .bind(reference.number_suffix())
            .fetch_all(&mut *turn.tx)
            .await?;
            candidates
                .into_iter()
                .find(|(_, stored)| reference.matches(stored))
                .map(|(id, _)| id)
        } else {
            match open.as_slice() {
                [] => None,
                [only] => Some(only.id),
                several => {
                    // The reference alone means little on a phone: its title comes with it,
                    // cut to a button's 20 characters, and in full under it in a list.
                    let buttons = several
                        .iter()
                        .take(10)
                        .map(|o| {
                            Button::choice(
                                format!("wo:{}", o.reference),
                                &format!("{} {}", o.reference, o.title),
                                Some(o.title.clone()),
                            )
                        })
                        .collect();
                    sqlx::query(
                        "UPDATE conversations SET bot_state = jsonb_set(bot_state, '{maintenance}', $3)
                         WHERE tenant_id = $1 AND id = $2",
                    )
                    .bind(tenant_id)
                    .bind(message.conversation_id)
                    .bind(json!({ "pending_text": text }))
                    .execute(&mut *turn.tx)
                    .await?;
                    turn.reply_with("wo_which", Values::new(), Some(buttons))
                        .await?;
                    return Ok(Outcome::Handled);
                }
            }
        };
        let Some(target) = target else {
            // Words, photos and places with no work order to attach to are not ours to answer.
            if !matches!(command, Command::Act { .. }) {
                return Ok(Outcome::Pass);
            }
            turn.reply("wo_none_open", Values::new()).await?;
            return Ok(Outcome::Handled);
        };
        let mut order = work_orders::get(&mut turn.tx, tenant_id, target).await?;
        if order.assigned_worker_id != Some(worker_id) {
            turn.reply("wo_none_open", Values::new()).await?;
            return Ok(Outcome::Handled);
        }
        let channel = match message.channel_kind {
            ChannelKind::Whatsapp => "whatsapp",
            ChannelKind::Sms => "sms",
        };
        turn.relate("work_order", order.id).await?;
        let values = Values::new().with("reference", &order.reference);
        match command {
            Command::Act {
                action,
                note,
                completion,
            } => {
                let templates = &turn.messaging.templates;
                // "ok, on my way" or "starting now" to a job just offered accepts it first.
                if order.status == Status::Assigned
                    && matches!(action, Action::OnMyWay | Action::Start)
                {
                    let accept = Step {
                        action: Action::Accept,
                        actor: Actor::Worker(worker_id),
                        channel,
                        note: None,
                        completion: None,
                    };
                    work_orders::act(&mut turn.tx, templates, tenant_id, &order, accept).await?;
                    order = work_orders::get(&mut turn.tx, tenant_id, target).await?;
                }
                let step = Step {
                    action,
                    actor: Actor::Worker(worker_id),
                    channel,
                    note: note.as_deref(),
                    completion,
                };
                match work_orders::act(&mut turn.tx, templates, tenant_id, &order, step).await {
                    Ok(status) => {
                        let key = match (action, status) {
                            (Action::Accept, _) => "wo_accepted",
                            (Action::Decline, _) => "wo_declined",
                            (Action::OnMyWay, _) => "wo_on_my_way",
                            (Action::Start, _) => "wo_started",
                            (Action::Hold, _) => "wo_on_hold",
                            (_, Status::Completed) => "wo_completed",
                            _ => "wo_noted",
                        };
                        turn.reply(key, values).await?;
                    }
                    // A refusal is answered in the worker's language; only a fault retries.
                    Err(WorkOrderError::NotNow { from, .. }) => {
                        turn.reply(
                            "wo_not_now",
                            values.with_term("status", format!("wo_state_{}", from.as_str())),
                        )
                        .await?;
                    }
                    Err(fault) => return Err(fault.into()),
                }
            }
            Command::Comment(body) => {
                work_orders::worker_note(
                    &mut turn.tx,
                    tenant_id,
                    &order,
                    worker_id,
                    &body,
                    message.id,
                )
                .await?;
                turn.reply("wo_noted", values).await?;
            }
            Command::Photo => {
                work_orders::worker_photos(
                    &mut turn.tx,
                    tenant_id,
                    &order,
                    worker_id,
                    &message.media_ids,
                    message.id,
                )
                .await?;
                turn.reply("wo_noted", values).await?;
            }
            Command::Location => {
                let at = message.location.expect("a location command has a location");
                work_orders::worker_position(
                    &mut turn.tx,
                    tenant_id,
                    &order,
                    worker_id,
                    channel,
                    at,
                    message.id,
                )
                .await?;
                turn.reply("wo_noted", values).await?;
            }
        }
        Ok(Outcome::Handled)
    }
}
