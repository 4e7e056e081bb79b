//! Typed settings from the environment, validated once at start.

use std::{fmt, net::IpAddr, path::PathBuf, str::FromStr, time::Duration};

use anyhow::{Context, bail};
use url::Url;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@localhost:5432/fieldline";

/// The pool's default size, about four a core: each PostgreSQL backend warms its own caches and
/// plans, so a pool larger than the machine can keep busy costs more than it gives (measured in
/// docs/performance.md). Larger machines can set more.
pub const DEFAULT_DATABASE_CONNECTIONS: u32 = 8;

/// A value that must never reach a log line: `Debug` and `Display` print a placeholder.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// A database URL whose password is hidden whenever it is printed.
#[derive(Clone)]
pub struct DatabaseUrl(Url);

impl DatabaseUrl {
    pub fn parse(raw: &str) -> anyhow::Result<Self> {
        let url = Url::parse(raw).context(
            "DATABASE_URL is not a URL (expected postgres://user:password@host:port/database)",
        )?;
        if !matches!(url.scheme(), "postgres" | "postgresql") {
            bail!(
                "DATABASE_URL must start with postgres:// (got {}://)",
                url.scheme()
            );
        }
        if url.path().trim_start_matches('/').is_empty() {
            bail!("DATABASE_URL names no database (add /fieldline at the end)");
        }
        Ok(Self(url))
    }

    pub fn expose(&self) -> &str {
        self.0.as_str()
    }

    pub fn database_name(&self) -> &str {
        self.0.path().trim_start_matches('/')
    }

    /// A server on this machine (by name or address) and no TLS mode asked for, in the URL or in
    /// `PGSSLMODE`: TLS there would protect nothing (see `db::connect`).
    pub fn loopback_without_ssl_mode(&self) -> bool {
        // `postgres:` is not a scheme the url crate knows, so every host comes as a name.
        let loopback = self.0.host_str().is_some_and(|host| {
            host.eq_ignore_ascii_case("localhost")
                || host
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .parse::<std::net::IpAddr>()
                    .is_ok_and(|ip| ip.is_loopback())
        });
        let asked = self.0.query_pairs().any(|(key, _)| key == "sslmode")
            || std::env::var_os("PGSSLMODE").is_some();
        loopback && !asked
    }

    /// The same server, another database: used to create the service's database when it is missing.
    pub fn with_database(&self, name: &str) -> Self {
        let mut url = self.0.clone();
        url.set_path(&format!("/{name}"));
        Self(url)
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut url = self.0.clone();
        if url.password().is_some() {
            let _ = url.set_password(Some("****"));
        }
        f.write_str(url.as_str())
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({self})")
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// Who may tell us the client's address. Behind a proxy every connection comes from the proxy,
/// so per-address limits need the header it sets; without one, that header is anyone's word.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TrustedProxy {
    /// The socket's peer is the client.
    None,
    /// Fly.io's proxy: `Fly-Client-IP`.
    Fly,
    /// One proxy in front that appends to `X-Forwarded-For`: its last entry.
    XForwardedFor,
}

#[derive(Clone, Debug)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: Secret,
    pub api_base: Url,
}

#[derive(Clone, Debug)]
pub struct MetaConfig {
    pub app_secret: Secret,
    pub verify_token: Secret,
    pub access_token: Secret,
    pub graph_base: Url,
}

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: DatabaseUrl,
    pub host: IpAddr,
    pub port: u16,
    pub public_base_url: Url,
    pub data_dir: PathBuf,
    pub log_format: LogFormat,
    pub database_max_connections: u32,
    pub max_body_bytes: usize,
    pub request_timeout: Duration,
    /// A request's headers must arrive within this (the first and each next on a connection).
    pub header_timeout: Duration,
    /// Open connections at most; `None`: the open-file limit less a reserve.
    pub max_connections: Option<usize>,
    pub shutdown_timeout: Duration,
    pub panel_session_ttl: Duration,
    pub message_templates_dir: PathBuf,
    /// The words people use, per locale (`intents/en.toml`, …), checked at start.
    pub intents_dir: PathBuf,
    pub provider_timeout: Duration,
    pub outbound_per_number_per_second: u32,
    pub send_max_attempts: u32,
    pub send_retry_base: Duration,
    /// Provider calls one process makes at once.
    pub send_concurrency: usize,
    pub media_max_bytes: u64,
    /// Off: this process serves HTTP only, and workers run in another (`JOB_WORKERS=off`).
    pub run_job_workers: bool,
    /// How often due preventive maintenance is looked for.
    pub preventive_sweep_interval: Duration,
    /// How often recurring visits are generated ahead.
    pub visit_schedule_interval: Duration,
    pub twilio: Option<TwilioConfig>,
    pub meta: Option<MetaConfig>,
    pub trusted_proxy: TrustedProxy,
    /// `/metrics` answers only `Authorization: Bearer <this>`, and is off without it.
    pub metrics_token: Option<Secret>,
    /// Where the panel's maps get their tiles (`{z}/{x}/{y}` in the URL); `None` draws positions
    /// on a plain background only.
    pub map_tiles: Option<MapTiles>,
}

/// A map tile server the operator chose.
#[derive(Clone, Debug)]
pub struct MapTiles {
    /// e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png
    pub url: String,
    /// Its origin, which the panel's content security policy lets images come from.
    pub origin: String,
    /// The credit the tile server asks for.
    pub attribution: String,
}

impl MapTiles {
    fn parse(url: &str, attribution: Option<String>) -> anyhow::Result<Self> {
        let parsed = Url::parse(&url.replace(['{', '}'], "")).with_context(|| {
            format!("MAP_TILE_URL must be an http(s) URL with {{z}}, {{x}} and {{y}} (got {url:?})")
        })?;
        if !matches!(parsed.scheme(), "https" | "http")
            || !["{z}", "{x}", "{y}"].iter().all(|p| url.contains(p))
        {
            bail!("MAP_TILE_URL must be an http(s) URL with {{z}}, {{x}} and {{y}} (got {url:?})");
        }
        Ok(Self {
            url: url.to_owned(),
            origin: parsed.origin().ascii_serialization(),
            attribution: attribution.unwrap_or_else(|| "© OpenStreetMap contributors".into()),
        })
    }
}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_lookup(|key| std::env::var(key).ok().filter(|v| !v.trim().is_empty()))
    }

    /// Reads settings through `lookup`, so tests can supply their own environment.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> anyhow::Result<Self> {
        let database_url = DatabaseUrl::parse(
            &lookup("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned()),
        )?;
        let port: u16 = parse_or(&lookup, "PORT", 8080)?;
        let host: IpAddr = parse_or(&lookup, "HOST", IpAddr::from([127, 0, 0, 1]))?;
        let public_base_url = match lookup("PUBLIC_BASE_URL") {
            Some(raw) => {
                let url = Url::parse(raw.trim_end_matches('/'))
                    .with_context(|| format!("PUBLIC_BASE_URL is not a URL: {raw:?} (expected https://fieldline.example.org)"))?;
                if !matches!(url.scheme(), "http" | "https") {
                    bail!("PUBLIC_BASE_URL must be http:// or https:// (got {raw:?})");
                }
                url
            }
            None => Url::parse(&format!("http://localhost:{port}")).expect("a valid URL"),
        };
        let log_format = match lookup("LOG_FORMAT").as_deref() {
            None | Some("text") => LogFormat::Text,
            Some("json") => LogFormat::Json,
            Some(other) => bail!("LOG_FORMAT must be text or json (got {other:?})"),
        };

        let twilio = match (lookup("TWILIO_ACCOUNT_SID"), lookup("TWILIO_AUTH_TOKEN")) {
            (None, None) => None,
            (Some(account_sid), Some(auth_token)) => Some(TwilioConfig {
                account_sid,
                auth_token: Secret::new(auth_token),
                api_base: parse_url_or(&lookup, "TWILIO_API_BASE", "https://api.twilio.com")?,
            }),
            _ => bail!("set both TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN, or neither"),
        };
        let meta = match (
            lookup("META_APP_SECRET"),
            lookup("META_VERIFY_TOKEN"),
            lookup("META_ACCESS_TOKEN"),
        ) {
            (None, None, None) => None,
            (Some(app_secret), Some(verify_token), Some(access_token)) => Some(MetaConfig {
                app_secret: Secret::new(app_secret),
                verify_token: Secret::new(verify_token),
                access_token: Secret::new(access_token),
                graph_base: parse_url_or(
                    &lookup,
                    "META_GRAPH_BASE",
                    "https://graph.facebook.com/v23.0",
                )?,
            }),
            _ => bail!(
                "set all of META_APP_SECRET, META_VERIFY_TOKEN and META_ACCESS_TOKEN, or none"
            ),
        };

        let database_max_connections = parse_or(
            &lookup,
            "DATABASE_MAX_CONNECTIONS",
            DEFAULT_DATABASE_CONNECTIONS,
        )?;
        Ok(Self {
            database_url,
            host,
            port,
            public_base_url,
            data_dir: lookup("FIELDLINE_DATA_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from("data")),
            log_format,
            database_max_connections,
            max_body_bytes: parse_or(&lookup, "MAX_BODY_BYTES", 1024 * 1024)?,
            request_timeout: Duration::from_secs(parse_or(&lookup, "REQUEST_TIMEOUT_SECS", 30)?),
            header_timeout: match parse_or(&lookup, "HTTP_HEADER_TIMEOUT_SECS", 10u64)? {
                0 => bail!("HTTP_HEADER_TIMEOUT_SECS must be at least 1"),
                secs => Duration::from_secs(secs),
            },
            max_connections: match lookup("MAX_CONNECTIONS") {
                None => None,
                Some(_) => match parse_or(&lookup, "MAX_CONNECTIONS", 0usize)? {
                    0 => bail!(
                        "MAX_CONNECTIONS must be at least 1 (unset: the open-file limit less a reserve)"
                    ),
                    cap => Some(cap),
                },
            },
            shutdown_timeout: Duration::from_secs(parse_or(&lookup, "SHUTDOWN_TIMEOUT_SECS", 30)?),
            panel_session_ttl: Duration::from_secs(parse_or(
                &lookup,
                "PANEL_SESSION_TTL_SECS",
                12 * 60 * 60,
            )?),
            message_templates_dir: lookup("MESSAGE_TEMPLATES_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(default_templates_dir),
            intents_dir: lookup("INTENTS_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| source_or_local("intents")),
            provider_timeout: Duration::from_secs(parse_or(&lookup, "PROVIDER_TIMEOUT_SECS", 15)?),
            outbound_per_number_per_second: parse_or(
                &lookup,
                "OUTBOUND_PER_NUMBER_PER_SECOND",
                20,
            )?,
            send_max_attempts: parse_or(&lookup, "SEND_MAX_ATTEMPTS", 8)?,
            send_retry_base: Duration::from_millis(parse_or(
                &lookup,
                "SEND_RETRY_BASE_MS",
                10_000,
            )?),
            media_max_bytes: parse_or(&lookup, "MEDIA_MAX_BYTES", 16 * 1024 * 1024)?,
            send_concurrency: match parse_or(&lookup, "SEND_CONCURRENCY", 32)? {
                0 => bail!("SEND_CONCURRENCY must be at least 1"),
                n => n,
            },
            preventive_sweep_interval: Duration::from_secs(parse_or(
                &lookup,
                "PREVENTIVE_SWEEP_SECS",
                3600,
            )?),
            visit_schedule_interval: Duration::from_secs(parse_or(
                &lookup,
                "VISIT_SCHEDULE_SECS",
                3600,
            )?),
            run_job_workers: match lookup("JOB_WORKERS").as_deref() {
                None | Some("on") => true,
                Some("off") => false,
                Some(other) => bail!("JOB_WORKERS must be on or off (got {other:?})"),
            },
            twilio,
            meta,
            trusted_proxy: match lookup("TRUSTED_PROXY").as_deref() {
                None | Some("none") => TrustedProxy::None,
                Some("fly") => TrustedProxy::Fly,
                Some("x-forwarded-for") => TrustedProxy::XForwardedFor,
                Some(other) => {
                    bail!("TRUSTED_PROXY must be none, fly or x-forwarded-for (got {other:?})")
                }
            },
            // Empty is unset, as in a `.env` line left blank.
            metrics_token: match lookup("METRICS_TOKEN").filter(|token| !token.is_empty()) {
                Some(token) if token.len() < 16 => {
                    bail!("METRICS_TOKEN must be at least 16 characters")
                }
                token => token.map(Secret::new),
            },
            map_tiles: match lookup("MAP_TILE_URL").as_deref() {
                Some("off") => None,
                url => Some(MapTiles::parse(
                    url.unwrap_or("https://tile.openstreetmap.org/{z}/{x}/{y}.png"),
                    lookup("MAP_ATTRIBUTION"),
                )?),
            },
        })
    }

    /// No provider credentials at all: a laptop or a demo, where the console channel delivers.
    pub fn console_only(&self) -> bool {
        self.twilio.is_none() && self.meta.is_none()
    }

    /// Cookies get `Secure` when people reach the service over https.
    pub fn serves_https(&self) -> bool {
        self.public_base_url.scheme() == "https"
    }
}

fn default_templates_dir() -> PathBuf {
    source_or_local("message-templates")
}

/// `./name` when run from a checkout or the container; else the source tree's copy.
fn source_or_local(name: &str) -> PathBuf {
    let local = PathBuf::from(name);
    if local.is_dir() {
        local
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(name)
    }
}

fn parse_or<T>(lookup: &impl Fn(&str) -> Option<String>, key: &str, default: T) -> anyhow::Result<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match lookup(key) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e| anyhow::anyhow!("{key}={raw:?} is not valid: {e}")),
    }
}

fn parse_url_or(
    lookup: &impl Fn(&str) -> Option<String>,
    key: &str,
    default: &str,
) -> anyhow::Result<Url> {
    let raw = lookup(key).unwrap_or_else(|| default.to_owned());
    Url::parse(raw.trim_end_matches('/')).with_context(|| format!("{key} is not a URL: {raw:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn config(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_lookup(|key| map.get(key).cloned())
    }

    #[test]
    fn tls_is_skipped_only_for_a_loopback_server_with_no_mode_asked_for() {
        let url = |raw: &str| DatabaseUrl::parse(raw).unwrap();
        if std::env::var_os("PGSSLMODE").is_none() {
            assert!(url("postgres://postgres@localhost:5432/f").loopback_without_ssl_mode());
            assert!(url("postgres://postgres@127.0.0.1/f").loopback_without_ssl_mode());
            assert!(url("postgres://postgres@[::1]/f").loopback_without_ssl_mode());
        }
        assert!(
            !url("postgres://postgres@localhost/f?sslmode=require").loopback_without_ssl_mode()
        );
        assert!(!url("postgres://app@db.internal:5432/f").loopback_without_ssl_mode());
        assert!(!url("postgres://app@10.0.0.5/f").loopback_without_ssl_mode());
    }

    #[test]
    fn defaults_point_at_local_postgres_and_port_8080() {
        let config = config(&[]).unwrap();
        assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(config.port, 8080);
        assert_eq!(config.public_base_url.as_str(), "http://localhost:8080/");
        assert!(config.twilio.is_none() && config.meta.is_none());
    }

    #[test]
    fn map_tiles_default_to_openstreetmap_can_be_changed_or_turned_off() {
        let tiles = config(&[]).unwrap().map_tiles.unwrap();
        assert_eq!(tiles.origin, "https://tile.openstreetmap.org");
        let own = config(&[("MAP_TILE_URL", "https://maps.example.org/t/{z}/{x}/{y}.png")])
            .unwrap()
            .map_tiles
            .unwrap();
        assert_eq!(own.origin, "https://maps.example.org");
        assert!(
            config(&[("MAP_TILE_URL", "off")])
                .unwrap()
                .map_tiles
                .is_none()
        );
        let refused = config(&[("MAP_TILE_URL", "https://maps.example.org/tile.png")]).unwrap_err();
        assert!(
            refused.to_string().contains("{z}, {x} and {y}"),
            "{refused}"
        );
    }

    #[test]
    fn database_password_and_secrets_never_print() {
        let config = config(&[
            ("DATABASE_URL", "postgres://app:hunter2@db:5432/fieldline"),
            ("TWILIO_ACCOUNT_SID", "AC123"),
            ("TWILIO_AUTH_TOKEN", "twilio-secret"),
        ])
        .unwrap();
        let printed = format!("{config:?} {}", config.database_url);
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("twilio-secret"), "{printed}");
        assert!(printed.contains("postgres://app:****@db:5432/fieldline"));
    }

    #[test]
    fn half_configured_providers_are_refused() {
        let err = config(&[("TWILIO_ACCOUNT_SID", "AC123")]).unwrap_err();
        assert!(err.to_string().contains("TWILIO_AUTH_TOKEN"), "{err}");
        let err = config(&[("META_APP_SECRET", "x")]).unwrap_err();
        assert!(err.to_string().contains("META_VERIFY_TOKEN"), "{err}");
    }

    #[test]
    fn bad_values_name_the_variable() {
        let err = config(&[("PORT", "eighty")]).unwrap_err();
        assert!(err.to_string().contains("PORT"), "{err}");
        let err = config(&[("LOG_FORMAT", "xml")]).unwrap_err();
        assert!(err.to_string().contains("LOG_FORMAT"), "{err}");
        let err = config(&[("DATABASE_URL", "mysql://x/y")]).unwrap_err();
        assert!(err.to_string().contains("postgres://"), "{err}");
    }
}
