//! What patients (and anyone else not on the staff) write: the answer to a survey and its
//! comment, a complaint, anonymous feedback, or feedback of any other kind.
//!
//! Asked before the requesters' reports, so "complaint: nobody came" from a stranger is a
//! complaint rather than a maintenance request; a stranger's other words are left to the reports.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{
    COMPLAINT_SEVERITY, Fft, PATIENT_INTENTS, SURVEY_ANSWERS,
    complaints::{self, CALL_BACK_WITHIN, Links, NewComplaint, Opened, Severity},
    feedback,
    surveys::{self, Open},
};
use crate::{
    channels::ChannelKind,
    messaging::{
        notify::Notified,
        router::{Handler, Outcome, Sender, Turn},
        templates::Values,
        understanding::{Context, IntentSet, normalize},
    },
};

pub struct PatientVoices;

static ALSO_READS: [&IntentSet; 2] = [&SURVEY_ANSWERS, &COMPLAINT_SEVERITY];

#[async_trait]
impl Handler for PatientVoices {
    fn name(&self) -> &'static str {
        "patients"
    }

    fn intents(&self) -> Option<&'static IntentSet> {
        Some(&PATIENT_INTENTS)
    }

    fn also_reads(&self) -> &'static [&'static IntentSet] {
        &ALSO_READS
    }

    fn helps(&self, sender: &Sender) -> bool {
        matches!(
            sender,
            Sender::Patient { .. } | Sender::Unknown | Sender::Requester
        )
    }

    async fn handle(&self, turn: &mut Turn<'_>) -> anyhow::Result<Outcome> {
        let patient_id = match turn.sender {
            Sender::Patient { id, .. } => Some(id),
            Sender::Unknown | Sender::Requester => None,
            Sender::Worker { .. } | Sender::Coordinator => return Ok(Outcome::Pass),
        };
        let text = turn.message.words().to_owned();
        let reading = turn.read(&PATIENT_INTENTS, Context::default());
        let said = reading.ranked.first().map(|c| c.intent);
        // "Anonymous" wins over everything else said: the person asked not to be named.
        let anonymously = reading
            .ranked
            .iter()
            .any(|c| c.intent == "anonymous" && !c.guessed);
        if anonymously && !text.is_empty() {
            anonymous(turn, &text).await?;
            return Ok(Outcome::Handled);
        }
        let (tenant_id, contact_id) = (turn.tenant.id, turn.message.contact_id);
        if let Some(survey) = surveys::latest_open(&mut turn.tx, tenant_id, contact_id).await?
            && answer_survey(turn, &survey, said == Some("complaint")).await?
        {
            return Ok(Outcome::Handled);
        }
        if text.is_empty() {
            return Ok(Outcome::Pass);
        }
        if said == Some("complaint") {
            let links = recent_service(turn, patient_id).await?.links;
            complain(turn, &text, links, None, None).await?;
            return Ok(Outcome::Handled);
        }
        let Some(patient_id) = patient_id else {
            // A stranger's other words may be a report of something broken.
            return Ok(Outcome::Pass);
        };
        if complaints::open_case_of(&mut turn.tx, tenant_id, contact_id)
            .await?
            .is_some()
        {
            let links = recent_service(turn, Some(patient_id)).await?.links;
            complain(turn, &text, links, None, None).await?;
            return Ok(Outcome::Handled);
        }
        if is_no_feedback(&text) {
            intro(turn).await?;
            return Ok(Outcome::Handled);
        }
        let links = recent_service(turn, Some(patient_id)).await?;
        let about = feedback::About {
            patient_id: Some(patient_id),
            visit_id: links.links.visit_id,
            worker_id: links.links.worker_id,
            service: links.service,
        };
        let channel = channel_name(turn);
        feedback::record(
            &mut turn.tx,
            tenant_id,
            contact_id,
            &about,
            &text,
            channel,
            turn.message.id,
        )
        .await?;
        let values = Values::new().with("tenant", &turn.tenant.name);
        turn.reply("feedback_thanks", values).await?;
        Ok(Outcome::Handled)
    }
}

fn channel_name(turn: &Turn<'_>) -> &'static str {
    match turn.message.channel_kind {
        ChannelKind::Whatsapp => "whatsapp",
        ChannelKind::Sms => "sms",
    }
}

/// A question or a word or two ("who is this?", "hello") is not feedback: say who we are.
fn is_no_feedback(text: &str) -> bool {
    text.trim_end().ends_with('?') || normalize(text).split_whitespace().count() < 3
}

/// The words after a short label and a colon ("complaint: nobody came" → "nobody came").
fn after_label(text: &str) -> &str {
    match text.split_once(':') {
        Some((head, tail)) if head.split_whitespace().count() <= 3 && !tail.trim().is_empty() => {
            tail.trim()
        }
        _ => text.trim(),
    }
}

/// The answer a message gives to the survey question, and any words beside it: a tapped button,
/// a number ("1", "፪", "5 - very poor", "1 the cleaner was rude"), or words ("very good").
fn read_answer(turn: &Turn<'_>) -> Option<(Fft, Option<String>)> {
    if let Some(code) = turn
        .message
        .reply_id
        .as_deref()
        .and_then(|id| id.strip_prefix("fft:"))
    {
        return code.parse().ok().and_then(Fft::new).map(|fft| (fft, None));
    }
    let text = turn.message.words();
    let normalized = normalize(text);
    // Emoji normalise to nothing: "👍" has no first word but is an answer.
    let first = normalized.split_whitespace().next().unwrap_or_default();
    if let Some(fft) = first.parse::<i64>().ok().and_then(Fft::new) {
        // The comment is whatever follows the number, less a restatement of the answer.
        let after = text
            .trim_start()
            .split_once(char::is_whitespace)
            .map_or("", |(_, rest)| rest)
            .trim_start_matches(|c: char| c.is_whitespace() || "-–—:.,)".contains(c));
        let comment = (!after.is_empty())
            .then(|| {
                let reading = crate::messaging::understanding::read(
                    &turn.messaging.lexicons,
                    &SURVEY_ANSWERS,
                    after,
                    Context::default(),
                );
                if reading.ranked.is_empty() {
                    Some(after.to_owned())
                } else {
                    reading.rest
                }
            })
            .flatten();
        return Some((fft, comment));
    }
    if first.parse::<i64>().is_ok() {
        return None;
    }
    let reading = turn.read(&SURVEY_ANSWERS, Context::default());
    let top = reading.ranked.first()?;
    if top.guessed || crate::messaging::understanding::unsure(&SURVEY_ANSWERS, &reading).is_some() {
        return None;
    }
    Fft::from_intent(top.intent).map(|fft| (fft, reading.rest))
}

/// A message while a survey waits: its answer, a correction of it, or the comment after it.
/// `false` when the message is not about the survey at all.
async fn answer_survey(
    turn: &mut Turn<'_>,
    survey: &Open,
    complaint_words: bool,
) -> anyhow::Result<bool> {
    let (tenant_id, contact_id) = (turn.tenant.id, turn.message.contact_id);
    let answer = read_answer(turn);
    if survey.expired {
        if answer.is_none() {
            return Ok(false);
        }
        surveys::expire(&mut turn.tx, tenant_id, survey.id).await?;
        turn.relate("survey", survey.id).await?;
        turn.reply("survey_closed", Values::new()).await?;
        return Ok(true);
    }
    turn.relate("survey", survey.id).await?;
    let awaiting_comment = survey.status == "answered";
    match answer {
        // A lone answer after the first one corrects it; words beside it are the comment.
        Some((fft, comment)) if !awaiting_comment || comment.is_none() => {
            let channel = channel_name(turn);
            let feedback_id = surveys::answer(
                &mut turn.tx,
                tenant_id,
                contact_id,
                survey,
                fft,
                channel,
                turn.message.id,
            )
            .await?;
            let survey = Open {
                status: "answered".into(),
                fft_code: Some(fft.code()),
                feedback_id: Some(feedback_id),
                ..survey.clone()
            };
            let case = if fft.is_poor() {
                poor_answer(turn, &survey, fft, feedback_id).await?
            } else {
                None
            };
            match (comment, case) {
                // "1 the cleaner was rude": the answer, and a complaint in the same breath.
                (Some(comment), None) if reads_as_complaint(turn, &comment) => {
                    surveys::comment(&mut turn.tx, tenant_id, &survey, &comment).await?;
                    let links = survey_links(&survey);
                    complain(turn, &comment, links, Some(survey.id), Some(feedback_id)).await?;
                }
                (Some(comment), case) => {
                    finish(turn, &survey, &comment, case.map(|(id, ..)| id)).await?;
                }
                (None, Some((_, reference, due))) => {
                    let due = local(turn, due).await?;
                    let values = Values::new().with("reference", reference).with("due", due);
                    turn.reply("survey_follow_up_poor", values).await?;
                }
                (None, None) => {
                    turn.reply("survey_follow_up", Values::new()).await?;
                }
            }
        }
        Some((_, comment)) => {
            finish(turn, survey, comment.as_deref().unwrap_or_default(), None).await?;
        }
        None if awaiting_comment => {
            let text = turn.message.words().to_owned();
            if text.is_empty() {
                return Ok(false);
            }
            if complaint_words {
                // A complaint in place of the comment: kept as the comment, and a case opened
                // (or added to) and acknowledged with its reference.
                surveys::comment(&mut turn.tx, tenant_id, survey, &text).await?;
                complain(
                    turn,
                    &text,
                    survey_links(survey),
                    Some(survey.id),
                    survey.feedback_id,
                )
                .await?;
            } else {
                finish(turn, survey, &text, None).await?;
            }
        }
        None => {
            // Words that answer nothing: if they are a complaint, they are taken as one.
            if complaint_words {
                return Ok(false);
            }
            turn.reply("survey_ask_again", Values::new()).await?;
        }
    }
    Ok(true)
}

fn survey_links(survey: &Open) -> Links {
    Links {
        patient_id: survey.patient_id,
        visit_id: survey.visit_id,
        trip_id: survey.trip_id,
        work_order_id: survey.work_order_id,
        worker_id: survey.worker_id,
    }
}

/// The comment closes the survey; on a poor answer (or words that complain) it goes onto the case.
async fn finish(
    turn: &mut Turn<'_>,
    survey: &Open,
    comment: &str,
    case: Option<Uuid>,
) -> anyhow::Result<()> {
    let tenant_id = turn.tenant.id;
    surveys::comment(&mut turn.tx, tenant_id, survey, comment).await?;
    let open_case = match case {
        Some(id) => Some(id),
        None if survey
            .fft_code
            .and_then(|c| Fft::new(c.into()))
            .is_some_and(Fft::is_poor) =>
        {
            complaints::open_case_of(&mut turn.tx, tenant_id, turn.message.contact_id)
                .await?
                .map(|(id, _)| id)
        }
        None => None,
    };
    if let Some(id) = open_case.filter(|_| case.is_none()) {
        sqlx::query(
            "INSERT INTO complaint_actions (tenant_id, complaint_id, action_type, description, message_id)
             VALUES ($1, $2, 'complainant_wrote', $3, $4)",
        )
        .bind(tenant_id)
        .bind(id)
        .bind(comment)
        .bind(turn.message.id)
        .execute(&mut *turn.tx)
        .await?;
    }
    turn.reply("survey_thanks", Values::new()).await?;
    Ok(())
}

/// Poor or very poor: the loop is closed with a call-back within 48 hours (a case opened, or the
/// person's open one used); about a resolved complaint, the complaint opens again.
async fn poor_answer(
    turn: &mut Turn<'_>,
    survey: &Open,
    fft: Fft,
    feedback_id: Uuid,
) -> anyhow::Result<Option<(Uuid, String, DateTime<Utc>)>> {
    let tenant_id = turn.tenant.id;
    if let Some(complaint_id) = survey.complaint_id {
        complaints::reopen_unsatisfied(
            &mut turn.tx,
            &turn.messaging.templates,
            tenant_id,
            complaint_id,
        )
        .await
        .map_err(anyhow::Error::from)?;
        let case = complaints::get(&mut turn.tx, tenant_id, complaint_id)
            .await
            .map_err(anyhow::Error::from)?;
        let due = case
            .next_due_at
            .unwrap_or_else(|| Utc::now() + CALL_BACK_WITHIN);
        return Ok(Some((complaint_id, case.reference, due)));
    }
    let label = match fft.code() {
        5 => "very poor",
        _ => "poor",
    };
    let description = format!(
        "Survey answer \"{label}\" about the {} ({})",
        survey.subject.replace('_', " "),
        survey.service
    );
    let new = NewComplaint {
        contact_id: Some(turn.message.contact_id),
        links: survey_links(survey),
        description: &description,
        severity: Severity::Medium,
        channel: channel_name(turn),
        survey_id: Some(survey.id),
        feedback_id: Some(feedback_id),
        message_id: Some(turn.message.id),
        call_back_within: Some(CALL_BACK_WITHIN),
    };
    let opened = complaints::open(&mut turn.tx, tenant_id, new)
        .await
        .map_err(anyhow::Error::from)?;
    let (id, reference) = match opened {
        Opened::New { id, reference, .. } | Opened::Attached { id, reference } => (id, reference),
    };
    let case = complaints::get(&mut turn.tx, tenant_id, id)
        .await
        .map_err(anyhow::Error::from)?;
    let due = case
        .next_due_at
        .unwrap_or_else(|| Utc::now() + CALL_BACK_WITHIN);
    Ok(Some((id, reference, due)))
}

/// Words that make a complaint, said outright or through what happened ("rude", "stole").
fn reads_as_complaint(turn: &Turn<'_>, text: &str) -> bool {
    crate::messaging::understanding::read(
        &turn.messaging.lexicons,
        &PATIENT_INTENTS,
        text,
        Context::default(),
    )
    .ranked
    .iter()
    .any(|c| c.intent == "complaint" && !c.guessed)
}

fn severity_of(turn: &Turn<'_>, text: &str) -> Severity {
    let reading = crate::messaging::understanding::read(
        &turn.messaging.lexicons,
        &COMPLAINT_SEVERITY,
        text,
        Context::default(),
    );
    if reading
        .ranked
        .iter()
        .any(|c| c.intent == "high" && !c.guessed)
    {
        Severity::High
    } else {
        Severity::Medium
    }
}

/// Opens a complaint (or adds to the person's open one) and acknowledges it with its reference.
async fn complain(
    turn: &mut Turn<'_>,
    text: &str,
    links: Links,
    survey_id: Option<Uuid>,
    feedback_id: Option<Uuid>,
) -> anyhow::Result<()> {
    let severity = severity_of(turn, text);
    let new = NewComplaint {
        contact_id: Some(turn.message.contact_id),
        links,
        description: after_label(text),
        severity,
        channel: channel_name(turn),
        survey_id,
        feedback_id,
        message_id: Some(turn.message.id),
        call_back_within: None,
    };
    let opened = complaints::open(&mut turn.tx, turn.tenant.id, new)
        .await
        .map_err(anyhow::Error::from)?;
    match opened {
        Opened::New {
            id,
            reference,
            first_contact_due_at,
        } => {
            turn.relate("complaint", id).await?;
            let due = local(turn, first_contact_due_at).await?;
            let values = Values::new().with("reference", reference).with("due", due);
            turn.reply("complaint_acknowledged", values).await?;
        }
        Opened::Attached { id, reference } => {
            turn.relate("complaint", id).await?;
            turn.reply(
                "complaint_attached",
                Values::new().with("reference", reference),
            )
            .await?;
        }
    }
    Ok(())
}

/// A deadline as the person reads it: the day in the organisation's zone, with the hour only
/// when it is within two days (a working-day deadline's minute means nothing to them).
async fn local(turn: &mut Turn<'_>, at: DateTime<Utc>) -> anyhow::Result<String> {
    let zone: String = sqlx::query_scalar("SELECT time_zone FROM tenants WHERE id = $1")
        .bind(turn.tenant.id)
        .fetch_one(&mut *turn.tx)
        .await?;
    let zone = crate::types::TimeZone::stored(&zone);
    let format = if at - Utc::now() <= chrono::TimeDelta::hours(49) {
        "%a %d %b, %H:%M"
    } else {
        "%a %d %b"
    };
    Ok(at.with_timezone(&zone).format(format).to_string())
}

async fn anonymous(turn: &mut Turn<'_>, text: &str) -> anyhow::Result<()> {
    let words = after_label(text).to_owned();
    let channel = channel_name(turn);
    feedback::hold_anonymous(
        &mut turn.tx,
        turn.tenant.id,
        turn.message.contact_id,
        &words,
        channel,
        turn.message.id,
    )
    .await?;
    turn.related = None;
    if let Notified::Queued(thanks) = turn
        .reply("feedback_anonymous_thanks", Values::new())
        .await?
    {
        feedback::keep_apart(&mut turn.tx, turn.tenant.id, thanks).await?;
    }
    Ok(())
}

/// Who we are and what the person can write.
async fn intro(turn: &mut Turn<'_>) -> anyhow::Result<()> {
    let lines = turn
        .messaging
        .lexicons
        .help_lines(&turn.locale, &PATIENT_INTENTS);
    let values = Values::new()
        .with("tenant", &turn.tenant.name)
        .with("commands", lines.join("\n"));
    turn.reply("patient_intro", values).await?;
    Ok(())
}

/// What the patient's latest service was, when it ended in the last two weeks: feedback and
/// complaints they send unprompted are most likely about it.
struct ServiceLinks {
    links: Links,
    service: Option<String>,
}

async fn recent_service(
    turn: &mut Turn<'_>,
    patient_id: Option<Uuid>,
) -> anyhow::Result<ServiceLinks> {
    let recent: Option<(Uuid, Uuid, String)> = match patient_id {
        Some(patient_id) => {
            sqlx::query_as(
                "SELECT id, caregiver_id, service_type FROM visits
                 WHERE tenant_id = $1 AND patient_id = $2 AND status = 'completed'
                   AND check_out_at > now() - interval '14 days'
                 ORDER BY check_out_at DESC LIMIT 1",
            )
            .bind(turn.tenant.id)
            .bind(patient_id)
            .fetch_optional(&mut *turn.tx)
            .await?
        }
        None => None,
    };
    let (visit_id, worker_id, service) = match recent {
        Some((visit, worker, service)) => (Some(visit), Some(worker), Some(service)),
        None => (None, None, None),
    };
    Ok(ServiceLinks {
        links: Links {
            patient_id,
            visit_id,
            worker_id,
            ..Links::default()
        },
        service,
    })
}
