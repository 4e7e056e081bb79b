//! Who and where: sites, workers and patients, shared by every field domain.

pub mod patients;
pub mod sites;
pub mod worker_sites;
pub mod workers;
