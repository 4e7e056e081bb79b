//! Renters and ward staff report problems by message and ask how their requests are going (the
//! survey after the work is `patients::surveys`, the same for every service).
//!
//! A report is a short conversation kept in `conversations.bot_state.report`: what is wrong, where
//! (words naming a site and a room, or a shared WhatsApp location), an optional photo; then the
//! work order is created and dispatched, and the reference comes back. A photo with a caption
//! answers two questions at once; every answer may come in any order the person likes.

use super::state::Status;
use async_trait::async_trait;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{
    state::Priority,
    work_orders::{self, Actor, NewWorkOrder},
};
use crate::{
    channels::ChannelKind,
    messaging::{
        router::{Handler, Outcome, Sender, Turn},
        templates::Values,
        understanding::{Context, Intent, IntentSet, Reference, normalize},
    },
    types::Coordinates,
};

pub struct RequesterReports;

/// An unfinished report is forgotten after this long without an answer.
const DRAFT_LIFETIME: TimeDelta = TimeDelta::hours(2);
/// A shared location further than this from every site names no site.
const NEAREST_SITE_MAX_METRES: f64 = 2_000.0;

/// What a person reporting a problem can say besides describing it.
pub static REPORT_INTENTS: IntentSet = IntentSet {
    name: "reports",
    intents: &[
        Intent {
            name: "cancel",
            negated: None,
        },
        Intent {
            name: "status",
            negated: None,
        },
        Intent {
            name: "skip",
            negated: None,
        },
        Intent {
            name: "greeting",
            negated: None,
        },
    ],
    opposites: &[],
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Step {
    What,
    Where,
    Photo,
}

/// What has been gathered so far.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Draft {
    /// The message that opened the report: from it on, the conversation goes on the timeline.
    first_message_id: Uuid,
    step: Step,
    description: Option<String>,
    site_id: Option<Uuid>,
    location_detail: Option<String>,
    latitude: Option<f64>,
    longitude: Option<f64>,
    #[serde(default)]
    media_ids: Vec<Uuid>,
    /// "Skip" was the answer to the photo question.
    #[serde(default)]
    photo_declined: bool,
    updated_at: DateTime<Utc>,
}

impl Draft {
    fn new(first_message_id: Uuid) -> Self {
        Self {
            first_message_id,
            step: Step::What,
            description: None,
            site_id: None,
            location_detail: None,
            latitude: None,
            longitude: None,
            media_ids: Vec::new(),
            photo_declined: false,
            updated_at: Utc::now(),
        }
    }

    fn knows_where(&self) -> bool {
        self.site_id.is_some() || self.location_detail.is_some() || self.latitude.is_some()
    }
}

/// Kind, trade and urgency read from the words of a report; a coordinator can correct them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    pub kind: &'static str,
    pub request_type: &'static str,
    pub specialty: Option<&'static str>,
    pub priority: Priority,
}

const TRADES: &[(&str, &str, &str, &[&str])] = &[
    // (kind, request type, specialty, words)
    (
        "housekeeping",
        "spill",
        "cleaning",
        &["spill", "spilled", "spilt", "vomit"],
    ),
    (
        "housekeeping",
        "waste",
        "cleaning",
        &["trash", "garbage", "rubbish", "waste", "bin", "bins"],
    ),
    (
        "housekeeping",
        "linen",
        "linen",
        &["linen", "sheets", "towels", "bedding"],
    ),
    (
        "housekeeping",
        "cleaning",
        "cleaning",
        &[
            "clean", "cleaning", "dirty", "mop", "dust", "smell", "smells",
        ],
    ),
    (
        "maintenance",
        "corrective",
        "plumbing",
        &[
            "leak", "leaking", "leaks", "pipe", "pipes", "tap", "faucet", "toilet", "sink",
            "drain", "blocked", "clogged", "flush", "shower", "water", "plumbing",
        ],
    ),
    (
        "maintenance",
        "corrective",
        "electrical",
        &[
            "light",
            "lights",
            "power",
            "socket",
            "sockets",
            "electric",
            "electrical",
            "electricity",
            "switch",
            "bulb",
            "fuse",
            "outlet",
            "wire",
            "wiring",
        ],
    ),
    (
        "maintenance",
        "corrective",
        "hvac",
        &[
            "ac",
            "aircon",
            "air-conditioning",
            "conditioning",
            "heating",
            "heater",
            "ventilation",
            "hvac",
            "fan",
        ],
    ),
];
const URGENT: &[&str] = &[
    "urgent",
    "emergency",
    "fire",
    "flood",
    "flooding",
    "sparks",
    "smoke",
    "gas",
    "danger",
    "dangerous",
];

pub fn classify(description: &str) -> Classified {
    let normalized = normalize(description);
    let words: Vec<&str> = normalized.split(' ').collect();
    let has = |list: &[&str]| words.iter().any(|w| list.contains(w));
    let urgent = has(URGENT);
    let (kind, request_type, specialty) = TRADES
        .iter()
        .find(|(_, _, _, list)| has(list))
        .map(|(kind, request_type, specialty, _)| (*kind, *request_type, Some(*specialty)))
        .unwrap_or(("maintenance", "corrective", None));
    Classified {
        kind,
        request_type: if urgent && kind == "maintenance" {
            "emergency"
        } else {
            request_type
        },
        specialty,
        priority: if urgent {
            Priority::Urgent
        } else {
            Priority::Medium
        },
    }
}

/// A title from the first words of the description's first line.
fn title(description: &str) -> String {
    const MAX: usize = 80;
    let first_line = description
        .lines()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    let one_line = first_line.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() <= MAX {
        return one_line;
    }
    let mut cut: String = one_line.chars().take(MAX).collect();
    if let Some(space) = cut.rfind(' ') {
        cut.truncate(space);
    }
    format!("{cut}…")
}

#[derive(sqlx::FromRow)]
struct Site {
    id: Uuid,
    name: String,
    code: Option<String>,
    has_parent: bool,
    latitude: Option<f64>,
    longitude: Option<f64>,
}

/// The site the words name: by code, by name (before any bracket or comma), or by its first two
/// words; the longest match wins and a ward beats its hospital.
fn site_named<'s>(sites: &'s [Site], text: &str) -> Option<&'s Site> {
    let haystack = format!(" {} ", normalize(&text.replace('-', " ")));
    sites
        .iter()
        .filter_map(|site| {
            let name = site.name.split(['(', ',']).next().unwrap_or(&site.name);
            let name = normalize(&name.replace('-', " "));
            let first_two = name.split(' ').take(2).collect::<Vec<_>>().join(" ");
            let code = site
                .code
                .as_deref()
                .map(|c| normalize(&c.replace('-', " ")));
            [Some(name), Some(first_two), code]
                .into_iter()
                .flatten()
                .filter(|phrase| phrase.len() >= 2 && haystack.contains(&format!(" {phrase} ")))
                .map(|phrase| phrase.len())
                .max()
                .map(|len| ((site.has_parent, len), site))
        })
        .max_by_key(|(rank, _)| *rank)
        .map(|(_, site)| site)
}

fn nearest_site(sites: &[Site], at: Coordinates) -> Option<&Site> {
    sites
        .iter()
        .filter_map(|site| {
            let here = Coordinates::new(site.latitude?, site.longitude?).ok()?;
            Some((at.metres_to(here), site))
        })
        .filter(|(metres, _)| *metres <= NEAREST_SITE_MAX_METRES)
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, site)| site)
}

#[async_trait]
impl Handler for RequesterReports {
    fn name(&self) -> &'static str {
        "maintenance_requests"
    }

    fn intents(&self) -> Option<&'static IntentSet> {
        Some(&REPORT_INTENTS)
    }

    fn helps(&self, sender: &Sender) -> bool {
        matches!(sender, Sender::Requester | Sender::Unknown)
    }

    async fn handle(&self, turn: &mut Turn<'_>) -> anyhow::Result<Outcome> {
        match turn.sender {
            Sender::Requester => {}
            Sender::Unknown => {
                let open: bool =
                    sqlx::query_scalar("SELECT reports_by_message FROM tenants WHERE id = $1")
                        .bind(turn.tenant.id)
                        .fetch_one(&mut *turn.tx)
                        .await?;
                if !open {
                    return Ok(Outcome::Pass);
                }
            }
            _ => return Ok(Outcome::Pass),
        }
        let message = turn.message.clone();
        let text = message.words().to_owned();
        let reading = turn.read(&REPORT_INTENTS, Context::default());
        // Only a message that is nothing but the word: "new" or "fix" inside a description
        // describes.
        let said = |intent: &str| {
            reading
                .ranked
                .first()
                .is_some_and(|c| c.intent == intent && c.alone)
        };
        if said("status") || (reading.reference.is_some() && text.split_whitespace().count() <= 3) {
            status(turn, reading.reference).await?;
            return Ok(Outcome::Handled);
        }
        let draft = load_draft(turn).await?;
        if said("cancel") {
            if draft.is_none() {
                return Ok(Outcome::Pass);
            }
            save_draft(turn, None).await?;
            turn.reply("wo_report_cancelled", Values::new()).await?;
            return Ok(Outcome::Handled);
        }
        let opening = draft.is_none();
        let mut draft = draft.unwrap_or_else(|| Draft::new(message.id));
        draft.media_ids.extend(message.media_ids.iter().copied());
        let words = text.trim();
        let sites: Vec<Site> = sqlx::query_as(
            "SELECT id, name, code, parent_id IS NOT NULL AS has_parent, latitude::float8 AS latitude,
                    longitude::float8 AS longitude
             FROM sites WHERE tenant_id = $1 AND deleted_at IS NULL ORDER BY created_at",
        )
        .bind(turn.tenant.id)
        .fetch_all(&mut *turn.tx)
        .await?;
        if let Some(at) = message.location {
            draft.latitude = Some(at.latitude);
            draft.longitude = Some(at.longitude);
            draft.site_id = draft
                .site_id
                .or_else(|| nearest_site(&sites, at).map(|s| s.id));
        } else if !words.is_empty() {
            match draft.step {
                Step::What => {
                    if !(opening && said("greeting")) {
                        draft.description = Some(words.to_owned());
                        // "No power in flat 7, CMC Heights" already says where.
                        if let Some(site) = site_named(&sites, words) {
                            draft.site_id = Some(site.id);
                        }
                    }
                }
                Step::Where => {
                    draft.site_id = site_named(&sites, words).map(|s| s.id);
                    draft.location_detail = Some(words.to_owned());
                }
                Step::Photo => {
                    if said("skip") {
                        draft.photo_declined = true;
                    } else {
                        // More words at the photo question add to the description.
                        let before = draft.description.take().unwrap_or_default();
                        draft.description = Some(format!("{before}\n{words}").trim().to_owned());
                        draft.photo_declined = true;
                    }
                }
            }
        }
        if draft.site_id.is_none() && draft.knows_where() && sites.len() == 1 {
            draft.site_id = Some(sites[0].id);
        }

        let next = if draft.description.is_none() {
            Some((Step::What, "wo_report_what"))
        } else if !draft.knows_where() {
            Some((Step::Where, "wo_report_where"))
        } else if draft.media_ids.is_empty() && !draft.photo_declined {
            Some((Step::Photo, "wo_report_photo"))
        } else {
            None
        };
        match next {
            Some((step, key)) => {
                draft.step = step;
                draft.updated_at = Utc::now();
                save_draft(turn, Some(&draft)).await?;
                turn.reply(key, Values::new().with("tenant", &turn.tenant.name))
                    .await?;
            }
            None => {
                save_draft(turn, None).await?;
                file_report(turn, draft).await?;
            }
        }
        Ok(Outcome::Handled)
    }
}

async fn load_draft(turn: &mut Turn<'_>) -> anyhow::Result<Option<Draft>> {
    let raw: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT bot_state->'report' FROM conversations WHERE tenant_id = $1 AND id = $2",
    )
    .bind(turn.tenant.id)
    .bind(turn.message.conversation_id)
    .fetch_one(&mut *turn.tx)
    .await?;
    Ok(raw
        .and_then(|raw| serde_json::from_value::<Draft>(raw).ok())
        .filter(|draft| Utc::now() - draft.updated_at < DRAFT_LIFETIME))
}

async fn save_draft(turn: &mut Turn<'_>, draft: Option<&Draft>) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE conversations SET bot_state = CASE WHEN $3::jsonb IS NULL THEN bot_state - 'report'
                                                   ELSE jsonb_set(bot_state, '{report}', $3) END
         WHERE tenant_id = $1 AND id = $2",
    )
    .bind(turn.tenant.id)
    .bind(turn.message.conversation_id)
    .bind(draft.map(serde_json::to_value).transpose()?)
    .execute(&mut *turn.tx)
    .await?;
    Ok(())
}

/// Creates the work order (assignment and dispatch happen in the same transaction) and answers
/// with its reference.
async fn file_report(turn: &mut Turn<'_>, draft: Draft) -> anyhow::Result<()> {
    let tenant_id = turn.tenant.id;
    let description = draft.description.unwrap_or_default();
    let classified = classify(&description);
    let phone: String =
        sqlx::query_scalar("SELECT phone FROM contacts WHERE tenant_id = $1 AND id = $2")
            .bind(tenant_id)
            .bind(turn.message.contact_id)
            .fetch_one(&mut *turn.tx)
            .await?;
    let location_detail = match (&draft.location_detail, draft.latitude.zip(draft.longitude)) {
        (Some(words), _) => Some(words.clone()),
        (None, Some((lat, lon))) => Some(format!("https://maps.google.com/?q={lat:.5},{lon:.5}")),
        (None, None) => None,
    };
    let channel = match turn.message.channel_kind {
        ChannelKind::Whatsapp => "whatsapp",
        ChannelKind::Sms => "sms",
    };
    let input = NewWorkOrder {
        kind: classified.kind.to_owned(),
        request_type: Some(classified.request_type.to_owned()),
        title: title(&description),
        description: Some(description.clone()),
        priority: Some(classified.priority),
        site_id: draft.site_id,
        location_detail,
        asset_id: None,
        required_specialty: classified.specialty.map(str::to_owned),
        requester_phone: Some(phone),
        scheduled_at: None,
        expected_duration_minutes: None,
    };
    let order =
        work_orders::record(&mut turn.tx, tenant_id, input, Actor::Requester, channel).await?;
    sqlx::query(
        "UPDATE work_orders SET latitude = $3, longitude = $4 WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant_id)
    .bind(order.id)
    .bind(draft.latitude)
    .bind(draft.longitude)
    .execute(&mut *turn.tx)
    .await?;
    for media_id in &draft.media_ids {
        sqlx::query(
            "INSERT INTO work_order_attachments (tenant_id, work_order_id, uploaded_by_kind,
                 uploaded_by_contact_id, media_id, message_id)
             SELECT tenant_id, $2, 'requester', $3, id, message_id FROM message_media
             WHERE tenant_id = $1 AND id = $4
             ON CONFLICT ON CONSTRAINT wo_attachments_media_unique DO NOTHING",
        )
        .bind(tenant_id)
        .bind(order.id)
        .bind(turn.message.contact_id)
        .bind(media_id)
        .execute(&mut *turn.tx)
        .await?;
    }
    // The conversation that made it belongs on its timeline.
    sqlx::query(
        "UPDATE messages SET related_entity_type = 'work_order', related_entity_id = $3
         WHERE tenant_id = $1 AND conversation_id = $2 AND related_entity_id IS NULL
           AND created_at >= (SELECT created_at FROM messages WHERE tenant_id = $1 AND id = $4)",
    )
    .bind(tenant_id)
    .bind(turn.message.conversation_id)
    .bind(order.id)
    .bind(draft.first_message_id)
    .execute(&mut *turn.tx)
    .await?;
    turn.related = Some(("work_order", order.id));
    tracing::info!(reference = %order.reference, kind = classified.kind, "work order reported by message");
    turn.reply(
        "wo_report_logged",
        Values::new()
            .with("reference", &order.reference)
            .with("title", &order.title),
    )
    .await?;
    // After the reference, so the person hears "logged" before "given to".
    work_orders::assign_next(
        &mut turn.tx,
        &turn.messaging.templates,
        tenant_id,
        order.id,
        Actor::Requester,
        channel,
    )
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Mine {
    reference: String,
    title: String,
    status: Status,
    worker: Option<String>,
}

/// "status": the person's open requests and those done in the last week; with a reference, that one.
async fn status(turn: &mut Turn<'_>, reference: Option<Reference>) -> anyhow::Result<()> {
    let mut mine: Vec<Mine> = sqlx::query_as(
        "SELECT wo.reference, wo.title, wo.status, w.first_name AS worker
         FROM work_orders wo
         LEFT JOIN workers w ON w.tenant_id = wo.tenant_id AND w.id = wo.assigned_worker_id
         WHERE wo.tenant_id = $1 AND wo.requester_contact_id = $2
           AND ($3::text IS NULL OR wo.reference LIKE '%' || $3)
           AND ($3::text IS NOT NULL OR wo.status NOT IN ('completed', 'cancelled')
                OR COALESCE(wo.completed_at, wo.cancelled_at) > now() - interval '7 days')
         ORDER BY wo.created_at DESC LIMIT 5",
    )
    .bind(turn.tenant.id)
    .bind(turn.message.contact_id)
    .bind(reference.map(|r| r.number_suffix()))
    .fetch_all(&mut *turn.tx)
    .await?;
    if let Some(reference) = reference {
        mine.retain(|m| reference.matches(&m.reference));
    }
    if mine.is_empty() {
        let key = if reference.is_some() {
            "wo_status_unknown"
        } else {
            "wo_status_none"
        };
        turn.reply(
            key,
            Values::new().with(
                "reference",
                reference.map(|r| r.to_string()).unwrap_or_default(),
            ),
        )
        .await?;
        return Ok(());
    }
    // Each line in the requester's language, with the worker's name where it helps.
    let lines = mine
        .iter()
        .map(|m| {
            let values = Values::new()
                .with("reference", &m.reference)
                .with("title", &m.title);
            let (key, values) = match (m.status.as_str(), &m.worker) {
                ("assigned", Some(w)) => ("wo_status_line_offered", values.with("worker", w)),
                ("accepted", Some(w)) => ("wo_status_line_coming", values.with("worker", w)),
                ("in_progress", Some(w)) => ("wo_status_line_working", values.with("worker", w)),
                (state, _) => (
                    "wo_status_line",
                    values.with_term("state", format!("wo_state_{state}")),
                ),
            };
            (key.to_owned(), values)
        })
        .collect();
    turn.reply("wo_status_list", Values::new().with_lines("lines", lines))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_kind_trade_and_urgency_from_the_words() {
        let c = classify("The kitchen tap is leaking");
        assert_eq!(
            (c.kind, c.specialty, c.priority),
            ("maintenance", Some("plumbing"), Priority::Medium)
        );
        let c = classify("URGENT: sparks from the socket!");
        assert_eq!(
            (c.kind, c.request_type, c.specialty, c.priority),
            (
                "maintenance",
                "emergency",
                Some("electrical"),
                Priority::Urgent
            )
        );
        let c = classify("Someone spilled juice in the corridor");
        assert_eq!(
            (c.kind, c.request_type, c.specialty),
            ("housekeeping", "spill", Some("cleaning"))
        );
        let c = classify("the door does not close");
        assert_eq!((c.kind, c.specialty), ("maintenance", None));
    }

    fn site(name: &str, code: &str, has_parent: bool) -> Site {
        Site {
            id: Uuid::now_v7(),
            name: name.into(),
            code: Some(code.into()),
            has_parent,
            latitude: None,
            longitude: None,
        }
    }

    #[test]
    fn finds_the_site_the_words_name() {
        let sites = [
            site("Bole Gardens", "BOLE-GDN", false),
            site("St. Gabriel Support Hospital", "SGH", false),
            site("Ward 3 (medical)", "SGH-W3", true),
        ];
        let named = |text| site_named(&sites, text).map(|s| s.name.as_str());
        assert_eq!(named("Bole gardens block B flat 12"), Some("Bole Gardens"));
        assert_eq!(named("bole-gdn B12"), Some("Bole Gardens"));
        assert_eq!(named("St Gabriel, ward 3 bed 4"), Some("Ward 3 (medical)"));
        assert_eq!(
            named("st gabriel main entrance"),
            Some("St. Gabriel Support Hospital")
        );
        assert_eq!(named("flat 12"), None);
    }

    #[test]
    fn titles_are_the_first_words() {
        assert_eq!(title("Leaking  tap\nwater everywhere"), "Leaking tap");
        let long = "word ".repeat(40);
        let t = title(&long);
        assert!(t.ends_with('…') && t.chars().count() <= 81, "{t}");
    }
}
