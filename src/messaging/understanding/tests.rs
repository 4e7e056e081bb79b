//! The reader's rules, on a small lexicon of its own (the shipped words are tested against the
//! corpus in `domains`).

use std::path::PathBuf;

use super::*;

static JOBS: IntentSet = IntentSet {
    name: "jobs",
    intents: &[
        Intent {
            name: "done",
            negated: None,
        },
        Intent {
            name: "decline",
            negated: None,
        },
        Intent {
            name: "accept",
            negated: Some("decline"),
        },
    ],
    opposites: &[("accept", "decline")],
};

const EN: &str = r#"
[reading]
negations = ["not", "no", "cant", "dont"]
fillers = ["i", "it", "now", "the"]
plain = ["gone"]
hour_units = ["h", "hr", "hrs", "hour", "hours"]
minute_units = ["min", "mins", "minutes"]
half = ["half"]
joiners = ["and"]
duration_leads = ["after", "took"]
reference_words = ["job", "wo"]
numbers = { a = 1, an = 1, two = 2 }
positive_reactions = ["👍"]
something_else = "Something else"

[jobs.done]
label = "Done"
help = "finished"
say = ["done", "finished", "all done"]

[jobs.decline]
label = "Decline"
help = "give it back"
say = ["decline", "cant", "cant come", "not me"]
cues = ["on leave"]
alone = ["no"]

[jobs.accept]
label = "Accept"
help = "take it"
say = ["accept", "take it", "come", "ok sure"]
alone = ["ok"]
"#;

const AM: &str = r#"
[reading]
something_else = "ሌላ ነገር"

[jobs.done]
label = "ጨረስኩ"
help = "ተጠናቋል"
say = ["ጨረስኩ"]

[jobs.decline]
label = "አልችልም"
help = "ለመመለስ"
say = ["አልችልም"]

[jobs.accept]
label = "እሺ"
help = "ለመቀበል"
alone = ["እሺ"]
"#;

fn lexicons() -> Lexicons {
    Lexicons::from_sources(
        &[
            (PathBuf::from("intents/en.toml"), EN.to_owned()),
            (PathBuf::from("intents/am.toml"), AM.to_owned()),
        ],
        &[&JOBS],
    )
    .unwrap()
}

fn top(text: &str) -> Option<&'static str> {
    read(&lexicons(), &JOBS, text, Context::default()).top()
}

#[test]
fn finds_the_command_inside_a_sentence_and_forgives_typos_by_length() {
    assert_eq!(top("ok I'll take it"), Some("accept"));
    assert_eq!(top("well it is all done now"), Some("done"));
    assert_eq!(top("finsihed"), Some("done"), "a swap is one edit");
    assert_eq!(top("fniished"), Some("done"), "two edits in a long word");
    assert_eq!(top("dnoe"), Some("done"), "a swap in a four-letter word");
    assert_eq!(top("gone"), None, "a real word is read as itself");
    assert_eq!(top("dont"), None, "a negation is never a typo of a command");
    assert_eq!(
        top("bone"),
        None,
        "a four-letter word keeps its first letter"
    );
    assert_eq!(top("doneee"), Some("done"), "doubled letters");
}

#[test]
fn alone_words_count_only_alone() {
    assert_eq!(top("ok"), Some("accept"));
    assert_eq!(top("ok the pipe is old"), None);
    assert_eq!(top("no"), Some("decline"));
    assert_eq!(top("no key for the room"), None);
    assert_eq!(top("እሺ"), Some("accept"));
}

#[test]
fn negation_flips_or_cancels_a_command() {
    assert_eq!(top("cant come"), Some("decline"));
    assert_eq!(
        top("I can not come today"),
        Some("decline"),
        "not → accept flips"
    );
    assert_eq!(top("not done yet"), None, "a negated done is no command");
    let reading = read(&lexicons(), &JOBS, "not done yet", Context::default());
    assert!(reading.negated);
    assert_eq!(
        top("no, cant"),
        Some("decline"),
        "a no before can't is emphasis"
    );
    assert_eq!(top("not me, on leave"), Some("decline"));
}

#[test]
fn takes_durations_in_every_common_form() {
    let hours = |text: &str| read(&lexicons(), &JOBS, text, Context::default()).hours;
    for (text, expected) in [
        ("done 45min", 0.75),
        ("done 90 min", 1.5),
        ("done 1h30", 1.5),
        ("done 1h 30", 1.5),
        ("done 1.5 hours", 1.5),
        ("done 1,5h", 1.5),
        ("done, an hour and a half", 1.5),
        ("done after 2 hrs", 2.0),
        ("done two hours", 2.0),
        ("done 2hrs", 2.0),
        ("done half an hour", 0.5),
        ("done 1 hour 15 min", 1.25),
    ] {
        assert_eq!(hours(text), Some(expected), "{text}");
    }
    assert_eq!(hours("done, need another hour tomorrow"), None);
    assert_eq!(hours("done 2"), None, "a number alone is no duration");
}

#[test]
fn takes_references_written_loosely() {
    let reference = |text: &str| read(&lexicons(), &JOBS, text, Context::default()).reference;
    let m = Reference {
        prefix: Some('M'),
        number: 1042,
    };
    let any = Reference {
        prefix: None,
        number: 1042,
    };
    assert_eq!(reference("M-1042 done"), Some(m));
    assert_eq!(reference("done m1042"), Some(m));
    assert_eq!(reference("#1042 done"), Some(any));
    assert_eq!(reference("job 1042 done"), Some(any));
    assert_eq!(reference("wo 1042 done"), Some(any));
    assert_eq!(reference("wo1042 done"), Some(any));
    assert_eq!(reference("done in 2 hours"), None);
    assert!(any.matches("M-1042") && any.matches("H-1042") && !any.matches("M-10420"));
    assert!(m.matches("M-1042") && !m.matches("H-1042"));
}

#[test]
fn the_rest_keeps_the_persons_words_without_commands_or_fields() {
    let rest = |text: &str| read(&lexicons(), &JOBS, text, Context::default()).rest;
    assert_eq!(
        rest("done 1h30 replaced breaker").as_deref(),
        Some("replaced breaker")
    );
    assert_eq!(
        rest("done, 90 min, New tap washer").as_deref(),
        Some("New tap washer")
    );
    assert_eq!(rest("done, parts: washer x2").as_deref(), Some("washer x2"));
    assert_eq!(rest("not me, I on leave").as_deref(), Some("on leave"));
    assert_eq!(rest("done").as_deref(), None);
}

#[test]
fn context_breaks_ties_and_opposites_too_close_are_asked() {
    let lexicons = lexicons();
    let reading = read(&lexicons, &JOBS, "ok sure, cant", Context::default());
    assert_eq!(unsure(&JOBS, &reading), Some(("accept", "decline")));
    assert!(reading.confidence() < 0.7, "{}", reading.confidence());
    // A command read only through a typo among other words is asked, beside "something else".
    let guess = read(&lexicons, &JOBS, "the dome is leaking", Context::default());
    assert_eq!(unsure(&JOBS, &guess), Some(("done", SOMETHING_ELSE)));
    let alone = read(&lexicons, &JOBS, "finsihed", Context::default());
    assert_eq!(
        unsure(&JOBS, &alone),
        None,
        "a typo on its own is clear enough"
    );
    let sure = read(&lexicons, &JOBS, "accept", Context::default());
    assert_eq!(unsure(&JOBS, &sure), None);
    assert!(sure.confidence() > 0.9, "{}", sure.confidence());
}

#[test]
fn ethiopic_digits_read_as_latin_ones() {
    // What the router parses a numbered answer from.
    assert_eq!(normalize("፪").parse::<usize>().ok(), Some(2));
    assert_eq!(normalize(" 3. ").parse::<usize>().ok(), Some(3));
    let hours = |text: &str| read(&lexicons(), &JOBS, text, Context::default()).hours;
    assert_eq!(hours("done ፪ hours"), Some(2.0));
}

#[test]
fn a_declared_intent_without_words_in_a_locale_refuses_to_start() {
    let without_accept = AM.replace("[jobs.accept]", "[jobs.unused]");
    let err = Lexicons::from_sources(
        &[
            (PathBuf::from("intents/en.toml"), EN.to_owned()),
            (PathBuf::from("intents/am.toml"), without_accept),
        ],
        &[&JOBS],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("jobs.unused is not an intent of jobs"),
        "{err}"
    );
    let missing = AM.replace(
        "[jobs.accept]\nlabel = \"እሺ\"\nhelp = \"ለመቀበል\"\nalone = [\"እሺ\"]\n",
        "",
    );
    let err = Lexicons::from_sources(
        &[
            (PathBuf::from("intents/en.toml"), EN.to_owned()),
            (PathBuf::from("intents/am.toml"), missing),
        ],
        &[&JOBS],
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("intents/am.toml has no words for jobs.accept"),
        "{err}"
    );
}

#[test]
fn help_is_generated_from_the_same_words() {
    let lexicons = lexicons();
    assert_eq!(
        lexicons.help_lines("en", &JOBS),
        [
            "• DONE — finished",
            "• DECLINE — give it back",
            "• ACCEPT — take it"
        ]
    );
    assert_eq!(lexicons.help_lines("am", &JOBS)[2], "• እሺ — ለመቀበል");
    assert!(lexicons.is_positive_reaction("👍🏽"));
    assert!(!lexicons.is_positive_reaction("😂"));
}
