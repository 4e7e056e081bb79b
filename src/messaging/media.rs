//! Photos, documents and voice notes people send: fetched from the provider with its credentials
//! into `FIELDLINE_DATA_DIR/media/<tenant>/`, never more than `MEDIA_MAX_BYTES`.

use std::{path::PathBuf, sync::Arc};

use anyhow::{Context, bail};
use apalis::prelude::{BoxDynError, Data};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWriteExt;
use uuid::Uuid;

use super::Messaging;
use crate::{channels::meta, jobs::Job};

#[derive(Debug, Serialize, Deserialize)]
pub struct FetchMedia {
    pub tenant_id: Uuid,
    pub media_id: Uuid,
}

impl Job for FetchMedia {
    const QUEUE: &'static str = "fetch-media";
}

#[derive(sqlx::FromRow)]
struct Pending {
    provider: String,
    provider_media_id: Option<String>,
    provider_url: Option<String>,
    content_type: Option<String>,
    fetched_at: Option<chrono::DateTime<chrono::Utc>>,
}

fn extension(content_type: Option<&str>) -> &'static str {
    match content_type
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
    {
        "image/jpeg" => "jpg",
        "image/png" => "png",
        "image/webp" => "webp",
        "image/gif" => "gif",
        "application/pdf" => "pdf",
        "audio/ogg" => "ogg",
        "audio/mpeg" => "mp3",
        "audio/amr" => "amr",
        "audio/mp4" => "m4a",
        "video/mp4" => "mp4",
        "video/3gpp" => "3gp",
        _ => "bin",
    }
}

#[tracing::instrument(skip_all, fields(media_id = %job.media_id, tenant_id = %job.tenant_id))]
pub async fn fetch_media(
    job: FetchMedia,
    messaging: Data<Arc<Messaging>>,
) -> Result<(), BoxDynError> {
    let pending: Option<Pending> = sqlx::query_as(
        "SELECT m.provider, mm.provider_media_id, mm.provider_url, mm.content_type, mm.fetched_at
         FROM message_media mm JOIN messages m ON m.tenant_id = mm.tenant_id AND m.id = mm.message_id
         WHERE mm.tenant_id = $1 AND mm.id = $2",
    )
    .bind(job.tenant_id)
    .bind(job.media_id)
    .fetch_optional(&messaging.pool)
    .await?;
    let Some(pending) = pending else {
        return Ok(());
    };
    if pending.fetched_at.is_some() {
        return Ok(());
    }
    match download(&messaging, &job, &pending).await {
        Ok((path, size, content_type)) => {
            sqlx::query(
                "UPDATE message_media SET storage_path = $3, size_bytes = $4, fetched_at = now(),
                     content_type = COALESCE(content_type, $5), fetch_error = NULL
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.tenant_id)
            .bind(job.media_id)
            .bind(path.display().to_string())
            .bind(size as i64)
            .bind(content_type)
            .execute(&messaging.pool)
            .await?;
            tracing::info!(size, path = %path.display(), "media fetched");
            Ok(())
        }
        Err(error) => {
            let message = format!("{error:#}");
            sqlx::query(
                "UPDATE message_media SET fetch_error = $3 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.tenant_id)
            .bind(job.media_id)
            .bind(&message)
            .execute(&messaging.pool)
            .await?;
            // Too large or no credentials will not get better; a network error might.
            if error.downcast_ref::<reqwest::Error>().is_some() {
                Err(error.into())
            } else {
                tracing::warn!(%message, "media not fetched");
                Ok(())
            }
        }
    }
}

async fn download(
    messaging: &Messaging,
    job: &FetchMedia,
    pending: &Pending,
) -> anyhow::Result<(PathBuf, u64, Option<String>)> {
    let config = &messaging.config;
    let cap = config.media_max_bytes;
    let (request, content_type) = match pending.provider.as_str() {
        "twilio" => {
            let twilio = config.twilio.as_ref().context("Twilio is not configured")?;
            let url = pending
                .provider_url
                .as_deref()
                .context("Twilio gave no media URL")?;
            (
                messaging
                    .http
                    .get(url)
                    .basic_auth(&twilio.account_sid, Some(twilio.auth_token.expose())),
                pending.content_type.clone(),
            )
        }
        "meta" => {
            let meta_config = config.meta.as_ref().context("Meta is not configured")?;
            let media_id = pending
                .provider_media_id
                .as_deref()
                .context("Meta gave no media id")?;
            let info = meta::media_info(&messaging.http, meta_config, media_id).await?;
            if info.file_size.is_some_and(|size| size > cap) {
                bail!("the file is larger than MEDIA_MAX_BYTES ({cap} bytes)");
            }
            (
                messaging
                    .http
                    .get(info.url)
                    .bearer_auth(meta_config.access_token.expose()),
                pending.content_type.clone().or(info.mime_type),
            )
        }
        _ => bail!("the console channel has no files to fetch"),
    };
    let response = request.send().await?.error_for_status()?;
    if response.content_length().is_some_and(|len| len > cap) {
        bail!("the file is larger than MEDIA_MAX_BYTES ({cap} bytes)");
    }
    let dir = config
        .data_dir
        .join("media")
        .join(job.tenant_id.to_string());
    tokio::fs::create_dir_all(&dir)
        .await
        .with_context(|| format!("creating {}", dir.display()))?;
    let path = dir.join(format!(
        "{}.{}",
        job.media_id,
        extension(content_type.as_deref())
    ));
    let partial = path.with_extension("part");
    let mut file = tokio::fs::File::create(&partial).await?;
    let mut size = 0u64;
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk?;
        size += chunk.len() as u64;
        if size > cap {
            drop(file);
            let _ = tokio::fs::remove_file(&partial).await;
            bail!("the file is larger than MEDIA_MAX_BYTES ({cap} bytes)");
        }
        file.write_all(&chunk).await?;
    }
    file.flush().await?;
    tokio::fs::rename(&partial, &path).await?;
    Ok((path, size, content_type))
}
