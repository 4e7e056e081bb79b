//! Panel sign-in sessions end on their own: a timer per session removes it once it expired.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{
    jobs::{self, Job},
    messaging::Messaging,
};

/// Removes a panel session once it has expired, so the table holds only live sessions.
#[derive(Debug, Serialize, Deserialize)]
pub struct ExpirePanelSession {
    pub session_id: Uuid,
}

impl Job for ExpirePanelSession {
    const QUEUE: &'static str = "panel-session-expiry";
}

#[tracing::instrument(skip(messaging), fields(session_id = %job.session_id))]
pub async fn expire_panel_session(
    job: ExpirePanelSession,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let mut tx = messaging.pool.begin().await?;
    // The session may have been extended or already removed by sign-out: only an expired row goes.
    let removed = sqlx::query("DELETE FROM panel_sessions WHERE id = $1 AND expires_at <= now()")
        .bind(job.session_id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    // The timer can fire a little before the database's clock says the session expired (or the
    // session was extended): then look again when it does expire.
    let remaining: Option<f64> = sqlx::query_scalar(
        "SELECT extract(epoch FROM expires_at - now())::float8 FROM panel_sessions WHERE id = $1",
    )
    .bind(job.session_id)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some(seconds) = remaining {
        jobs::enqueue(
            &mut tx,
            &job,
            Duration::from_secs_f64(seconds.max(0.0) + 0.05),
        )
        .await?;
    }
    tx.commit().await?;
    tracing::debug!(removed, "panel session expiry ran");
    Ok(())
}
