//! The record handlers every directory resource shares.

/// The four handlers that are the same for every resource (create, get, merge-patch update,
/// soft delete), with their OpenAPI descriptions. Listing differs per resource (its filters) and
/// stays hand-written beside the resource.
macro_rules! crud_handlers {
    (resource = $resource:ty, input = $input:ty, name = $name:literal, collection = $collection:literal, item = $item:literal, tag = $tag:literal) => {
        #[utoipa::path(post, path = $collection, tag = $tag, operation_id = concat!("create_", $name),
            summary = concat!("Create a ", $name), request_body = $input,
            responses((status = 201, body = $resource), (status = 401, body = $crate::http::error::ErrorBody),
                      (status = 409, body = $crate::http::error::ErrorBody), (status = 422, body = $crate::http::error::ErrorBody)))]
        async fn create(
            axum::extract::State(state): axum::extract::State<$crate::http::AppState>,
            caller: $crate::http::api::auth::ApiCaller,
            $crate::http::extract::Json(input): $crate::http::extract::Json<$input>,
        ) -> $crate::http::error::AppResult<(axum::http::StatusCode, axum::Json<$resource>)> {
            let created = $crate::domains::crud::create::<$resource>(&state.pool, caller.tenant_id, caller.actor(), input).await?;
            Ok((axum::http::StatusCode::CREATED, axum::Json(created)))
        }

        #[utoipa::path(get, path = $item, tag = $tag, operation_id = concat!("get_", $name),
            summary = concat!("Get one ", $name), params(("id" = uuid::Uuid, Path)),
            responses((status = 200, body = $resource), (status = 401, body = $crate::http::error::ErrorBody),
                      (status = 404, body = $crate::http::error::ErrorBody)))]
        async fn get(
            axum::extract::State(state): axum::extract::State<$crate::http::AppState>,
            caller: $crate::http::api::auth::ApiCaller,
            $crate::http::extract::Path(id): $crate::http::extract::Path<uuid::Uuid>,
        ) -> $crate::http::error::AppResult<axum::Json<$resource>> {
            Ok(axum::Json($crate::domains::crud::get::<$resource>(&state.pool, caller.tenant_id, id).await?))
        }

        #[utoipa::path(patch, path = $item, tag = $tag, operation_id = concat!("update_", $name),
            summary = concat!("Change a ", $name),
            description = "A JSON merge patch (RFC 7386): fields given replace, `null` clears, absent fields stay. The result is validated as on create.",
            params(("id" = uuid::Uuid, Path)), request_body = $input,
            responses((status = 200, body = $resource), (status = 401, body = $crate::http::error::ErrorBody),
                      (status = 404, body = $crate::http::error::ErrorBody), (status = 409, body = $crate::http::error::ErrorBody),
                      (status = 422, body = $crate::http::error::ErrorBody)))]
        async fn update(
            axum::extract::State(state): axum::extract::State<$crate::http::AppState>,
            caller: $crate::http::api::auth::ApiCaller,
            $crate::http::extract::Path(id): $crate::http::extract::Path<uuid::Uuid>,
            $crate::http::extract::Json(patch): $crate::http::extract::Json<serde_json::Value>,
        ) -> $crate::http::error::AppResult<axum::Json<$resource>> {
            Ok(axum::Json($crate::domains::crud::update::<$resource>(&state.pool, caller.tenant_id, caller.actor(), id, patch).await?))
        }

        #[utoipa::path(delete, path = $item, tag = $tag, operation_id = concat!("delete_", $name),
            summary = concat!("Delete a ", $name),
            description = "Soft delete: the record disappears from reads and stays for history and references.",
            params(("id" = uuid::Uuid, Path)),
            responses((status = 204), (status = 401, body = $crate::http::error::ErrorBody), (status = 404, body = $crate::http::error::ErrorBody)))]
        async fn delete(
            axum::extract::State(state): axum::extract::State<$crate::http::AppState>,
            caller: $crate::http::api::auth::ApiCaller,
            $crate::http::extract::Path(id): $crate::http::extract::Path<uuid::Uuid>,
        ) -> $crate::http::error::AppResult<axum::http::StatusCode> {
            $crate::domains::crud::soft_delete::<$resource>(&state.pool, caller.tenant_id, caller.actor(), id).await?;
            Ok(axum::http::StatusCode::NO_CONTENT)
        }
    };
}

pub(crate) use crud_handlers;
