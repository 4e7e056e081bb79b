//! Records the head of every audit chain now and then. A chain cut short still links up from
//! its first row to its new last one; only a head recorded earlier (and logged, so it also lives
//! outside the database) shows that rows are missing from the end.

use std::{sync::Arc, time::Duration};

use apalis::prelude::{BoxDynError, Data};
use serde::{Deserialize, Serialize};

use crate::{
    audit,
    jobs::{self, Job},
    messaging::Messaging,
};

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct AuditCheckpoint {}

impl Job for AuditCheckpoint {
    const QUEUE: &'static str = "audit-checkpoint";
}

/// How often chain heads are recorded: what truncation could hide is at most this much.
pub const EVERY: Duration = Duration::from_secs(10 * 60);

#[tracing::instrument(skip_all)]
pub async fn audit_checkpoint(
    _: AuditCheckpoint,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let mut tx = messaging.pool.begin().await?;
    jobs::lock_recurring::<AuditCheckpoint>(&mut tx).await?;
    audit::checkpoint(&mut tx).await?;
    jobs::schedule_recurring::<AuditCheckpoint>(&mut tx, EVERY).await?;
    tx.commit().await?;
    Ok(())
}
