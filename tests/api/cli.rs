//! Every subcommand, run as the real binary against the test's database.

use std::{
    io::Write,
    process::{Command, Output, Stdio},
};

use serde_json::Value;

use crate::helpers::{json, spawn_app};

fn fieldline(database_url: &str, args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_fieldline"))
        .args(args)
        .env("DATABASE_URL", database_url)
        .env_remove("RUST_LOG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    let mut pipe = child.stdin.take().unwrap();
    if let Some(input) = stdin {
        pipe.write_all(input.as_bytes()).unwrap();
    }
    drop(pipe);
    child.wait_with_output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8(output.stderr.clone()).unwrap()
}

// The CLI runs as a blocking subprocess: the app's own jobs need a thread of their own meanwhile,
// or a job holding a lock the subprocess waits for could never finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenant_user_and_token_commands_make_working_credentials() {
    let app = spawn_app().await;
    let url = &app.database_url;

    let out = stdout(&fieldline(url, &["migrate"], None));
    assert!(out.contains("migrations applied"), "{out}");

    let out = stdout(&fieldline(
        url,
        &[
            "tenant",
            "create",
            "--name",
            "Gondar Care",
            "--slug",
            "gondar",
            "--timezone",
            "Africa/Addis_Ababa",
        ],
        None,
    ));
    assert!(
        out.contains("created organisation Gondar Care (gondar)"),
        "{out}"
    );
    let out = fieldline(
        url,
        &["tenant", "create", "--name", "Again", "--slug", "gondar"],
        None,
    );
    assert!(!out.status.success());
    assert_eq!(
        stderr(&out).lines().count(),
        1,
        "one line: {}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("already exists"));
    let out = fieldline(
        url,
        &[
            "tenant",
            "create",
            "--name",
            "Bad",
            "--slug",
            "x",
            "--timezone",
            "Mars/Base",
        ],
        None,
    );
    assert!(
        !out.status.success() && stderr(&out).contains("--timezone"),
        "{}",
        stderr(&out)
    );
    assert!(
        stdout(&fieldline(url, &["tenant", "list"], None))
            .contains("gondar\tGondar Care\tAfrica/Addis_Ababa")
    );

    let out = fieldline(
        url,
        &[
            "user",
            "create",
            "--tenant",
            "gondar",
            "--email",
            "sara@gondar.example",
            "--role",
            "coordinator",
        ],
        Some("a good long password\n"),
    );
    assert!(stdout(&out).contains("created coordinator sara@gondar.example"));
    let hash: String =
        sqlx::query_scalar("SELECT password_hash FROM users WHERE email = 'sara@gondar.example'")
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert!(hash.starts_with("$argon2id$"));
    let out = fieldline(
        url,
        &[
            "user",
            "create",
            "--tenant",
            "gondar",
            "--email",
            "tom@gondar.example",
            "--role",
            "admin",
        ],
        Some("short\n"),
    );
    assert!(
        !out.status.success() && stderr(&out).contains("at least 10 characters"),
        "{}",
        stderr(&out)
    );
    let out = fieldline(
        url,
        &[
            "user",
            "create",
            "--tenant",
            "nowhere",
            "--email",
            "a@b.example",
            "--role",
            "admin",
        ],
        Some("a good long password\n"),
    );
    assert!(
        stderr(&out).contains("no organisation has the slug \"nowhere\""),
        "{}",
        stderr(&out)
    );

    let out = fieldline(
        url,
        &[
            "token",
            "create",
            "--tenant",
            "gondar",
            "--name",
            "integration",
        ],
        None,
    );
    let token = stdout(&out).trim().to_owned();
    assert!(token.starts_with("fl_api_"), "{token}");
    let stored: i64 =
        sqlx::query_scalar("SELECT count(*) FROM api_tokens WHERE token_hash = sha256($1::bytea)")
            .bind(token.as_bytes())
            .fetch_one(&app.pool)
            .await
            .unwrap();
    assert_eq!(stored, 1, "only the hash is stored");
    let response = app
        .client
        .get(app.url("/api/v1/sites"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

// The CLI runs as a blocking subprocess: the app's own jobs need a thread of their own meanwhile,
// or a job holding a lock the subprocess waits for could never finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seed_demo_is_idempotent_and_its_credentials_work() {
    let app = spawn_app().await;
    let url = &app.database_url;
    let counts = || async {
        sqlx::query_as::<_, (i64, i64, i64, i64, i64, i64, i64, i64)>(
            "SELECT (SELECT count(*) FROM tenants), (SELECT count(*) FROM users), (SELECT count(*) FROM workers),
                    (SELECT count(*) FROM patients), (SELECT count(*) FROM sites), (SELECT count(*) FROM assets),
                    (SELECT count(*) FROM ambulances), (SELECT count(*) FROM api_tokens)",
        )
        .fetch_one(&app.pool)
        .await
        .unwrap()
    };
    let first: Value =
        serde_json::from_str(&stdout(&fieldline(url, &["seed-demo", "--json"], None))).unwrap();
    let after_first = counts().await;
    let second: Value =
        serde_json::from_str(&stdout(&fieldline(url, &["seed-demo", "--json"], None))).unwrap();
    assert_eq!(
        counts().await,
        after_first,
        "a second run duplicates nothing"
    );
    assert_eq!(
        first["workers"], second["workers"],
        "same workers, same ids"
    );
    assert!(first["workers"].as_array().unwrap().len() >= 7);
    assert_eq!(first["channels"][0]["provider"], "console");

    // The old token was rotated away; the new one works and sees the demo tenant's workers.
    let old = app
        .client
        .get(app.url("/api/v1/workers"))
        .bearer_auth(first["api_token"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(old.status(), 401);
    let (status, workers) = json(
        app.client
            .get(app.url("/api/v1/workers"))
            .bearer_auth(second["api_token"].as_str().unwrap())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        workers["items"].as_array().unwrap().len(),
        first["workers"].as_array().unwrap().len()
    );

    let page = app
        .client
        .get(app.url("/panel/login"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let csrf = page
        .split("name=\"csrf_token\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let panel = &second["panel"];
    let response = app
        .client
        .post(app.url("/panel/login"))
        .form(&[
            ("organisation", panel["organisation"].as_str().unwrap()),
            ("email", panel["email"].as_str().unwrap()),
            ("password", panel["password"].as_str().unwrap()),
            ("csrf_token", &csrf),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 303, "the seeded sign-in works");

    let text = stdout(&fieldline(url, &["seed-demo"], None));
    assert!(
        text.contains("Organisation: addis-care") && text.contains("API token:"),
        "{text}"
    );
}

#[test]
fn unreachable_database_is_one_line_naming_the_url_without_its_password() {
    let out = fieldline(
        "postgres://fieldline:s3cret@127.0.0.1:1/fieldline",
        &["migrate"],
        None,
    );
    assert!(!out.status.success());
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("postgres://fieldline:****@127.0.0.1:1/fieldline"),
        "{err}"
    );
    assert!(!err.contains("s3cret"), "{err}");
    assert!(err.contains("DATABASE_URL"), "says how to fix it: {err}");
}

#[test]
fn help_describes_every_command() {
    let out = Command::new(env!("CARGO_BIN_EXE_fieldline"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    for command in ["serve", "migrate", "seed-demo", "tenant", "user", "token"] {
        assert!(help.contains(command), "{command} missing from:\n{help}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_fieldline"))
        .args(["token", "create", "--help"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8(out.stdout)
            .unwrap()
            .contains("printed once")
    );
}

// The CLI runs as a blocking subprocess: the app's own jobs need a thread of their own meanwhile,
// or a job holding a lock the subprocess waits for could never finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_are_added_and_listed_and_simulate_shows_a_round_trip() {
    let app = spawn_app().await;
    let url = &app.database_url;
    stdout(&fieldline(url, &["seed-demo"], None));

    let out = stdout(&fieldline(
        url,
        &[
            "channel",
            "add",
            "--tenant",
            "addis-care",
            "--provider",
            "meta",
            "--kind",
            "whatsapp",
            "--number",
            "+251911600000",
            "--provider-id",
            "106540352242922",
        ],
        None,
    ));
    assert!(
        out.contains("added meta whatsapp channel +251911600000"),
        "{out}"
    );
    let refused = fieldline(
        url,
        &[
            "channel",
            "add",
            "--tenant",
            "addis-care",
            "--provider",
            "meta",
            "--kind",
            "sms",
            "--number",
            "12",
        ],
        None,
    );
    assert!(!refused.status.success());
    let why = stderr(&refused);
    assert!(
        why.contains("phone_number")
            && why.contains("--provider-id")
            && why.contains("--kind whatsapp"),
        "{why}"
    );
    let list = stdout(&fieldline(
        url,
        &["channel", "list", "--tenant", "addis-care"],
        None,
    ));
    assert!(
        list.contains("meta\twhatsapp\t+251911600000\t106540352242922\tactive"),
        "{list}"
    );
    assert!(list.contains("console\tsms\t+251911000000"), "{list}");

    let simulate = |from: &str, rest: &[&str]| {
        let mut args = vec!["simulate", "--tenant", "addis-care", "--from", from];
        args.extend_from_slice(rest);
        stdout(&fieldline(url, &args, None))
    };
    // A patient asks for help by SMS on the console channel and gets the help text.
    let out = simulate("+251911000201", &["HELP"]);
    assert!(out.starts_with("<- text [delivered] "), "{out}");
    assert!(out.contains("STOP"), "{out}");
    // A stranger on WhatsApp is asked what needs fixing; a location and a button go the same way.
    let out = simulate("+251911999001", &["--whatsapp", "hello"]);
    assert!(out.contains("What needs fixing"), "{out}");
    let out = simulate(
        "+251911000101",
        &["--whatsapp", "--location", "9.0108,38.7613"],
    );
    assert!(out.contains("<- text [delivered]"), "{out}");
    let out = simulate("+251911000101", &["--whatsapp", "--button", "accept"]);
    assert!(out.contains("<- text [delivered]"), "{out}");
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE provider = 'console' AND direction = 'inbound' AND routed_at IS NOT NULL",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(stored, 4);
    let located: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM messages WHERE kind = 'location' AND latitude = 9.0108",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(located, 1);

    // A new organisation is told a number to add that nobody has, and the hint works as given.
    let created = fieldline(
        url,
        &[
            "tenant",
            "create",
            "--name",
            "Gondar Care",
            "--slug",
            "gondar",
        ],
        None,
    );
    let hint = stderr(&created);
    let command = hint
        .split('`')
        .nth(1)
        .unwrap_or_else(|| panic!("no command in {hint}"));
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    assert!(
        !command.contains("+251911000000"),
        "the demo's number: {command}"
    );
    let out = stdout(&fieldline(url, &args, None));
    assert!(out.contains("added console sms channel"), "{out}");
}
