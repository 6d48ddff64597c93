//! Judging the framing check's two lines in one TCP segment from what a program printed,
//! whatever its prompt and its decoration: the one judgment in the grader that compares
//! text instead of waiting for it, kept apart with its own tests.

/// A line the grader sent on its own (one line, one segment) and the line of the program's
/// output that showed it: the program's way of showing one message, learnt before it is
/// judged on two.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownAlone {
    pub sent: String,
    pub printed: String,
}

/// Judges the two-lines-in-one-segment test from the lines a program printed: each line
/// must appear on a line of its own, decorated as the program decorated the lines it was
/// sent one at a time (`alone`).
///
/// A prompt (`> `, `You: `) is text a program prints without a newline while it waits for
/// its user, so it lands at the start of whatever line is printed next; when it is drawn
/// depends on the program's threads and on the machine's load, so the verdict must not
/// depend on where it lands. The decoration a line must keep is therefore what the lines
/// sent alone have in common: before the text, the longest common *ending* (a prompt drawn
/// once, at the start or late, decorates only one of them; a prompt redrawn after every
/// message decorates all alike and is part of it); after the text, the longest common
/// beginning. Runs of digits compare as one digit (`[12:00:01] peer: `, `peer #7: `). A
/// line may carry more in front (a prompt that landed on it), never less: the second of
/// two merged lines, printed as the rest of one message, carries none of it.
pub fn judge_two_lines(
    lines: &[String],
    alone: &[ShownAlone],
    first: &str,
    second: &str,
) -> Result<String, String> {
    let found = |token: &str| lines.iter().find(|l| l.contains(token)).cloned();
    let (Some(a), Some(b)) = (found(first), found(second)) else {
        return Err(match (found(first), found(second)) {
            (Some(a), _) => format!(
                "Only the first line was shown ({a:?}); the second never appeared. One recv() returned both lines and the program kept only the first, or stopped reading."
            ),
            (_, Some(b)) => format!("Only the second line was shown ({b:?}); the first was lost."),
            _ => "Neither line was shown within the deadline. (A program that waits for its own user before it reads the socket shows nothing here: see the full-duplex check.)".into(),
        });
    };
    if a == b {
        return Err(format!(
            "Both lines were shown as one: {a:?}. The program printed what one recv() returned, which here held two messages."
        ));
    }
    let decorations: Vec<(String, String)> = alone
        .iter()
        .filter_map(|shown| decoration(&shown.printed, &shown.sent))
        .collect();
    let before = common_ending(decorations.iter().map(|(before, _)| before.as_str()));
    let after = common_beginning(decorations.iter().map(|(_, after)| after.as_str()));
    let keeps = |line: &str, sent: &str| {
        decoration(line, sent).is_some_and(|(b, a)| b.ends_with(&before) && a.starts_with(&after))
    };
    let example = alone
        .last()
        .map(|shown| format!(" (a line sent on its own was shown as {:?})", shown.printed))
        .unwrap_or_default();
    match (keeps(&a, first), keeps(&b, second)) {
        (true, true) => Ok(format!("{a:?} and {b:?}{example}")),
        (true, false) => Err(format!(
            "The second line was not shown like the first: {a:?} then {b:?}{example}. One recv() returned both lines and the program printed them as one message."
        )),
        _ => Err(format!(
            "The lines were not shown as lines sent one at a time are: {a:?} then {b:?}{example}. One recv() returned both lines and the program printed them as one message."
        )),
    }
}

/// The text around `sent` in `line` (before, after), with every run of digits written as
/// one `0`; `None` if `line` does not show `sent`.
fn decoration(line: &str, sent: &str) -> Option<(String, String)> {
    let at = line.find(sent)?;
    Some((
        digits_as_one(&line[..at]),
        digits_as_one(&line[at + sent.len()..]),
    ))
}

fn digits_as_one(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut in_digits = false;
    for c in text.chars() {
        match (c.is_ascii_digit(), in_digits) {
            (true, true) => {}
            (true, false) => out.push('0'),
            (false, _) => out.push(c),
        }
        in_digits = c.is_ascii_digit();
    }
    out
}

/// The longest text every item ends with.
fn common_ending<'a>(mut items: impl Iterator<Item = &'a str>) -> String {
    let Some(first) = items.next() else {
        return String::new();
    };
    let mut common: Vec<char> = first.chars().rev().collect();
    for item in items {
        let shared = common
            .iter()
            .zip(item.chars().rev())
            .take_while(|(x, y)| *x == y)
            .count();
        common.truncate(shared);
    }
    common.into_iter().rev().collect()
}

/// The longest text every item begins with.
fn common_beginning<'a>(mut items: impl Iterator<Item = &'a str>) -> String {
    let Some(first) = items.next() else {
        return String::new();
    };
    let mut common: Vec<char> = first.chars().collect();
    for item in items {
        let shared = common
            .iter()
            .zip(item.chars())
            .take_while(|(x, y)| *x == y)
            .count();
        common.truncate(shared);
    }
    common.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(text: &[&str]) -> Vec<String> {
        text.iter().map(|s| s.to_string()).collect()
    }

    fn alone(pairs: &[(&str, &str)]) -> Vec<ShownAlone> {
        pairs
            .iter()
            .map(|(sent, printed)| ShownAlone {
                sent: sent.to_string(),
                printed: printed.to_string(),
            })
            .collect()
    }

    #[test]
    fn two_lines_must_be_shown_as_lines_sent_alone_are() {
        let plain = alone(&[("p1", "peer: p1"), ("p2", "peer: p2")]);
        let judge = |shown: &[&str], alone: &[ShownAlone]| {
            judge_two_lines(&lines(shown), alone, "a1", "b2")
        };
        assert!(judge(&["peer: p1", "peer: p2", "peer: a1", "peer: b2"], &plain).is_ok());
        let bare = alone(&[("p1", "p1"), ("p2", "p2")]);
        assert!(judge(&["a1", "b2"], &bare).is_ok());
        let naive = judge(&["peer: a1", "b2", ""], &plain);
        assert!(naive.unwrap_err().contains("not shown like the first"));
        let one = judge(&["peer: b'a1\\nb2\\n'"], &plain);
        assert!(one.unwrap_err().contains("as one"));
        assert!(judge(&["peer: a1"], &plain).is_err());
        // A decoration after the text counts too.
        let tail = alone(&[("p1", "p1 (from peer)"), ("p2", "p2 (from peer)")]);
        assert!(judge(&["a1 (from peer)", "b2 (from peer)"], &tail).is_ok());
        assert!(judge(&["a1", "b2 (from peer)"], &tail).is_err());
    }

    #[test]
    fn a_prompt_wherever_it_lands_is_not_a_merged_line() {
        // Drawn once, at the start: the first line sent alone took it.
        let once = alone(&[("p1", "> peer: p1"), ("p2", "peer: p2")]);
        for shown in [
            ["peer: a1", "peer: b2"],
            ["> peer: a1", "peer: b2"],
            ["peer: a1", "> peer: b2"],
        ] {
            assert!(judge_two_lines(&lines(&shown), &once, "a1", "b2").is_ok());
        }
        // Drawn late, on the second line sent alone, or on neither.
        let late = alone(&[("p1", "peer: p1"), ("p2", "You: peer: p2")]);
        assert!(judge_two_lines(&lines(&["peer: a1", "peer: b2"]), &late, "a1", "b2").is_ok());
        // Redrawn after every message: part of every line.
        let redrawn = alone(&[("p1", "> \rpeer: p1"), ("p2", "> \rpeer: p2")]);
        let shown = lines(&["> \rpeer: a1", "> \rpeer: b2"]);
        assert!(judge_two_lines(&shown, &redrawn, "a1", "b2").is_ok());
        // Merged stays merged, wherever the prompt is.
        for alone_lines in [&once, &late, &redrawn] {
            for shown in [
                ["> peer: a1", "b2"],
                ["peer: a1", "b2"],
                ["> \rpeer: a1", "b2"],
            ] {
                let verdict = judge_two_lines(&lines(&shown), alone_lines, "a1", "b2");
                assert!(verdict.is_err(), "{shown:?} after {alone_lines:?}");
            }
        }
        let merged_redrawn = lines(&["> \rpeer: a1", "b2", "> "]);
        assert!(judge_two_lines(&merged_redrawn, &redrawn, "a1", "b2").is_err());
    }

    #[test]
    fn counters_and_clocks_in_a_decoration_are_the_same_decoration() {
        let clock = alone(&[("p1", "[09:59:59] peer: p1"), ("p2", "[10:00:00] peer: p2")]);
        let shown = lines(&["[10:00:01] peer: a1", "[10:00:01] peer: b2"]);
        assert!(judge_two_lines(&shown, &clock, "a1", "b2").is_ok());
        let merged = lines(&["[10:00:01] peer: a1", "b2"]);
        assert!(judge_two_lines(&merged, &clock, "a1", "b2").is_err());
        let counted = alone(&[("p1", "#9 p1"), ("p2", "#10 p2")]);
        let shown = lines(&["#11 a1", "#12 b2"]);
        assert!(judge_two_lines(&shown, &counted, "a1", "b2").is_ok());
    }
}
