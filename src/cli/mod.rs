//! The command line: `fieldline serve | migrate | seed-demo | tenant | user | token | channel | simulate`.

use std::{
    io::{BufRead, IsTerminal},
    sync::Arc,
    time::Duration,
};

mod simulate;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sqlx::PgPool;

use crate::{
    app::{self, Application},
    audit::{self, Actor},
    channels::{ChannelKind, Content},
    config::{Config, LogFormat},
    db,
    domains::{
        self,
        tenancy::{self, NewTenant, Role},
    },
    messaging::{
        MessageKind, Messaging,
        channels::{self, NewChannel},
    },
    seed, telemetry,
    types::{Coordinates, Email, Locale, PhoneNumber, Slug, TimeZone},
};

#[derive(Debug, Parser)]
#[command(
    name = "fieldline",
    version,
    about = "Fieldline: work orders, home visits, ambulance trips and patient feedback over WhatsApp and SMS",
    long_about = "Fieldline: work orders, home visits, ambulance trips and patient feedback over WhatsApp and SMS.\n\n\
                  Settings come from the environment (see .env.example); with none, it uses the local PostgreSQL \
                  at postgres://postgres@localhost:5432/fieldline and serves on port 8080."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server and the job workers (the default when no command is given).
    Serve {
        /// Create or refresh the demo organisation first, and print how to sign in.
        #[arg(long)]
        seed_demo: bool,
    },
    /// Create the database if it is missing and apply every migration, then exit.
    Migrate,
    /// Create (or refresh) a demo organisation in Addis Ababa and print its sign-in and an API token.
    SeedDemo {
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Manage organisations (tenants).
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Manage coordinator and admin accounts for the panel.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage API tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage the numbers an organisation sends from and receives on.
    Channel {
        #[command(subcommand)]
        command: ChannelCommand,
    },
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Send a message as if someone wrote to the organisation's console channel, and print the
    /// replies it caused. Goes through the same pipeline as a real webhook.
    Simulate {
        /// The organisation's slug.
        #[arg(long)]
        tenant: String,
        /// The sender's number, e.g. +251911000101.
        #[arg(long)]
        from: String,
        /// Write on the WhatsApp console channel instead of SMS.
        #[arg(long)]
        whatsapp: bool,
        /// Share a location instead of text: "LATITUDE,LONGITUDE".
        #[arg(long, conflicts_with_all = ["button", "text"])]
        location: Option<String>,
        /// Tap a reply button: its id (e.g. accept).
        #[arg(long, conflicts_with = "text")]
        button: Option<String>,
        /// How long to wait for the replies, in seconds.
        #[arg(long, default_value_t = 15)]
        wait: u64,
        /// The message text.
        text: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ChannelCommand {
    /// Add a number. Provider credentials come from the environment, never from here.
    Add {
        /// The organisation's slug.
        #[arg(long)]
        tenant: String,
        /// twilio, meta or console.
        #[arg(long)]
        provider: String,
        /// sms or whatsapp.
        #[arg(long)]
        kind: String,
        /// The number in E.164, e.g. +251911000000.
        #[arg(long)]
        number: String,
        /// Meta's phone number id (from WhatsApp Manager); required for --provider meta.
        #[arg(long)]
        provider_id: Option<String>,
        /// A name for the panel, e.g. "Dispatch line".
        #[arg(long)]
        name: Option<String>,
    },
    /// List an organisation's numbers.
    List {
        /// The organisation's slug.
        #[arg(long)]
        tenant: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TenantCommand {
    /// Create an organisation.
    Create {
        /// Display name, e.g. "Addis Home Care".
        #[arg(long)]
        name: String,
        /// Short name used in commands and sign-in: lowercase letters, digits, dashes.
        #[arg(long)]
        slug: String,
        /// IANA time zone that times are shown in.
        #[arg(long, default_value = "UTC")]
        timezone: String,
        /// Default language for messages (en, am, ...).
        #[arg(long, default_value = "en")]
        locale: String,
    },
    /// List organisations.
    List,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a panel account. Asks for the password on a terminal, or reads one line from stdin.
    Create {
        /// The organisation's slug.
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        email: String,
        #[arg(long, value_enum)]
        role: Role,
        /// The person's name, as the panel shows it.
        #[arg(long)]
        name: Option<String>,
        /// A number in E.164 that coordinator alerts are also sent to, by WhatsApp or SMS.
        #[arg(long)]
        phone: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk each organisation's hash chain and name the first entry that was edited, removed
    /// or reordered; exits 1 if any chain is broken.
    Verify {
        /// Only this organisation (its slug); without it, every organisation and the platform.
        #[arg(long)]
        tenant: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token for an organisation. It is printed once; only its hash is kept.
    Create {
        /// The organisation's slug.
        #[arg(long)]
        tenant: String,
        /// Who or what uses the token, e.g. "dispatch-integration".
        #[arg(long)]
        name: String,
        /// coordinator (the default) works with records; admin may also add numbers.
        #[arg(long, value_enum, default_value = "coordinator")]
        role: Role,
    },
}

pub fn run(cli: Cli) -> anyhow::Result<()> {
    let config = Config::from_env()?;
    let serving = matches!(cli.command, None | Some(Command::Serve { .. }));
    // Commands other than serve keep stderr quiet unless RUST_LOG asks for more.
    if serving || std::env::var_os("RUST_LOG").is_some() {
        telemetry::init_tracing(config.log_format);
    } else if config.log_format == LogFormat::Json {
        telemetry::init_tracing(LogFormat::Json);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(dispatch(
        cli.command.unwrap_or(Command::Serve { seed_demo: false }),
        config,
    ))
}

async fn dispatch(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve { seed_demo } => {
            let app = Application::build(config).await?;
            if seed_demo {
                let demo = seed::seed_demo(app.pool()).await?;
                eprintln!(
                    "{}",
                    demo.as_text(&format!("http://localhost:{}", app.port()))
                );
            }
            app.run_until(app::shutdown_signal()).await
        }
        Command::Audit {
            command: AuditCommand::Verify { tenant },
        } => {
            let pool = connect(&config).await?;
            let chains = match tenant {
                Some(slug) => vec![tenancy::find_tenant(&pool, &slug).await?.id],
                None => audit::chains(&pool).await?,
            };
            let mut broken = 0;
            for chain in chains {
                let report = audit::verify_chain(&pool, chain).await?;
                let name = if chain == audit::PLATFORM_CHAIN {
                    "platform".to_owned()
                } else {
                    sqlx::query_scalar::<_, String>("SELECT slug FROM tenants WHERE id = $1")
                        .bind(chain)
                        .fetch_optional(&pool)
                        .await?
                        .unwrap_or_else(|| chain.to_string())
                };
                match report.broken {
                    None => println!("{name}: ok, {} entries", report.rows),
                    Some(at) => {
                        broken += 1;
                        println!("{name}: BROKEN after {} good entries at {at}", report.rows);
                    }
                }
            }
            if broken > 0 {
                anyhow::bail!("{broken} audit chain(s) do not verify");
            }
            Ok(())
        }
        Command::Migrate => {
            connect(&config).await?;
            println!("migrations applied to {}", config.database_url);
            Ok(())
        }
        Command::SeedDemo { json } => {
            let pool = connect(&config).await?;
            let demo = seed::seed_demo(&pool).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&demo)?);
            } else {
                println!(
                    "{}",
                    demo.as_text(config.public_base_url.as_str().trim_end_matches('/'))
                );
            }
            Ok(())
        }
        Command::Tenant {
            command:
                TenantCommand::Create {
                    name,
                    slug,
                    timezone,
                    locale,
                },
        } => {
            let new = NewTenant {
                name,
                slug: Slug::parse(&slug)
                    .map_err(anyhow::Error::msg)
                    .context("--slug")?,
                time_zone: TimeZone::parse(&timezone)
                    .map_err(anyhow::Error::msg)
                    .context("--timezone")?,
                locale: Locale::parse(&locale)
                    .map_err(anyhow::Error::msg)
                    .context("--locale")?,
            };
            let pool = connect(&config).await?;
            let mut tx = audit::begin(&pool, Actor::Cli).await?;
            let tenant = tenancy::create_tenant(&mut tx, &new).await?;
            let number = channels::unused_console_number(&mut tx).await?;
            tx.commit().await?;
            println!(
                "created organisation {} ({}), id {}",
                tenant.name, tenant.slug, tenant.id
            );
            eprintln!(
                "next: give it a number to message from, e.g. `fieldline channel add --tenant {} --provider console --kind sms --number {number}`",
                tenant.slug
            );
            Ok(())
        }
        Command::Tenant {
            command: TenantCommand::List,
        } => {
            let pool = connect(&config).await?;
            for t in tenancy::list_tenants(&pool).await? {
                println!("{}\t{}\t{}\t{}", t.slug, t.name, t.time_zone, t.id);
            }
            Ok(())
        }
        Command::User {
            command:
                UserCommand::Create {
                    tenant,
                    email,
                    role,
                    name,
                    phone,
                },
        } => {
            let email = Email::parse(&email)
                .map_err(anyhow::Error::msg)
                .context("--email")?;
            let phone = phone
                .as_deref()
                .map(PhoneNumber::parse)
                .transpose()
                .map_err(anyhow::Error::msg)
                .context("--phone")?;
            let pool = connect(&config).await?;
            let tenant = tenancy::find_tenant(&pool, &tenant).await?;
            let password = read_password()?;
            let mut tx = audit::begin(&pool, Actor::Cli).await?;
            let id = tenancy::upsert_user(
                &mut tx,
                tenant.id,
                &email,
                name.as_deref(),
                role,
                &password,
                false,
            )
            .await?;
            tenancy::set_user_phone(&mut tx, tenant.id, id, phone.as_ref()).await?;
            tx.commit().await?;
            println!(
                "created {} {} in {}, id {id}",
                role.as_str(),
                email.as_str(),
                tenant.slug
            );
            Ok(())
        }
        Command::Token {
            command: TokenCommand::Create { tenant, name, role },
        } => {
            let pool = connect(&config).await?;
            let tenant = tenancy::find_tenant(&pool, &tenant).await?;
            let mut tx = audit::begin(&pool, Actor::Cli).await?;
            let (_, token) = tenancy::create_api_token(&mut tx, tenant.id, &name, role).await?;
            tx.commit().await?;
            eprintln!("API token for {} (shown once; store it now):", tenant.slug);
            println!("{token}");
            Ok(())
        }
        Command::Channel {
            command:
                ChannelCommand::Add {
                    tenant,
                    provider,
                    kind,
                    number,
                    provider_id,
                    name,
                },
        } => {
            let pool = connect(&config).await?;
            let tenant = tenancy::find_tenant(&pool, &tenant).await?;
            let input = NewChannel {
                provider,
                kind,
                phone_number: number,
                provider_id,
                display_name: name,
            };
            let mut tx = audit::begin(&pool, Actor::Cli).await?;
            let channel = channels::add(&mut tx, tenant.id, &input)
                .await
                .map_err(|e| anyhow::anyhow!(crate::http::error::AppError::from(e).explain()))?;
            tx.commit().await?;
            println!(
                "added {} {} channel {} to {}, id {}",
                channel.provider, channel.kind, channel.phone_number, tenant.slug, channel.id
            );
            Ok(())
        }
        Command::Channel {
            command: ChannelCommand::List { tenant },
        } => {
            let pool = connect(&config).await?;
            let tenant = tenancy::find_tenant(&pool, &tenant).await?;
            for c in channels::list(&mut *pool.acquire().await?, tenant.id).await? {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}",
                    c.provider,
                    c.kind,
                    c.phone_number,
                    c.provider_id.as_deref().unwrap_or("-"),
                    if c.active { "active" } else { "inactive" },
                    c.id
                );
            }
            Ok(())
        }
        Command::Simulate {
            tenant,
            from,
            whatsapp,
            location,
            button,
            wait,
            text,
        } => {
            let from = PhoneNumber::parse(&from)
                .map_err(anyhow::Error::msg)
                .context("--from")?;
            let content = match (location, button, text) {
                (Some(location), _, _) => {
                    let (lat, lon) = location
                        .split_once(',')
                        .context("--location takes LATITUDE,LONGITUDE, e.g. 9.0108,38.7613")?;
                    let at = Coordinates::new(lat.trim().parse()?, lon.trim().parse()?)
                        .map_err(|(_, why)| anyhow::anyhow!(why))?;
                    Content::Location { at, label: None }
                }
                (None, Some(id), _) => Content::Reply { id, title: None },
                (None, None, Some(text)) => Content::Text(text),
                (None, None, None) => {
                    anyhow::bail!("give the message text, --location or --button")
                }
            };
            // The job workers run in this process for the round trip: they need a full pool.
            let pool = db::connect(&config.database_url, config.database_max_connections).await?;
            db::migrate(&pool).await?;
            let tenant = tenancy::find_tenant(&pool, &tenant).await?;
            let messaging = Messaging::new(pool, Arc::new(config), domains::message_handlers())?;
            let kind = if whatsapp {
                ChannelKind::Whatsapp
            } else {
                ChannelKind::Sms
            };
            let replies = simulate::simulate(
                messaging,
                tenant.id,
                kind,
                from,
                content,
                Duration::from_secs(wait),
            )
            .await?;
            if replies.is_empty() {
                println!("(no reply)");
            }
            for reply in replies {
                let arrow = match &reply.to_other {
                    None => "<-".to_owned(),
                    Some(phone) => format!("-> {phone}"),
                };
                println!(
                    "{arrow} {} [{}] {}",
                    reply.kind,
                    reply.status,
                    reply.body.unwrap_or_default()
                );
                if let Some(buttons) = reply
                    .buttons
                    .filter(|_| reply.kind == MessageKind::Interactive)
                {
                    let buttons: Vec<crate::channels::Button> = serde_json::from_value(buttons)?;
                    for b in buttons {
                        println!("   [{}] {}", b.id, b.title);
                    }
                }
                if let Some(template) = reply.whatsapp_template {
                    println!("   (WhatsApp template {template})");
                }
                if let Some(code) = reply.error_code {
                    println!("   error {code}");
                }
            }
            Ok(())
        }
    }
}

async fn connect(config: &Config) -> anyhow::Result<PgPool> {
    let pool = db::connect(&config.database_url, 2).await?;
    db::migrate(&pool).await?;
    Ok(pool)
}

/// On a terminal: ask twice without echo. Otherwise: the first line of stdin (for scripts).
fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        let second = rpassword::prompt_password("Repeat it: ")?;
        anyhow::ensure!(first == second, "the two passwords differ");
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .context("reading the password from stdin")?;
        let password = line.trim_end_matches(['\r', '\n']).to_owned();
        anyhow::ensure!(
            !password.is_empty(),
            "no password on stdin (pipe one in, or run this on a terminal)"
        );
        Ok(password)
    }
}
