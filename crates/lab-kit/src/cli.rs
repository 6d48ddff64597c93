//! What every lab's binary does around its one call into the library.
//!
//! A lab's `main` parses its arguments (clap), dispatches its probes, calls the library once
//! and turns the outcome into an exit code. The parts that are the same in every lab live
//! here: "no experiment named means all of them", and the ending: success, a quiet failure
//! when the reader went away (`lab-refused | head`, as `yes | head` ends), or the error in
//! one line on stderr, prefixed with the program's name.

use std::process::ExitCode;

/// The experiments named on the command line, in the order given; all of them, in the
/// chapter's order, when none was named.
pub fn experiments_or_all<E: Copy>(named: &[E], all: &[E]) -> Vec<E> {
    if named.is_empty() {
        all.to_vec()
    } else {
        named.to_vec()
    }
}

/// The exit code for `outcome`, after reporting a failure in one line as `program: error`
/// (nothing when the error is only that standard output was closed: nobody is left to
/// read it).
pub fn finish<E>(program: &str, outcome: Result<(), E>) -> ExitCode
where
    E: std::error::Error + 'static,
{
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if crate::narrate::is_closed_output(&error) => ExitCode::FAILURE,
        Err(error) => {
            eprintln!("{program}: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_experiment_named_means_all_in_order() {
        assert_eq!(experiments_or_all(&[], &[1, 2, 3]), vec![1, 2, 3]);
        assert_eq!(experiments_or_all(&[3, 1], &[1, 2, 3]), vec![3, 1]);
    }

    #[test]
    fn a_closed_output_ends_quietly_and_anything_else_fails() {
        let closed = std::io::Error::from(std::io::ErrorKind::BrokenPipe);
        assert_eq!(finish("lab-x", Err(closed)), ExitCode::FAILURE);
        let ok: Result<(), std::io::Error> = Ok(());
        assert_eq!(finish("lab-x", ok), ExitCode::SUCCESS);
    }
}
