//! Provider webhooks. The signature is checked on the raw request, before anything is parsed or
//! stored; a refused request leaves a log line and a counter, nothing else.

use axum::{
    Router,
    body::Bytes,
    extract::{OriginalUri, Query, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;

use crate::{
    auth::constant_time_eq,
    channels::{WebhookBatch, meta, signature, twilio},
    http::AppState,
    http::error::AppError,
    messaging::ingest::{self, StatusApplied},
};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/twilio/messages", post(twilio_message))
        .route("/twilio/status", post(twilio_status))
        .route("/meta/whatsapp", get(meta_verify).post(meta_events))
}

fn refuse(provider: &'static str, why: &str) -> AppError {
    metrics::counter!("webhook_signature_rejected_total", "provider" => provider).increment(1);
    tracing::warn!(provider, why, "webhook refused: signature does not verify");
    AppError::Forbidden(format!(
        "the {provider} signature is missing or does not match this request; check the auth token / app secret and PUBLIC_BASE_URL"
    ))
}

/// The form fields of a verified Twilio request.
fn verified_twilio_form(
    state: &AppState,
    uri: &OriginalUri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Vec<(String, String)>, AppError> {
    let twilio = state
        .config
        .twilio
        .as_ref()
        .ok_or(AppError::ProviderNotConfigured(
            "Twilio",
            "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
        ))?;
    let params: Vec<(String, String)> = url::form_urlencoded::parse(body).into_owned().collect();
    // Twilio signs the URL it called: our public address, not the one we listen on.
    let path_and_query = uri.0.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let url = format!(
        "{}{path_and_query}",
        state.config.public_base_url.as_str().trim_end_matches('/')
    );
    let given = headers
        .get("x-twilio-signature")
        .and_then(|v| v.to_str().ok());
    if !signature::twilio_valid(twilio.auth_token.expose(), &url, &params, given) {
        return Err(refuse(
            "twilio",
            if given.is_none() {
                "missing"
            } else {
                "mismatch"
            },
        ));
    }
    Ok(params)
}

/// An empty TwiML answer: replies go out through the send queue, not in the webhook response.
fn twiml_ok() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/xml")],
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
    )
        .into_response()
}

async fn twilio_message(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let params = verified_twilio_form(&state, &uri, &headers, &body)?;
    let message = twilio::parse_message(&twilio::Form::new(&params)).map_err(|why| {
        AppError::bad_request(format!("this is not a Twilio message webhook: {why}"))
    })?;
    state
        .messaging
        .inbox
        .accept(std::slice::from_ref(&message))
        .await?;
    tracing::info!(provider_message_id = %message.provider_message_id, "twilio message kept");
    Ok(twiml_ok())
}

async fn twilio_status(
    State(state): State<AppState>,
    uri: OriginalUri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let params = verified_twilio_form(&state, &uri, &headers, &body)?;
    let update = twilio::parse_status(&twilio::Form::new(&params)).map_err(|why| {
        AppError::bad_request(format!("this is not a Twilio status callback: {why}"))
    })?;
    let applied = ingest::apply_status(&state.pool, &update).await?;
    tracing::info!(?applied, status = update.status.as_str(), "twilio status");
    Ok(twiml_ok())
}

#[derive(Deserialize)]
struct Handshake {
    #[serde(rename = "hub.mode")]
    mode: Option<String>,
    #[serde(rename = "hub.verify_token")]
    verify_token: Option<String>,
    #[serde(rename = "hub.challenge")]
    challenge: Option<String>,
}

/// Meta's subscription handshake: echo the challenge only for our verify token.
async fn meta_verify(
    State(state): State<AppState>,
    Query(handshake): Query<Handshake>,
) -> Result<Response, AppError> {
    let meta = state
        .config
        .meta
        .as_ref()
        .ok_or(AppError::ProviderNotConfigured(
            "Meta WhatsApp",
            "META_APP_SECRET, META_VERIFY_TOKEN and META_ACCESS_TOKEN",
        ))?;
    let token_ok = handshake
        .verify_token
        .as_deref()
        .is_some_and(|t| constant_time_eq(t, meta.verify_token.expose()));
    match (handshake.mode.as_deref(), token_ok, handshake.challenge) {
        (Some("subscribe"), true, Some(challenge)) => Ok((
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain")],
            challenge,
        )
            .into_response()),
        _ => Err(refuse(
            "meta",
            "handshake with a wrong verify token or mode",
        )),
    }
}

async fn meta_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    let meta = state
        .config
        .meta
        .as_ref()
        .ok_or(AppError::ProviderNotConfigured(
            "Meta WhatsApp",
            "META_APP_SECRET, META_VERIFY_TOKEN and META_ACCESS_TOKEN",
        ))?;
    let given = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    if !signature::meta_valid(meta.app_secret.expose(), &body, given) {
        return Err(refuse(
            "meta",
            if given.is_none() {
                "missing"
            } else {
                "mismatch"
            },
        ));
    }
    // Meta disables a webhook that keeps failing: anything it signed gets 200, even what we skip.
    let batch = match meta::parse_webhook(&body) {
        Ok(batch) => batch,
        Err(why) => {
            tracing::warn!(%why, "signed Meta webhook we cannot read: acknowledged");
            WebhookBatch::default()
        }
    };
    // Why at DEBUG only: a reason can quote what the sender wrote or their number.
    if !batch.ignored.is_empty() {
        tracing::info!(
            parts = batch.ignored.len(),
            "parts of a Meta webhook skipped"
        );
    }
    for why in &batch.ignored {
        tracing::debug!(%why, "part of a Meta webhook skipped");
    }
    state.messaging.inbox.accept(&batch.messages).await?;
    for update in &batch.statuses {
        if ingest::apply_status(&state.pool, update).await? == StatusApplied::Unknown {
            tracing::info!(provider_message_id = %update.provider_message_id, "Meta status for a message not recorded (yet): kept for a day");
        }
    }
    Ok((StatusCode::OK, "ok").into_response())
}
