//! The errors of lab-sleep: a socket or system call of an experiment that failed (which,
//! and the system's error with its errno), a thread that panicked, or narration that could
//! not be written.

use std::io;

/// Everything that can stop this lab.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A socket or system call failed; `what` says which and where.
    #[error("{what}: {}", lab_kit::errors::ErrorFacts::of(source).summary())]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    /// A thread of an experiment panicked (a bug in the lab, not in the network).
    #[error("the {0} thread of the experiment panicked")]
    ThreadPanicked(&'static str),
    /// Writing the narration failed (for example, stdout was closed).
    #[error("could not write the narration: {0}")]
    Narration(#[from] io::Error),
}
