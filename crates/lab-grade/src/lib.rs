//! lab-grade: grades a student's chat server, chat client or echo server, in any language,
//! by talking to it over real sockets, the way a careful TA would, only faster and the
//! same for everyone.
//!
//! The program is a black box: a command line with placeholders (`{port}`, `{ca}`, …).
//! The grader starts it, plays the other side of the conversation (a TLS client built on
//! rustls, a reference server, impostor servers with the wrong certificates), watches what
//! the program prints and how it ends, and turns each observation into a check with points
//! and feedback in plain words.
//!
//! - [`rubric`]: the checks of each assignment and their points (overridable with TOML).
//! - [`program`]: the student's command, the run's certificates, starting the program.
//! - [`sandbox`]: where and as whom it runs (throwaway user, limits, clean environment).
//! - [`wire`]: the grader's end of a connection, with a deadline on every wait.
//! - [`grade`]: a grading run: the dispatcher.
//! - [`scene`]: the machinery every check shares (start, connect, watch, stop).
//! - [`chat_server`], [`chat_client`], [`echo_server`]: the checks themselves;
//!   [`chat_checks`]: the chat checks both roles share, written once.
//! - [`advice`]: what a traceback or an errno means, in plain advice.
//! - [`report`]: the scored report, for people or as JSON.
//! - [`gradescope`]: Gradescope's `results.json` and the autograder zip (`export-gradescope`);
//!   [`classroom`]: the runner result GitHub Classroom's reporter reads.
//! - [`batch`]: a folder of submissions, graded in parallel, summarised as CSV and JSON.
//! - [`bench`]: how long grading each reference submission takes, and how many starts.

pub mod advice;
pub mod batch;
pub mod bench;
pub mod chat_checks;
pub mod chat_client;
pub mod chat_server;
pub mod classroom;
pub mod echo_server;
pub mod grade;
pub mod gradescope;
pub mod program;
pub mod report;
pub mod rubric;
pub mod sandbox;
pub mod scene;
pub mod wire;

pub use grade::{Deadlines, GradeOptions, grade};
pub use program::{GraderPki, StudentProgram};
pub use report::GradeReport;
pub use rubric::{Assignment, Rubric};
