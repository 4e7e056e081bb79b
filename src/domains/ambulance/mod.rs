//! Ambulance fleet and trips: the vehicles, their crews' messages, dispatch to the nearest unit.

pub mod ambulances;
pub mod replies;
pub mod response_times;
pub mod timers;
pub mod trips;
