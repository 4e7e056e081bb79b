//! Words that mean different things at different moments, reactions and numbers across
//! channels: what the conversation makes them mean, through the real webhooks.

use serde_json::{Value, json};

use crate::{
    dispatch::{Setup, abebe_says, report, setup, wait_status},
    providers::*,
};

const STRANGER: &str = "+251911999001";

/// The keys of everything sent to `phone`, in order, once all they wrote is routed.
async fn sent_to(s: &Setup, phone: &str) -> Vec<String> {
    assert!(
        s.app
            .eventually(&format!(
                "SELECT bool_and(m.routed_at IS NOT NULL) FROM messages m JOIN contacts c ON c.id = m.contact_id
                 WHERE c.phone = '{phone}' AND m.direction = 'inbound'"
            ))
            .await
    );
    sqlx::query_scalar(
        "SELECT m.template_key FROM messages m JOIN contacts c ON c.id = m.contact_id
         WHERE c.phone = $1 AND m.direction = 'outbound' ORDER BY m.created_at, m.id",
    )
    .bind(phone)
    .fetch_all(&s.app.app.pool)
    .await
    .unwrap()
}

/// Posts a Meta body and waits until the message is routed.
async fn meta_routed(s: &Setup, body: &str) {
    assert_eq!(s.app.meta(body).await.status(), 200);
    let id: Value = serde_json::from_str(body).unwrap();
    let id = id["entry"][0]["changes"][0]["value"]["messages"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        s.app
            .eventually(&format!(
                "SELECT routed_at IS NOT NULL FROM messages WHERE provider_message_id = '{id}'"
            ))
            .await,
        "{id} never routed"
    );
}

async fn abebe_routed(s: &Setup, n: u32, text: &str) {
    meta_routed(s, &abebe_says(n, text)).await;
}

/// The dispatch of `order` as Meta knows it.
async fn dispatch_id(s: &Setup, order: &str) -> String {
    let sql = format!(
        "SELECT provider_message_id FROM messages WHERE template_key = 'wo_dispatch' AND related_entity_id = '{order}' AND provider_message_id IS NOT NULL"
    );
    assert!(s.app.eventually(&format!("SELECT EXISTS ({sql})")).await);
    sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
        .fetch_one(&s.app.app.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_workers_start_starts_the_job_and_status_lists_their_work() {
    let s = setup().await;
    let wo = report(&s, json!({})).await;
    let (id, reference) = (
        wo["id"].as_str().unwrap(),
        wo["reference"].as_str().unwrap(),
    );
    abebe_routed(&s, 1, "ok i'll take it").await;
    wait_status(&s, id, "accepted").await;
    // "start" is a consent word too; from a worker with accepted work it starts the work.
    abebe_routed(&s, 2, "start").await;
    wait_status(&s, id, "in_progress").await;
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM consent_events WHERE event = 'opt_in'")
            .await,
        0
    );
    abebe_routed(&s, 3, "status").await;
    let list: String = sqlx::query_scalar(
        "SELECT body FROM messages WHERE template_key = 'wo_my_jobs' ORDER BY created_at DESC LIMIT 1",
    )
    .fetch_one(&s.app.app.pool)
    .await
    .unwrap();
    assert!(
        list.starts_with("Your open work:")
            && list.contains(&format!("{reference} Leaking tap: in progress")),
        "{list}"
    );
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM work_order_comments")
            .await,
        0,
        "status is no comment"
    );
    // Done with a duration and the parts, in the worker's own words.
    abebe_routed(&s, 4, "fixed it, 1.5 hours, parts: washer x2").await;
    let done = wait_status(&s, id, "completed").await;
    assert_eq!(done["labour_hours"], 1.5);
    assert_eq!(done["parts_used"], "washer x2");
}

#[tokio::test]
async fn cancel_mid_report_drops_it_on_whatsapp_and_opts_out_on_sms_saying_so() {
    let s = setup().await;
    // On WhatsApp, "cancel" while a report is being written cancels the report.
    let stranger_says = |n: u32, text: &str| {
        let mut body: Value = serde_json::from_str(&abebe_says(100 + n, text)).unwrap();
        let value = &mut body["entry"][0]["changes"][0]["value"];
        value["contacts"][0]["wa_id"] = json!(STRANGER[1..]);
        value["messages"][0]["from"] = json!(STRANGER[1..]);
        body.to_string()
    };
    meta_routed(&s, &stranger_says(1, "the sink in flat 4 is blocked")).await;
    meta_routed(&s, &stranger_says(2, "cancel")).await;
    assert_eq!(
        sent_to(&s, STRANGER).await,
        ["wo_report_where", "wo_report_cancelled"]
    );
    assert_eq!(s.app.count("SELECT count(*) FROM opt_outs").await, 0);
    // Nothing is left to file: the next words start a new report.
    meta_routed(&s, &stranger_says(3, "bole garden")).await;
    assert_eq!(s.app.count("SELECT count(*) FROM work_orders").await, 0);

    // By SMS, CANCEL is a carrier opt-out word: it opts out whatever else is going on, and the
    // reply says the unfinished report was dropped.
    let staff = "+251911999002";
    let sms = |n: u32, text: &str| {
        fixture("twilio/sms_unknown_sender.form")
            .replace("%2B251911999001", &staff.replace('+', "%2B"))
            .replace("SM10000000000000000000000000000005", &format!("SM4{n:031}"))
            .replace(
                "Hello%2C+is+this+the+clinic%3F",
                &url::form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>(),
            )
    };
    s.app
        .twilio_message_stored(&sms(1, "No power in the flat, sockets dead"))
        .await;
    s.app.twilio_message_stored(&sms(2, "Cancel")).await;
    assert_eq!(
        sent_to(&s, staff).await,
        ["wo_report_where", "opt_out_confirmed_dropped"]
    );
    assert_eq!(
        s.app
            .count(&format!(
                "SELECT count(*) FROM opt_outs o JOIN contacts c ON c.id = o.contact_id WHERE c.phone = '{staff}'"
            ))
            .await,
        1
    );
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM conversations WHERE bot_state ? 'report'")
            .await,
        1,
        "only the WhatsApp stranger's new report is open"
    );
    assert_eq!(s.app.count("SELECT count(*) FROM work_orders").await, 0);
}

#[tokio::test]
async fn a_thumbs_up_accepts_a_dispatch_and_other_reactions_are_not_comments() {
    let s = setup().await;
    let wo = report(&s, json!({})).await;
    let id = wo["id"].as_str().unwrap();
    let dispatch = dispatch_id(&s, id).await;
    let reaction = |n: u32, emoji: &str| {
        let mut body: Value = serde_json::from_str(&fixture("meta/reaction.json")).unwrap();
        let message = &mut body["entry"][0]["changes"][0]["value"]["messages"][0];
        message["id"] = json!(format!("wamid.reaction{n:04}"));
        message["reaction"] = json!({ "message_id": dispatch, "emoji": emoji });
        body.to_string()
    };
    meta_routed(&s, &reaction(1, "❤️")).await;
    meta_routed(&s, &reaction(2, "👍🏽")).await;
    wait_status(&s, id, "accepted").await;
    let routed: Vec<(String, String)> = sqlx::query_as(
        "SELECT body, handled_by FROM messages WHERE kind = 'reaction' ORDER BY provider_message_id",
    )
    .fetch_all(&s.app.app.pool)
    .await
    .unwrap();
    assert_eq!(
        routed,
        [
            ("❤️".to_owned(), "reaction".to_owned()),
            ("👍🏽".to_owned(), "maintenance".to_owned())
        ]
    );
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM work_order_comments")
            .await,
        0
    );
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM messages o JOIN messages i ON o.caused_by_message_id = i.id WHERE i.body = '❤️'")
            .await,
        0,
        "a heart is not answered"
    );
}

#[tokio::test]
async fn an_sms_number_answers_a_dispatch_sent_on_whatsapp() {
    let s = setup().await;
    let wo = report(&s, json!({})).await;
    let id = wo["id"].as_str().unwrap();
    dispatch_id(&s, id).await;
    // Abebe answers "1" by SMS: the latest offer he had was the WhatsApp dispatch.
    s.app
        .twilio_message_stored(&fixture("twilio/sms_numbered_reply.form"))
        .await;
    wait_status(&s, id, "accepted").await;
}

#[tokio::test]
async fn two_close_readings_are_asked_once_and_the_answer_applies() {
    let s = setup().await;
    let wo = report(&s, json!({})).await;
    let id = wo["id"].as_str().unwrap();
    dispatch_id(&s, id).await;
    abebe_routed(&s, 1, "sure, but cant today").await;
    let (body, buttons): (String, Value) = sqlx::query_as(
        "SELECT body, buttons FROM messages WHERE template_key = 'understand_which'",
    )
    .fetch_one(&s.app.app.pool)
    .await
    .unwrap();
    assert!(body.contains("Which one?"), "{body}");
    let ids: Vec<&str> = buttons
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["intent:decline", "intent:accept"]);
    assert_eq!(wo["status"], "assigned");
    let mut tap: Value = serde_json::from_str(&fixture("meta/button_reply.json")).unwrap();
    tap["entry"][0]["changes"][0]["value"]["messages"][0]["interactive"]["button_reply"] =
        json!({ "id": "intent:decline", "title": "Decline" });
    meta_routed(&s, &tap.to_string()).await;
    let declined = s
        .app
        .count(&format!(
            "SELECT count(*) FROM work_order_offers WHERE work_order_id = '{id}' AND declined_at IS NOT NULL"
        ))
        .await;
    assert_eq!(declined, 1, "the tap applied the reading chosen");
    // The same tap again does nothing more.
    let mut again = tap.clone();
    again["entry"][0]["changes"][0]["value"]["messages"][0]["id"] = json!("wamid.tap-again");
    meta_routed(&s, &again.to_string()).await;
    assert_eq!(
        s.app
            .count("SELECT count(*) FROM work_order_offers WHERE declined_at IS NOT NULL")
            .await,
        1
    );
}
