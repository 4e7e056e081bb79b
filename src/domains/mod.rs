//! Domains: the records and rules of each field of work. None of them names a provider.

pub mod alerts;
pub mod ambulance;
pub mod audit_checkpoints;
pub mod care;
pub mod crud;
pub mod dashboard;
pub mod directory;
pub mod maintenance;
pub mod panel_sessions;
pub mod patients;
pub mod privacy;
pub mod sign_in_attempts;
pub mod tenancy;

#[cfg(test)]
mod reading_tests;

/// The message handlers each domain contributes, in the order the router asks them.
pub fn message_handlers() -> Vec<Box<dyn crate::messaging::router::Handler>> {
    vec![
        Box::new(care::replies::CaregiverReplies),
        Box::new(ambulance::replies::CrewReplies),
        Box::new(maintenance::replies::WorkerReplies),
        Box::new(patients::replies::PatientVoices),
        Box::new(maintenance::requests::RequesterReports),
    ]
}
