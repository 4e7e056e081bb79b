//! The database itself refuses what the application must never write.

use sqlx::PgPool;
use uuid::Uuid;

use crate::helpers::spawn_app;

async fn refused(pool: &PgPool, sql: &str, tenant: Uuid) -> String {
    let err = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .bind(tenant)
        .execute(pool)
        .await
        .expect_err(sql);
    match err {
        sqlx::Error::Database(db) => db
            .constraint()
            .map(str::to_owned)
            .unwrap_or_else(|| db.message().to_owned()),
        other => panic!("{other}"),
    }
}

#[tokio::test]
async fn out_of_range_coordinates_bad_statuses_and_duplicates_are_refused() {
    let app = spawn_app().await;
    let a = app.tenant("schema-a").await;
    let b = app.tenant("schema-b").await;
    let pool = &app.pool;

    assert_eq!(refused(pool, "INSERT INTO sites (tenant_id, kind, name, latitude, longitude) VALUES ($1, 'ward', 'W', 90.5, 0)", a.id).await, "latitude_range");
    assert_eq!(refused(pool, "INSERT INTO sites (tenant_id, kind, name, latitude, longitude) VALUES ($1, 'ward', 'W', 0, 180.5)", a.id).await, "longitude_range");
    assert_eq!(
        refused(
            pool,
            "INSERT INTO sites (tenant_id, kind, name, latitude) VALUES ($1, 'ward', 'W', 9)",
            a.id
        )
        .await,
        "sites_location_pair"
    );
    assert_eq!(refused(pool, "INSERT INTO workers (tenant_id, first_name, last_name, phone, kinds, status) VALUES ($1, 'A', 'B', '+251911000101', '{caregiver}', 'asleep')", a.id).await, "workers_status_check");
    assert_eq!(refused(pool, "INSERT INTO workers (tenant_id, first_name, last_name, phone, kinds) VALUES ($1, 'A', 'B', '0911000101', '{caregiver}')", a.id).await, "e164_format");
    assert_eq!(refused(pool, "INSERT INTO work_orders (tenant_id, reference, kind, request_type, title) VALUES ($1, 'M-1', 'housekeeping', 'corrective', 'x')", a.id).await, "work_orders_request_type_check");
    assert_eq!(refused(pool, "INSERT INTO work_orders (tenant_id, reference, kind, request_type, title, status) VALUES ($1, 'M-1', 'maintenance', 'corrective', 'x', 'lost')", a.id).await, "work_orders_status_check");
    assert_eq!(refused(pool, "INSERT INTO trips (tenant_id, reference, request_type, pickup_address, dropoff_address, scheduled_at, status) VALUES ($1, 'T-1', 'emergency', 'a', 'b', now(), 'flying')", a.id).await, "trips_status_check");
    assert_eq!(
        refused(
            pool,
            "INSERT INTO feedback (tenant_id, channel, rating) VALUES ($1, 'sms', 6)",
            a.id
        )
        .await,
        "feedback_rating_range"
    );
    assert_eq!(
        refused(
            pool,
            "INSERT INTO tenants (name, slug) SELECT 'dup', slug FROM tenants WHERE id = $1",
            a.id
        )
        .await,
        "tenants_slug_key"
    );

    sqlx::query("INSERT INTO workers (tenant_id, first_name, last_name, phone, kinds) VALUES ($1, 'A', 'B', '+251911000101', '{caregiver}')")
        .bind(a.id)
        .execute(pool)
        .await
        .unwrap();
    assert_eq!(refused(pool, "INSERT INTO workers (tenant_id, first_name, last_name, phone, kinds) VALUES ($1, 'C', 'D', '+251911000101', '{maintenance}')", a.id).await, "workers_tenant_phone_key");

    // A row of tenant B may not point at a row of tenant A, even by a correct id.
    let site_a: Uuid = sqlx::query_scalar(
        "INSERT INTO sites (tenant_id, kind, name) VALUES ($1, 'ward', 'A ward') RETURNING id",
    )
    .bind(a.id)
    .fetch_one(pool)
    .await
    .unwrap();
    let err = sqlx::query(
        "INSERT INTO assets (tenant_id, site_id, name, asset_type) VALUES ($1, $2, 'Pump', 'pump')",
    )
    .bind(b.id)
    .bind(site_a)
    .execute(pool)
    .await
    .unwrap_err();
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("assets_site_fkey")
    );
}

#[tokio::test]
async fn the_audit_log_is_append_only_and_keys_are_uuid_v7() {
    let app = spawn_app().await;
    let tenant = app.tenant("audit-org").await;
    let err = sqlx::query("UPDATE audit_log SET reason = 'rewritten' WHERE tenant_id = $1")
        .bind(tenant.id)
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    let err = sqlx::query("DELETE FROM audit_log")
        .execute(&app.pool)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("append-only"), "{err}");
    assert_eq!(tenant.id.get_version_num(), 7);
    let generated: Uuid = sqlx::query_scalar("SELECT uuid_generate_v7()")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(generated.get_version_num(), 7);
}
