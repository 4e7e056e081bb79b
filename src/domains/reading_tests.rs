//! The reader against the corpus files in `tests/corpus/`, word for word, without a database:
//! the quick loop for whoever changes `intents/`. The same files run end to end in
//! `tests/api/corpus.rs`.

use std::path::Path;

use crate::{
    domains::{care::replies::CARE_INTENTS, maintenance::replies::WORKER_INTENTS},
    messaging::{
        router::{CONSENT, Registry},
        understanding::{self, Context, IntentSet, Lexicons},
    },
};

fn lexicons() -> Lexicons {
    let sets = Registry::new(super::message_handlers()).intent_sets();
    Lexicons::load(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("intents"),
        &sets,
    )
    .unwrap()
}

/// One line of a corpus file: its number, the text, the intent and the fields expected.
type Line = (usize, String, String, Vec<(String, String)>);

fn corpus(name: &str) -> Vec<Line> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/corpus")
        .join(name);
    std::fs::read_to_string(&path)
        .unwrap()
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|(n, line)| {
            let mut parts = line.split('\t');
            let text = parts.next().unwrap().to_owned();
            let intent = parts.next().unwrap_or("").to_owned();
            let fields = parts
                .next()
                .unwrap_or("")
                .split(';')
                .filter(|f| !f.is_empty())
                .map(|f| {
                    let (k, v) = f.split_once('=').unwrap();
                    (k.to_owned(), v.to_owned())
                })
                .collect();
            (n + 1, text, intent, fields)
        })
        .collect()
}

/// Consent first, as the router reads it, then the domain's set, in the context the end-to-end
/// test sets up: an offered job for accept and decline, accepted work for the rest; a visit due
/// for check-in and other words, one in progress for check-out.
fn intent_of(
    lexicons: &Lexicons,
    set: &IntentSet,
    text: &str,
    fallback: &str,
    expected: &str,
) -> (String, understanding::Reading) {
    let consent = understanding::read(lexicons, &CONSENT, text, Context::default());
    if let Some(top) = consent.ranked.first()
        && top.alone
        && top.intent != "opt_in"
    {
        return (top.intent.to_owned(), consent);
    }
    let likely: &[&'static str] = match expected {
        "accept" | "decline" => &["accept", "decline"],
        "check_out" => &["check_out"],
        "check_in" | "other" => &["check_in"],
        _ => &["on_my_way", "started", "decline"],
    };
    let reading = understanding::read(lexicons, set, text, Context { expected: likely });
    if let Some((a, b)) = understanding::unsure(set, &reading) {
        return (format!("asked {a} or {b}"), reading);
    }
    let intent = reading.top().unwrap_or(fallback).to_owned();
    (intent, reading)
}

fn check(name: &str, set: &IntentSet, fallback: &str) -> (usize, Vec<String>) {
    let lexicons = lexicons();
    let lines = corpus(name);
    let mut wrong = Vec::new();
    for (n, text, expected, fields) in &lines {
        let (intent, reading) = intent_of(&lexicons, set, text, fallback, expected);
        let mut problems = Vec::new();
        if &intent != expected {
            problems.push(format!("read as {intent}"));
        }
        for (field, value) in fields {
            let got = match field.as_str() {
                "hours" => reading.hours.map(|h| h.to_string()),
                "reason" | "note" => reading.rest.clone(),
                "ref" => reading.reference.map(|r| r.number.to_string()),
                other => panic!("{name}:{n}: unknown field {other}"),
            };
            let want = match field.as_str() {
                "hours" => value.parse::<f64>().unwrap().to_string(),
                "ref" => value
                    .trim_start_matches(|c: char| !c.is_ascii_digit())
                    .to_owned(),
                _ => value.clone(),
            };
            if got.as_deref() != Some(want.as_str()) {
                problems.push(format!("{field}={got:?}, want {want:?}"));
            }
        }
        if !problems.is_empty() {
            wrong.push(format!(
                "{name}:{n} {text:?} ({expected}): {}",
                problems.join("; ")
            ));
        }
    }
    (lines.len(), wrong)
}

#[test]
fn every_corpus_line_reads_as_written() {
    for (file, set, fallback) in [
        ("maintenance.tsv", &WORKER_INTENTS, "comment"),
        ("care.tsv", &CARE_INTENTS, "other"),
    ] {
        let (total, wrong) = check(file, set, fallback);
        assert!(
            wrong.is_empty(),
            "{} of {total} wrong:\n{}",
            wrong.len(),
            wrong.join("\n")
        );
    }
}

#[test]
fn help_lists_every_intent_in_the_readers_words() {
    let lexicons = lexicons();
    for locale in ["en", "am"] {
        let lines = lexicons.help_lines(locale, &WORKER_INTENTS);
        assert_eq!(lines.len(), WORKER_INTENTS.intents.len(), "{locale}");
        // Every example shown is read back as its own intent.
        for (line, intent) in lines.iter().zip(WORKER_INTENTS.intents) {
            let example = line.trim_start_matches("• ").split(" — ").next().unwrap();
            let reading =
                understanding::read(&lexicons, &WORKER_INTENTS, example, Context::default());
            assert_eq!(reading.top(), Some(intent.name), "{locale}: {line}");
        }
    }
}

#[test]
fn survey_answers_in_words_read_as_their_answer() {
    use crate::domains::patients::{Fft, SURVEY_ANSWERS};
    let lexicons = lexicons();
    for (text, code) in [
        ("👍", 2),
        ("very good", 1),
        ("verry good", 1),
        ("it was ok", 2),
        ("not good", 4),
        ("so so", 3),
        ("በጣም ጥሩ", 1),
        ("I dont know", 6),
    ] {
        let reading = understanding::read(&lexicons, &SURVEY_ANSWERS, text, Context::default());
        assert_eq!(
            understanding::unsure(&SURVEY_ANSWERS, &reading),
            None,
            "{text}: {reading:?}"
        );
        let top = reading.top().and_then(Fft::from_intent);
        assert_eq!(top, Fft::new(code), "{text}: {reading:?}");
    }
}
