//! Maintenance and housekeeping.

pub mod assets;
pub mod preventive;
pub mod replies;
pub mod requests;
pub mod state;
pub mod timeline;
pub mod timers;
pub mod work_orders;
