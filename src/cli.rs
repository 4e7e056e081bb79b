//! The command line: `fieldline serve | migrate | seed-demo | tenant | user | token`.

use std::io::{BufRead, IsTerminal};

use anyhow::Context;
use clap::{Parser, Subcommand};
use sqlx::PgPool;

use crate::{
    app::{self, Application},
    audit::Actor,
    config::{Config, LogFormat},
    db,
    domains::tenancy::{self, NewTenant, Role},
    seed, telemetry,
    types::{Email, Locale, Slug, TimeZone},
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
            let mut tx = pool.begin().await?;
            let tenant = tenancy::create_tenant(&mut tx, &new, Actor::Cli).await?;
            tx.commit().await?;
            println!(
                "created organisation {} ({}), id {}",
                tenant.name, tenant.slug, tenant.id
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
                },
        } => {
            let email = Email::parse(&email)
                .map_err(anyhow::Error::msg)
                .context("--email")?;
            let pool = connect(&config).await?;
            let tenant = tenancy::find_tenant(&pool, &tenant).await?;
            let password = read_password()?;
            let mut tx = pool.begin().await?;
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
            command: TokenCommand::Create { tenant, name },
        } => {
            let pool = connect(&config).await?;
            let tenant = tenancy::find_tenant(&pool, &tenant).await?;
            let mut tx = pool.begin().await?;
            let (_, token) = tenancy::create_api_token(&mut tx, tenant.id, &name).await?;
            tx.commit().await?;
            eprintln!("API token for {} (shown once; store it now):", tenant.slug);
            println!("{token}");
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
