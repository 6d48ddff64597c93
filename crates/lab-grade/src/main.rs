//! `lab-grade`: grade a student's chat server, chat client or echo server over the wire.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand, ValueEnum};
use lab_grade::classroom::RunnerResult;
use lab_grade::gradescope::{self, DEFAULT_TIME_LIMIT};
use lab_grade::report::narrate_report;
use lab_grade::{Assignment, Deadlines, GradeOptions, GraderPki, Rubric, StudentProgram};
use lab_kit::narrate::{Format, Narrator};

/// `println!` for the reports: a reader that went away (`| head`) is not an error
/// (see `lab_grade::report::print_line`).
macro_rules! say {
    ($($arg:tt)*) => {
        lab_grade::report::print_line(format_args!($($arg)*))
    };
}

const EXAMPLES: &str = "\
Examples:
  lab-grade chat-server -- python3 server.py {port} {cert} {key}
  lab-grade chat-client -- python3 client.py {host} {port} {ca}
  lab-grade chat-server --plaintext -- python3 insecure_server.py {port}
  lab-grade chat-server --format gradescope --output /autograder/results/results.json \\
      -- python3 /autograder/submission/server.py {port} {cert} {key}
  lab-grade echo-server -- python3 echo.py {port}
  lab-grade batch submissions/ --run 'python3 {dir}/server.py {port}' --jobs 4
  lab-grade chat-server --format classroom -- python3 server.py {port} {cert} {key}
  lab-grade export-gradescope chat-server --output autograder.zip
  lab-grade export-gradescope chat-server --plaintext --output autograder.zip \
      -- python3 server.py {port}

Placeholders in the command (also set as environment variables):
  {host} LAB_HOST  127.0.0.1        {port} LAB_PORT  a fresh port for each start
  {ca}   LAB_CA    the lab CA file   {cert} LAB_CERT, {key} LAB_KEY  the program's own
  {dir}  (batch)   the submission's folder";

#[derive(Debug, Parser)]
#[command(
    name = "lab-grade",
    version,
    about = "Grade a student's chat or echo program, in any language, by talking to it over real sockets.",
    after_help = EXAMPLES
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Grade a chat server: the grader connects to it as a client.
    #[command(after_help = EXAMPLES)]
    ChatServer(Single),
    /// Grade a chat client: the grader is its server, and two impostors.
    #[command(after_help = EXAMPLES)]
    ChatClient(Single),
    /// Grade lab 4's echo server (plaintext TCP).
    #[command(after_help = EXAMPLES)]
    EchoServer(Single),
    /// Grade every submission folder in DIR, several at a time.
    #[command(after_help = EXAMPLES)]
    Batch(Batch),
    /// Write a Gradescope autograder zip that grades ASSIGNMENT with these settings.
    #[command(after_help = EXAMPLES)]
    ExportGradescope(ExportGradescope),
    /// Time the grading of each reference submission in examples/ (program starts, wall
    /// time) next to the targets; for real figures build with --release.
    #[command(after_help = "Example:\n  cargo run --release -p lab-grade -- bench --runs 3")]
    Bench(Bench),
}

#[derive(Debug, Args)]
struct Bench {
    /// How many times to grade each reference (the median is shown).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=100))]
    runs: u16,
    /// The repository root, holding examples/ (default: the current folder, else the
    /// source tree this binary was built from).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// One JSON object per reference instead of the table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// A readable report: each check, its points and feedback.
    Text,
    /// The report as one JSON object.
    Json,
    /// Gradescope's results.json, written to --output.
    Gradescope,
    /// GitHub Classroom's runner result (base64) on stdout, also appended to
    /// $GITHUB_OUTPUT as result=…; the readable report goes to stderr.
    Classroom,
}

#[derive(Debug, Args)]
struct Common {
    /// Speak plaintext TCP to the program (TLS checks then fail, with an explanation).
    #[arg(long)]
    plaintext: bool,
    /// With --plaintext: skip the TLS checks (worth no points) instead of failing them.
    #[arg(long, requires = "plaintext")]
    no_tls_required: bool,
    /// A TOML file overriding the points of some checks.
    #[arg(long, value_name = "FILE")]
    rubric: Option<PathBuf>,
    /// Seconds a program may take to start listening (or to connect).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    start_timeout: f64,
    /// Seconds each later step may take (a handshake, a line to arrive, an exit).
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    step_timeout: f64,
}

#[derive(Debug, Args)]
struct Single {
    #[command(flatten)]
    common: Common,
    /// How to print the result.
    #[arg(long, value_enum, default_value_t = OutputFormat::Text)]
    format: OutputFormat,
    /// Same as --format json.
    #[arg(long)]
    json: bool,
    /// Where --format gradescope writes results.json.
    #[arg(long, value_name = "PATH", default_value = "results.json")]
    output: PathBuf,
    /// The student's command, after --, with placeholders such as {port}.
    #[arg(last = true, required = true, value_name = "CMD")]
    command: Vec<String>,
}

#[derive(Debug, Args)]
struct Batch {
    /// The folder holding one folder per submission.
    dir: PathBuf,
    /// The command for each submission; {dir} is its folder.
    #[arg(long, value_name = "TEMPLATE")]
    run: String,
    /// What the submissions are.
    #[arg(long, value_enum, default_value_t = Assignment::ChatServer)]
    assignment: Assignment,
    /// How many submissions to grade at once.
    #[arg(long, default_value_t = 2)]
    jobs: usize,
    /// Where to write grades.csv and grades.json.
    #[arg(long, value_name = "DIR", default_value = ".")]
    out: PathBuf,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Args)]
struct ExportGradescope {
    /// What the submissions are.
    #[arg(value_enum)]
    assignment: Assignment,
    /// Where to write the autograder zip.
    #[arg(long, value_name = "ZIP", default_value = "autograder.zip")]
    output: PathBuf,
    /// The lab-grade binary to put in the zip (default: this one); it must be a Linux
    /// x86-64 program needing at most glibc 2.35 (Gradescope's Ubuntu 22.04).
    #[arg(long, value_name = "PATH")]
    binary: Option<PathBuf>,
    /// Seconds lab-grade may take per submission; keep it below Gradescope's timeout.
    #[arg(long, value_name = "SECS", default_value_t = DEFAULT_TIME_LIMIT)]
    time_limit: u64,
    /// An Ubuntu package setup.sh installs for the students' programs (repeatable).
    #[arg(long = "apt", value_name = "PACKAGE")]
    apt_packages: Vec<String>,
    #[command(flatten)]
    common: Common,
    /// The student's command, run in the submission folder (default: python3 server.py
    /// {port} {cert} {key}, python3 client.py {host} {port} {ca}, python3 server.py {port}).
    #[arg(last = true, value_name = "CMD")]
    command: Vec<String>,
}

fn seconds(value: f64, flag: &str) -> Result<Duration, String> {
    Duration::try_from_secs_f64(value)
        .ok()
        .filter(|d| !d.is_zero() && *d <= Duration::from_secs(600))
        .ok_or_else(|| format!("{flag} {value}: give a number of seconds above 0 and at most 600"))
}

fn options(common: &Common, assignment: Assignment) -> Result<(GradeOptions, Rubric), String> {
    if assignment == Assignment::EchoServer && (common.plaintext || common.no_tls_required) {
        return Err(
            "the echo server is always graded over plaintext TCP: --plaintext and --no-tls-required do not apply to it; leave them out".into(),
        );
    }
    let rubric = match &common.rubric {
        Some(path) => Rubric::from_file(path).map_err(|e| format!("{e}"))?,
        None => Rubric::built_in(),
    };
    let options = GradeOptions {
        plaintext: common.plaintext,
        no_tls_required: common.no_tls_required,
        deadlines: Deadlines {
            start: seconds(common.start_timeout, "--start-timeout")?,
            step: seconds(common.step_timeout, "--step-timeout")?,
            ..Deadlines::default()
        },
    };
    Ok((options, rubric))
}

fn grade_single(assignment: Assignment, single: &Single) -> Result<lab_grade::GradeReport, String> {
    let (options, rubric) = options(&single.common, assignment)?;
    let program = StudentProgram::new(single.command.clone()).map_err(|e| e.to_string())?;
    let pki = GraderPki::generate().map_err(|e| e.to_string())?;
    lab_grade::grade(assignment, &program, &pki, options, &rubric).map_err(|e| e.to_string())
}

/// Prints the Classroom runner result and appends it to `$GITHUB_OUTPUT` (when set); the
/// readable report, if there is one, goes to stderr for the step's log.
fn emit_classroom(
    result: &RunnerResult,
    report: Option<&lab_grade::GradeReport>,
) -> Result<(), String> {
    if let Some(report) = report {
        let (mut narrator, out) = Narrator::capture(Format::Text);
        narrate_report(report, &mut narrator)
            .map_err(|e| format!("could not print the report: {e}"))?;
        eprint!("{}", out.text());
    }
    let encoded = result.encode();
    say!("{encoded}");
    if let Some(path) = std::env::var_os("GITHUB_OUTPUT").filter(|p| !p.is_empty()) {
        let path = PathBuf::from(path);
        lab_grade::classroom::append_step_output(&path, &encoded).map_err(|e| {
            format!(
                "could not append the result to $GITHUB_OUTPUT ({}): {e}",
                path.display()
            )
        })?;
    }
    Ok(())
}

fn run_single(assignment: Assignment, single: Single) -> Result<(), String> {
    let started = Instant::now();
    let graded = grade_single(assignment, &single);
    let format = if single.json {
        OutputFormat::Json
    } else {
        single.format
    };
    let report = match graded {
        Ok(report) => report,
        // The Classroom reporter needs a result even when the grader could not grade: an
        // error result, worth 0 of the assignment's points, then the failure exit code.
        Err(message) if format == OutputFormat::Classroom => {
            let rubric = options(&single.common, assignment)
                .map(|(_, rubric)| rubric)
                .unwrap_or_default();
            let max_score = assignment
                .checks()
                .iter()
                .map(|check| rubric.points(assignment, check))
                .sum();
            let result = RunnerResult::error(&message, max_score, started.elapsed());
            emit_classroom(&result, None)?;
            return Err(message);
        }
        Err(message) => return Err(message),
    };
    match format {
        OutputFormat::Text => {
            let mut narrator = Narrator::stdout(Format::Text);
            // A reader that went away (`| head`) is not a failure of the grading.
            match narrate_report(&report, &mut narrator).and_then(|()| narrator.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
                    return Err(format!("could not print the report: {e}"));
                }
                _ => {}
            }
        }
        OutputFormat::Json => {
            let text = serde_json::to_string(&report)
                .map_err(|e| format!("could not encode the report: {e}"))?;
            say!("{text}");
        }
        OutputFormat::Classroom => {
            emit_classroom(&RunnerResult::from_report(&report), Some(&report))?;
        }
        OutputFormat::Gradescope => {
            let results = gradescope::results(&report, started.elapsed());
            gradescope::write_results(&results, &single.output).map_err(|e| e.to_string())?;
            say!(
                "score {} / {} written to {}",
                lab_grade::report::points_text(report.score),
                lab_grade::report::points_text(report.max_score),
                single.output.display()
            );
        }
    }
    Ok(())
}

fn run_batch(batch: Batch) -> Result<(), String> {
    let (options, rubric) = options(&batch.common, batch.assignment)?;
    if batch.jobs == 0 || batch.jobs > 64 {
        return Err(format!("--jobs {}: give a number from 1 to 64", batch.jobs));
    }
    let settings = lab_grade::batch::BatchSettings {
        assignment: batch.assignment,
        template: batch.run,
        jobs: batch.jobs,
        options,
        rubric,
    };
    use lab_grade::batch::{Progress, count_words, row_line, same_startup_failure};
    use std::io::IsTerminal;
    // A terminal gets a progress bar and the table at the end; a pipe or a CI log gets one
    // line per submission as soon as it is graded.
    let progress = if std::io::stdout().is_terminal() {
        Progress::Bar
    } else {
        Progress::Lines
    };
    let summary = lab_grade::batch::grade_folder(&batch.dir, &settings, progress)
        .map_err(|e| e.to_string())?;
    let (csv_path, json_path) =
        lab_grade::batch::write_summary(&summary, &batch.out).map_err(|e| e.to_string())?;
    if progress == Progress::Bar {
        for row in &summary.rows {
            say!("{}", row_line(row));
        }
    }
    say!(
        "{} graded in {:.1} s; summary in {} and {}",
        count_words(summary.rows.len()),
        summary.elapsed_ms as f64 / 1000.0,
        csv_path.display(),
        json_path.display()
    );
    if let Some(failure) = same_startup_failure(&summary) {
        return Err(format!(
            "every submission ({}) failed the same way at startup, so the --run template is almost certainly wrong ({}). The first one said: {}",
            summary.rows.len(),
            settings.template,
            lab_grade::report::escape_control(&failure)
        ));
    }
    Ok(())
}

fn run_export(export: ExportGradescope) -> Result<(), String> {
    let (options, _) = options(&export.common, export.assignment)?;
    if !(1..=3600).contains(&export.time_limit) {
        return Err(format!(
            "--time-limit {}: give a number of seconds from 1 to 3600",
            export.time_limit
        ));
    }
    let binary = match export.binary {
        Some(path) => path,
        None => std::env::current_exe().map_err(|e| {
            format!("could not find this lab-grade binary: {e}; pass one with --binary")
        })?,
    };
    let command = if export.command.is_empty() {
        gradescope::default_command(export.assignment)
    } else {
        export.command
    };
    let settings = gradescope::Export {
        assignment: export.assignment,
        command,
        options,
        rubric: export.common.rubric,
        binary,
        time_limit: export.time_limit,
        apt_packages: export.apt_packages,
    };
    let exported = gradescope::export(&settings, &export.output).map_err(|e| e.to_string())?;
    say!(
        "Wrote {} ({:.1} MB) for {}: {}.",
        export.output.display(),
        exported.bytes as f64 / 1e6,
        settings.assignment.name(),
        exported
            .files
            .iter()
            .map(|(name, mode)| format!("{name} ({mode:o})"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    say!(
        "The student's command, run in /autograder/submission: {}",
        settings.command.join(" ")
    );
    if let Some(glibc) = exported.glibc {
        say!(
            "The binary needs glibc {glibc}; Gradescope's Ubuntu 22.04 image has {}.",
            gradescope::IMAGE_GLIBC
        );
    }
    say!(
        "Before uploading, run it the way Gradescope does: see \"Check the autograder before uploading\" in docs/grading.md."
    );
    Ok(())
}

fn run_bench(bench: Bench) -> Result<(), String> {
    let root = lab_grade::bench::find_root(bench.root.as_deref())?;
    let mut narrator = Narrator::stdout(Format::from_json_flag(bench.json));
    let result = lab_grade::bench::run(&root, usize::from(bench.runs), &mut narrator);
    let _ = narrator.flush();
    result.map(|_| ()).map_err(|e| e.to_string())
}

/// Ends the student's programs and removes the grader's temporary folders when the grader
/// is interrupted (Ctrl-C, SIGINT) or told to stop (SIGTERM, as a CI timeout does).
///
/// The signals are blocked in every thread and taken by one thread with `sigwait`, so the
/// clean-up runs as ordinary code, not in a signal handler. A program the grader starts
/// gets an empty signal mask again: the mask survives `exec`, so
/// `lab_grade::sandbox::Sandbox::confine` clears it in the child.
fn clean_up_on_interrupt() {
    // SAFETY: sigset_t is plain data, filled by sigemptyset/sigaddset; pthread_sigmask
    // changes this thread's mask, inherited by the threads started after it.
    let set = unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, libc::SIGINT);
        libc::sigaddset(&mut set, libc::SIGTERM);
        if libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        set
    };
    std::thread::spawn(move || {
        let mut signal = 0;
        // SAFETY: waits for one of the blocked signals in `set`; writes its number.
        if unsafe { libc::sigwait(&set, &mut signal) } == 0 {
            lab_grade::sandbox::clean_up_after_interrupt();
            eprintln!(
                "lab-grade: interrupted; the programs were stopped and the temporary folders removed"
            );
            std::process::exit(128 + signal);
        }
    });
}

fn main() -> ExitCode {
    clean_up_on_interrupt();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::ChatServer(single) => run_single(Assignment::ChatServer, single),
        Command::ChatClient(single) => run_single(Assignment::ChatClient, single),
        Command::EchoServer(single) => run_single(Assignment::EchoServer, single),
        Command::Batch(batch) => run_batch(batch),
        Command::ExportGradescope(export) => run_export(export),
        Command::Bench(bench) => run_bench(bench),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("lab-grade: {message}");
            ExitCode::from(2)
        }
    }
}
