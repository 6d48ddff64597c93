//! Printing a lab's results: narrated for a classroom, or as JSON lines for machines.
//!
//! Every lab keeps the experiment (a function that returns a plain struct) apart from its
//! narration (a function that prints that struct through a [`Narrator`]). The same
//! narration then serves the projector (colored text on a terminal), a script (`--json`,
//! one JSON object per line), and the snapshot tests (captured, uncolored text).
//!
//! Colors are decided by `anstream`: only on a terminal, never when `NO_COLOR` is set.
//!
//! A narrator can also *record* what it says, as [`Block`]s, alongside whatever it prints
//! ([`Narrator::recording`]): the tour's HTML report is built from that record.

use std::fmt::Display;
use std::io::{self, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anstyle::{AnsiColor, Style};
use serde::Serialize;

/// What the reader asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Narrated, readable text.
    Text,
    /// One JSON object per experiment, one per line; the text is not printed.
    Json,
}

impl Format {
    /// `Json` when `--json` was given.
    pub fn from_json_flag(json: bool) -> Self {
        if json { Format::Json } else { Format::Text }
    }
}

/// Writes headings, explanations, measured facts and JSON records.
pub struct Narrator {
    out: Box<dyn Write + Send>,
    format: Format,
    /// Remove color codes before writing (captured output is always plain).
    plain: bool,
    /// Where every piece of narration is also recorded, if asked for.
    recorded: Option<Recorded>,
}

/// One piece of narration, as recorded for a report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Block {
    Heading {
        text: String,
    },
    Section {
        text: String,
    },
    Say {
        text: String,
    },
    Fact {
        label: String,
        value: String,
    },
    Evidence {
        text: String,
    },
    Answer {
        text: String,
    },
    Skipped {
        what: String,
        why: String,
    },
    Warn {
        text: String,
    },
    /// Something a report shows that text cannot, such as an SVG drawing (see
    /// [`Narrator::attach`]).
    Attachment {
        name: String,
        content: String,
    },
}

/// The blocks recorded by [`Narrator::recording`].
#[derive(Debug, Clone, Default)]
pub struct Recorded(Arc<Mutex<Vec<Block>>>);

impl Recorded {
    /// Every block recorded so far.
    pub fn blocks(&self) -> Vec<Block> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl std::fmt::Debug for Narrator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Narrator")
            .field("format", &self.format)
            .finish()
    }
}

/// True if `error`, or anything that caused it, is a write to a closed pipe: the reader of
/// the narration went away (`socket-lab | head`). A program then stops quietly, as
/// `yes | head` does: there is no one left to tell.
pub fn is_closed_output(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(error);
    while let Some(error) = cause {
        if let Some(io) = error.downcast_ref::<io::Error>()
            && io.kind() == io::ErrorKind::BrokenPipe
        {
            return true;
        }
        cause = error.source();
    }
    false
}

/// Text captured by [`Narrator::capture`], for tests.
#[derive(Debug, Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// Everything written so far.
    pub fn text(&self) -> String {
        let bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(&bytes).into_owned()
    }
}

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut bytes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        bytes.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

const HEADING: Style = Style::new().bold().underline();
const SECTION: Style = Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Cyan)));
const LABEL: Style = Style::new().fg_color(Some(anstyle::Color::Ansi(AnsiColor::Blue)));
const EVIDENCE: Style = Style::new().dimmed();
const ANSWER: Style = Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Green)));
const WARNING: Style = Style::new()
    .bold()
    .fg_color(Some(anstyle::Color::Ansi(AnsiColor::Yellow)));

impl Narrator {
    /// Narrates to standard output; colors only if it is a terminal and `NO_COLOR` is unset.
    pub fn stdout(format: Format) -> Self {
        Narrator {
            out: Box::new(anstream::AutoStream::auto(io::stdout())),
            format,
            plain: false,
            recorded: None,
        }
    }

    /// Narrates into memory, without colors (for tests and for embedding output).
    pub fn capture(format: Format) -> (Self, Captured) {
        let captured = Captured::default();
        (
            Narrator {
                out: Box::new(captured.clone()),
                format,
                plain: true,
                recorded: None,
            },
            captured,
        )
    }

    /// Also records every piece of narration as a [`Block`] (whatever the format), for a
    /// report built afterwards.
    pub fn recording(mut self) -> (Self, Recorded) {
        let recorded = Recorded::default();
        self.recorded = Some(recorded.clone());
        (self, recorded)
    }

    fn keep(&self, block: impl FnOnce() -> Block) {
        if let Some(recorded) = &self.recorded {
            recorded
                .0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(block());
        }
    }

    /// Attaches `content` (such as an SVG drawing) for a recorded report; printed nowhere.
    pub fn attach(&mut self, name: &str, content: impl FnOnce() -> String) {
        self.keep(|| Block::Attachment {
            name: name.to_string(),
            content: content(),
        });
    }

    /// The format the reader asked for.
    pub fn format(&self) -> Format {
        self.format
    }

    /// True when narrated text is printed (not `--json`).
    pub fn is_text(&self) -> bool {
        self.format == Format::Text
    }

    fn text(&mut self, line: std::fmt::Arguments<'_>) -> io::Result<()> {
        if self.is_text() {
            let line = line.to_string();
            let line = if self.plain {
                anstream::adapter::strip_str(&line).to_string()
            } else {
                line
            };
            writeln!(self.out, "{line}")?;
        }
        Ok(())
    }

    /// A chapter heading: the question being answered.
    pub fn heading(&mut self, text: &str) -> io::Result<()> {
        self.keep(|| Block::Heading { text: text.into() });
        self.text(format_args!("\n{HEADING}{text}{HEADING:#}"))
    }

    /// The title of one experiment.
    pub fn section(&mut self, text: &str) -> io::Result<()> {
        self.keep(|| Block::Section { text: text.into() });
        self.text(format_args!("\n{SECTION}{text}{SECTION:#}"))
    }

    /// A sentence of explanation.
    pub fn say(&mut self, text: &str) -> io::Result<()> {
        self.keep(|| Block::Say { text: text.into() });
        self.text(format_args!("{text}"))
    }

    /// One measured fact: `  label ........ value`.
    pub fn fact(&mut self, label: &str, value: impl Display) -> io::Result<()> {
        self.keep(|| Block::Fact {
            label: label.into(),
            value: value.to_string(),
        });
        self.text(format_args!("  {LABEL}{label:<26}{LABEL:#} {value}"))
    }

    /// A line quoted from elsewhere: strace output, a program's output, a wire capture.
    pub fn evidence(&mut self, line: &str) -> io::Result<()> {
        self.keep(|| Block::Evidence { text: line.into() });
        self.text(format_args!("  {EVIDENCE}│{EVIDENCE:#} {line}"))
    }

    /// The short answer to the chapter's question.
    pub fn answer(&mut self, text: &str) -> io::Result<()> {
        self.keep(|| Block::Answer { text: text.into() });
        self.text(format_args!("\n{ANSWER}Answer:{ANSWER:#} {text}"))
    }

    /// What differs on other systems than this one: facts from sources, not measured here.
    /// Printed after [`Narrator::answer`], so that the answer is what was just measured.
    pub fn elsewhere(&mut self, text: &str) -> io::Result<()> {
        self.text(format_args!(
            "{ANSWER}Elsewhere{ANSWER:#} (from sources, not measured here): {text}"
        ))
    }

    /// Says plainly that a part could not run here, and why.
    pub fn skipped(&mut self, what: &str, why: &str) -> io::Result<()> {
        self.keep(|| Block::Skipped {
            what: what.into(),
            why: why.into(),
        });
        self.text(format_args!("  {WARNING}skipped:{WARNING:#} {what}: {why}"))
    }

    /// A warning that does not stop the chapter.
    pub fn warn(&mut self, text: &str) -> io::Result<()> {
        self.keep(|| Block::Warn { text: text.into() });
        self.text(format_args!("  {WARNING}warning:{WARNING:#} {text}"))
    }

    /// In `--json` mode, prints `record` as one JSON line; in text mode, nothing.
    pub fn record<T: Serialize>(&mut self, record: &T) -> io::Result<()> {
        if self.format == Format::Json {
            serde_json::to_writer(&mut self.out, record)?;
            self.out.write_all(b"\n")?;
        }
        Ok(())
    }

    /// Flushes what was written.
    pub fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// A duration for people, about three significant figures in the unit that fits:
/// `0 ns`, `850 ns`, `57.3 µs`, `250 µs`, `1.06 ms`, `100.1 ms`, `2.00 s`. Durations in
/// the labs span from nanoseconds to seconds; a fixed unit would print `0.001 ms`.
pub fn human_duration(duration: Duration) -> String {
    human_nanos(duration.as_nanos())
}

/// Like [`human_duration`], from a number of nanoseconds.
pub fn human_nanos(ns: u128) -> String {
    let ns_f = ns as f64;
    match ns {
        0..1_000 => format!("{ns} ns"),
        1_000..100_000 => format!("{:.1} µs", ns_f / 1e3),
        100_000..1_000_000 => format!("{:.0} µs", ns_f / 1e3),
        1_000_000..10_000_000 => format!("{:.2} ms", ns_f / 1e6),
        10_000_000..1_000_000_000 => format!("{:.1} ms", ns_f / 1e6),
        _ => format!("{:.2} s", ns_f / 1e9),
    }
}

/// Like [`human_duration`], from a number of microseconds (as the JSON records hold them).
pub fn human_micros(us: u64) -> String {
    human_nanos(u128::from(us) * 1_000)
}

/// `57,123,456`: thousands grouped so that a count can be read aloud.
pub fn human_count(n: u64) -> String {
    let digits = n.to_string();
    let mut grouped = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    grouped
}

/// Microseconds in a `Duration`, saturated into a `u64` for JSON.
pub fn saturating_micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// Nanoseconds in a `Duration`, saturated into a `u64` for JSON.
pub fn saturating_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_mode_prints_text_and_no_json() {
        let (mut n, out) = Narrator::capture(Format::Text);
        n.section("Refused").unwrap();
        n.fact("elapsed", "16 µs").unwrap();
        n.record(&serde_json::json!({"experiment": "refused"}))
            .unwrap();
        let text = out.text();
        assert!(text.contains("Refused") && text.contains("elapsed"));
        assert!(!text.contains('{') && !text.contains('\u{1b}'));
    }

    #[test]
    fn durations_read_well() {
        assert_eq!(human_duration(Duration::ZERO), "0 ns");
        assert_eq!(human_duration(Duration::from_nanos(850)), "850 ns");
        assert_eq!(human_duration(Duration::from_nanos(57_345)), "57.3 µs");
        assert_eq!(human_duration(Duration::from_micros(250)), "250 µs");
        assert_eq!(human_duration(Duration::from_micros(1_064)), "1.06 ms");
        assert_eq!(human_duration(Duration::from_micros(100_080)), "100.1 ms");
        assert_eq!(human_duration(Duration::from_secs(2)), "2.00 s");
    }

    #[test]
    fn counts_are_grouped_in_thousands() {
        assert_eq!(human_count(0), "0");
        assert_eq!(human_count(999), "999");
        assert_eq!(human_count(1_000), "1,000");
        assert_eq!(human_count(57_123_456), "57,123,456");
    }

    #[test]
    fn a_recording_narrator_keeps_every_block_and_prints_as_before() {
        let (n, out) = Narrator::capture(Format::Json);
        let (mut n, recorded) = n.recording();
        n.heading("Question").unwrap();
        n.fact("elapsed", "16 µs").unwrap();
        n.attach("ladder", || "<svg/>".into());
        n.answer("Because.").unwrap();
        assert_eq!(out.text(), "");
        assert_eq!(
            recorded.blocks(),
            [
                Block::Heading {
                    text: "Question".into()
                },
                Block::Fact {
                    label: "elapsed".into(),
                    value: "16 µs".into()
                },
                Block::Attachment {
                    name: "ladder".into(),
                    content: "<svg/>".into()
                },
                Block::Answer {
                    text: "Because.".into()
                },
            ]
        );
    }

    #[test]
    fn json_mode_prints_only_json_lines() {
        let (mut n, out) = Narrator::capture(Format::Json);
        n.section("Refused").unwrap();
        n.record(&serde_json::json!({"experiment": "refused"}))
            .unwrap();
        assert_eq!(out.text(), "{\"experiment\":\"refused\"}\n");
    }
}
