//! One reader for every domain: text in, ranked intents with fields out.
//!
//! Domains declare what people can mean ([`IntentSet`]); the words for each intent live in
//! `intents/<locale>.toml` ([`Lexicons`]). Reading finds a command inside a sentence, forgives
//! typos in proportion to a word's length, lets negation flip a command ("can't come"), and takes
//! out durations ("1h30", "an hour and a half") and references ("wo 1042") as fields. What the
//! conversation expects breaks ties; readings too close to call are for the bot to ask about.

pub mod lexicon;
pub mod text;

use std::{collections::HashSet, fmt, ops::Range};

pub use lexicon::Lexicons;
use lexicon::Use;
pub use text::normalize;
use text::{Kind, Token};

/// Something a person can mean, declared by the domain that acts on it.
#[derive(Debug)]
pub struct Intent {
    pub name: &'static str,
    /// What it becomes when negated ("can't come": accept becomes decline); `None` when a
    /// negated command is no command at all ("not done yet").
    pub negated: Option<&'static str>,
}

/// A domain's intents, in order of precedence when two are read equally well.
#[derive(Debug)]
pub struct IntentSet {
    pub name: &'static str,
    pub intents: &'static [Intent],
    /// Pairs that would move a record opposite ways: too close a call between them is asked.
    pub opposites: &'static [(&'static str, &'static str)],
}

impl IntentSet {
    fn rank_of(&self, intent: &str) -> usize {
        self.intents
            .iter()
            .position(|i| i.name == intent)
            .unwrap_or(usize::MAX)
    }

    fn negation_of(&self, intent: &str) -> Option<&'static str> {
        self.intents
            .iter()
            .find(|i| i.name == intent)
            .and_then(|i| i.negated)
    }

    fn opposite(&self, a: &str, b: &str) -> bool {
        self.opposites
            .iter()
            .any(|&(x, y)| (x == a && y == b) || (x == b && y == a))
    }
}

/// What the conversation makes likely at this moment.
#[derive(Debug, Default, Clone, Copy)]
pub struct Context<'a> {
    /// Intents that make sense now (an offered job can be accepted, a started one finished).
    pub expected: &'a [&'static str],
}

/// A work-order, trip or complaint reference, written loosely: "M-1042", "m1042", "#1042",
/// "job 1042". Without a letter it matches any record with that number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reference {
    pub prefix: Option<char>,
    pub number: u32,
}

impl Reference {
    /// Whether a stored reference ("M-1042") is this one.
    pub fn matches(&self, stored: &str) -> bool {
        let Some((prefix, number)) = stored.split_once('-') else {
            return false;
        };
        number.parse::<u32>().ok() == Some(self.number)
            && self
                .prefix
                .is_none_or(|p| prefix.eq_ignore_ascii_case(&p.to_string()))
    }

    /// The number as written in the database's `reference` column's tail: for `LIKE '%-1042'`.
    pub fn number_suffix(&self) -> String {
        format!("-{}", self.number)
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.prefix {
            Some(p) => write!(f, "{p}-{}", self.number),
            None => write!(f, "#{}", self.number),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub intent: &'static str,
    pub score: f32,
    /// The message is this command and nothing more (filler and emoji aside).
    pub alone: bool,
    /// Read only through a typo, inside other words ("the dome leaks" is not "done"): asked.
    pub guessed: bool,
}

/// The choice beside a guess when the bot asks "did you mean …?": none of those, keep the words.
pub const SOMETHING_ELSE: &str = "something_else";

/// What a message was read as.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Reading {
    /// Best first; empty when no command was found.
    pub ranked: Vec<Candidate>,
    /// The command the message opens with, if it opens with one ("stop, wrong number").
    pub leading: Option<&'static str>,
    /// A command was there but negated into nothing ("not done yet"): words, not a command.
    pub negated: bool,
    pub hours: Option<f64>,
    pub reference: Option<Reference>,
    /// The person's own words once commands, filler, durations and references are out:
    /// a reason, a note, the parts used.
    pub rest: Option<String>,
}

impl Reading {
    pub fn top(&self) -> Option<&'static str> {
        self.ranked.first().map(|c| c.intent)
    }

    /// How sure the reading is, from 0 to 1: a command alone is sure, one in a sentence less,
    /// a typo less again, and a close second halves it.
    pub fn confidence(&self) -> f32 {
        let Some(top) = self.ranked.first() else {
            return 0.0;
        };
        let second = self.ranked.get(1).map_or(0.0, |c| c.score);
        (top.score / 1.2).min(1.0) * (1.0 - 0.5 * (second / top.score))
    }
}

#[derive(Debug, Clone)]
struct Match {
    intent: &'static str,
    tokens: Range<usize>,
    usage: Use,
    fuzzy: bool,
}

/// Reads `text` for the intents of `set`.
pub fn read(lexicons: &Lexicons, set: &IntentSet, text: &str, context: Context<'_>) -> Reading {
    let tokens = text::tokens(text);
    let mut reading = Reading::default();
    let mut taken: HashSet<usize> = HashSet::new();
    if let Some((hours, span)) = duration(lexicons, &tokens) {
        reading.hours = Some(hours);
        taken.extend(span);
    }
    if let Some((reference, span)) = reference(lexicons, &tokens) {
        reading.reference = Some(reference);
        taken.extend(span);
    }
    let matches = find_matches(lexicons, set, &tokens, &taken);
    let first_word = tokens.iter().position(|t| t.kind != Kind::Break);
    let mut best: Vec<Candidate> = Vec::new();
    // Negated into nothing: those words are the person's, not a command ("not finished").
    let mut dropped: Vec<usize> = Vec::new();
    for m in &matches {
        // "can't" and "not me" carry their own negation: a "no" before them is emphasis.
        let negated = negated_before(lexicons, &tokens, m.tokens.start)
            && !tokens[m.tokens.clone()]
                .iter()
                .any(|t| lexicons.negations.contains(&t.norm));
        let intent = if negated {
            match set.negation_of(m.intent) {
                Some(flipped) => flipped,
                None => {
                    reading.negated = true;
                    dropped.push(m.tokens.start);
                    continue;
                }
            }
        } else {
            m.intent
        };
        let length = m.tokens.len() as f32;
        // A cue hints ("no parts" may be a hold, or a reason to decline); a command says.
        let mut score = match m.usage {
            Use::Cue => 0.8,
            _ => 1.0 + 0.25 * (length - 1.0),
        };
        if m.fuzzy {
            score *= 0.7;
        }
        // Another intent's words are not filler: "coming now 🚶" is not "coming" alone.
        let mut others = taken.clone();
        others.extend(
            matches
                .iter()
                .filter(|o| o.intent == m.intent)
                .flat_map(|o| o.tokens.clone()),
        );
        let others_filler = all_else_filler(lexicons, &tokens, &m.tokens, &others)
            && !matches.iter().any(|o| {
                o.intent != m.intent
                    && tokens[o.tokens.clone()]
                        .iter()
                        .any(|t| t.kind != Kind::Word)
            });
        let alone = m.usage == Use::Alone || others_filler;
        if alone {
            score *= 1.2;
        }
        if Some(m.tokens.start) == first_word && !negated {
            reading.leading = Some(intent);
        }
        if negated {
            score *= 0.9;
        }
        if context.expected.contains(&intent) {
            score *= 1.15;
        }
        match best.iter_mut().find(|c| c.intent == intent) {
            Some(c) => {
                c.score = c.score.max(score);
                c.alone |= alone;
                c.guessed &= m.fuzzy && !alone;
            }
            None => best.push(Candidate {
                intent,
                score,
                alone,
                guessed: m.fuzzy && !alone,
            }),
        }
    }
    best.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then(set.rank_of(a.intent).cmp(&set.rank_of(b.intent)))
    });
    reading.ranked = best;
    let commands: Vec<Match> = matches
        .into_iter()
        .filter(|m| !dropped.contains(&m.tokens.start))
        .collect();
    reading.rest = rest(lexicons, text, &tokens, &commands, &taken);
    reading
}

/// The two likeliest readings when neither clearly wins, for the bot to ask about: two that would
/// move a record opposite ways and are close ("sure, but can't today"), or a command read only
/// through a typo among other words, beside [`SOMETHING_ELSE`]. A question beats a guess.
pub fn unsure(set: &IntentSet, reading: &Reading) -> Option<(&'static str, &'static str)> {
    let first = reading.ranked.first()?;
    if let Some(second) = reading.ranked.get(1)
        && second.score >= 0.75 * first.score
        && set.opposite(first.intent, second.intent)
    {
        return Some((first.intent, second.intent));
    }
    first.guessed.then_some((first.intent, SOMETHING_ELSE))
}

fn similar(lexicons: &Lexicons, input: &str, target: &str) -> Option<bool> {
    if input == target {
        return Some(false);
    }
    if !text::is_latin_word(input) || !text::is_latin_word(target) || lexicons.known.contains(input)
    {
        return None;
    }
    if text::squeeze(input) == text::squeeze(target) {
        return Some(true);
    }
    let length = target.chars().count();
    if length < 4 {
        return None;
    }
    // Four-letter words are too close to each other ("done", "gone", "none") to forgive a first letter.
    if length == 4 && input.chars().next() != target.chars().next() {
        return None;
    }
    let allowed = if length >= 7 { 2 } else { 1 };
    (text::edits(input, target, allowed) <= allowed).then_some(true)
}

fn find_matches(
    lexicons: &Lexicons,
    set: &IntentSet,
    tokens: &[Token],
    taken: &HashSet<usize>,
) -> Vec<Match> {
    let mut found: Vec<Match> = Vec::new();
    for phrase in lexicons.phrases.iter().filter(|p| p.set == set.name) {
        let n = phrase.words.len();
        for start in 0..tokens.len().saturating_sub(n - 1) {
            let window = &tokens[start..start + n];
            if window.iter().any(|t| t.kind == Kind::Break)
                || (start..start + n).any(|i| taken.contains(&i))
            {
                continue;
            }
            let mut fuzzy = false;
            let all = window.iter().zip(&phrase.words).all(|(token, word)| {
                match similar(lexicons, &token.norm, word) {
                    Some(f) => {
                        fuzzy |= f;
                        true
                    }
                    None => false,
                }
            });
            if !all {
                continue;
            }
            let span = start..start + n;
            if phrase.usage == Use::Alone && !all_else_filler(lexicons, tokens, &span, taken) {
                continue;
            }
            // Longest first (the phrases are sorted so): a shorter one inside it is not read.
            // The same words may stand for two intents ("coming": accept an offer, or on my way
            // to accepted work); both are kept and the conversation decides.
            if found.iter().any(|m| {
                m.tokens.start < span.end
                    && span.start < m.tokens.end
                    && (m.intent == phrase.intent || m.tokens.len() > span.len())
            }) {
                continue;
            }
            found.push(Match {
                intent: phrase.intent,
                tokens: span,
                usage: phrase.usage,
                fuzzy,
            });
        }
    }
    found.sort_by_key(|m| m.tokens.start);
    found
}

/// Nothing else in the message but filler, emoji and taken fields.
fn all_else_filler(
    lexicons: &Lexicons,
    tokens: &[Token],
    span: &Range<usize>,
    taken: &HashSet<usize>,
) -> bool {
    tokens.iter().enumerate().all(|(i, t)| {
        span.contains(&i)
            || taken.contains(&i)
            || t.kind != Kind::Word
            || lexicons.fillers.contains(&t.norm)
    })
}

/// A negation in the three words before `start`, within the same clause and with no new subject
/// in between: "not coming" is negated, "no, I'm coming" and "no I'm busy" are not.
fn negated_before(lexicons: &Lexicons, tokens: &[Token], start: usize) -> bool {
    tokens[..start]
        .iter()
        .rev()
        .take_while(|t| t.kind != Kind::Break && !lexicons.subjects.contains(&t.norm))
        .take(3)
        .any(|t| lexicons.negations.contains(&t.norm))
}

/// "45min", "1h30", "1.5h", "2hrs": a number and unit in one word.
fn compact_hours(lexicons: &Lexicons, word: &str) -> Option<f64> {
    let split = word.find(|c: char| !(c.is_ascii_digit() || c == '.' || c == ','))?;
    let (number, unit) = word.split_at(split);
    let value: f64 = number.replace(',', ".").parse().ok()?;
    let unit_end = unit
        .find(|c: char| c.is_ascii_digit())
        .unwrap_or(unit.len());
    let (unit, tail) = unit.split_at(unit_end);
    if lexicons.minute_units.contains(unit) && tail.is_empty() {
        return Some(value / 60.0);
    }
    if !lexicons.hour_units.contains(unit) {
        return None;
    }
    if tail.is_empty() {
        return Some(value);
    }
    // "1h30", "1h30m"
    let minutes_end = tail
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(tail.len());
    let (minutes, rest) = tail.split_at(minutes_end);
    (rest.is_empty() || lexicons.minute_units.contains(rest))
        .then(|| minutes.parse::<f64>().ok().map(|m| value + m / 60.0))
        .flatten()
}

fn plain_number(lexicons: &Lexicons, word: &str) -> Option<f64> {
    word.replace(',', ".")
        .parse::<f64>()
        .ok()
        .filter(|n| n.is_finite() && *n >= 0.0)
        .or_else(|| lexicons.numbers.get(word).map(|n| f64::from(*n)))
}

/// A duration anywhere in the message, in hours, with the tokens it covers.
fn duration(lexicons: &Lexicons, tokens: &[Token]) -> Option<(f64, Range<usize>)> {
    let word = |i: usize| {
        tokens
            .get(i)
            .filter(|t| t.kind == Kind::Word)
            .map(|t| t.norm.as_str())
    };
    let is = |i: usize, set: &HashSet<String>| word(i).is_some_and(|w| set.contains(w));
    // "and a half" / "a half" / "half" after an hour: how many tokens it takes.
    let half_after = |mut i: usize| -> usize {
        let start = i;
        if is(i, &lexicons.joiners) {
            i += 1;
        }
        if word(i).is_some_and(|w| lexicons.numbers.get(w) == Some(&1)) {
            i += 1;
        }
        if is(i, &lexicons.half) {
            i + 1 - start
        } else {
            0
        }
    };
    // "30" or "30 min" after an hour: the fraction of an hour and how many tokens it takes.
    let minutes_after = |i: usize| -> Option<(f64, usize)> {
        let minutes = word(i)?.parse::<f64>().ok().filter(|m| *m < 60.0)?;
        Some((
            minutes / 60.0,
            if is(i + 1, &lexicons.minute_units) {
                2
            } else {
                1
            },
        ))
    };
    for i in 0..tokens.len() {
        let Some(w) = word(i) else { continue };
        let mut found: Option<(f64, usize)> = None;
        if let Some(hours) = compact_hours(lexicons, w) {
            let mut end = i + 1;
            let mut hours = hours;
            // "1h 30", "1h 30min"
            if w.ends_with(|c: char| !c.is_ascii_digit())
                && lexicons.hour_units.iter().any(|u| w.ends_with(u.as_str()))
                && let Some((fraction, taken)) = minutes_after(end)
            {
                end += taken;
                hours += fraction;
            }
            found = Some((hours, end));
        } else if let Some(value) = plain_number(lexicons, w) {
            if is(i + 1, &lexicons.hour_units) {
                let mut end = i + 2;
                let mut hours = value;
                let half = half_after(end);
                if half > 0 {
                    hours += 0.5;
                    end += half;
                } else if let Some((fraction, taken)) = minutes_after(end) {
                    // "1 hour 30", "1 h 30 min"
                    end += taken;
                    hours += fraction;
                }
                found = Some((hours, end));
            } else if is(i + 1, &lexicons.minute_units) {
                found = Some((value / 60.0, i + 2));
            }
        } else if lexicons.hour_units.contains(w) {
            // "hour and a half" with no number before it.
            let half = half_after(i + 1);
            if half > 0 {
                found = Some((1.5, i + 1 + half));
            }
        } else if lexicons.half.contains(w) {
            // "half an hour"
            let mut end = i + 1;
            if word(end).is_some_and(|w| lexicons.numbers.get(w) == Some(&1)) {
                end += 1;
            }
            if is(end, &lexicons.hour_units) {
                found = Some((0.5, end + 1));
            }
        }
        if let Some((hours, end)) = found {
            let start = if i > 0 && is(i - 1, &lexicons.duration_leads) {
                i - 1
            } else {
                i
            };
            if hours > 0.0 && hours < 1000.0 {
                return Some(((hours * 100.0).round() / 100.0, start..end));
            }
        }
    }
    None
}

/// A loosely written reference: "M-1042", "m1042", "#1042", "job 1042", "wo 1042", "wo1042".
fn reference(lexicons: &Lexicons, tokens: &[Token]) -> Option<(Reference, Range<usize>)> {
    let digits = |s: &str| -> Option<u32> {
        (s.len() >= 3 && s.len() <= 9 && s.chars().all(|c| c.is_ascii_digit()))
            .then(|| s.parse().ok())
            .flatten()
    };
    for (i, token) in tokens.iter().enumerate() {
        if token.kind != Kind::Word {
            continue;
        }
        let w = token.norm.as_str();
        if let Some(number) = w.strip_prefix('#').and_then(digits) {
            return Some((
                Reference {
                    prefix: None,
                    number,
                },
                i..i + 1,
            ));
        }
        let letters_end = w
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(w.len());
        let (letters, tail) = w.split_at(letters_end);
        let tail_number = digits(tail.trim_start_matches('-'));
        if letters.len() == 1 && tail_number.is_some() {
            return Some((
                Reference {
                    prefix: letters.chars().next().map(|c| c.to_ascii_uppercase()),
                    number: tail_number?,
                },
                i..i + 1,
            ));
        }
        if lexicons.reference_words.contains(letters) && tail_number.is_some() {
            return Some((
                Reference {
                    prefix: None,
                    number: tail_number?,
                },
                i..i + 1,
            ));
        }
        if lexicons.reference_words.contains(w)
            && let Some(next) = tokens.get(i + 1).filter(|t| t.kind == Kind::Word)
            && let Some(number) = digits(next.norm.trim_start_matches('#'))
        {
            return Some((
                Reference {
                    prefix: None,
                    number,
                },
                i..i + 2,
            ));
        }
    }
    None
}

/// The person's words, clause by clause, with commands, filler and fields trimmed from each
/// clause's ends; cues stay ("waiting on parts").
fn rest(
    lexicons: &Lexicons,
    text: &str,
    tokens: &[Token],
    matches: &[Match],
    taken: &HashSet<usize>,
) -> Option<String> {
    let command = |i: usize| {
        matches
            .iter()
            .any(|m| m.usage != Use::Cue && m.tokens.contains(&i))
    };
    let cue = |i: usize| {
        matches
            .iter()
            .any(|m| m.usage == Use::Cue && m.tokens.contains(&i))
    };
    let trimmable = |i: usize| {
        let t = &tokens[i];
        !cue(i)
            && (taken.contains(&i)
                || command(i)
                || t.kind == Kind::Emoji
                || lexicons.fillers.contains(&t.norm)
                || lexicons.duration_leads.contains(&t.norm))
    };
    let mut clauses: Vec<String> = Vec::new();
    let mut start = 0;
    for end in (0..=tokens.len()).filter(|&i| i == tokens.len() || tokens[i].kind == Kind::Break) {
        // A one-word label before a colon ("parts: washer x2", "reason: sick") is no content.
        let label = end == start + 1
            && tokens
                .get(end)
                .is_some_and(|t| text.get(t.span.clone()) == Some(":"));
        if label {
            start = end + 1;
            continue;
        }
        let mut from = start;
        let mut to = end;
        while from < to && trimmable(from) {
            from += 1;
        }
        while to > from && trimmable(to - 1) {
            to -= 1;
        }
        // Contiguous runs of what is left, fields inside the clause taken out.
        let mut runs: Vec<&str> = Vec::new();
        let mut run: Option<Range<usize>> = None;
        for (i, token) in tokens.iter().enumerate().take(to).skip(from) {
            if taken.contains(&i) {
                if let Some(r) = run.take() {
                    runs.push(&text[r]);
                }
                continue;
            }
            let span = token.span.clone();
            run = Some(match run {
                Some(r) => r.start..span.end,
                None => span,
            });
        }
        if let Some(r) = run {
            runs.push(&text[r]);
        }
        let clause = runs.join(" ");
        if !clause.trim().is_empty() {
            clauses.push(clause.trim().to_owned());
        }
        start = end + 1;
    }
    (!clauses.is_empty()).then(|| clauses.join(", "))
}

#[cfg(test)]
mod tests;
