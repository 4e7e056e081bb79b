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

/// Where Twilio serves media people send (https only); the configured API base is trusted too.
const TWILIO_MEDIA_HOSTS: &[&str] = &["api.twilio.com", "media.twiliocdn.com"];
/// Where Meta hands out media downloads (https only), besides the configured Graph base.
const META_MEDIA_HOSTS: &[&str] = &["lookaside.fbsbx.com", "graph.facebook.com"];

/// A media URL from a webhook is the sender's word: the provider's credentials go only to the
/// provider's own hosts over https, or to the configured API base (a local fake in tests).
/// Anything else is refused, so a forged or odd URL never receives our account's secret.
#[derive(Debug, thiserror::Error)]
#[error("refused to send provider credentials to {0}: not one of the provider's media hosts")]
pub struct UntrustedMediaUrl(String);

fn credentials_may_go_to(
    raw: &str,
    api_base: &url::Url,
    hosts: &[&str],
) -> Result<url::Url, UntrustedMediaUrl> {
    let refuse = || {
        tracing::warn!(
            url = raw,
            "media URL outside the provider's hosts: not fetched"
        );
        UntrustedMediaUrl(raw.chars().take(200).collect())
    };
    let url = url::Url::parse(raw).map_err(|_| refuse())?;
    let same_origin_as_base = url.origin() == api_base.origin();
    let provider_host = url.scheme() == "https"
        && url.port().is_none()
        && url.host_str().is_some_and(|h| hosts.contains(&h));
    if (same_origin_as_base || provider_host)
        && url.username().is_empty()
        && url.password().is_none()
    {
        Ok(url)
    } else {
        Err(refuse())
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
            let mut tx = messaging.pool.begin().await?;
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
    let (request, content_type) = match pending.provider.as_str() {
        "twilio" => {
            let twilio = config.twilio.as_ref().context("Twilio is not configured")?;
            let url = pending
                .provider_url
                .as_deref()
                .context("Twilio gave no media URL")?;
            let url = credentials_may_go_to(url, &twilio.api_base, TWILIO_MEDIA_HOSTS)?;
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
            let url = credentials_may_go_to(&info.url, &meta_config.graph_base, META_MEDIA_HOSTS)?;
            (
                messaging
                    .http
                    .get(url)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_go_only_to_the_providers_hosts() {
        let base = url::Url::parse("https://api.twilio.com").unwrap();
        let ok = |u: &str| credentials_may_go_to(u, &base, TWILIO_MEDIA_HOSTS).is_ok();
        assert!(ok(
            "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages/MM1/Media/ME1"
        ));
        assert!(ok("https://media.twiliocdn.com/AC1/abc"));
        assert!(!ok(
            "http://api.twilio.com/2010-04-01/Accounts/AC1/Media/ME1"
        ));
        assert!(!ok("https://api.twilio.com.evil.example/x"));
        assert!(!ok("https://evil.example/api.twilio.com"));
        assert!(!ok("https://user:pw@api.twilio.com/x"));
        assert!(!ok("https://api.twilio.com:8443/x"));
        assert!(!ok("not a url"));
        let local = url::Url::parse("http://127.0.0.1:4010").unwrap();
        assert!(credentials_may_go_to("http://127.0.0.1:4010/media/1", &local, &[]).is_ok());
        assert!(credentials_may_go_to("http://127.0.0.1:4011/media/1", &local, &[]).is_err());
    }

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
