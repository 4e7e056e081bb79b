//! Maintenance and housekeeping.

pub mod assets;
