//! Patients' voice: the survey after a visit, trip or work order (the NHS Friends and Family Test),
//! feedback and complaints people start themselves (also without their name), and complaint
//! handling with deadlines on the organisation's working-day calendar.

pub mod calendar;
pub mod complaints;
pub mod feedback;
pub mod replies;
pub mod settings;
pub mod surveys;
pub mod trends;

use crate::{
    error::Invalid,
    messaging::understanding::{Intent, IntentSet},
};

/// Why a patient-feedback record could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum VoiceError {
    #[error(transparent)]
    Invalid(#[from] Invalid),
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The record is not in a state that allows it ("resolved" twice, a reply to nobody).
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

pub type VoiceResult<T> = Result<T, VoiceError>;

/// What anyone writing in can say besides feedback itself.
pub static PATIENT_INTENTS: IntentSet = IntentSet {
    name: "patients",
    intents: &[
        Intent {
            name: "anonymous",
            negated: None,
        },
        Intent {
            name: "complaint",
            negated: None,
        },
    ],
    opposites: &[],
};

/// The answers to the survey question, as words; digits and taps are read before these.
pub static SURVEY_ANSWERS: IntentSet = IntentSet {
    name: "survey",
    intents: &[
        Intent {
            name: "very_poor",
            negated: None,
        },
        Intent {
            name: "very_good",
            negated: Some("poor"),
        },
        Intent {
            name: "dont_know",
            negated: None,
        },
        Intent {
            name: "neither",
            negated: None,
        },
        Intent {
            name: "poor",
            negated: Some("good"),
        },
        Intent {
            name: "good",
            negated: Some("poor"),
        },
    ],
    opposites: &[("good", "poor"), ("very_good", "very_poor")],
};

/// Words that make a complaint serious by default.
pub static COMPLAINT_SEVERITY: IntentSet = IntentSet {
    name: "complaint_severity",
    intents: &[Intent {
        name: "high",
        negated: None,
    }],
    opposites: &[],
};

/// An answer to the Friends and Family Test: 1 very good … 5 very poor, 6 don't know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Fft(u8);

impl Fft {
    pub const DONT_KNOW: Self = Self(6);

    pub fn new(code: i64) -> Option<Self> {
        (1..=6).contains(&code).then_some(Self(code as u8))
    }

    /// The answer a word of [`SURVEY_ANSWERS`] stands for.
    pub fn from_intent(intent: &str) -> Option<Self> {
        Some(Self(match intent {
            "very_good" => 1,
            "good" => 2,
            "neither" => 3,
            "poor" => 4,
            "very_poor" => 5,
            "dont_know" => 6,
            _ => return None,
        }))
    }

    pub fn code(self) -> i16 {
        i16::from(self.0)
    }

    /// The schema document's 1–5 rating (5 best); "don't know" has none.
    pub fn rating(self) -> Option<i16> {
        (self.0 <= 5).then(|| 6 - i16::from(self.0))
    }

    /// Poor or very poor: the loop is closed with a call-back.
    pub fn is_poor(self) -> bool {
        matches!(self.0, 4 | 5)
    }

    /// The intent (and message-template suffix) naming this answer.
    pub fn name(self) -> &'static str {
        match self.0 {
            1 => "very_good",
            2 => "good",
            3 => "neither",
            4 => "poor",
            5 => "very_poor",
            _ => "dont_know",
        }
    }

    pub fn all() -> impl Iterator<Item = Self> {
        (1..=6).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rating_is_six_minus_the_code_and_dont_know_has_none() {
        assert_eq!(Fft::new(1).unwrap().rating(), Some(5));
        assert_eq!(Fft::new(5).unwrap().rating(), Some(1));
        assert_eq!(Fft::DONT_KNOW.rating(), None);
        assert!(Fft::new(4).unwrap().is_poor() && !Fft::new(3).unwrap().is_poor());
        assert_eq!(Fft::new(0), None);
        assert_eq!(Fft::new(7), None);
        for answer in Fft::all() {
            assert_eq!(Fft::from_intent(answer.name()), Some(answer));
        }
    }
}
