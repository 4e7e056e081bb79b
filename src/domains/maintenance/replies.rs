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
        keywords::normalize,
        router::{Handler, Outcome, Sender, Turn},
        templates::Values,
    },
};

pub struct WorkerReplies;

/// What the worker asked for.
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

const ACCEPT: &[&str] = &[
    "accept",
    "accepted",
    "ok",
    "okay",
    "yes",
    "i accept",
    "እቀበላለሁ",
    "እሺ",
    "ተቀብያለሁ",
];
const DECLINE: &[&str] = &[
    "decline",
    "declined",
    "no",
    "reject",
    "cannot",
    "can't",
    "cant",
    "አልቀበልም",
    "አልችልም",
];
const ON_MY_WAY: &[&str] = &[
    "on my way",
    "omw",
    "on the way",
    "coming",
    "en route",
    "በመንገድ ላይ ነኝ",
    "እየመጣሁ ነው",
    "እየመጣሁ",
];
const STARTED: &[&str] = &[
    "started",
    "starting",
    "begin",
    "begun",
    "working",
    "resume",
    "resumed",
    "ጀመርኩ",
    "ጀምሬያለሁ",
];
const HOLD: &[&str] = &[
    "on hold",
    "hold",
    "pause",
    "paused",
    "waiting",
    "ቆሟል",
    "ቆሜያለሁ",
];
const DONE: &[&str] = &[
    "done",
    "finished",
    "complete",
    "completed",
    "fixed",
    "ጨረስኩ",
    "ተጠናቋል",
    "ጨርሻለሁ",
];

/// One edit away counts for words of five letters or more ("acept", "finshed").
fn close(word: &str, target: &str) -> bool {
    if word == target {
        return true;
    }
    let (a, b): (Vec<char>, Vec<char>) = (word.chars().collect(), target.chars().collect());
    if b.len() < 5 || a.len().abs_diff(b.len()) > 1 {
        return false;
    }
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            current.push(
                (previous[j] + cost)
                    .min(previous[j + 1] + 1)
                    .min(current[j] + 1),
            );
        }
        previous = current;
    }
    previous[b.len()] <= 1
}

/// The phrase from `list` the words start with, and how many words it took.
fn leading(words: &[String], list: &[&str]) -> Option<usize> {
    list.iter().find_map(|phrase| {
        let parts: Vec<&str> = phrase.split(' ').collect();
        (words.len() >= parts.len() && parts.iter().zip(words).all(|(p, w)| close(w, p)))
            .then_some(parts.len())
    })
}

/// A work-order reference anywhere in the text: "M-1042", "m1042", "H-1003".
pub fn find_reference(text: &str) -> Option<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == ':' || c == '.')
        .find_map(|token| {
            let token = token
                .trim_matches(|c: char| !c.is_alphanumeric())
                .to_uppercase();
            let (prefix, digits) = token.split_at_checked(1)?;
            let digits = digits.trim_start_matches('-');
            (matches!(prefix, "M" | "H")
                && digits.len() >= 3
                && digits.chars().all(|c| c.is_ascii_digit()))
            .then(|| format!("{prefix}-{digits}"))
        })
}

/// "done 2.5h replaced valve": hours and parts, in any order after the word.
fn completion(rest: &[&str]) -> Completion {
    let mut hours = None;
    let mut parts = Vec::new();
    let mut skip_unit = false;
    for (i, token) in rest.iter().enumerate() {
        if skip_unit {
            skip_unit = false;
            continue;
        }
        let lower = token.to_lowercase();
        let number_end = lower
            .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))
            .unwrap_or(lower.len());
        let (number, unit) = lower.split_at(number_end);
        let unit_ok = |u: &str| matches!(u, "h" | "hr" | "hrs" | "hour" | "hours" | "ሰዓት");
        if hours.is_none()
            && !number.is_empty()
            && let Ok(value) = number.replace(',', ".").parse::<f64>()
        {
            if unit_ok(unit) {
                hours = Some(value);
                continue;
            }
            if unit.is_empty()
                && rest
                    .get(i + 1)
                    .is_some_and(|next| unit_ok(&next.to_lowercase()))
            {
                hours = Some(value);
                skip_unit = true;
                continue;
            }
        }
        parts.push(*token);
    }
    let parts = parts.join(" ");
    Completion {
        labour_hours: hours,
        parts_used: (!parts.is_empty()).then_some(parts),
    }
}

/// Reads a command from the worker's words (the reference, if any, already taken out).
pub fn parse(text: &str) -> Option<Command> {
    let original: Vec<&str> = text
        .split_whitespace()
        .filter(|t| find_reference(t).is_none())
        .collect();
    let words: Vec<String> = original
        .iter()
        .map(|w| normalize(w))
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        return None;
    }
    let rest = |n: usize| {
        let rest = original[n.min(original.len())..].join(" ");
        let rest =
            rest.trim_matches(|c: char| c.is_whitespace() || c == ':' || c == ',' || c == '-');
        (!rest.is_empty()).then(|| rest.to_owned())
    };
    let act = |action, note, completion| {
        Some(Command::Act {
            action,
            note,
            completion,
        })
    };
    if let Some(n) = leading(&words, DONE) {
        return act(Action::Complete, None, Some(completion(&original[n..])));
    }
    if let Some(n) = leading(&words, ON_MY_WAY) {
        return act(Action::OnMyWay, rest(n), None);
    }
    if let Some(n) = leading(&words, HOLD) {
        return act(Action::Hold, rest(n), None);
    }
    if let Some(n) = leading(&words, STARTED) {
        return act(Action::Start, rest(n), None);
    }
    if words.len() <= 2 && leading(&words, ACCEPT).is_some() {
        return act(Action::Accept, None, None);
    }
    if let Some(n) = leading(&words, DECLINE) {
        return act(Action::Decline, rest(n), None);
    }
    Some(Command::Comment(text.trim().to_owned()))
}

fn from_button(id: &str) -> Option<Command> {
    match id {
        "accept" => Some(Command::Act {
            action: Action::Accept,
            note: None,
            completion: None,
        }),
        "decline" => Some(Command::Act {
            action: Action::Decline,
            note: None,
            completion: None,
        }),
        _ => None,
    }
}

#[async_trait]
impl Handler for WorkerReplies {
    fn name(&self) -> &'static str {
        "maintenance"
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
        if !kinds
            .iter()
            .any(|k| k == "maintenance" || k == "housekeeping")
        {
            return Ok(Outcome::Pass);
        }
        let message = turn.message.clone();
        let tenant_id = turn.tenant.id;

        // A tap on "which work order?": the reply it was about, applied to the one chosen.
        let mut chosen_reference = None;
        let mut text = message.text.clone().unwrap_or_default();
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

        let command = if chosen_reference.is_none()
            && let Some(id) = message.reply_id.as_deref()
        {
            match from_button(id) {
                Some(command) => command,
                None => return Ok(Outcome::Pass),
            }
        } else if !message.media_ids.is_empty() && chosen_reference.is_none() {
            Command::Photo
        } else if message.location.is_some() && chosen_reference.is_none() {
            Command::Location
        } else {
            match parse(&text) {
                Some(command) => command,
                None => return Ok(Outcome::Pass),
            }
        };

        // Which work order: the one tapped in answer to "which?", the replied-to message, an
        // explicit reference, the only open one.
        let replied: Option<Uuid> = message
            .replied_to
            .as_ref()
            .filter(|_| chosen_reference.is_none())
            .filter(|r| r.related_entity_type.as_deref() == Some("work_order"))
            .and_then(|r| r.related_entity_id);
        let reference = chosen_reference.or_else(|| find_reference(&text));
        let target: Option<Uuid> = if let Some(id) = replied {
            Some(id)
        } else if let Some(reference) = &reference {
            sqlx::query_scalar("SELECT id FROM work_orders WHERE tenant_id = $1 AND reference = $2 AND assigned_worker_id = $3")
                .bind(tenant_id)
                .bind(reference)
                .bind(worker_id)
                .fetch_optional(&mut *turn.tx)
                .await?
        } else {
            let open: Vec<(Uuid, String, String)> = sqlx::query_as(
                "SELECT id, reference, title FROM work_orders WHERE tenant_id = $1 AND assigned_worker_id = $2
                   AND status IN ('assigned', 'accepted', 'in_progress', 'on_hold')
                 ORDER BY created_at",
            )
            .bind(tenant_id)
            .bind(worker_id)
            .fetch_all(&mut *turn.tx)
            .await?;
            match open.as_slice() {
                [] => None,
                [(id, _, _)] => Some(*id),
                several => {
                    // The reference alone means little on a phone: its title comes with it,
                    // cut to a button's 20 characters, and in full under it in a list.
                    let buttons = several
                        .iter()
                        .take(10)
                        .map(|(_, reference, title)| {
                            Button::choice(
                                format!("wo:{reference}"),
                                &format!("{reference} {title}"),
                                Some(title.clone()),
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
        let order = work_orders::get(&mut turn.tx, tenant_id, target).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn action(text: &str) -> Option<Action> {
        match parse(text) {
            Some(Command::Act { action, .. }) => Some(action),
            _ => None,
        }
    }

    #[test]
    fn reads_the_short_commands_leniently() {
        for (text, expected) in [
            ("Accept", Action::Accept),
            ("acept", Action::Accept),
            ("እሺ", Action::Accept),
            ("decline, no parts in stock", Action::Decline),
            ("On my way!", Action::OnMyWay),
            ("omw", Action::OnMyWay),
            ("በመንገድ ላይ ነኝ", Action::OnMyWay),
            ("Started", Action::Start),
            ("ጀመርኩ", Action::Start),
            ("on hold waiting for parts", Action::Hold),
            ("Finshed", Action::Complete),
            ("M-1042 done", Action::Complete),
            ("ጨረስኩ 2h", Action::Complete),
        ] {
            assert_eq!(action(text), Some(expected), "{text}");
        }
        assert_eq!(
            parse("the tap in room 3 also drips"),
            Some(Command::Comment("the tap in room 3 also drips".into()))
        );
    }

    #[test]
    fn done_takes_hours_and_parts_in_any_order() {
        let done = |text| match parse(text) {
            Some(Command::Act {
                completion: Some(c),
                ..
            }) => c,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            done("done 2.5h replaced valve"),
            Completion {
                labour_hours: Some(2.5),
                parts_used: Some("replaced valve".into())
            }
        );
        assert_eq!(
            done("Done replaced valve 3 hours"),
            Completion {
                labour_hours: Some(3.0),
                parts_used: Some("replaced valve".into())
            }
        );
        assert_eq!(done("done"), Completion::default());
        assert_eq!(
            done("done 1,5h"),
            Completion {
                labour_hours: Some(1.5),
                parts_used: None
            }
        );
    }

    #[test]
    fn finds_references_in_any_spelling() {
        assert_eq!(find_reference("M-1042 done"), Some("M-1042".into()));
        assert_eq!(find_reference("done m1042"), Some("M-1042".into()));
        assert_eq!(find_reference("h-1003: started"), Some("H-1003".into()));
        assert_eq!(find_reference("done 2h"), None);
        assert_eq!(find_reference("(M-1042)?"), Some("M-1042".into()));
        assert_eq!(
            parse("M-1042 started"),
            Some(Command::Act {
                action: Action::Start,
                note: None,
                completion: None
            })
        );
    }
}
