//! The words, per locale, from `intents/<locale>.toml`: loaded and checked at start against the
//! intents the domains declare, so a missing or misspelt intent stops the service with its name.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
};

use anyhow::{Context, bail};
use serde::Deserialize;

use super::{IntentSet, text};

/// A button title's limit on WhatsApp; labels become buttons when the bot asks which was meant.
const MAX_LABEL_CHARS: usize = 20;

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawReading {
    #[serde(default)]
    negations: Vec<String>,
    #[serde(default)]
    fillers: Vec<String>,
    #[serde(default)]
    subjects: Vec<String>,
    #[serde(default)]
    plain: Vec<String>,
    #[serde(default)]
    hour_units: Vec<String>,
    #[serde(default)]
    minute_units: Vec<String>,
    #[serde(default)]
    half: Vec<String>,
    #[serde(default)]
    joiners: Vec<String>,
    #[serde(default)]
    duration_leads: Vec<String>,
    #[serde(default)]
    reference_words: Vec<String>,
    #[serde(default)]
    numbers: BTreeMap<String, u32>,
    #[serde(default)]
    positive_reactions: Vec<String>,
    /// The label of the "none of those" button when the bot asks what was meant.
    something_else: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIntent {
    label: String,
    help: String,
    #[serde(default)]
    say: Vec<String>,
    #[serde(default)]
    cues: Vec<String>,
    #[serde(default)]
    alone: Vec<String>,
}

#[derive(Deserialize)]
struct RawFile {
    #[serde(default)]
    reading: RawReading,
    #[serde(flatten)]
    sets: BTreeMap<String, BTreeMap<String, RawIntent>>,
}

/// How a phrase may be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// The command itself: found anywhere, left out of the note.
    Say,
    /// Signals the intent and is part of what the person is telling us.
    Cue,
    /// Counts only when the message is nothing but it and filler.
    Alone,
}

#[derive(Debug, Clone)]
pub struct Phrase {
    pub set: &'static str,
    pub intent: &'static str,
    pub words: Vec<String>,
    pub usage: Use,
}

/// The label and help line of one intent in one locale.
#[derive(Debug, Clone)]
pub struct Shown {
    pub label: String,
    pub help: String,
    /// The first thing to say, shown in help ("accept").
    pub example: String,
}

/// Every locale's words, merged for reading (people mix languages), kept apart for showing.
#[derive(Debug, Default)]
pub struct Lexicons {
    pub(super) phrases: Vec<Phrase>,
    pub(super) negations: HashSet<String>,
    pub(super) fillers: HashSet<String>,
    /// Words that start a new statement, out of reach of a negation before them ("I", "we").
    pub(super) subjects: HashSet<String>,
    /// Words read as themselves, never as a typo of a command.
    pub(super) known: HashSet<String>,
    pub(super) hour_units: HashSet<String>,
    pub(super) minute_units: HashSet<String>,
    pub(super) half: HashSet<String>,
    pub(super) joiners: HashSet<String>,
    pub(super) duration_leads: HashSet<String>,
    pub(super) reference_words: HashSet<String>,
    pub(super) numbers: HashMap<String, u32>,
    pub(super) positive_reactions: HashSet<String>,
    shown: BTreeMap<(String, &'static str, &'static str), Shown>,
    something_else: BTreeMap<String, String>,
    locales: Vec<String>,
}

/// Folded words of a phrase, as the reader will see them in a message.
fn words_of(phrase: &str) -> Vec<String> {
    text::tokens(phrase)
        .into_iter()
        .filter(|t| t.kind != text::Kind::Break)
        .map(|t| t.norm)
        .collect()
}

impl Lexicons {
    /// Reads every `*.toml` in `dir` (its stem is the locale) and checks it against `sets`.
    pub fn load(dir: &Path, sets: &[&'static IntentSet]) -> anyhow::Result<Self> {
        let sources = crate::messaging::templates::toml_files(dir, "the intent words")?;
        Self::from_sources(&sources, sets)
    }

    pub fn from_sources(
        sources: &[(PathBuf, String)],
        sets: &[&'static IntentSet],
    ) -> anyhow::Result<Self> {
        if sources.is_empty() {
            bail!("no intent words found (expected intents/en.toml and one file per locale)");
        }
        let mut lexicons = Self::default();
        for (file, source) in sources {
            let locale = file
                .file_stem()
                .and_then(|s| s.to_str())
                .with_context(|| format!("{}: cannot tell the locale", file.display()))?
                .to_owned();
            let mut raw: RawFile = toml::from_str(source)
                .with_context(|| format!("{} is not a valid intent file", file.display()))?;
            let something_else = raw.reading.something_else.take().with_context(|| {
                format!(
                    "{}: [reading] has no something_else (the label of \"none of those\")",
                    file.display()
                )
            })?;
            if something_else.chars().count() > MAX_LABEL_CHARS {
                bail!(
                    "{}: something_else is over {MAX_LABEL_CHARS} characters",
                    file.display()
                );
            }
            lexicons
                .something_else
                .insert(locale.clone(), something_else);
            lexicons.add_reading(raw.reading);
            for (set_name, intents) in raw.sets {
                let Some(set) = sets.iter().find(|s| s.name == set_name) else {
                    let known: Vec<&str> = sets.iter().map(|s| s.name).collect();
                    bail!(
                        "{}: [{set_name}] is not a set of intents the service reads (it reads {})",
                        file.display(),
                        known.join(", ")
                    );
                };
                for (intent_name, raw) in intents {
                    let Some(intent) = set.intents.iter().find(|i| i.name == intent_name) else {
                        let known: Vec<&str> = set.intents.iter().map(|i| i.name).collect();
                        bail!(
                            "{}: {set_name}.{intent_name} is not an intent of {set_name} (it has {})",
                            file.display(),
                            known.join(", ")
                        );
                    };
                    let at = || format!("{}: {set_name}.{intent_name}", file.display());
                    if raw.label.chars().count() > MAX_LABEL_CHARS {
                        bail!("{}: label is over {MAX_LABEL_CHARS} characters", at());
                    }
                    if raw.help.trim().is_empty() {
                        bail!("{}: help is empty", at());
                    }
                    let example = raw
                        .say
                        .iter()
                        .chain(&raw.alone)
                        .chain(&raw.cues)
                        .next()
                        .with_context(|| format!("{}: has no words (say, cues or alone)", at()))?
                        .clone();
                    for (list, usage) in [
                        (&raw.say, Use::Say),
                        (&raw.cues, Use::Cue),
                        (&raw.alone, Use::Alone),
                    ] {
                        for phrase in list {
                            let words = words_of(phrase);
                            if words.is_empty() {
                                bail!("{}: {phrase:?} has nothing to read", at());
                            }
                            lexicons.known.extend(words.iter().cloned());
                            lexicons.phrases.push(Phrase {
                                set: set.name,
                                intent: intent.name,
                                words,
                                usage,
                            });
                        }
                    }
                    lexicons.shown.insert(
                        (locale.clone(), set.name, intent.name),
                        Shown {
                            label: raw.label,
                            help: raw.help,
                            example,
                        },
                    );
                }
            }
            lexicons.locales.push(locale);
        }
        // Every declared intent has words in every shipped locale.
        for locale in &lexicons.locales {
            for set in sets {
                for intent in set.intents {
                    if !lexicons
                        .shown
                        .contains_key(&(locale.clone(), set.name, intent.name))
                    {
                        bail!(
                            "intents/{locale}.toml has no words for {}.{} (add [{}.{}] with label, help and say)",
                            set.name,
                            intent.name,
                            set.name,
                            intent.name
                        );
                    }
                }
            }
        }
        // Longest phrases first: "not me" before "no", "on my way" before "on".
        lexicons
            .phrases
            .sort_by_key(|p| std::cmp::Reverse(p.words.len()));
        Ok(lexicons)
    }

    fn add_reading(&mut self, raw: RawReading) {
        let add = |target: &mut HashSet<String>, words: &[String], known: &mut HashSet<String>| {
            for word in words.iter().flat_map(|w| words_of(w)) {
                known.insert(word.clone());
                target.insert(word);
            }
        };
        add(&mut self.negations, &raw.negations, &mut self.known);
        add(&mut self.fillers, &raw.fillers, &mut self.known);
        add(&mut self.subjects, &raw.subjects, &mut self.known);
        let mut plain = HashSet::new();
        add(&mut plain, &raw.plain, &mut self.known);
        add(&mut self.hour_units, &raw.hour_units, &mut self.known);
        add(&mut self.minute_units, &raw.minute_units, &mut self.known);
        add(&mut self.half, &raw.half, &mut self.known);
        add(&mut self.joiners, &raw.joiners, &mut self.known);
        add(
            &mut self.duration_leads,
            &raw.duration_leads,
            &mut self.known,
        );
        add(
            &mut self.reference_words,
            &raw.reference_words,
            &mut self.known,
        );
        add(
            &mut self.positive_reactions,
            &raw.positive_reactions,
            &mut self.known,
        );
        for (word, value) in raw.numbers {
            let word = text::fold(&word);
            self.known.insert(word.clone());
            self.numbers.insert(word, value);
        }
    }

    /// The locales with words, as shipped.
    pub fn locales(&self) -> &[String] {
        &self.locales
    }

    /// Label, help line and an example of `set.intent` in `locale`, else in English.
    pub fn shown(&self, locale: &str, set: &str, intent: &str) -> Option<&Shown> {
        let find = |locale: &str| {
            self.shown
                .iter()
                .find(|((l, s, i), _)| l == locale && *s == set && *i == intent)
                .map(|(_, shown)| shown)
        };
        find(locale).or_else(|| find("en"))
    }

    /// The label of the "none of those" choice in `locale`, else in English.
    pub fn something_else(&self, locale: &str) -> &str {
        self.something_else
            .get(locale)
            .or_else(|| self.something_else.get("en"))
            .map_or("Something else", String::as_str)
    }

    /// The help a person gets: one line per intent of `set`, from the same words the reader uses.
    pub fn help_lines(&self, locale: &str, set: &IntentSet) -> Vec<String> {
        set.intents
            .iter()
            .filter_map(|intent| self.shown(locale, set.name, intent.name))
            .map(|shown| format!("• {} — {}", shown.example.to_uppercase(), shown.help))
            .collect()
    }

    /// 👍 and its kin: a reaction that says yes.
    pub fn is_positive_reaction(&self, emoji: &str) -> bool {
        text::tokens(emoji)
            .first()
            .is_some_and(|t| self.positive_reactions.contains(&t.norm))
    }
}
