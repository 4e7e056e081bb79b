//! `fieldline simulate`: an inbound message on a tenant's console channel, through the same
//! ingest, routing and send jobs as a real webhook, and every message it caused: the replies
//! to the sender and what went to others (a dispatch to a worker, an alert to a coordinator).

use std::{sync::Arc, time::Duration};

use anyhow::bail;
use uuid::Uuid;

use crate::{
    channels::{ChannelKind, Content, Inbound, Provider, ReceivingNumber},
    messaging::{
        MessageKind, MessageStatus, Messaging,
        ingest::{self, Stored},
    },
    types::PhoneNumber,
    worker,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Reply {
    /// `None` for the sender; someone else's number otherwise.
    pub to_other: Option<String>,
    pub kind: MessageKind,
    pub status: MessageStatus,
    pub body: Option<String>,
    pub buttons: Option<serde_json::Value>,
    pub whatsapp_template: Option<String>,
    pub error_code: Option<String>,
}

/// Injects `content` from `from` on the tenant's console channel of `kind` and waits up to
/// `wait` for the routing job and the replies' send jobs to finish.
pub async fn simulate(
    messaging: Arc<Messaging>,
    tenant_id: Uuid,
    kind: ChannelKind,
    from: PhoneNumber,
    content: Content,
    wait: Duration,
) -> anyhow::Result<Vec<Reply>> {
    let pool = messaging.pool.clone();
    let channel: Option<String> = sqlx::query_scalar(
        "SELECT phone_number FROM channels
         WHERE tenant_id = $1 AND provider = 'console' AND kind = $2 AND active
         ORDER BY created_at LIMIT 1",
    )
    .bind(tenant_id)
    .bind(kind.as_str())
    .fetch_optional(&pool)
    .await?;
    let Some(number) = channel else {
        bail!(
            "this organisation has no console {kind} channel: add one with \
             `fieldline channel add --tenant <slug> --provider console --kind {kind} --number +<number>`"
        );
    };
    let inbound = Inbound {
        provider: Provider::Console,
        kind,
        provider_message_id: format!("console-in-{}", Uuid::now_v7().simple()),
        to: ReceivingNumber::Phone(PhoneNumber::parse(&number).map_err(anyhow::Error::msg)?),
        from,
        profile_name: None,
        sent_at: None,
        content,
        reply_to: None,
    };
    let Stored::New { message_id, .. } = ingest::store_now(&pool, &inbound).await? else {
        bail!("the console channel did not take the message");
    };

    // The jobs run here, so the round trip works whether or not a server is running (one that
    // is may take some of them: then this waits for it).
    let deadline = tokio::time::Instant::now() + wait;
    let done = loop {
        worker::run_due_jobs(&messaging).await?;
        let pending: Option<i64> = sqlx::query_scalar(
            "SELECT CASE WHEN m.routed_at IS NULL THEN NULL ELSE
                 (SELECT count(*) FROM messages r WHERE r.tenant_id = m.tenant_id
                    AND r.direction = 'outbound' AND r.created_at = m.routed_at
                    AND r.status IN ('queued', 'sending')) END
             FROM messages m WHERE m.tenant_id = $1 AND m.id = $2",
        )
        .bind(tenant_id)
        .bind(message_id)
        .fetch_one(&pool)
        .await?;
        if pending == Some(0) {
            break true;
        }
        if tokio::time::Instant::now() >= deadline {
            break false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    if !done {
        bail!(
            "no answer within {} s: are the jobs failing? (run with RUST_LOG=info)",
            wait.as_secs()
        );
    }
    // The routing transaction wrote the replies and `routed_at`: they share its timestamp.
    Ok(sqlx::query_as(
        "SELECT CASE WHEN r.contact_id = m.contact_id THEN NULL ELSE c.phone END AS to_other,
                r.kind, r.status, -- A secret is only kept in development (console only): then it is shown.
                COALESCE(r.secret_body, r.body) AS body, r.buttons,
                r.whatsapp_template, r.error_code
         FROM messages m
         JOIN messages r ON r.tenant_id = m.tenant_id AND r.direction = 'outbound' AND r.created_at = m.routed_at
         JOIN contacts c ON c.tenant_id = r.tenant_id AND c.id = r.contact_id
         WHERE m.tenant_id = $1 AND m.id = $2
         ORDER BY (r.contact_id = m.contact_id) DESC, r.id",
    )
    .bind(tenant_id)
    .bind(message_id)
    .fetch_all(&pool)
    .await?)
}
