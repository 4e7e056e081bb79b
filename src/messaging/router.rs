//! The bot's front door: the routing job works out who wrote and hands the message to the first
//! handler that takes it, all in one transaction with the replies it causes.
//!
//! Domains plug in with handlers, handed over by whoever composes the app
//! (`domains::message_handlers()`); they see a provider-neutral [`Message`] and answer with
//! [`Turn::reply`].

use super::MessageKind;
use crate::channels::Provider;
use std::sync::Arc;

use apalis::prelude::{BoxDynError, Data};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::{
    Messaging, consent,
    notify::{self, Notification, Notified},
    templates::Values,
    understanding::{self, Context, Intent, IntentSet, Reading},
};
use crate::{
    audit::{self, Actor},
    channels::{Button, ChannelKind},
    jobs::Job,
    types::Coordinates,
};

#[derive(Debug, Serialize, Deserialize)]
pub struct RouteInbound {
    pub tenant_id: Uuid,
    pub message_id: Uuid,
}

impl Job for RouteInbound {
    const QUEUE: &'static str = "route-inbound";
}

/// Who wrote, as far as this tenant knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    Worker {
        id: Uuid,
        name: String,
        kinds: Vec<String>,
    },
    Patient {
        id: Uuid,
        name: String,
    },
    /// A panel user who gave this number for alerts.
    Coordinator,
    /// Someone who has reported work before (a renter, ward staff).
    Requester,
    Unknown,
}

/// Our own outbound message that an inbound one answers, with what it was about.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct RepliedTo {
    pub message_id: Uuid,
    pub template_key: Option<String>,
    pub related_entity_type: Option<String>,
    pub related_entity_id: Option<Uuid>,
}

/// An inbound message as handlers see it.
#[derive(Debug, Clone)]
pub struct Message {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub contact_id: Uuid,
    pub channel_id: Uuid,
    pub conversation_id: Uuid,
    pub channel_kind: ChannelKind,
    pub text: Option<String>,
    /// The tapped button's id; on SMS, a number answering numbered choices becomes that choice's id.
    pub reply_id: Option<String>,
    pub replied_to: Option<RepliedTo>,
    pub location: Option<Coordinates>,
    pub media_ids: Vec<Uuid>,
}

impl Message {
    /// The text with surrounding space trimmed, or nothing.
    pub fn words(&self) -> &str {
        self.text.as_deref().unwrap_or("").trim()
    }
}

#[derive(Debug, Clone)]
pub struct TenantInfo {
    pub id: Uuid,
    pub name: String,
    pub help_text: Option<String>,
}

/// One inbound message being handled: the transaction every change and reply goes into.
pub struct Turn<'m> {
    pub tx: Transaction<'static, Postgres>,
    pub messaging: &'m Messaging,
    pub message: Message,
    pub sender: Sender,
    pub tenant: TenantInfo,
    /// The language replies go out in: for help and for the labels of a clarifying question.
    pub locale: String,
    /// What the message turned out to be about: set by [`Turn::relate`], carried by the replies.
    pub related: Option<(&'static str, Uuid)>,
}

impl Turn<'_> {
    /// Files the message (and every reply after this) under a work order, visit or trip, so
    /// it shows on that record's timeline.
    pub async fn relate(&mut self, entity_type: &'static str, id: Uuid) -> anyhow::Result<()> {
        sqlx::query(
            "UPDATE messages SET related_entity_type = $3, related_entity_id = $4
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(self.tenant.id)
        .bind(self.message.id)
        .bind(entity_type)
        .bind(id)
        .execute(&mut *self.tx)
        .await?;
        self.related = Some((entity_type, id));
        Ok(())
    }

    /// Reads the message's words for the intents of `set`.
    pub fn read(&self, set: &IntentSet, context: Context<'_>) -> Reading {
        understanding::read(&self.messaging.lexicons, set, self.message.words(), context)
    }

    /// Asks which of two readings was meant, with a button for each (numbered on SMS), and keeps
    /// the words so the answer can act on them. The answer comes back as [`Turn::clarified`].
    pub async fn ask_between(
        &mut self,
        set: &IntentSet,
        (first, second): (&'static str, &'static str),
    ) -> anyhow::Result<()> {
        let lexicons = &self.messaging.lexicons;
        let buttons: Vec<Button> = [first, second]
            .iter()
            .map(|intent| {
                let label = if *intent == understanding::SOMETHING_ELSE {
                    lexicons.something_else(&self.locale)
                } else {
                    lexicons
                        .shown(&self.locale, set.name, intent)
                        .map_or(*intent, |s| s.label.as_str())
                };
                Button::choice(format!("intent:{intent}"), label, None)
            })
            .collect();
        sqlx::query(
            "UPDATE conversations SET bot_state = jsonb_set(bot_state, '{understanding}', $3)
             WHERE tenant_id = $1 AND id = $2",
        )
        .bind(self.tenant.id)
        .bind(self.message.conversation_id)
        .bind(serde_json::json!({ "set": set.name, "text": self.message.words() }))
        .execute(&mut *self.tx)
        .await?;
        self.reply_with("understand_which", Values::new(), Some(buttons))
            .await?;
        Ok(())
    }

    /// The answer to [`Turn::ask_between`]: the intent chosen (`None` for "something else":
    /// the words are no command) and the words it was asked about. Taken once, so a second tap on
    /// an old question does nothing twice.
    pub async fn clarified(
        &mut self,
        set: &IntentSet,
    ) -> anyhow::Result<Option<(Option<&'static str>, String)>> {
        let Some(name) = self
            .message
            .reply_id
            .as_deref()
            .and_then(|id| id.strip_prefix("intent:"))
        else {
            return Ok(None);
        };
        let chosen = set.intents.iter().find(|i| i.name == name).map(|i| i.name);
        if chosen.is_none() && name != understanding::SOMETHING_ELSE {
            return Ok(None);
        }
        let pending: Option<serde_json::Value> = sqlx::query_scalar(
            "UPDATE conversations c SET bot_state = c.bot_state - 'understanding'
             FROM conversations old WHERE old.tenant_id = c.tenant_id AND old.id = c.id
               AND c.tenant_id = $1 AND c.id = $2
             RETURNING old.bot_state->'understanding'",
        )
        .bind(self.tenant.id)
        .bind(self.message.conversation_id)
        .fetch_one(&mut *self.tx)
        .await?;
        let Some(pending) = pending.filter(|p| p["set"] == set.name) else {
            return Ok(None);
        };
        Ok(Some((
            chosen,
            pending["text"].as_str().unwrap_or_default().to_owned(),
        )))
    }

    /// Answers on the channel the message came in on.
    pub async fn reply(&mut self, key: &'static str, values: Values) -> anyhow::Result<Notified> {
        self.reply_with(key, values, None).await
    }

    pub async fn reply_with(
        &mut self,
        key: &'static str,
        values: Values,
        buttons: Option<Vec<Button>>,
    ) -> anyhow::Result<Notified> {
        let mut notification =
            Notification::new(self.tenant.id, self.message.contact_id, key, values);
        notification.via_channel = Some(self.message.channel_id);
        notification.caused_by = Some(self.message.id);
        notification.buttons = buttons;
        notification.related = self.related;
        notify::notify(&mut self.tx, &self.messaging.templates, &notification).await
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Handled,
    /// Not for this handler: the next one gets it.
    Pass,
}

#[async_trait]
pub trait Handler: Send + Sync {
    /// Recorded on the message as `handled_by`.
    fn name(&self) -> &'static str;
    /// The intents this handler reads; their words must be in every shipped locale.
    fn intents(&self) -> Option<&'static IntentSet> {
        None
    }
    /// Further sets the handler reads but does not list in HELP (the answers to a question).
    fn also_reads(&self) -> &'static [&'static IntentSet] {
        &[]
    }
    /// Whether HELP from `sender` lists this handler's intents.
    fn helps(&self, _sender: &Sender) -> bool {
        false
    }
    async fn handle(&self, turn: &mut Turn<'_>) -> anyhow::Result<Outcome>;
}

/// Handlers in the order they are asked.
pub struct Registry(Vec<Box<dyn Handler>>);

impl Registry {
    /// Consent and help first (they must work whatever else is going on), then the domains'.
    pub fn new(domains: Vec<Box<dyn Handler>>) -> Self {
        let mut handlers: Vec<Box<dyn Handler>> = vec![Box::new(ConsentAndHelp)];
        handlers.extend(domains);
        Self(handlers)
    }

    /// Every set of intents read, for checking the words at start.
    pub fn intent_sets(&self) -> Vec<&'static IntentSet> {
        let mut sets: Vec<&'static IntentSet> = vec![&CONSENT];
        let read = self.0.iter().flat_map(|h| {
            h.intents()
                .into_iter()
                .chain(h.also_reads().iter().copied())
        });
        for set in read {
            if !sets.iter().any(|s| s.name == set.name) {
                sets.push(set);
            }
        }
        sets
    }
}

/// Consent and help, read before anything else.
pub static CONSENT: IntentSet = IntentSet {
    name: "consent",
    intents: &[
        Intent {
            name: "opt_out",
            negated: None,
        },
        Intent {
            name: "opt_in",
            negated: None,
        },
        Intent {
            name: "help",
            negated: None,
        },
    ],
    opposites: &[("opt_out", "opt_in")],
};

#[derive(sqlx::FromRow)]
struct Loaded {
    routed_at: Option<chrono::DateTime<chrono::Utc>>,
    contact_id: Uuid,
    channel_id: Uuid,
    conversation_id: Uuid,
    channel_kind: ChannelKind,
    provider: Provider,
    body: Option<String>,
    kind: MessageKind,
    interactive_reply_id: Option<String>,
    reply_to_provider_message_id: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    tenant_name: String,
    help_text: Option<String>,
}

/// How long an earlier message of the same person is waited for: one whose routing keeps
/// failing must not hold that person's later messages for ever.
const IN_ORDER_WINDOW_SECS: f64 = 300.0;

/// Routes the message, after the same person's earlier messages still waiting: routing jobs run
/// several at a time, and two quick messages ("the sink is blocked", "cancel") were sometimes
/// answered in the wrong order.
#[tracing::instrument(skip_all, fields(message_id = %job.message_id, tenant_id = %job.tenant_id))]
pub async fn route_inbound(
    job: RouteInbound,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let mut routed_before = None;
    while let Some(earlier) = route_next(&messaging, &job, routed_before).await? {
        routed_before = Some(earlier);
    }
    Ok(())
}

/// Routes the job's message, or first the same person's earliest message still waiting before
/// it; returns that earlier message's id when it routed one, for the caller to come back.
/// `routed_before` is one this job routed already: if it still waits (its routing failed) it
/// does not hold this one up.
async fn route_next(
    messaging: &Arc<Messaging>,
    job: &RouteInbound,
    routed_before: Option<Uuid>,
) -> Result<Option<Uuid>, BoxDynError> {
    // The commit need not wait for the disk (see `db::begin_internal`): the reply goes out only
    // after the send job's own commit, and this job's end is recorded after this one.
    let mut tx = crate::db::begin_internal(&messaging.pool).await?;
    // The sender's contact row first, in the order ingest takes them (contact, conversation,
    // messages): routing jobs for one person then run one after another. Locking the message
    // first let two of them deadlock, each holding what the other's next statement wanted.
    // What waits is read in the same statement; `route_one` reads the message again after the
    // lock, so one routed meanwhile is not routed twice.
    let first: Option<Option<Uuid>> = sqlx::query_scalar(
        "SELECT (SELECT o.id FROM messages o
                  WHERE o.tenant_id = m.tenant_id AND o.contact_id = m.contact_id
                    AND o.direction = 'inbound' AND o.routed_at IS NULL
                    AND (o.received_at, o.id) <= (m.received_at, m.id)
                    AND o.received_at > m.received_at - make_interval(secs => $3)
                  ORDER BY o.received_at, o.id LIMIT 1)
         FROM messages m JOIN contacts c ON c.tenant_id = m.tenant_id AND c.id = m.contact_id
         WHERE m.tenant_id = $1 AND m.id = $2
         FOR NO KEY UPDATE OF c",
    )
    .bind(job.tenant_id)
    .bind(job.message_id)
    .bind(IN_ORDER_WINDOW_SECS)
    .fetch_optional(&mut *tx)
    .await?;
    let next = match first.flatten() {
        // This message is routed already (or gone).
        None => return Ok(None),
        Some(first) if Some(first) == routed_before => job.message_id,
        Some(first) => first,
    };
    route_one(tx, messaging, job.tenant_id, next).await?;
    Ok((next != job.message_id).then_some(next))
}

/// Routes one inbound message in `tx`, which holds its sender's contact, unless it was routed
/// already.
async fn route_one(
    mut tx: Transaction<'static, Postgres>,
    messaging: &Arc<Messaging>,
    tenant_id: Uuid,
    message_id: Uuid,
) -> Result<(), BoxDynError> {
    let job = RouteInbound {
        tenant_id,
        message_id,
    };
    let loaded: Option<Loaded> = sqlx::query_as(
        "SELECT m.routed_at, m.contact_id, m.channel_id, m.conversation_id, ch.kind AS channel_kind,
                m.provider, m.body, m.kind, m.interactive_reply_id, m.reply_to_provider_message_id,
                m.latitude, m.longitude, t.name AS tenant_name, t.help_text
         FROM messages m
         JOIN channels ch ON ch.tenant_id = m.tenant_id AND ch.id = m.channel_id
         JOIN tenants t ON t.id = m.tenant_id
         WHERE m.tenant_id = $1 AND m.id = $2 AND m.direction = 'inbound'
         FOR UPDATE OF m",
    )
    .bind(job.tenant_id)
    .bind(job.message_id)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(loaded) = loaded else {
        tracing::warn!("routing job for a message that does not exist");
        return Ok(());
    };
    if loaded.routed_at.is_some() {
        tracing::info!("already routed: nothing to do");
        return Ok(());
    }

    // Everything this message changes is the sender's doing: the contact's, or the worker's
    // once the contact turns out to be one.
    audit::act_as(&mut tx, Actor::Contact(loaded.contact_id)).await?;
    let sender = resolve_sender(&mut tx, job.tenant_id, loaded.contact_id).await?;
    if let Sender::Worker { id, .. } = &sender {
        audit::act_as(&mut tx, Actor::Worker(*id)).await?;
    }
    let mut text = (loaded.kind != MessageKind::Location)
        .then_some(loaded.body.clone())
        .flatten();
    let mut replied_to = match &loaded.reply_to_provider_message_id {
        Some(provider_id) => {
            sqlx::query_as::<_, RepliedTo>(
                "SELECT id AS message_id, template_key, related_entity_type, related_entity_id
             FROM messages WHERE tenant_id = $1 AND provider = $2 AND provider_message_id = $3",
            )
            .bind(job.tenant_id)
            .bind(loaded.provider)
            .bind(provider_id)
            .fetch_optional(&mut *tx)
            .await?
        }
        None => None,
    };
    let mut reply_id = loaded.interactive_reply_id.clone();
    if loaded.kind == MessageKind::Reaction {
        // 👍 on a question is its first (positive) answer; any other reaction is kept, not read.
        let yes = text
            .as_deref()
            .is_some_and(|emoji| messaging.lexicons.is_positive_reaction(emoji));
        let answer = match (&replied_to, yes) {
            (Some(to), true) => first_button(&mut tx, job.tenant_id, to.message_id).await?,
            _ => None,
        };
        match answer {
            Some(id) => {
                reply_id = Some(id);
                text = None;
            }
            None => {
                mark_routed(&mut tx, job.tenant_id, job.message_id, "reaction", None).await?;
                tx.commit().await?;
                return Ok(());
            }
        }
    }
    // "2" (or "፪") answers the latest numbered choices this person was offered, on any channel.
    let number = text
        .as_deref()
        .map(understanding::normalize)
        .and_then(|n| n.parse::<usize>().ok());
    if reply_id.is_none()
        && let Some(choice) = number
        && let Some((offer, id)) =
            numbered_choice(&mut tx, job.tenant_id, loaded.contact_id, choice).await?
    {
        reply_id = Some(id);
        replied_to = replied_to.or(Some(offer));
    }
    let locale = reply_locale(&mut tx, messaging, job.tenant_id, loaded.contact_id).await?;
    // Only a media message has any (asking for the others was a round trip a message).
    let media_ids: Vec<Uuid> = if loaded.kind == MessageKind::Media {
        sqlx::query_scalar(
            "SELECT id FROM message_media WHERE tenant_id = $1 AND message_id = $2 ORDER BY id",
        )
        .bind(job.tenant_id)
        .bind(job.message_id)
        .fetch_all(&mut *tx)
        .await?
    } else {
        Vec::new()
    };

    let message = Message {
        id: job.message_id,
        tenant_id: job.tenant_id,
        contact_id: loaded.contact_id,
        channel_id: loaded.channel_id,
        conversation_id: loaded.conversation_id,
        channel_kind: loaded.channel_kind,
        text,
        reply_id,
        replied_to,
        location: loaded
            .latitude
            .zip(loaded.longitude)
            .and_then(|(lat, lon)| Coordinates::new(lat, lon).ok()),
        media_ids,
    };
    let mut turn = Turn {
        tx,
        messaging,
        message,
        sender,
        tenant: TenantInfo {
            id: job.tenant_id,
            name: loaded.tenant_name,
            help_text: loaded.help_text,
        },
        locale,
        related: None,
    };
    let mut handled_by = None;
    for handler in &messaging.handlers.0 {
        if handler.handle(&mut turn).await? == Outcome::Handled {
            handled_by = Some(handler.name());
            break;
        }
    }
    let handled_by = match handled_by {
        Some(name) => name,
        None => {
            fallback(&mut turn).await?;
            "fallback"
        }
    };
    let reply_id = turn.message.reply_id.clone();
    let mut tx = turn.tx;
    mark_routed(&mut tx, job.tenant_id, job.message_id, handled_by, reply_id).await?;
    tx.commit().await?;
    tracing::info!(handled_by, "inbound message routed");
    Ok(())
}

/// Routed once: a number answering numbered choices (or a 👍) is kept as the choice it stood for.
async fn mark_routed(
    tx: &mut Transaction<'static, Postgres>,
    tenant_id: Uuid,
    message_id: Uuid,
    handled_by: &str,
    reply_id: Option<String>,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE messages SET routed_at = now(), handled_by = $3,
             interactive_reply_id = COALESCE(interactive_reply_id, $4)
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(message_id)
    .bind(handled_by)
    .bind(reply_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The language replies to this contact go out in, chosen as [`notify::notify`] chooses it.
async fn reply_locale(
    tx: &mut Transaction<'static, Postgres>,
    messaging: &Messaging,
    tenant_id: Uuid,
    contact_id: Uuid,
) -> sqlx::Result<String> {
    let (contact, party, tenant): (Option<String>, Option<String>, String) = sqlx::query_as(
        "SELECT c.preferred_locale, COALESCE(w.preferred_locale, p.preferred_locale), t.default_locale
         FROM contacts c
         JOIN tenants t ON t.id = c.tenant_id
         LEFT JOIN workers w ON w.tenant_id = c.tenant_id AND w.id = c.worker_id
         LEFT JOIN patients p ON p.tenant_id = c.tenant_id AND p.id = c.patient_id
         WHERE c.tenant_id = $1 AND c.id = $2",
    )
    .bind(tenant_id)
    .bind(contact_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(messaging.templates.pick_locale([
        contact.as_deref(),
        party.as_deref(),
        Some(tenant.as_str()),
    ]))
}

/// The id of the first button `message_id` offered: the yes of a yes/no question.
async fn first_button(
    tx: &mut Transaction<'static, Postgres>,
    tenant_id: Uuid,
    message_id: Uuid,
) -> anyhow::Result<Option<String>> {
    let buttons: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT buttons FROM messages WHERE tenant_id = $1 AND id = $2 AND buttons IS NOT NULL",
    )
    .bind(tenant_id)
    .bind(message_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(buttons) = buttons else {
        return Ok(None);
    };
    let buttons: Vec<Button> = serde_json::from_value(buttons)?;
    Ok(buttons.into_iter().next().map(|b| b.id))
}

#[derive(sqlx::FromRow)]
struct SenderRow {
    worker_id: Option<Uuid>,
    worker_name: Option<String>,
    kinds: Option<Vec<String>>,
    patient_id: Option<Uuid>,
    patient_name: Option<String>,
    coordinator: bool,
    requester: bool,
}

#[derive(sqlx::FromRow)]
struct Offer {
    #[sqlx(flatten)]
    message: RepliedTo,
    buttons: serde_json::Value,
}

/// Links the contact to the worker or patient with its phone number, once, and says who it is.
async fn resolve_sender(
    tx: &mut Transaction<'static, Postgres>,
    tenant_id: Uuid,
    contact_id: Uuid,
) -> sqlx::Result<Sender> {
    sqlx::query(
        "UPDATE contacts c SET
             worker_id = (SELECT w.id FROM workers w WHERE w.tenant_id = c.tenant_id AND w.phone = c.phone AND w.deleted_at IS NULL),
             patient_id = CASE WHEN EXISTS (SELECT 1 FROM workers w WHERE w.tenant_id = c.tenant_id AND w.phone = c.phone AND w.deleted_at IS NULL)
                 THEN NULL
                 ELSE (SELECT p.id FROM patients p WHERE p.tenant_id = c.tenant_id AND p.phone = c.phone AND p.deleted_at IS NULL ORDER BY p.id LIMIT 1) END
         WHERE c.tenant_id = $1 AND c.id = $2 AND c.worker_id IS NULL AND c.patient_id IS NULL
           -- A number nobody has is not rewritten (a new row version, every message).
           AND (EXISTS (SELECT 1 FROM workers w WHERE w.tenant_id = c.tenant_id AND w.phone = c.phone AND w.deleted_at IS NULL)
                OR EXISTS (SELECT 1 FROM patients p WHERE p.tenant_id = c.tenant_id AND p.phone = c.phone AND p.deleted_at IS NULL))",
    )
    .bind(tenant_id)
    .bind(contact_id)
    .execute(&mut **tx)
    .await?;
    let row: SenderRow = sqlx::query_as(
        "SELECT w.id AS worker_id, w.first_name || ' ' || w.last_name AS worker_name, w.kinds,
                p.id AS patient_id, p.first_name || ' ' || p.last_name AS patient_name,
                EXISTS (SELECT 1 FROM users u WHERE u.tenant_id = c.tenant_id AND u.phone = c.phone AND u.active) AS coordinator,
                EXISTS (SELECT 1 FROM work_orders wo WHERE wo.tenant_id = c.tenant_id AND wo.requester_contact_id = c.id) AS requester
         FROM contacts c
         LEFT JOIN workers w ON w.tenant_id = c.tenant_id AND w.id = c.worker_id AND w.deleted_at IS NULL
         LEFT JOIN patients p ON p.tenant_id = c.tenant_id AND p.id = c.patient_id AND p.deleted_at IS NULL
         WHERE c.tenant_id = $1 AND c.id = $2",
    )
    .bind(tenant_id)
    .bind(contact_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(match row {
        SenderRow {
            worker_id: Some(id),
            worker_name: Some(name),
            kinds: Some(kinds),
            ..
        } => Sender::Worker { id, name, kinds },
        SenderRow {
            patient_id: Some(id),
            patient_name: Some(name),
            ..
        } => Sender::Patient { id, name },
        SenderRow {
            coordinator: true, ..
        } => Sender::Coordinator,
        SenderRow {
            requester: true, ..
        } => Sender::Requester,
        _ => Sender::Unknown,
    })
}

/// "2" after numbered choices: the id of the second button of the latest message that offered
/// this person any, whichever channel it went out on (a dispatch on WhatsApp, an answer by SMS).
async fn numbered_choice(
    tx: &mut Transaction<'static, Postgres>,
    tenant_id: Uuid,
    contact_id: Uuid,
    choice: usize,
) -> anyhow::Result<Option<(RepliedTo, String)>> {
    let offer: Option<Offer> = sqlx::query_as(
        "SELECT id AS message_id, template_key, related_entity_type, related_entity_id, buttons FROM messages
         WHERE tenant_id = $1 AND contact_id = $2 AND direction = 'outbound' AND buttons IS NOT NULL
         ORDER BY created_at DESC LIMIT 1",
    )
    .bind(tenant_id)
    .bind(contact_id)
    .fetch_optional(&mut **tx)
    .await?;
    let Some(offer) = offer else {
        return Ok(None);
    };
    let buttons: Vec<Button> = serde_json::from_value(offer.buttons)?;
    Ok(choice
        .checked_sub(1)
        .and_then(|i| buttons.get(i))
        .map(|button| (offer.message, button.id.clone())))
}

/// STOP and its kin, START and its kin, HELP: whatever else the message might mean.
///
/// On SMS the carrier-mandated opt-out words opt out alone or first in a message, whatever else
/// is going on; on WhatsApp a lone "cancel" or "stop" in the middle of something (a report being
/// written, a question asked) is left to that conversation first, and opts out only if nothing
/// takes it. START and "yes" opt in only someone who had opted out.
struct ConsentAndHelp;

#[async_trait]
impl Handler for ConsentAndHelp {
    fn name(&self) -> &'static str {
        "consent"
    }

    fn intents(&self) -> Option<&'static IntentSet> {
        Some(&CONSENT)
    }

    async fn handle(&self, turn: &mut Turn<'_>) -> anyhow::Result<Outcome> {
        if turn.message.reply_id.is_some() {
            return Ok(Outcome::Pass);
        }
        let reading = turn.read(&CONSENT, Context::default());
        let Some(top) = reading.ranked.first().cloned() else {
            return Ok(Outcome::Pass);
        };
        let sms = turn.message.channel_kind == ChannelKind::Sms;
        match top.intent {
            "opt_out" if sms && (top.alone || reading.leading == Some("opt_out")) => {
                opt_out(turn).await?;
            }
            "opt_out" if top.alone => {
                if in_the_middle_of_something(turn).await? {
                    return Ok(Outcome::Pass);
                }
                opt_out(turn).await?;
            }
            "opt_in" if top.alone => {
                let (tenant_id, contact_id, channel_id) = (
                    turn.tenant.id,
                    turn.message.contact_id,
                    turn.message.channel_id,
                );
                if !consent::may_opt_in(&mut turn.tx, tenant_id, contact_id, channel_id).await? {
                    // "start" and "yes" are ordinary answers to someone who never opted out.
                    return Ok(Outcome::Pass);
                }
                consent::opt_in(
                    &mut turn.tx,
                    tenant_id,
                    contact_id,
                    channel_id,
                    consent::Source::Message,
                    Some(turn.message.id),
                )
                .await?;
                let tenant = Values::new().with("tenant", &turn.tenant.name);
                turn.reply("opt_in_confirmed", tenant).await?;
            }
            "help" if top.alone => help(turn).await?,
            _ => return Ok(Outcome::Pass),
        }
        Ok(Outcome::Handled)
    }
}

/// Whether a domain is mid-conversation with this person (a draft, a question awaiting an answer).
async fn in_the_middle_of_something(turn: &mut Turn<'_>) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT bot_state <> '{}'::jsonb FROM conversations WHERE tenant_id = $1 AND id = $2",
    )
    .bind(turn.tenant.id)
    .bind(turn.message.conversation_id)
    .fetch_one(&mut *turn.tx)
    .await
}

/// Opts the person out on this channel and drops whatever they were in the middle of, saying so.
async fn opt_out(turn: &mut Turn<'_>) -> anyhow::Result<()> {
    consent::opt_out(
        &mut turn.tx,
        turn.tenant.id,
        turn.message.contact_id,
        turn.message.channel_id,
        consent::Source::Message,
        Some(turn.message.id),
    )
    .await?;
    let dropped: bool = sqlx::query_scalar(
        "UPDATE conversations c SET bot_state = '{}'::jsonb
         FROM conversations old WHERE old.tenant_id = c.tenant_id AND old.id = c.id
           AND c.tenant_id = $1 AND c.id = $2
         RETURNING old.bot_state <> '{}'::jsonb",
    )
    .bind(turn.tenant.id)
    .bind(turn.message.conversation_id)
    .fetch_one(&mut *turn.tx)
    .await?;
    let key = if dropped {
        "opt_out_confirmed_dropped"
    } else {
        "opt_out_confirmed"
    };
    turn.reply(key, Values::new().with("tenant", &turn.tenant.name))
        .await?;
    Ok(())
}

/// What this person can write, generated from the same words the reader reads.
async fn help(turn: &mut Turn<'_>) -> anyhow::Result<()> {
    let messaging = turn.messaging;
    let lexicons = &messaging.lexicons;
    let mut lines: Vec<String> = Vec::new();
    for handler in &messaging.handlers.0 {
        if let Some(set) = handler.intents().filter(|_| handler.helps(&turn.sender)) {
            lines.extend(lexicons.help_lines(&turn.locale, set));
        }
    }
    lines.extend(lexicons.help_lines(&turn.locale, &CONSENT));
    let values = Values::new()
        .with("tenant", &turn.tenant.name)
        .with("commands", lines.join("\n"));
    match turn.tenant.help_text.clone() {
        Some(help) => turn.reply("help_tenant", values.with("help", help)).await?,
        None => turn.reply("help", values).await?,
    };
    Ok(())
}

/// Nobody took the message: a lone opt-out word nothing else claimed opts out; otherwise say
/// politely what the sender can do.
async fn fallback(turn: &mut Turn<'_>) -> anyhow::Result<()> {
    if turn.message.reply_id.is_none()
        && let Some(top) = turn.read(&CONSENT, Context::default()).ranked.first()
        && top.intent == "opt_out"
        && top.alone
    {
        return opt_out(turn).await;
    }
    let key = match turn.sender {
        Sender::Unknown => "unknown_sender",
        _ => "not_understood",
    };
    turn.reply(key, Values::new().with("tenant", &turn.tenant.name))
        .await?;
    Ok(())
}
