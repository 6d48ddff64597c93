//! The errors of lab-refused: an experiment that could not be set up (which one, and the
//! system's error), or narration that could not be written. A refused connection is not an
//! error here: it is the result being measured.

/// Why the lab could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("could not set up the {experiment} experiment: {source}")]
    Setup {
        experiment: &'static str,
        source: std::io::Error,
    },
    /// Writing the narration failed (for example, stdout was closed).
    #[error("could not write the narration: {0}")]
    Narration(#[from] std::io::Error),
}

pub(crate) fn setup(experiment: &'static str) -> impl FnOnce(std::io::Error) -> Error {
    move |source| Error::Setup { experiment, source }
}
