use std::time::Duration;

use crate::helpers::{JOBS_BY_HAND, TestApp, spawn_app, spawn_app_with};

pub(crate) const PASSWORD: &str = "correct horse battery";

pub(crate) fn csrf_in(html: &str) -> String {
    let marker = "name=\"csrf_token\" value=\"";
    let start = html.find(marker).expect("a CSRF field") + marker.len();
    html[start..].split('"').next().unwrap().to_owned()
}

pub(crate) async fn login_form(app: &TestApp) -> String {
    let page = app
        .client
        .get(app.url("/panel/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    csrf_in(&page.text().await.unwrap())
}

pub(crate) async fn sign_in(
    app: &TestApp,
    organisation: &str,
    email: &str,
    password: &str,
    csrf: &str,
) -> reqwest::Response {
    app.client
        .post(app.url("/panel/login"))
        .form(&[
            ("organisation", organisation),
            ("email", email),
            ("password", password),
            ("csrf_token", csrf),
        ])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn sign_in_shows_the_own_tenants_dashboard_and_sign_out_ends_the_session() {
    let app = spawn_app().await;
    let tenant = app.tenant("panel-org").await;
    let other = app.tenant("other-org").await;
    app.user(&tenant, "liya@panel.example", PASSWORD).await;
    app.user(&other, "liya@panel.example", "another password")
        .await;
    sqlx::query("INSERT INTO workers (tenant_id, first_name, last_name, phone, kinds) VALUES ($1, 'O', 'Ther', '+251911000999', '{caregiver}')")
        .bind(other.id)
        .execute(&app.pool)
        .await
        .unwrap();

    assert_eq!(
        app.client
            .get(app.url("/panel"))
            .send()
            .await
            .unwrap()
            .headers()["location"],
        "/panel/login"
    );

    let csrf = login_form(&app).await;
    let response = sign_in(&app, "panel-org", "Liya@Panel.example", PASSWORD, &csrf).await;
    assert_eq!(response.status(), 303);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|c| c.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("fieldline_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Lax")
            && cookie.contains("Path=/panel"),
        "{cookie}"
    );
    assert!(
        !cookie.contains("Secure"),
        "plain http in tests: no Secure flag ({cookie})"
    );

    let page = app.client.get(app.url("/panel")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("Org panel-org"), "{html}");
    assert!(!html.contains("Org other-org"));
    assert!(
        html.contains(r#"<h2>Active workers</h2><div class="figure">0</div>"#),
        "the other tenant's worker is not counted: {html}"
    );

    let css = app
        .client
        .get(app.url("/panel/static/panel.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.headers()["content-type"], "text/css; charset=utf-8");

    // Sign-out is a form post and needs the session's CSRF token.
    let refused = app
        .client
        .post(app.url("/panel/logout"))
        .form(&[("csrf_token", "forged")])
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let session_csrf = csrf_in(&html);
    let out = app
        .client
        .post(app.url("/panel/logout"))
        .form(&[("csrf_token", session_csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            out.status().as_u16(),
            out.headers()["location"].to_str().unwrap()
        ),
        (303, "/panel/login")
    );
    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM panel_sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0);
    assert_eq!(
        app.client
            .get(app.url("/panel"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
}

#[tokio::test]
async fn wrong_password_unknown_email_and_missing_csrf_are_refused() {
    let app = spawn_app().await;
    let tenant = app.tenant("refuse-org").await;
    app.user(&tenant, "liya@panel.example", PASSWORD).await;
    let csrf = login_form(&app).await;

    let wrong = sign_in(
        &app,
        "refuse-org",
        "liya@panel.example",
        "not the password",
        &csrf,
    )
    .await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("do not match"));
    assert_eq!(
        sign_in(&app, "refuse-org", "nobody@panel.example", PASSWORD, &csrf)
            .await
            .status(),
        401
    );
    assert_eq!(
        sign_in(&app, "no-such-org", "liya@panel.example", PASSWORD, &csrf)
            .await
            .status(),
        401
    );

    assert_eq!(
        sign_in(&app, "refuse-org", "liya@panel.example", PASSWORD, "")
            .await
            .status(),
        403
    );
    assert_eq!(
        sign_in(
            &app,
            "refuse-org",
            "liya@panel.example",
            PASSWORD,
            "forged-token-that-is-long-enough-to-look-real"
        )
        .await
        .status(),
        403
    );
    // A client without the CSRF cookie (a cross-site form) is refused even with a token.
    let stranger = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let response = stranger
        .post(app.url("/panel/login"))
        .form(&[
            ("organisation", "refuse-org"),
            ("email", "liya@panel.example"),
            ("password", PASSWORD),
            ("csrf_token", csrf.as_str()),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);

    let sessions: i64 = sqlx::query_scalar("SELECT count(*) FROM panel_sessions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(sessions, 0, "no refused attempt made a session");
}

#[tokio::test]
async fn an_expired_session_is_removed_by_its_job() {
    let app = spawn_app_with(&[("PANEL_SESSION_TTL_SECS", "3600"), JOBS_BY_HAND]).await;
    let tenant = app.tenant("expiry-org").await;
    app.user(&tenant, "liya@panel.example", PASSWORD).await;
    let csrf = login_form(&app).await;
    assert_eq!(
        sign_in(&app, "expiry-org", "liya@panel.example", PASSWORD, &csrf)
            .await
            .status(),
        303
    );
    let count = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM panel_sessions")
            .fetch_one(&app.pool)
            .await
            .unwrap()
    };
    app.run_jobs().await;
    assert_eq!(count().await, 1, "a live session stays");
    // Two hours later, for the session and for its timer.
    sqlx::query("UPDATE panel_sessions SET expires_at = expires_at - interval '2 hours'")
        .execute(&app.pool)
        .await
        .unwrap();
    app.advance(Duration::from_secs(7200)).await;
    app.run_jobs().await;
    assert_eq!(count().await, 0, "the expiry job removed the session");
    assert_eq!(
        app.client
            .get(app.url("/panel"))
            .send()
            .await
            .unwrap()
            .status(),
        303
    );
}
