//! Ambulance fleet and trips.

pub mod ambulances;
