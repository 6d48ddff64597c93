//! The checks of each assignment and the points each is worth.
//!
//! A rubric is a table: check → points. The built-in one gives most weight to what the
//! homework is about (a secure connection, both directions at once, refusing an impostor)
//! and a point or two to the rest. A course can override any entry with `--rubric FILE`:
//!
//! ```toml
//! # Points per check; a check left out keeps its built-in points; 0 makes it worth nothing.
//! [chat-server]
//! full_duplex = 5
//! plaintext_refused = 0
//!
//! [chat-client]
//! refuses_untrusted = 4
//!
//! [gradescope]
//! visibility = "after_published"   # visible, hidden, after_due_date, after_published
//! ```
//!
//! Unknown assignments or check names are errors, so that a typo never silently keeps
//! the built-in points.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// Which program is graded.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "kebab-case")]
pub enum Assignment {
    /// The homework's chat server (lab 5).
    ChatServer,
    /// The homework's chat client (lab 5).
    ChatClient,
    /// Lab 4's echo server.
    EchoServer,
}

impl Assignment {
    /// The name used on the command line and in the rubric file.
    pub fn name(self) -> &'static str {
        match self {
            Assignment::ChatServer => "chat-server",
            Assignment::ChatClient => "chat-client",
            Assignment::EchoServer => "echo-server",
        }
    }

    /// The checks of this assignment, in the order they run.
    pub fn checks(self) -> &'static [CheckSpec] {
        match self {
            Assignment::ChatServer => CHAT_SERVER,
            Assignment::ChatClient => CHAT_CLIENT,
            Assignment::EchoServer => ECHO_SERVER,
        }
    }
}

/// One check: its stable id (used in the rubric file), its title and built-in points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CheckSpec {
    pub id: &'static str,
    pub title: &'static str,
    pub points: f64,
    /// True for a check that only means something over TLS (skipped with
    /// `--no-tls-required`, failed with an explanation under `--plaintext`).
    pub tls: bool,
}

const fn check(id: &'static str, title: &'static str, points: f64, tls: bool) -> CheckSpec {
    CheckSpec {
        id,
        title,
        points,
        tls,
    }
}

// The checks that more than one assignment runs: one spec each, so that their titles and
// points cannot drift apart. The chat checks are run by crate::chat_checks for both roles.

/// Every server's first check.
const LISTENING: CheckSpec = check(
    "listening",
    "Starts listening on the given port",
    1.0,
    false,
);
/// The chat server's and the chat client's full-duplex check.
const CHAT_FULL_DUPLEX: CheckSpec = check(
    "full_duplex",
    "Receives while its own user types nothing (full duplex)",
    3.0,
    false,
);
/// The chat server's and the chat client's first framing check.
const CHAT_FRAMING_TWO_LINES: CheckSpec = check(
    "framing_two_lines",
    "Two lines in one TCP segment are two lines",
    1.0,
    false,
);
/// The chat server's and the chat client's second framing check.
const CHAT_FRAMING_SPLIT_LINE: CheckSpec = check(
    "framing_split_line",
    "One line split over two segments is one line",
    1.0,
    false,
);

/// The chat server's checks.
pub const CHAT_SERVER: &[CheckSpec] = &[
    LISTENING,
    check(
        "tls_handshake",
        "TLS handshake with the lab CA for localhost",
        2.0,
        true,
    ),
    check("tls_version", "TLS 1.2 or newer", 1.0, true),
    check(
        "client_line_shown",
        "A line from the client appears in the server's output",
        2.0,
        false,
    ),
    check(
        "stdin_line_sent",
        "A line typed at the server reaches the client",
        2.0,
        false,
    ),
    CHAT_FULL_DUPLEX,
    CHAT_FRAMING_TWO_LINES,
    CHAT_FRAMING_SPLIT_LINE,
    check(
        "exit_handled",
        "Exit from the client ends the session cleanly",
        1.0,
        false,
    ),
    check(
        "abrupt_disconnect",
        "Survives a client that vanishes mid-session",
        2.0,
        false,
    ),
    check(
        "plaintext_refused",
        "Does not serve a plaintext client",
        2.0,
        true,
    ),
];

/// The chat client's checks.
pub const CHAT_CLIENT: &[CheckSpec] = &[
    check(
        "connects",
        "Connects to the server on the given port",
        1.0,
        false,
    ),
    check(
        "tls_handshake",
        "Completes the TLS handshake (TLS 1.2 or newer)",
        2.0,
        true,
    ),
    check(
        "stdin_line_sent",
        "A line typed at the client reaches the server",
        2.0,
        false,
    ),
    check(
        "server_line_shown",
        "A line from the server appears in the client's output",
        2.0,
        false,
    ),
    CHAT_FULL_DUPLEX,
    CHAT_FRAMING_TWO_LINES,
    CHAT_FRAMING_SPLIT_LINE,
    check(
        "exit_clean",
        "Typing Exit ends the client cleanly",
        1.0,
        false,
    ),
    check(
        "refuses_untrusted",
        "Refuses an impostor whose certificate the lab CA did not sign",
        3.0,
        true,
    ),
    check(
        "refuses_wrong_name",
        "Refuses an impostor whose certificate is for another name",
        2.0,
        true,
    ),
    check(
        "no_server_message",
        "With no server running, says so clearly (no traceback)",
        1.0,
        false,
    ),
];

/// The echo server's checks (lab 4).
pub const ECHO_SERVER: &[CheckSpec] = &[
    LISTENING,
    check("echo_line", "Echoes a line back, byte for byte", 2.0, false),
    check(
        "framing_two_lines",
        "Two lines in one TCP segment come back as two lines",
        1.0,
        false,
    ),
    check(
        "framing_split_line",
        "One line split over two segments comes back as one line",
        1.0,
        false,
    ),
    check(
        "several_clients",
        "Serves a second client while the first stays connected",
        2.0,
        false,
    ),
    check(
        "large_burst",
        "Echoes 256 KiB sent while reading, in order and complete",
        1.0,
        false,
    ),
    check(
        "client_vanishes",
        "Survives a client that vanishes, then serves the next one",
        1.0,
        false,
    ),
];

/// The ids of the checks strictly between `after` and `before` in `checks`, in order:
/// the checks a failure at `after` leaves unrun, read from the rubric rather than kept by
/// hand beside it.
pub fn ids_between(checks: &[CheckSpec], after: &str, before: &str) -> Vec<&'static str> {
    checks
        .iter()
        .skip_while(|c| c.id != after)
        .skip(1)
        .take_while(|c| c.id != before)
        .map(|c| c.id)
        .collect()
}

/// What went wrong with a rubric file.
#[derive(Debug, thiserror::Error)]
pub enum RubricError {
    #[error("could not read the rubric {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("the rubric {path} is not valid TOML: {message}")]
    Parse { path: String, message: String },
    #[error("the rubric {path} names `{name}`, which is not {what}; known: {known}")]
    Unknown {
        path: String,
        name: String,
        what: &'static str,
        known: String,
    },
    #[error(
        "the rubric {path} gives `{assignment}.{check}` {points} points; points must be a number from 0 to 1000"
    )]
    BadPoints {
        path: String,
        assignment: String,
        check: String,
        points: f64,
    },
    #[error(
        "the rubric {path} sets visibility `{value}`; use visible, hidden, after_due_date or after_published"
    )]
    BadVisibility { path: String, value: String },
}

#[derive(Debug, Deserialize)]
struct RubricFile {
    #[serde(flatten)]
    tables: BTreeMap<String, toml::Table>,
}

/// Points per check for every assignment, and the Gradescope visibility of the tests.
#[derive(Debug, Clone, PartialEq)]
pub struct Rubric {
    overrides: BTreeMap<(Assignment, String), f64>,
    /// Gradescope's `visibility` for each test: `visible` unless the rubric says otherwise.
    pub visibility: String,
}

impl Default for Rubric {
    fn default() -> Self {
        Rubric {
            overrides: BTreeMap::new(),
            visibility: "visible".into(),
        }
    }
}

impl Rubric {
    /// The built-in rubric.
    pub fn built_in() -> Self {
        Rubric::default()
    }

    /// The points `check` is worth in `assignment`.
    pub fn points(&self, assignment: Assignment, check: &CheckSpec) -> f64 {
        self.overrides
            .get(&(assignment, check.id.to_string()))
            .copied()
            .unwrap_or(check.points)
    }

    /// Reads a rubric file (see the module documentation for its format).
    pub fn from_file(path: &Path) -> Result<Self, RubricError> {
        let text = std::fs::read_to_string(path).map_err(|source| RubricError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Parses rubric text; `path` only names it in errors.
    pub fn from_toml(text: &str, path: &str) -> Result<Self, RubricError> {
        let file: RubricFile = toml::from_str(text).map_err(|e| RubricError::Parse {
            path: path.into(),
            message: e.message().to_string(),
        })?;
        let mut rubric = Rubric::default();
        let assignments = [
            Assignment::ChatServer,
            Assignment::ChatClient,
            Assignment::EchoServer,
        ];
        for (table_name, table) in &file.tables {
            if table_name == "gradescope" {
                for (key, value) in table {
                    match (key.as_str(), value.as_str()) {
                        ("visibility", Some(v))
                            if ["visible", "hidden", "after_due_date", "after_published"]
                                .contains(&v) =>
                        {
                            rubric.visibility = v.to_string();
                        }
                        ("visibility", _) => {
                            return Err(RubricError::BadVisibility {
                                path: path.into(),
                                value: format!("{value:?}"),
                            });
                        }
                        _ => {
                            return Err(RubricError::Unknown {
                                path: path.into(),
                                name: format!("gradescope.{key}"),
                                what: "a Gradescope setting",
                                known: "visibility".into(),
                            });
                        }
                    }
                }
                continue;
            }
            let Some(assignment) = assignments.iter().find(|a| a.name() == table_name) else {
                return Err(RubricError::Unknown {
                    path: path.into(),
                    name: table_name.clone(),
                    what: "an assignment",
                    known: "chat-server, chat-client, echo-server, gradescope".into(),
                });
            };
            for (check_id, value) in table {
                if !assignment.checks().iter().any(|c| c.id == check_id) {
                    return Err(RubricError::Unknown {
                        path: path.into(),
                        name: format!("{table_name}.{check_id}"),
                        what: "a check of that assignment",
                        known: assignment
                            .checks()
                            .iter()
                            .map(|c| c.id)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                }
                let points = match value {
                    toml::Value::Integer(i) => *i as f64,
                    toml::Value::Float(f) => *f,
                    _ => f64::NAN,
                };
                if !(0.0..=1000.0).contains(&points) {
                    return Err(RubricError::BadPoints {
                        path: path.into(),
                        assignment: table_name.clone(),
                        check: check_id.clone(),
                        points,
                    });
                }
                rubric
                    .overrides
                    .insert((*assignment, check_id.clone()), points);
            }
        }
        Ok(rubric)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rubric_file_overrides_only_what_it_names() {
        let rubric = Rubric::from_toml(
            "[chat-server]\nfull_duplex = 5\nplaintext_refused = 0.5\n[gradescope]\nvisibility = \"hidden\"\n",
            "r.toml",
        )
        .unwrap();
        let duplex = CHAT_SERVER.iter().find(|c| c.id == "full_duplex").unwrap();
        let listening = &CHAT_SERVER[0];
        assert_eq!(rubric.points(Assignment::ChatServer, duplex), 5.0);
        assert_eq!(rubric.points(Assignment::ChatServer, listening), 1.0);
        assert_eq!(rubric.visibility, "hidden");
    }

    #[test]
    fn a_typo_in_a_rubric_is_an_error_naming_the_known_checks() {
        let err = Rubric::from_toml("[chat-server]\nful_duplex = 5\n", "r.toml").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("chat-server.ful_duplex"), "{text}");
        assert!(text.contains("full_duplex"), "{text}");
        assert!(Rubric::from_toml("[chat-srv]\n", "r.toml").is_err());
        assert!(Rubric::from_toml("[echo-server]\necho_line = -1\n", "r.toml").is_err());
        assert!(Rubric::from_toml("[echo-server]\necho_line = \"two\"\n", "r.toml").is_err());
        assert!(Rubric::from_toml("not toml at all [", "r.toml").is_err());
    }

    #[test]
    fn check_ids_are_unique_per_assignment() {
        for assignment in [
            Assignment::ChatServer,
            Assignment::ChatClient,
            Assignment::EchoServer,
        ] {
            let mut ids: Vec<_> = assignment.checks().iter().map(|c| c.id).collect();
            ids.sort();
            ids.dedup();
            assert_eq!(ids.len(), assignment.checks().len());
        }
    }
}
