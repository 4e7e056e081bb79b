//! Text into tokens: words folded for matching, emoji one by one, clause breaks kept.

use std::ops::Range;

use unicode_normalization::{UnicodeNormalization, char::is_combining_mark};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Word,
    Emoji,
    /// A comma, full stop, colon, dash between spaces, Ethiopic punctuation: it ends a clause.
    Break,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub kind: Kind,
    /// Lowercased, accents and apostrophes removed, Ethiopic digits as Latin ones.
    pub norm: String,
    /// Where it stands in the original text (bytes), so notes keep the writer's own words.
    pub span: Range<usize>,
}

const CLAUSE_ENDS: &[char] = &[
    ',', ';', ':', '.', '!', '?', '(', ')', '[', ']', '/', '\\', '|', '…', '—', '–', '።', '፣', '፤',
    '፥', '፦', '፧', '፨', '\n',
];
const APOSTROPHES: &[char] = &['\'', '’', '‘', '`', 'ʼ', '´'];

/// Joins an emoji's parts (variation selectors, skin tones, zero-width joiner) to it.
fn is_emoji_modifier(c: char) -> bool {
    matches!(
        c,
        '\u{FE0E}' | '\u{FE0F}' | '\u{200D}' | '\u{1F3FB}'..='\u{1F3FF}'
    )
}

/// Pictographs, dingbats and arrows (👍 ✅ ✔ 🚑); not punctuation such as ¡ « ».
fn is_emoji(c: char) -> bool {
    matches!(c as u32, 0x2190..=0x2BFF | 0x1F000..=0x1FAFF | 0x3030 | 0x303D | 0xA9 | 0xAE)
}

fn is_word_char(c: char) -> bool {
    c.is_alphanumeric() || is_combining_mark(c)
}

/// `"  ¡Stóp!! "` → `"stop"`; `"Can’t"` → `"cant"`; `"፪"` → `"2"`.
pub fn fold(word: &str) -> String {
    word.nfkd()
        .filter(|c| !is_combining_mark(*c) && !APOSTROPHES.contains(c))
        .flat_map(char::to_lowercase)
        .flat_map(|c| match c {
            // Ethiopic digits one to nine, and ten.
            '\u{1369}'..='\u{1371}' => {
                vec![char::from(b'1' + (c as u32 - 0x1369) as u8)]
            }
            '\u{1372}' => vec!['1', '0'],
            other => vec![other],
        })
        .collect()
}

pub fn tokens(text: &str) -> Vec<Token> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |i: usize| chars.get(i).map_or(text.len(), |(at, _)| *at);
    let mut out: Vec<Token> = Vec::new();
    let push_break = |out: &mut Vec<Token>, at: usize, len: usize| {
        if out.last().is_some_and(|t| t.kind != Kind::Break) {
            out.push(Token {
                kind: Kind::Break,
                norm: String::new(),
                span: at..at + len,
            });
        }
    };
    let mut i = 0;
    while i < chars.len() {
        let (at, c) = chars[i];
        let prev = i.checked_sub(1).map(|p| chars[p].1);
        let next = chars.get(i + 1).map(|(_, c)| *c);
        let starts_number = |c: Option<char>| c.is_some_and(|c| c.is_numeric());
        if is_word_char(c) || (c == '#' && starts_number(next)) {
            i += 1;
            while i < chars.len() {
                let c = chars[i].1;
                let prev = chars[i - 1].1;
                let next = chars.get(i + 1).map(|(_, c)| *c);
                let inner = match c {
                    _ if is_word_char(c) => true,
                    // can't, 1.5, 1,5, 1:30, M-1042 (a letter and digits; "check-out" splits)
                    _ if APOSTROPHES.contains(&c) => next.is_some_and(char::is_alphabetic),
                    '.' | ',' | ':' => prev.is_numeric() && starts_number(next),
                    '-' => prev.is_alphabetic() && starts_number(next),
                    _ => false,
                };
                if !inner {
                    break;
                }
                i += 1;
            }
            let span = at..end_of(i);
            out.push(Token {
                kind: Kind::Word,
                norm: fold(&text[span.clone()]),
                span,
            });
            continue;
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        // A dash between spaces ("5 - very poor") separates like a comma.
        let spaced_dash = matches!(c, '-' | '~')
            && prev.is_none_or(char::is_whitespace)
            && next.is_none_or(char::is_whitespace);
        if CLAUSE_ENDS.contains(&c) || spaced_dash {
            push_break(&mut out, at, c.len_utf8());
            i += 1;
            continue;
        }
        if is_emoji_modifier(c) {
            i += 1;
            continue;
        }
        if is_emoji(c) {
            let start = i;
            i += 1;
            while i < chars.len() && is_emoji_modifier(chars[i].1) {
                i += 1;
            }
            out.push(Token {
                kind: Kind::Emoji,
                norm: c.to_string(),
                span: chars[start].0..end_of(i),
            });
            continue;
        }
        // Quotes, stars, plus signs and the like: spacing, nothing more.
        i += 1;
    }
    while out.last().is_some_and(|t| t.kind == Kind::Break) {
        out.pop();
    }
    out
}

/// Lowercase, accents and apostrophes gone, punctuation trimmed, one space between words:
/// `"  ¡Stóp!! "` becomes `"stop"`. For matching names and places; intents use [`tokens`].
pub fn normalize(text: &str) -> String {
    let folded = fold(text);
    let words: Vec<&str> = folded
        .split_whitespace()
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric()))
        .filter(|w| !w.is_empty())
        .collect();
    words.join(" ")
}

/// Letters only, Latin script: the words a typo can be forgiven in. An edit in a syllabary
/// changes a syllable, often into a word's negative, so Ethiopic words match exactly.
pub fn is_latin_word(word: &str) -> bool {
    !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase())
}

/// Runs of one letter squeezed to one: "okkk" and "ok", "acept" and "accept" meet.
pub fn squeeze(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    for c in word.chars() {
        if !out.ends_with(c) {
            out.push(c);
        }
    }
    out
}

/// Edits between two words, a swap of neighbours counting as one ("finsihed" is one from
/// "finished"); stops counting past `limit`.
pub fn edits(a: &str, b: &str, limit: usize) -> usize {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    if a.len().abs_diff(b.len()) > limit {
        return limit + 1;
    }
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for (i, row) in d.chunks_mut(width).enumerate() {
        row[0] = i;
    }
    for (j, cell) in d.iter_mut().take(width).enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[(i - 1) * width + j] + 1)
                .min(d[i * width + j - 1] + 1)
                .min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<String> {
        tokens(text)
            .into_iter()
            .map(|t| match t.kind {
                Kind::Break => "|".to_owned(),
                _ => t.norm,
            })
            .collect()
    }

    #[test]
    fn splits_words_emoji_and_clauses() {
        assert_eq!(words("Can’t come, sorry!"), ["cant", "come", "|", "sorry"]);
        assert_eq!(words("done 1,5h"), ["done", "1,5h"]);
        assert_eq!(
            words("fixed it, 1.5 hours"),
            ["fixed", "it", "|", "1.5", "hours"]
        );
        assert_eq!(words("M-1042 check-out"), ["m-1042", "check", "out"]);
        assert_eq!(words("🚗 on the way"), ["🚗", "on", "the", "way"]);
        assert_eq!(words("👍🏾👍"), ["👍", "👍"]);
        assert_eq!(words("✔️ done"), ["✔", "done"]);
        assert_eq!(words("5 - very poor"), ["5", "|", "very", "poor"]);
        assert_eq!(words("#1042 done"), ["#1042", "done"]);
        assert_eq!(words("ወጥቻለሁ። አሁን"), ["ወጥቻለሁ", "|", "አሁን"]);
        assert_eq!(words("፩"), ["1"]);
        assert_eq!(words("  ¡Stóp!! "), ["stop"]);
    }

    #[test]
    fn counts_edits_with_swaps_as_one() {
        assert_eq!(edits("finsihed", "finished", 2), 1);
        assert_eq!(edits("strated", "started", 2), 1);
        assert_eq!(edits("acept", "accept", 2), 1);
        assert_eq!(edits("arrivd", "arrived", 2), 1);
        assert_eq!(edits("done", "dome", 2), 1);
        assert!(edits("declined", "accepted", 2) > 2);
        assert_eq!(squeeze("okkk"), "ok");
    }

    #[test]
    fn normalizes_for_names() {
        assert_eq!(normalize("  ¡Stóp!! "), "stop");
        assert_eq!(normalize("Stop   texting me!!!"), "stop texting me");
        assert_eq!(normalize("አቁም።"), "አቁም");
    }
}
