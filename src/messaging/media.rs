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
use crate::{
    audit,
    channels::{
        Provider,
        providers::{self, MediaSource},
    },
    jobs::Job,
};

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
    fetch_attempts: i32,
}

/// The raster image type the bytes are, by their signature; `None` for anything else.
pub fn raster_image_type(bytes: &[u8]) -> Option<&'static str> {
    match bytes {
        [0xFF, 0xD8, 0xFF, ..] => Some("image/jpeg"),
        [0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, ..] => Some("image/png"),
        [b'G', b'I', b'F', b'8', b'7' | b'9', b'a', ..] => Some("image/gif"),
        [
            b'R',
            b'I',
            b'F',
            b'F',
            _,
            _,
            _,
            _,
            b'W',
            b'E',
            b'B',
            b'P',
            ..,
        ] => Some("image/webp"),
        _ => None,
    }
}

pub fn extension(content_type: Option<&str>) -> &'static str {
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
        "SELECT m.provider, mm.provider_media_id, mm.provider_url, mm.content_type, mm.fetched_at,
                mm.fetch_attempts
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
            let attempt = pending.fetch_attempts + 1;
            // Too large or no credentials will not get better; a network error or a provider
            // error might: tried again after growing pauses, as sends are, and counted.
            let again = error.downcast_ref::<reqwest::Error>().is_some()
                && (attempt as u32) < messaging.config.send_max_attempts;
            let mut tx = audit::begin(&messaging.pool, audit::Actor::System).await?;
            sqlx::query(
                "UPDATE message_media SET fetch_error = $3, fetch_attempts = $4
                 WHERE tenant_id = $1 AND id = $2",
            )
            .bind(job.tenant_id)
            .bind(job.media_id)
            .bind(&message)
            .bind(attempt)
            .execute(&mut *tx)
            .await?;
            if again {
                let delay = super::send::retry_delay(
                    messaging.config.send_retry_base,
                    attempt as u32,
                    None,
                );
                crate::jobs::enqueue(&mut tx, &job, delay).await?;
                tracing::warn!(%message, attempt, delay_ms = delay.as_millis() as u64, "media not fetched: will try again");
            } else {
                tracing::warn!(%message, attempt, "media not fetched");
            }
            tx.commit().await?;
            Ok(())
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
    let provider: Provider = pending.provider.parse().map_err(anyhow::Error::msg)?;
    let source = MediaSource {
        provider,
        url: pending.provider_url.as_deref(),
        media_id: pending.provider_media_id.as_deref(),
        content_type: pending.content_type.clone(),
    };
    let (request, content_type) =
        providers::media_request(&messaging.http, config, source, cap).await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_raster_signatures_count_as_images() {
        assert_eq!(
            raster_image_type(b"\xFF\xD8\xFF\xE0rest"),
            Some("image/jpeg")
        );
        assert_eq!(
            raster_image_type(b"\x89PNG\r\n\x1A\nrest"),
            Some("image/png")
        );
        assert_eq!(raster_image_type(b"GIF89a..."), Some("image/gif"));
        assert_eq!(
            raster_image_type(b"RIFF\0\0\0\0WEBPVP8 "),
            Some("image/webp")
        );
        for other in [
            &b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>"[..],
            b"<html><script>",
            b"%PDF-1.7",
            b"",
        ] {
            assert_eq!(raster_image_type(other), None);
        }
    }
}
