pub fn router() -> axum::Router<crate::app::AppState> { axum::Router::new() }
