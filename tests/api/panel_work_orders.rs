//! The coordinators' work-order pages: list with filters and alerts, detail with the timeline,
//! the actions, and nothing of another tenant's.

use serde_json::json;

use crate::{
    dispatch::{META_OUT_FIRST, setup, wait_status, worker_id},
    helpers::json,
    panel::{PASSWORD, csrf_in, login_form, sign_in},
    providers::*,
};

async fn page(s: &crate::dispatch::Setup, path: &str) -> (u16, String) {
    let response = s
        .app
        .app
        .client
        .get(s.app.app.url(path))
        .send()
        .await
        .unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

async fn post_form(
    s: &crate::dispatch::Setup,
    path: &str,
    form: &[(&str, &str)],
) -> reqwest::Response {
    s.app
        .app
        .client
        .post(s.app.app.url(path))
        .form(form)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn coordinators_follow_and_steer_work_orders_in_the_panel() {
    let s = setup().await;
    s.app
        .app
        .user(&s.app.tenant, "liya@panel.example", PASSWORD)
        .await;
    let csrf = login_form(&s.app.app).await;
    let signed_in = sign_in(&s.app.app, "msg-org", "liya@panel.example", PASSWORD, &csrf).await;
    assert_eq!(signed_in.status(), 303);
    let (_, dashboard) = page(&s, "/panel").await;
    let csrf = csrf_in(&dashboard);

    // Two work orders: one Abebe works on by WhatsApp, one scheduled yesterday and not started.
    let (_, wo) = json(
        s.app
            .app
            .post(
                &s.app.tenant,
                "/api/v1/work-orders",
                &json!({ "kind": "maintenance", "title": "Leaking tap", "priority": "high", "site_id": s.site,
                         "required_specialty": "plumbing", "requester_phone": PATIENT_PHONE }),
            )
            .await,
    )
    .await;
    let id = wo["id"].as_str().unwrap().to_owned();
    let reference = wo["reference"].as_str().unwrap().to_owned();
    // Accepted with a tap on the dispatch's button.
    assert!(
        s.app
            .eventually(&format!(
                "SELECT EXISTS (SELECT 1 FROM messages WHERE provider_message_id = '{META_OUT_FIRST}')"
            ))
            .await
    );
    assert_eq!(
        s.app
            .meta(&fixture("meta/button_reply.json"))
            .await
            .status(),
        200
    );
    wait_status(&s, &id, "accepted").await;
    assert_eq!(s.app.meta(&fixture("meta/image.json")).await.status(), 200);
    assert!(
        s.app
            .eventually("SELECT bool_and(fetched_at IS NOT NULL) FROM message_media")
            .await
    );
    // The second through the panel's form, in the organisation's local time.
    let (status, form) = page(&s, "/panel/work-orders/new").await;
    assert_eq!(status, 200);
    assert!(form.contains("Bole Garden"), "{form}");
    let refused = post_form(
        &s,
        "/panel/work-orders",
        &[
            ("csrf_token", &csrf),
            ("kind", "maintenance"),
            ("title", " "),
            ("requester_phone", "0911"),
        ],
    )
    .await;
    assert_eq!(refused.status(), 422);
    let refused = refused.text().await.unwrap();
    assert!(
        refused.contains("title: must not be empty") && refused.contains("requester_phone"),
        "{refused}"
    );
    assert!(
        refused.contains("value=\"0911\""),
        "what was typed is kept: {refused}"
    );
    let yesterday = (chrono::Utc::now() - chrono::TimeDelta::days(1))
        .format("%Y-%m-%dT%H:%M")
        .to_string();
    let created = post_form(
        &s,
        "/panel/work-orders",
        &[
            ("csrf_token", &csrf),
            ("kind", "maintenance"),
            ("title", "Broken light"),
            ("priority", "medium"),
            ("site", &s.site),
            ("required_specialty", "electrical"),
            ("scheduled_at", &yesterday),
            ("expected_duration_minutes", "45"),
        ],
    )
    .await;
    assert_eq!(created.status(), 303);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("?done=created"), "{location}");
    let (_, late_page) = page(&s, &location).await;
    assert!(
        late_page.contains("Work order created") && late_page.contains("Chaltu Abdi"),
        "{late_page}"
    );
    let late_ref: String = sqlx::query_scalar("SELECT reference FROM work_orders WHERE title = 'Broken light' AND expected_duration_minutes = 45 AND scheduled_at < now()")
        .fetch_one(&s.app.app.pool)
        .await
        .unwrap();

    // The list: both, with names; the filters narrow it.
    let (status, list) = page(&s, "/panel/work-orders").await;
    assert_eq!(status, 200);
    assert!(
        list.contains(&reference) && list.contains(&late_ref),
        "{list}"
    );
    assert!(list.contains("Abebe Kebede") && list.contains("Bole Garden"));
    let (_, overdue) = page(&s, "/panel/work-orders?overdue=1").await;
    assert!(
        overdue.contains(&late_ref) && !overdue.contains(&reference),
        "{overdue}"
    );
    let (_, accepted) = page(&s, "/panel/work-orders?status=accepted&priority=high").await;
    assert!(accepted.contains(&reference) && !accepted.contains(&late_ref));
    let chaltu = worker_id(&s, "Chaltu").await;
    let (_, chaltus) = page(&s, &format!("/panel/work-orders?worker={chaltu}")).await;
    assert!(chaltus.contains(&late_ref) && !chaltus.contains(&reference));
    let (status, bad) = page(&s, "/panel/work-orders?site=nonsense").await;
    assert_eq!(status, 422);
    assert!(bad.contains("site: choose one from the list"), "{bad}");

    // The detail page: facts, the dispatch and the reply with their status, the photo.
    let path = format!("/panel/work-orders/{id}");
    let (status, detail) = page(&s, &path).await;
    assert_eq!(status, 200);
    assert!(
        detail.contains("Leaking tap") && detail.contains("To Abebe Kebede"),
        "{detail}"
    );
    assert!(
        detail.contains("From Abebe Kebede") && detail.contains("<blockquote>Accept</blockquote>"),
        "{detail}"
    );
    assert!(detail.contains("assigned → accepted"), "{detail}");
    let media_id: uuid::Uuid = sqlx::query_scalar("SELECT id FROM message_media")
        .fetch_one(&s.app.app.pool)
        .await
        .unwrap();
    assert!(
        detail.contains(&format!("src=\"/panel/media/{media_id}\"")),
        "{detail}"
    );
    let photo = s
        .app
        .app
        .client
        .get(s.app.app.url(&format!("/panel/media/{media_id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 200);
    assert_eq!(photo.headers()["content-type"], "image/jpeg");
    assert_eq!(photo.bytes().await.unwrap().as_ref(), MEDIA_BYTES);

    // Actions: a comment, a message to the worker, a hold; each lands on the timeline.
    let done = post_form(
        &s,
        &format!("{path}/comment"),
        &[("csrf_token", &csrf), ("text", "Tenant is home after 2pm")],
    )
    .await;
    assert_eq!(done.status(), 303);
    assert_eq!(done.headers()["location"], format!("{path}?done=commented"));
    let done = post_form(
        &s,
        &format!("{path}/message"),
        &[("csrf_token", &csrf), ("text", "Bring a spare valve")],
    )
    .await;
    assert_eq!(done.status(), 303);
    let to_abebe = s
        .app
        .fake
        .wait_for("the coordinator's message", |r| {
            r.path.ends_with("/messages") && r.json().to_string().contains("Bring a spare valve")
        })
        .await;
    assert_eq!(to_abebe.json()["to"], "251911000101");
    let done = post_form(
        &s,
        &format!("{path}/hold"),
        &[
            ("csrf_token", &csrf),
            ("reason", "waiting for the landlord"),
        ],
    )
    .await;
    assert_eq!(done.status(), 303);
    wait_status(&s, &id, "on_hold").await;
    let (_, detail) = page(&s, &format!("{path}?done=held")).await;
    assert!(
        detail.contains("Put on hold: the worker has been told."),
        "{detail}"
    );
    assert!(detail.contains("Tenant is home after 2pm") && detail.contains("Bring a spare valve"));
    assert!(
        detail.contains("waiting for the landlord")
            && detail.contains("liya@panel.example (coordinator) via panel"),
        "{detail}"
    );
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM messages WHERE template_key = 'wo_put_on_hold'")
            .await,
        1
    );

    // What cannot be done is refused on the page, saying why; a forged form changes nothing.
    let refused = post_form(
        &s,
        &format!("{path}/hold"),
        &[("csrf_token", &csrf), ("reason", "")],
    )
    .await;
    assert_eq!(refused.status(), 422);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("reason: must not be empty")
    );
    let refused = post_form(
        &s,
        &format!("{path}/assign"),
        &[
            ("csrf_token", &csrf),
            ("worker_id", &uuid::Uuid::now_v7().to_string()),
        ],
    )
    .await;
    assert_eq!(refused.status(), 422);
    assert!(
        refused
            .text()
            .await
            .unwrap()
            .contains("no maintenance worker of this organisation")
    );
    let forged = post_form(&s, &format!("{path}/cancel"), &[("csrf_token", "forged")]).await;
    assert_eq!(forged.status(), 403);
    assert_eq!(
        s.app
            .count(&format!(
                "SELECT count(*) FROM work_orders WHERE id = '{id}' AND status = 'on_hold'"
            ))
            .await,
        1
    );

    // The hold is lifted from the panel: the work goes on and the worker is told; then held again.
    let lifted = post_form(&s, &format!("{path}/resume"), &[("csrf_token", &csrf)]).await;
    assert_eq!(lifted.status(), 303);
    wait_status(&s, &id, "in_progress").await;
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM messages WHERE template_key = 'wo_resumed'")
            .await,
        1
    );
    let held = post_form(
        &s,
        &format!("{path}/hold"),
        &[("csrf_token", &csrf), ("reason", "landlord again")],
    )
    .await;
    assert_eq!(held.status(), 303);
    wait_status(&s, &id, "on_hold").await;

    // Reassign to Bekele, then cancel. The assign list shows trades and workload.
    let (_, detail) = page(&s, &path).await;
    assert!(
        detail.contains("Bekele Alemu — plumbing · 0 open")
            && detail.contains("Chaltu Abdi — electrical · 1 open · not plumbing"),
        "{detail}"
    );
    let bekele = worker_id(&s, "Bekele").await;
    let done = post_form(
        &s,
        &format!("{path}/assign"),
        &[("csrf_token", &csrf), ("worker_id", &bekele)],
    )
    .await;
    assert_eq!(done.status(), 303);
    assert!(
        s.app
            .eventually(&format!("SELECT assigned_worker_id = '{bekele}' AND status = 'assigned' FROM work_orders WHERE id = '{id}'"))
            .await
    );
    // One click is not enough to cancel: the box must be ticked.
    let unconfirmed = post_form(
        &s,
        &format!("{path}/cancel"),
        &[("csrf_token", &csrf), ("reason", "tenant fixed it")],
    )
    .await;
    assert_eq!(unconfirmed.status(), 422);
    assert!(unconfirmed.text().await.unwrap().contains("confirm: tick"));
    let done = post_form(
        &s,
        &format!("{path}/cancel"),
        &[
            ("csrf_token", &csrf),
            ("reason", "tenant fixed it"),
            ("confirm", "yes"),
        ],
    )
    .await;
    assert_eq!(done.status(), 303);
    wait_status(&s, &id, "cancelled").await;
    // The list leads with open work, newest first; closed work is one choice away; words find it.
    let (_, open) = page(&s, "/panel/work-orders").await;
    assert!(
        !open.contains(&reference) && open.contains(&late_ref),
        "{open}"
    );
    let (_, all) = page(&s, "/panel/work-orders?status=all").await;
    assert!(all.contains(&reference) && all.contains(&late_ref), "{all}");
    assert!(
        all.find(&late_ref) < all.find(&reference),
        "newest first: {all}"
    );
    let (_, found) = page(&s, "/panel/work-orders?status=all&q=broken+LIGHT").await;
    assert!(
        found.contains(&late_ref) && !found.contains(&reference),
        "{found}"
    );
    let (_, nav) = page(&s, "/panel").await;
    assert!(
        nav.contains(r#"href="/panel/visit-exceptions">Exceptions"#)
            && nav.contains(r#"href="/panel/assignments">Assignments"#),
        "{nav}"
    );

    // Pages are live: they poll a token that changes with anything they show.
    let (status, before) = page(&s, "/panel/changes").await;
    assert_eq!(status, 200);
    assert_eq!(
        page(&s, "/panel/changes").await.1,
        before,
        "nothing changed"
    );
    let (_, script) = page(&s, "/panel/static/live.js").await;
    assert!(script.contains("/panel/changes") && script.contains("location.reload"));

    // Alerts show until someone marks them handled.
    sqlx::query("INSERT INTO coordinator_alerts (tenant_id, kind, work_order_id, message) VALUES ($1, 'no_worker_available', $2::uuid, 'nobody left')")
        .bind(s.app.tenant.id)
        .bind(&id)
        .execute(&s.app.app.pool)
        .await
        .unwrap();
    let (_, list) = page(&s, "/panel/work-orders").await;
    assert!(
        list.contains("Needs attention (1)") && list.contains("nobody left"),
        "{list}"
    );
    assert_ne!(
        page(&s, "/panel/changes").await.1,
        before,
        "a new alert changes the token"
    );
    assert!(list.contains(r#"<script src="/panel/static/live.js" defer>"#));
    // The dashboard leads with what needs a coordinator, each item a link to where it is done
    // (the alert, and the work scheduled yesterday and not started); counts lead to their lists.
    let (_, dashboard) = page(&s, "/panel").await;
    assert!(
        dashboard.contains(&format!(
            r#"<a href="/panel/work-orders/{id}">no worker available</a> — nobody left"#
        )) && dashboard.contains(&format!(">{late_ref}</a> — Broken light: overdue")),
        "{dashboard}"
    );
    assert!(dashboard.contains(r#"<a href="/panel/work-orders">Open work orders</a>"#));
    // Response times are drawn on the server: a bar per priority and measure, with its title.
    assert!(
        dashboard.contains(r#"<svg class="chart" role="img""#)
            && dashboard.contains(">high (1)</text>")
            && dashboard.contains(">medium (1)</text>")
            && dashboard.contains("<title>high: median 0 min to start</title>")
            && dashboard.contains("none yet to finish")
            && dashboard.contains("No visit checked in in the last 30 days."),
        "{dashboard}"
    );
    let alert: uuid::Uuid = sqlx::query_scalar("SELECT id FROM coordinator_alerts")
        .fetch_one(&s.app.app.pool)
        .await
        .unwrap();
    let done = post_form(
        &s,
        &format!("/panel/alerts/{alert}/resolve"),
        &[("csrf_token", &csrf)],
    )
    .await;
    assert_eq!(done.status(), 303);
    let (_, list) = page(&s, "/panel/work-orders").await;
    assert!(!list.contains("Needs attention"), "{list}");

    // Another organisation's coordinator sees none of it and changes none of it.
    let other = s.app.app.tenant("other-org").await;
    s.app.app.user(&other, "eve@other.example", PASSWORD).await;
    let logout_csrf = csrf_in(&page(&s, "/panel").await.1);
    post_form(&s, "/panel/logout", &[("csrf_token", &logout_csrf)]).await;
    let csrf = login_form(&s.app.app).await;
    assert_eq!(
        sign_in(
            &s.app.app,
            "other-org",
            "eve@other.example",
            PASSWORD,
            &csrf
        )
        .await
        .status(),
        303
    );
    let csrf = csrf_in(&page(&s, "/panel").await.1);
    let (_, list) = page(&s, "/panel/work-orders").await;
    assert!(
        !list.contains(&reference) && !list.contains(&late_ref),
        "{list}"
    );
    let (status, _) = page(&s, &path).await;
    assert_eq!(status, 404);
    let (status, _) = page(&s, &format!("/panel/media/{media_id}")).await;
    assert_eq!(status, 404);
    let comments_before = s
        .app
        .count("SELECT count(*) FROM work_order_comments")
        .await;
    let refused = post_form(
        &s,
        &format!("{path}/comment"),
        &[("csrf_token", &csrf), ("text", "sneaky")],
    )
    .await;
    assert_eq!(refused.status(), 404);
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM work_order_comments")
            .await,
        comments_before
    );
}
