//! Every outbound text, from `message-templates/*.toml`, loaded and checked once at start.
//!
//! One table per message key:
//!
//! ```toml
//! [dispatch_offer]
//! params = ["reference", "issue"]
//! text.en = "New job {reference}: {issue}"
//! text.am = "አዲስ ስራ {reference}: {issue}"
//! whatsapp = { template = "fieldline_dispatch_offer", params = ["reference", "issue"] }
//! buttons = [{ id = "accept", title.en = "Accept", title.am = "እቀበላለሁ" }]
//! ```
//!
//! Placeholders are `{name}` and must match `params` exactly in every locale. A key outside the
//! WhatsApp 24-hour window can only go out on WhatsApp if it names an approved template.

use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use serde::Deserialize;

use crate::channels::Button;

/// WhatsApp's limits on what we send.
const MAX_BUTTON_TITLE_CHARS: usize = 20;
const MAX_WHATSAPP_BODY_CHARS: usize = 1024;
const MAX_SMS_SEGMENTS: usize = 10;

/// Keys the messaging layer itself needs to turn buttons into numbered SMS choices.
pub const SMS_REPLY_CHOICE: &str = "sms_reply_choice";
pub const SMS_REPLY_CHOICES: &str = "sms_reply_choices";
/// The label of the button that opens a WhatsApp list (more than three choices).
pub const LIST_MENU: &str = "list_menu";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    #[serde(default)]
    params: Vec<String>,
    text: BTreeMap<String, String>,
    whatsapp: Option<RawWhatsapp>,
    #[serde(default)]
    buttons: Vec<RawButton>,
    /// Parameters that are secrets (a sign-in code): masked wherever the message is read back.
    #[serde(default)]
    secret: Vec<String>,
    /// `false` for courtesy messages (status updates to a requester, reminders, surveys): a
    /// person who opted out does not get them. Essential (the default): dispatches, answers to
    /// the person's own message, sign-in codes.
    #[serde(default = "essential_by_default")]
    essential: bool,
    /// A WhatsApp message of this key that is not delivered this long after it was queued
    /// ("2m", "30m") goes again by SMS. Left out: SMS only when WhatsApp fails for good.
    sms_fallback_after: Option<String>,
    /// The same for urgent messages (an urgent dispatch); left out: `sms_fallback_after`.
    sms_fallback_after_urgent: Option<String>,
}

fn essential_by_default() -> bool {
    true
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWhatsapp {
    template: String,
    #[serde(default)]
    params: Vec<String>,
    twilio_content_sid: Option<String>,
    /// The languages the template is approved in; empty: every locale of the file.
    #[serde(default)]
    languages: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawButton {
    id: String,
    title: BTreeMap<String, String>,
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub key: String,
    pub file: PathBuf,
    params: Vec<String>,
    text: BTreeMap<String, String>,
    whatsapp: Option<WhatsappTemplate>,
    buttons: Vec<(String, BTreeMap<String, String>)>,
    secret: Vec<String>,
    essential: bool,
    fallback_after: Option<Duration>,
    fallback_after_urgent: Option<Duration>,
}

#[derive(Debug, Clone)]
pub struct WhatsappTemplate {
    pub name: String,
    pub params: Vec<String>,
    pub twilio_content_sid: Option<String>,
    pub languages: Vec<String>,
}

/// The values a caller fills a message's placeholders with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values(BTreeMap<String, Value>);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Text(String),
    /// Message keys with their own values, rendered in the message's language and joined by
    /// line breaks: a status or a priority word, lines of a list.
    Terms(Vec<(String, Values)>),
}

impl Values {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn with(mut self, name: &str, value: impl fmt::Display) -> Self {
        self.0
            .insert(name.to_owned(), Value::Text(value.to_string()));
        self
    }
    /// A word that is itself the message key `key` ("wo_state_assigned"), so that it reads in
    /// the language the message goes out in.
    pub fn with_term(self, name: &str, key: impl Into<String>) -> Self {
        self.with_lines(name, vec![(key.into(), Values::new())])
    }
    /// Lines, each a message key with its values, in the language the message goes out in.
    pub fn with_lines(mut self, name: &str, lines: Vec<(String, Values)>) -> Self {
        self.0.insert(name.to_owned(), Value::Terms(lines));
        self
    }
    fn get(&self, name: &str) -> Option<&str> {
        match self.0.get(name)? {
            Value::Text(text) => Some(text),
            Value::Terms(_) => None,
        }
    }
    /// The same values with each of `secret` replaced by a mask, for the text people read back.
    pub fn masked(&self, secret: &[String]) -> Self {
        let mut masked = self.clone();
        for name in secret {
            if let Some(value) = masked.0.get_mut(name) {
                *value = Value::Text(SECRET_MASK.to_owned());
            }
        }
        masked
    }
}

/// What a secret value reads as in stored text, the API, the panel and logs.
pub const SECRET_MASK: &str = "••••••";

/// A message in one locale, ready to become a provider request.
#[derive(Debug, Clone, PartialEq)]
pub struct Rendered {
    pub locale: String,
    pub text: String,
    pub buttons: Vec<Button>,
    /// The approved template and its parameters in the template's order.
    pub whatsapp_template: Option<(String, Vec<String>, Option<String>)>,
}

#[derive(Debug, Clone)]
pub struct Templates {
    entries: BTreeMap<String, Entry>,
    locales: BTreeSet<String>,
}

/// Every `*.toml` file in `dir` with its text, in name order; `what` names them in errors.
pub(crate) fn toml_files(dir: &Path, what: &str) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {what} in {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|file| {
            let text = std::fs::read_to_string(&file)
                .with_context(|| format!("cannot read {}", file.display()))?;
            Ok((file, text))
        })
        .collect()
}

impl Templates {
    /// Reads every `*.toml` in `dir` and refuses the lot if any entry is wrong.
    pub fn load(dir: &Path) -> anyhow::Result<Self> {
        Self::from_sources(&toml_files(dir, "the message templates")?)
    }

    /// Parses and checks templates given as (file name, TOML text).
    pub fn from_sources(sources: &[(PathBuf, String)]) -> anyhow::Result<Self> {
        let mut entries = BTreeMap::new();
        for (file, text) in sources {
            let raw: BTreeMap<String, RawEntry> = toml::from_str(text)
                .with_context(|| format!("{} is not a valid template file", file.display()))?;
            for (key, raw) in raw {
                let deadline = |field: &str, value: &Option<String>| {
                    value
                        .as_deref()
                        .map(humantime::parse_duration)
                        .transpose()
                        .with_context(|| {
                            format!(
                                "{}: message key {key}: {field} is not a duration such as \"2m\" or \"30m\"",
                                file.display()
                            )
                        })
                };
                let fallback_after = deadline("sms_fallback_after", &raw.sms_fallback_after)?;
                let fallback_after_urgent =
                    deadline("sms_fallback_after_urgent", &raw.sms_fallback_after_urgent)?;
                let entry = Entry {
                    key: key.clone(),
                    file: file.clone(),
                    params: raw.params,
                    text: raw.text,
                    whatsapp: raw.whatsapp.map(|w| WhatsappTemplate {
                        name: w.template,
                        params: w.params,
                        twilio_content_sid: w.twilio_content_sid,
                        languages: w.languages,
                    }),
                    buttons: raw.buttons.into_iter().map(|b| (b.id, b.title)).collect(),
                    secret: raw.secret,
                    essential: raw.essential,
                    fallback_after,
                    fallback_after_urgent,
                };
                if let Some(previous) = entries.insert(key.clone(), entry) {
                    bail!(
                        "message key {key} is defined twice: in {} and {}",
                        previous.file.display(),
                        file.display()
                    );
                }
            }
        }
        let locales: BTreeSet<String> = entries
            .values()
            .flat_map(|e| e.text.keys().cloned())
            .collect();
        let templates = Self { entries, locales };
        templates.check()?;
        Ok(templates)
    }

    fn check(&self) -> anyhow::Result<()> {
        for required in [SMS_REPLY_CHOICE, SMS_REPLY_CHOICES, LIST_MENU] {
            if !self.entries.contains_key(required) {
                bail!("message-templates/ has no {required} key (needed to offer choices)");
            }
        }
        for entry in self.entries.values() {
            let at = || format!("{}: key {}", entry.file.display(), entry.key);
            let declared: BTreeSet<&str> = entry.params.iter().map(String::as_str).collect();
            if let Some(unknown) = entry.secret.iter().find(|p| !declared.contains(p.as_str())) {
                bail!("{}: secret names {unknown}, which is not in params", at());
            }
            for locale in &self.locales {
                let Some(text) = entry.text.get(locale) else {
                    bail!("{}: no text for locale {locale}", at());
                };
                let used =
                    placeholders(text).with_context(|| format!("{}: text.{locale}", at()))?;
                if let Some(missing) = declared.iter().find(|p| !used.contains(**p)) {
                    bail!(
                        "{}: text.{locale} does not use parameter {{{missing}}}",
                        at()
                    );
                }
                if let Some(unknown) = used.iter().find(|p| !declared.contains(p.as_str())) {
                    bail!(
                        "{}: text.{locale} uses {{{unknown}}}, which is not in params",
                        at()
                    );
                }
                if text.chars().count() > MAX_WHATSAPP_BODY_CHARS {
                    bail!(
                        "{}: text.{locale} is over WhatsApp's {MAX_WHATSAPP_BODY_CHARS} characters",
                        at()
                    );
                }
                for (id, titles) in &entry.buttons {
                    let Some(title) = titles.get(locale) else {
                        bail!("{}: button {id} has no title for locale {locale}", at());
                    };
                    if title.chars().count() > MAX_BUTTON_TITLE_CHARS {
                        bail!(
                            "{}: button {id} title {title:?} ({locale}) is over {MAX_BUTTON_TITLE_CHARS} characters",
                            at()
                        );
                    }
                }
            }
            if let Some(whatsapp) = &entry.whatsapp
                && let Some(unknown) = whatsapp
                    .params
                    .iter()
                    .find(|p| !declared.contains(p.as_str()))
            {
                bail!(
                    "{}: whatsapp.params names {unknown}, which is not in params",
                    at()
                );
            }
        }
        // SMS length last: it needs the choice keys, which were checked above.
        for entry in self.entries.values() {
            for locale in &self.locales {
                let sms = self.sms_text(entry, locale, &entry.text[locale], None)?;
                let (_, segments) = sms_segments(&sms);
                if segments > MAX_SMS_SEGMENTS {
                    bail!(
                        "{}: key {}: the {locale} SMS is {segments} segments, over {MAX_SMS_SEGMENTS}",
                        entry.file.display(),
                        entry.key
                    );
                }
            }
        }
        Ok(())
    }

    pub fn locales(&self) -> &BTreeSet<String> {
        &self.locales
    }

    pub fn contains(&self, key: &str) -> bool {
        self.entries.contains_key(key)
    }

    /// The first locale of `preferences` that the templates ship, else English.
    pub fn pick_locale<'a>(
        &self,
        preferences: impl IntoIterator<Item = Option<&'a str>>,
    ) -> String {
        preferences
            .into_iter()
            .flatten()
            .flat_map(|l| [l, l.split('-').next().unwrap_or(l)])
            .find(|l| self.locales.contains(*l))
            .unwrap_or("en")
            .to_owned()
    }

    /// The language to send `key`'s approved WhatsApp template in: the person's when the template
    /// is approved in it, else the organisation's, else the first it is approved in. Meta lists
    /// no Amharic, so an Amharic speaker outside the 24-hour window gets the English template
    /// rather than nothing.
    pub fn template_language(&self, key: &str, person: &str, organisation: &str) -> String {
        let approved = self
            .entries
            .get(key)
            .and_then(|e| e.whatsapp.as_ref())
            .map(|w| w.languages.as_slice())
            .unwrap_or_default();
        if approved.is_empty() || approved.iter().any(|l| l == person) {
            person.to_owned()
        } else if approved.iter().any(|l| l == organisation) {
            organisation.to_owned()
        } else {
            approved[0].clone()
        }
    }

    /// Whether `key` still reaches a person who opted out (see the template files).
    pub fn essential(&self, key: &str) -> bool {
        self.entries.get(key).is_none_or(|e| e.essential)
    }

    /// The parameters of `key` that are secrets (none for an unknown key).
    pub fn secret_params(&self, key: &str) -> &[String] {
        self.entries.get(key).map_or(&[], |e| e.secret.as_slice())
    }

    /// How long a WhatsApp message of `key` may go undelivered before it is sent again by SMS.
    pub fn fallback_after(&self, key: &str, urgent: bool) -> Option<Duration> {
        let entry = self.entries.get(key)?;
        if urgent {
            entry.fallback_after_urgent.or(entry.fallback_after)
        } else {
            entry.fallback_after
        }
    }

    /// Fills `key` in `locale`. `buttons` replaces the key's own buttons when given (for
    /// choices only known at run time, such as "which work order?").
    pub fn render(
        &self,
        key: &str,
        locale: &str,
        values: &Values,
        buttons: Option<Vec<Button>>,
    ) -> anyhow::Result<Rendered> {
        let entry = self
            .entries
            .get(key)
            .with_context(|| format!("no message key {key} in message-templates/"))?;
        let values = &self.resolve(values, locale)?;
        let text = self.text(key, locale, values)?;
        let buttons = buttons.unwrap_or_else(|| {
            entry
                .buttons
                .iter()
                .map(|(id, titles)| Button {
                    id: id.clone(),
                    title: titles[locale].clone(),
                    description: None,
                })
                .collect()
        });
        let whatsapp_template = entry.whatsapp.as_ref().map(|w| {
            let parameters = w
                .params
                .iter()
                .map(|p| values.get(p).unwrap_or_default().to_owned())
                .collect();
            (w.name.clone(), parameters, w.twilio_content_sid.clone())
        });
        Ok(Rendered {
            locale: locale.to_owned(),
            text,
            buttons,
            whatsapp_template,
        })
    }

    /// The label of the button that opens a list of choices, in `locale`.
    pub fn list_menu(&self, locale: &str) -> String {
        let texts = &self.entries[LIST_MENU].text;
        texts
            .get(locale)
            .or_else(|| texts.get("en"))
            .cloned()
            .unwrap_or_default()
    }

    /// `key`'s text in `locale`, filled with `values` (already resolved).
    fn text(&self, key: &str, locale: &str, values: &Values) -> anyhow::Result<String> {
        let template = self
            .entries
            .get(key)
            .with_context(|| format!("no message key {key} in message-templates/"))?
            .text
            .get(locale)
            .with_context(|| format!("message key {key} has no {locale} text"))?;
        fill(template, values).with_context(|| format!("message key {key}"))
    }

    /// `values` with every term rendered as text in `locale`.
    fn resolve(&self, values: &Values, locale: &str) -> anyhow::Result<Values> {
        let mut resolved = Values::new();
        for (name, value) in &values.0 {
            let text = match value {
                Value::Text(text) => text.clone(),
                Value::Terms(lines) => lines
                    .iter()
                    .map(|(key, values)| self.text(key, locale, &self.resolve(values, locale)?))
                    .collect::<anyhow::Result<Vec<_>>>()?
                    .join("\n"),
            };
            resolved = resolved.with(name, text);
        }
        Ok(resolved)
    }

    /// SMS has no buttons: their titles become numbered choices ("Reply 1 to Accept, 2 to Decline.").
    pub fn sms_body(&self, rendered: &Rendered) -> anyhow::Result<String> {
        let buttons = (!rendered.buttons.is_empty()).then_some(rendered.buttons.as_slice());
        self.sms_text_with(&rendered.locale, &rendered.text, buttons)
    }

    fn sms_text(
        &self,
        entry: &Entry,
        locale: &str,
        text: &str,
        buttons: Option<&[Button]>,
    ) -> anyhow::Result<String> {
        let own: Vec<Button> = entry
            .buttons
            .iter()
            .map(|(id, titles)| Button {
                id: id.clone(),
                title: titles[locale].clone(),
                description: None,
            })
            .collect();
        let buttons = buttons.or((!own.is_empty()).then_some(own.as_slice()));
        self.sms_text_with(locale, text, buttons)
    }

    fn sms_text_with(
        &self,
        locale: &str,
        text: &str,
        buttons: Option<&[Button]>,
    ) -> anyhow::Result<String> {
        let Some(buttons) = buttons else {
            return Ok(text.to_owned());
        };
        let choice = &self.entries[SMS_REPLY_CHOICE].text[locale];
        let choices: Vec<String> = buttons
            .iter()
            .enumerate()
            .map(|(i, b)| {
                fill(
                    choice,
                    &Values::new().with("number", i + 1).with("title", &b.title),
                )
            })
            .collect::<anyhow::Result<_>>()?;
        let line = fill(
            &self.entries[SMS_REPLY_CHOICES].text[locale],
            &Values::new().with("choices", choices.join(", ")),
        )?;
        Ok(format!("{text}\n{line}"))
    }
}

/// The `{name}` placeholders in a text. `{{` and `}}` stand for literal braces.
fn placeholders(text: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut found = BTreeSet::new();
    scan(text, |name| {
        found.insert(name.to_owned());
        Ok(String::new())
    })?;
    Ok(found)
}

fn fill(text: &str, values: &Values) -> anyhow::Result<String> {
    scan(text, |name| {
        values
            .get(name)
            .map(str::to_owned)
            .with_context(|| format!("no value for {{{name}}}"))
    })
}

fn scan(
    text: &str,
    mut on_name: impl FnMut(&str) -> anyhow::Result<String>,
) -> anyhow::Result<String> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
        } else if tail.starts_with('}') {
            bail!("a lone }} in {text:?} (write }}}} for a brace)");
        } else {
            let end = tail
                .find('}')
                .with_context(|| format!("an unclosed {{ in {text:?}"))?;
            let name = &tail[1..end];
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                bail!("{{{name}}} is not a parameter name (letters, digits and _)");
            }
            out.push_str(&on_name(name)?);
            rest = &tail[end + 1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmsEncoding {
    Gsm7,
    Ucs2,
}

/// GSM 03.38 basic set, and the extension characters that take two septets.
const GSM7_BASIC: &str = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENSION: &str = "^{}\\[~]|€\x0c";

/// How many SMS segments a text takes: GSM-7 fits 160 septets in one (153 per part when
/// concatenated); anything else (Amharic, emoji) is UCS-2 with 70 (67) UTF-16 units.
pub fn sms_segments(text: &str) -> (SmsEncoding, usize) {
    let septets: Option<usize> = text
        .chars()
        .map(|c| {
            if GSM7_BASIC.contains(c) {
                Some(1)
            } else if GSM7_EXTENSION.contains(c) {
                Some(2)
            } else {
                None
            }
        })
        .sum();
    let (encoding, units, single, part) = match septets {
        Some(n) => (SmsEncoding::Gsm7, n, 160, 153),
        None => (SmsEncoding::Ucs2, text.encode_utf16().count(), 70, 67),
    };
    let segments = if units <= single {
        1
    } else {
        units.div_ceil(part)
    };
    (encoding, segments)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHOICES: &str = r#"
[sms_reply_choice]
params = ["number", "title"]
text.en = "{number} to {title}"
text.am = "{number} ለ{title}"

[sms_reply_choices]
params = ["choices"]
text.en = "Reply {choices}."
text.am = "{choices} ብለው ይመልሱ።"

[list_menu]
text.en = "Choose"
text.am = "ይምረጡ"
"#;

    fn load(extra: &str) -> anyhow::Result<Templates> {
        Templates::from_sources(&[
            ("core.toml".into(), CHOICES.to_owned()),
            ("test.toml".into(), extra.to_owned()),
        ])
    }

    const OFFER: &str = r#"
[offer]
params = ["reference"]
text.en = "Job {reference}"
text.am = "ስራ {reference}"
whatsapp = { template = "fieldline_offer", params = ["reference"] }
buttons = [
  { id = "accept", title.en = "Accept", title.am = "እቀበላለሁ" },
  { id = "decline", title.en = "Decline", title.am = "አልቀበልም" },
]
"#;

    #[test]
    fn renders_text_buttons_template_and_sms_choices() {
        let templates = load(OFFER).unwrap();
        let values = Values::new().with("reference", "M-1042");
        let rendered = templates.render("offer", "en", &values, None).unwrap();
        assert_eq!(rendered.text, "Job M-1042");
        assert_eq!(rendered.buttons[1].id, "decline");
        assert_eq!(
            rendered.whatsapp_template,
            Some(("fieldline_offer".into(), vec!["M-1042".into()], None))
        );
        assert_eq!(
            templates.sms_body(&rendered).unwrap(),
            "Job M-1042\nReply 1 to Accept, 2 to Decline."
        );
        let amharic = templates.render("offer", "am", &values, None).unwrap();
        assert_eq!(amharic.buttons[0].title, "እቀበላለሁ");
    }

    #[test]
    fn locale_falls_back_to_the_next_preference_then_english() {
        let templates = load(OFFER).unwrap();
        assert_eq!(templates.pick_locale([None, Some("am")]), "am");
        assert_eq!(templates.pick_locale([Some("fr"), Some("am-ET")]), "am");
        assert_eq!(templates.pick_locale([Some("fr")]), "en");
    }

    #[test]
    fn refuses_entries_that_would_fail_at_send_time() {
        let cases = [
            (
                r#"[a]
params = ["x"]
text.en = "no placeholder"
text.am = "{x}""#,
                "does not use parameter {x}",
            ),
            (
                r#"[a]
text.en = "{y}"
text.am = "y""#,
                "uses {y}, which is not in params",
            ),
            (
                r#"[a]
text.en = "only English""#,
                "no text for locale am",
            ),
            (
                r#"[a]
text.en = "a"
text.am = "a"
buttons = [{ id = "b", title.en = "This title is far too long", title.am = "b" }]"#,
                "over 20 characters",
            ),
            (
                r#"[a]
params = ["x"]
text.en = "{x}"
text.am = "{x}"
whatsapp = { template = "t", params = ["z"] }"#,
                "whatsapp.params names z",
            ),
            (
                r#"[a]
text.en = "a"
text.am = "a"
sms_fallback_after = "soon""#,
                "sms_fallback_after is not a duration",
            ),
        ];
        for (toml, expected) in cases {
            let err = format!("{:#}", load(toml).unwrap_err());
            assert!(err.contains(expected), "{expected:?} not in {err:?}");
            assert!(err.contains("test.toml") && err.contains("key a"), "{err}");
        }
    }

    #[test]
    fn refuses_an_sms_over_ten_segments_and_a_long_whatsapp_body() {
        let long_am = "ሀ".repeat(700);
        let err = load(&format!("[a]\ntext.en = \"a\"\ntext.am = \"{long_am}\"\n")).unwrap_err();
        assert!(err.to_string().contains("segments"), "{err}");
        let long = "a".repeat(1100);
        let err = load(&format!("[a]\ntext.en = \"{long}\"\ntext.am = \"a\"\n")).unwrap_err();
        assert!(err.to_string().contains("1024"), "{err}");
    }

    #[test]
    fn counts_gsm7_and_ucs2_segments() {
        assert_eq!(sms_segments(&"a".repeat(160)), (SmsEncoding::Gsm7, 1));
        assert_eq!(sms_segments(&"a".repeat(161)), (SmsEncoding::Gsm7, 2));
        assert_eq!(sms_segments(&"€".repeat(80)), (SmsEncoding::Gsm7, 1));
        assert_eq!(sms_segments(&"€".repeat(81)), (SmsEncoding::Gsm7, 2));
        assert_eq!(sms_segments(&"ሰ".repeat(70)), (SmsEncoding::Ucs2, 1));
        assert_eq!(sms_segments(&"ሰ".repeat(71)), (SmsEncoding::Ucs2, 2));
        assert_eq!(sms_segments(&"ሰ".repeat(134)), (SmsEncoding::Ucs2, 2));
        assert_eq!(sms_segments(&"ሰ".repeat(135)), (SmsEncoding::Ucs2, 3));
    }

    #[test]
    fn terms_and_lines_read_in_the_message_language() {
        let templates = load(
            r#"[state_open]
text.en = "open"
text.am = "ክፍት"

[line]
params = ["reference", "state"]
text.en = "{reference}: {state}"
text.am = "{reference}፦ {state}"

[list]
params = ["lines"]
text.en = "Yours:\n{lines}"
text.am = "የእርስዎ፦\n{lines}"
"#,
        )
        .unwrap();
        let line = |reference: &str| {
            (
                "line".to_owned(),
                Values::new()
                    .with("reference", reference)
                    .with_term("state", "state_open"),
            )
        };
        let values = Values::new().with_lines("lines", vec![line("M-1"), line("M-2")]);
        let amharic = templates.render("list", "am", &values, None).unwrap();
        assert_eq!(amharic.text, "የእርስዎ፦\nM-1፦ ክፍት\nM-2፦ ክፍት");
        let english = templates.render("list", "en", &values, None).unwrap();
        assert_eq!(english.text, "Yours:\nM-1: open\nM-2: open");
        let unknown = Values::new().with_term("lines", "no_such_key");
        let err = templates.render("list", "en", &unknown, None).unwrap_err();
        assert!(format!("{err:#}").contains("no_such_key"), "{err:#}");
    }

    #[test]
    fn fallback_deadlines_read_as_durations_with_an_urgent_variant() {
        let templates = load(
            r#"[a]
text.en = "a"
text.am = "a"
sms_fallback_after = "10m"
sms_fallback_after_urgent = "90s"

[b]
text.en = "b"
text.am = "b"
sms_fallback_after = "30m"

[c]
text.en = "c"
text.am = "c""#,
        )
        .unwrap();
        let minutes = |m: u64| Some(Duration::from_secs(m * 60));
        assert_eq!(templates.fallback_after("a", false), minutes(10));
        assert_eq!(
            templates.fallback_after("a", true),
            Some(Duration::from_secs(90))
        );
        assert_eq!(templates.fallback_after("b", true), minutes(30));
        assert_eq!(templates.fallback_after("c", false), None);
    }

    #[test]
    fn the_shipped_templates_load() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("message-templates");
        let templates = Templates::load(&dir).unwrap();
        assert!(templates.locales().contains("en") && templates.locales().contains("am"));
    }
}
