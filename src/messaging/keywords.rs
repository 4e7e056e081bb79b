//! Lenient matching of what people type: case, accents, extra spaces and surrounding
//! punctuation do not matter.

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

/// Lowercase, accents stripped, punctuation trimmed from both ends, inner spaces collapsed.
/// `"  ¡Stóp!! "` becomes `"stop"`. Ethiopic letters pass through unchanged.
pub fn normalize(text: &str) -> String {
    let folded: String = text
        .nfkd()
        .filter(|c| !is_combining_mark(*c))
        .flat_map(char::to_lowercase)
        .collect();
    let words: Vec<&str> = folded
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .collect();
    words.join(" ")
}

/// What a consent or help keyword asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keyword {
    OptOut,
    OptIn,
    Help,
}

/// The carrier-standard words, plus plain phrases and their Amharic equivalents.
const OPT_OUT: &[&str] = &[
    "stop",
    "stopall",
    "stop all",
    "unsubscribe",
    "cancel",
    "end",
    "quit",
    "revoke",
    "optout",
    "opt out",
    "stop texting me",
    "stop messaging me",
    "stop sending me messages",
    "stop sending messages",
    "no more messages",
    "no more texts",
    "please stop",
    "አቁም",
    "አቁሙ",
    "መልዕክት አትላኩ",
];
const OPT_IN: &[&str] = &["start", "yes", "unstop", "ጀምር"];
const HELP: &[&str] = &["help", "info", "እርዳታ"];

/// The keyword a whole message amounts to, if any. Only the whole message counts: "cancel M-1042"
/// is a domain command, not an opt-out.
pub fn keyword(normalized: &str) -> Option<Keyword> {
    if OPT_OUT.contains(&normalized) {
        Some(Keyword::OptOut)
    } else if OPT_IN.contains(&normalized) {
        Some(Keyword::OptIn)
    } else if HELP.contains(&normalized) {
        Some(Keyword::Help)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_case_accents_and_punctuation() {
        assert_eq!(normalize("  ¡Stóp!! "), "stop");
        assert_eq!(normalize("STOP."), "stop");
        assert_eq!(normalize("Stop   texting me!!!"), "stop texting me");
        assert_eq!(normalize("«UNSUBSCRIBE»"), "unsubscribe");
        assert_eq!(normalize("አቁም።"), "አቁም");
        assert_eq!(normalize("M-1042 done"), "m-1042 done");
    }

    #[test]
    fn finds_whole_message_keywords_only() {
        for word in [
            "STOP",
            "stopall",
            "Unsubscribe",
            "cancel",
            "END",
            "quit",
            "revoke",
            "OPTOUT",
            "stop texting me",
            "No more messages!",
        ] {
            assert_eq!(keyword(&normalize(word)), Some(Keyword::OptOut), "{word}");
        }
        for word in ["START", "yes", "Unstop"] {
            assert_eq!(keyword(&normalize(word)), Some(Keyword::OptIn), "{word}");
        }
        for word in ["help", "INFO?", "እርዳታ"] {
            assert_eq!(keyword(&normalize(word)), Some(Keyword::Help), "{word}");
        }
        for text in ["cancel M-1042", "stop by the ward later", "done", "helpful"] {
            assert_eq!(keyword(&normalize(text)), None, "{text}");
        }
    }
}
