//! The provider seam: what differs between Twilio, Meta and the console when a message is sent,
//! when a lost send is asked after, and when a file someone sent is fetched. Callers name a
//! [`Provider`]; only this module picks its client, credentials and hosts.

use anyhow::{Context, bail};

use super::{Accepted, Outgoing, OutgoingBody, Provider, SendError, console, meta, twilio};
use crate::config::Config;

/// Hands `message` to its provider (the console when no provider has credentials).
pub async fn send(
    http: &reqwest::Client,
    config: &Config,
    provider: Provider,
    message: &Outgoing,
) -> Result<Accepted, SendError> {
    // With no provider credentials at all (a laptop, a demo), every number is the console's.
    // With some configured, a channel of an unconfigured provider fails loudly instead.
    if config.twilio.is_none() && config.meta.is_none() {
        return Ok(console::send(message));
    }
    match provider {
        Provider::Console => Ok(console::send(message)),
        Provider::Twilio => match &config.twilio {
            Some(twilio) => {
                let callback = format!(
                    "{}/webhooks/twilio/status",
                    config.public_base_url.as_str().trim_end_matches('/')
                );
                twilio::send(http, twilio, &callback, message).await
            }
            None => Err(not_configured(
                "Twilio",
                "TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN",
            )),
        },
        Provider::Meta => match &config.meta {
            Some(meta) => meta::send(http, meta, message).await,
            None => Err(not_configured(
                "Meta",
                "META_APP_SECRET, META_VERIFY_TOKEN and META_ACCESS_TOKEN",
            )),
        },
    }
}

fn not_configured(provider: &str, variables: &str) -> SendError {
    SendError::permanent(
        "provider_not_configured",
        format!("{provider} is not configured: set {variables}"),
    )
}

/// What the provider says of a message whose earlier attempt ended without our record of its
/// answer.
pub enum Earlier {
    /// The provider has it: record that, send nothing.
    Accepted(Accepted),
    /// The provider does not have it: send it.
    NotSent,
    /// The provider cannot be asked (Meta has no list of sent messages; a template's text is
    /// rendered by Twilio and cannot be matched).
    Unknown,
}

/// Asks the provider whether an earlier attempt of this message got through.
pub async fn earlier_attempt(
    http: &reqwest::Client,
    config: &Config,
    provider: Provider,
    message: &Outgoing,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Earlier, SendError> {
    if config.console_only() || provider == Provider::Console {
        // The console delivers into the database: sending again is harmless.
        return Ok(Earlier::NotSent);
    }
    match (provider, &config.twilio) {
        (Provider::Twilio, Some(twilio)) => Ok(
            match twilio::find_sent(http, twilio, message, since).await? {
                Some(accepted) => Earlier::Accepted(accepted),
                None if matches!(message.body, OutgoingBody::Text(_)) => Earlier::NotSent,
                None => Earlier::Unknown,
            },
        ),
        _ => Ok(Earlier::Unknown),
    }
}

/// Where a file someone sent can be fetched from, as the webhook said.
pub struct MediaSource<'a> {
    pub provider: Provider,
    /// Twilio's media URL.
    pub url: Option<&'a str>,
    /// Meta's media id.
    pub media_id: Option<&'a str>,
    pub content_type: Option<String>,
}

/// The authenticated request for a file, and its content type where known. A file Meta says is
/// larger than `cap` bytes is refused before it is requested.
pub async fn media_request(
    http: &reqwest::Client,
    config: &Config,
    source: MediaSource<'_>,
    cap: u64,
) -> anyhow::Result<(reqwest::RequestBuilder, Option<String>)> {
    match source.provider {
        Provider::Twilio => {
            let twilio = config.twilio.as_ref().context("Twilio is not configured")?;
            let url = source.url.context("Twilio gave no media URL")?;
            let url = credentials_may_go_to(url, &twilio.api_base, TWILIO_MEDIA_HOSTS)?;
            Ok((
                http.get(url)
                    .basic_auth(&twilio.account_sid, Some(twilio.auth_token.expose())),
                source.content_type,
            ))
        }
        Provider::Meta => {
            let meta_config = config.meta.as_ref().context("Meta is not configured")?;
            let media_id = source.media_id.context("Meta gave no media id")?;
            let info = meta::media_info(http, meta_config, media_id).await?;
            if info.file_size.is_some_and(|size| size > cap) {
                bail!("the file is larger than MEDIA_MAX_BYTES ({cap} bytes)");
            }
            let url = credentials_may_go_to(&info.url, &meta_config.graph_base, META_MEDIA_HOSTS)?;
            Ok((
                http.get(url).bearer_auth(meta_config.access_token.expose()),
                source.content_type.or(info.mime_type),
            ))
        }
        Provider::Console => bail!("the console channel has no files to fetch"),
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
}
