//! Gradescope: the `results.json` its harness reads, and the autograder zip that runs
//! `lab-grade` there.
//!
//! Gradescope grades each submission in a fresh container (Ubuntu 22.04, glibc 2.35, ½ vCPU,
//! 768 MB by default): it unzips the autograder into `/autograder/source`, runs `setup.sh`
//! once when it builds the image, then `run_autograder` for every submission, with the
//! student's files in `/autograder/submission`, and shows `/autograder/results/results.json`.
//! Both scripts run as root. [`export`] writes that zip: the two scripts, this very
//! `lab-grade` binary (checked to need no newer glibc than the image has: [`glibc_needed`]),
//! and the rubric. The scripts are plain `sh`, readable and editable by course staff.
//!
//! What the scripts guarantee, and why:
//! - **A result every time.** A `results.json` with score 0 and a plain message is written
//!   *before* grading starts and replaced (by a rename) only by a complete report, so a
//!   grader that crashes, is killed, or runs out of time still leaves a clear result
//!   instead of Gradescope's "The autograder failed to execute correctly".
//! - **The student's program cannot touch the grade.** `lab-grade` runs as root, so that
//!   its isolation runs the program as a throwaway unprivileged user; the scripts make
//!   everything in `/autograder` but the submission root's alone (the results, the binary,
//!   the rubric, any deploy key a course adds, Gradescope's `submission_metadata.json`),
//!   and the submission readable but not writable by others.
//! - **Testable anywhere.** `AUTOGRADER_ROOT` (default `/autograder`) lets the same scripts
//!   run under a temporary folder: that is how the tests, and a TA before uploading, run
//!   the autograder the way Gradescope does.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Serialize;

use crate::grade::GradeOptions;
use crate::report::{GradeReport, Status, points_text};
use crate::rubric::{Assignment, Rubric, RubricError};

/// The newest glibc symbol version Gradescope's default image (Ubuntu 22.04) provides.
pub const IMAGE_GLIBC: GlibcVersion = GlibcVersion(2, 35);

/// Seconds `lab-grade` may take in all by default: below Gradescope's default limit of
/// 10 minutes, so that a result is written before Gradescope stops the container.
pub const DEFAULT_TIME_LIMIT: u64 = 480;

/// One test in Gradescope's `results.json`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GradescopeTest {
    pub name: String,
    /// The check's place in the assignment (`"1"`, `"2"`, …), stable when a check is skipped.
    pub number: String,
    pub score: f64,
    pub max_score: f64,
    /// `passed` or `failed` (Gradescope shows it as a green or red mark).
    pub status: &'static str,
    /// Feedback and evidence, in Markdown.
    pub output: String,
    pub output_format: &'static str,
    /// The check's id, and `tls` for the checks that only mean something over TLS.
    pub tags: Vec<String>,
    pub visibility: String,
}

/// Gradescope's `results.json`: the total and one entry per check.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GradescopeResults {
    pub score: f64,
    /// Whole seconds the grading took.
    pub execution_time: u64,
    pub output: String,
    pub output_format: &'static str,
    pub visibility: String,
    pub stdout_visibility: String,
    pub tests: Vec<GradescopeTest>,
}

/// Escapes the characters Markdown would read as formatting, so that a program's words
/// quoted in feedback (`*`, `_`, `<script>`) are shown as they are.
fn markdown_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\`*_{}[]<>#|~!".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A fenced code block for `lines`, with a fence longer than any run of backticks in them.
fn markdown_code(lines: &[String]) -> String {
    let longest = lines
        .iter()
        .flat_map(|line| line.split(|c| c != '`'))
        .map(str::len)
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest.max(2) + 1);
    format!("{fence}text\n{}\n{fence}", lines.join("\n"))
}

/// The report in the form Gradescope reads from `/autograder/results/results.json`;
/// `execution_time` is how long the whole grading took.
pub fn results(report: &GradeReport, execution_time: Duration) -> GradescopeResults {
    let specs = report.assignment.checks();
    let tests = report
        .checks
        .iter()
        // A skipped check was not graded: it is left out rather than shown as 0 of 0.
        .filter(|check| check.status != Status::Skipped)
        .map(|check| {
            let position = specs.iter().position(|spec| spec.id == check.id);
            let mut output = check
                .feedback
                .iter()
                .map(|sentence| markdown_text(sentence))
                .collect::<Vec<_>>()
                .join("\n\n");
            if !check.evidence.is_empty() {
                output.push_str("\n\n**What the grader saw:**\n\n");
                output.push_str(&markdown_code(&check.evidence));
            }
            let mut tags = vec![check.id.to_string()];
            if position.is_some_and(|i| specs[i].tls) {
                tags.push("tls".into());
            }
            GradescopeTest {
                name: check.title.to_string(),
                number: position.map_or_else(String::new, |i| (i + 1).to_string()),
                score: check.points,
                max_score: check.max_points,
                status: if check.status == Status::Failed {
                    "failed"
                } else {
                    "passed"
                },
                output,
                output_format: "md",
                tags,
                visibility: report.visibility.clone(),
            }
        })
        .collect();
    GradescopeResults {
        score: report.score,
        execution_time: execution_time.as_secs_f64().round() as u64,
        output: format!(
            "**socket-lab grader**, {} over {}: **{} / {}**. Open each test below for what the grader did and saw.",
            report.assignment.name(),
            report.transport,
            points_text(report.score),
            points_text(report.max_score)
        ),
        output_format: "md",
        visibility: report.visibility.clone(),
        stdout_visibility: "hidden".into(),
        tests,
    }
}

/// Writes `results` to `path` through a temporary file in the same folder and a rename,
/// so that no one ever reads half a file.
pub fn write_results(results: &GradescopeResults, path: &Path) -> Result<(), ExportError> {
    let text = serde_json::to_string_pretty(results).map_err(|e| ExportError::Write {
        path: path.to_path_buf(),
        source: std::io::Error::other(e),
    })?;
    write_atomically(path, (text + "\n").as_bytes())
}

/// [`crate::batch::write_atomically`], with the error said for `--output`.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), ExportError> {
    crate::batch::write_atomically(path, bytes).map_err(|source| ExportError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// What went wrong while exporting an autograder or writing results.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("could not write {path}: {source}; choose another path with --output")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("could not read the lab-grade binary {path}: {source}")]
    ReadBinary {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a Linux x86-64 program ({why}); Gradescope runs Linux x86-64: build lab-grade there (cargo build --release -p lab-grade) and pass it with --binary"
    )]
    NotLinux { path: PathBuf, why: String },
    #[error(
        "{path} needs GLIBC_{needed}, but Gradescope's Ubuntu 22.04 image has GLIBC_{IMAGE_GLIBC}: build lab-grade on Ubuntu 22.04 or older (cargo build --release -p lab-grade) and pass it with --binary"
    )]
    GlibcTooNew { path: PathBuf, needed: GlibcVersion },
    #[error(transparent)]
    Rubric(#[from] RubricError),
    #[error(
        "the command word {word:?} cannot be written into a shell script (it holds a NUL byte)"
    )]
    Quote { word: String },
    #[error("--apt {name:?} is not an Ubuntu package name (lowercase letters, digits, and + - .)")]
    BadPackage { name: String },
    #[error("could not write the zip {path}: {message}")]
    Zip { path: PathBuf, message: String },
}

/// A glibc symbol version: `GLIBC_2.35` is `GlibcVersion(2, 35)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GlibcVersion(pub u32, pub u32);

impl std::fmt::Display for GlibcVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0, self.1)
    }
}

impl GlibcVersion {
    /// Reads `GLIBC_2.35` (also `GLIBC_2.2.5`, as 2.2); `None` for other names.
    pub fn parse(name: &str) -> Option<Self> {
        let mut parts = name.strip_prefix("GLIBC_")?.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        Some(GlibcVersion(major, minor))
    }
}

/// The newest glibc version the Linux x86-64 program `elf` needs (from its ELF version
/// needs, the same table `objdump -T` shows per symbol); `None` if it needs no glibc.
pub fn glibc_needed(elf: &[u8]) -> Result<Option<GlibcVersion>, String> {
    use object::Endianness;
    use object::elf::FileHeader64;
    use object::read::elf::FileHeader;
    let header = FileHeader64::<Endianness>::parse(elf).map_err(|e| e.to_string())?;
    let endian = header.endian().map_err(|e| e.to_string())?;
    if header.e_machine(endian) != object::elf::EM_X86_64 {
        return Err(format!(
            "its machine is {}, not x86-64",
            header.e_machine(endian)
        ));
    }
    let sections = header.sections(endian, elf).map_err(|e| e.to_string())?;
    let Some((mut needs, link)) = sections
        .gnu_verneed(endian, elf)
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let strings = sections
        .strings(endian, elf, link)
        .map_err(|e| e.to_string())?;
    let mut newest = None;
    while let Some((_, mut versions)) = needs.next().map_err(|e| e.to_string())? {
        while let Some(version) = versions.next().map_err(|e| e.to_string())? {
            let name = version.name(endian, strings).map_err(|e| e.to_string())?;
            if let Some(found) = GlibcVersion::parse(&String::from_utf8_lossy(name)) {
                newest = newest.max(Some(found));
            }
        }
    }
    Ok(newest)
}

/// The student's command when the course gives none: the reference submissions' file
/// names, run with Python.
pub fn default_command(assignment: Assignment) -> Vec<String> {
    let words: &[&str] = match assignment {
        Assignment::ChatServer => &["python3", "server.py", "{port}", "{cert}", "{key}"],
        Assignment::ChatClient => &["python3", "client.py", "{host}", "{port}", "{ca}"],
        Assignment::EchoServer => &["python3", "server.py", "{port}"],
    };
    words.iter().map(|w| w.to_string()).collect()
}

/// The Ubuntu package that provides a command students commonly run, for `setup.sh`.
fn package_for(program: &str) -> Option<(&'static str, &'static str)> {
    let name = Path::new(program).file_name()?.to_str()?;
    match name {
        "python3" | "python" => Some(("python3", "python3")),
        "node" | "nodejs" => Some(("node", "nodejs")),
        "java" => Some(("java", "default-jre-headless")),
        _ => None,
    }
}

/// Everything an autograder is made of.
#[derive(Debug, Clone)]
pub struct Export {
    pub assignment: Assignment,
    /// The student's command (run in the submission folder), with placeholders.
    pub command: Vec<String>,
    pub options: GradeOptions,
    /// The rubric file to ship, if the course has one.
    pub rubric: Option<PathBuf>,
    /// The `lab-grade` binary to ship (by default the one running).
    pub binary: PathBuf,
    /// Seconds `lab-grade` may take in all.
    pub time_limit: u64,
    /// More Ubuntu packages `setup.sh` installs.
    pub apt_packages: Vec<String>,
}

/// What [`export`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exported {
    /// The files in the zip, in order, with their modes.
    pub files: Vec<(String, u32)>,
    /// The newest glibc the shipped binary needs.
    pub glibc: Option<GlibcVersion>,
    /// The zip's size in bytes (about 8 MB with a release build of lab-grade, 20 MB debug).
    pub bytes: u64,
}

fn quote(words: &[String]) -> Result<String, ExportError> {
    words
        .iter()
        .map(|word| {
            shlex::try_quote(word)
                .map(|quoted| quoted.into_owned())
                .map_err(|_| ExportError::Quote { word: word.clone() })
        })
        .collect::<Result<Vec<_>, _>>()
        .map(|quoted| quoted.join(" "))
}

/// `lab-grade`'s grading flags for `options`, as `export-gradescope` was given them.
fn grading_flags(options: &GradeOptions) -> Vec<String> {
    let mut flags = Vec::new();
    if options.plaintext {
        flags.push("--plaintext".to_string());
    }
    if options.no_tls_required {
        flags.push("--no-tls-required".to_string());
    }
    flags.push("--start-timeout".into());
    flags.push(options.deadlines.start.as_secs_f64().to_string());
    flags.push("--step-timeout".into());
    flags.push(options.deadlines.step.as_secs_f64().to_string());
    flags
}

/// The text of `setup.sh`: installs what the students' command needs, locks the
/// autograder's folder, and proves the shipped binary runs on the image.
pub fn setup_script(export: &Export) -> String {
    let mut installs = String::new();
    if let Some((probe, package)) = export.command.first().and_then(|p| package_for(p)) {
        installs.push_str(&format!(
            "# The students' command runs {probe}: installed from Ubuntu's packages if missing.\n\
             if ! command -v {probe} >/dev/null 2>&1; then\n    \
             apt-get update\n    \
             DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {package}\n\
             fi\n"
        ));
    }
    if !export.apt_packages.is_empty() {
        installs.push_str(&format!(
            "# Packages the course asked for (--apt).\n\
             apt-get update\n\
             DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends {}\n",
            export.apt_packages.join(" ")
        ));
    }
    format!(
        "#!/bin/sh\n\
         # Gradescope runs this once, as root, when it builds the autograder's image.\n\
         # Made by `lab-grade export-gradescope {assignment}` (lab-grade {version}).\n\
         set -eu\n\
         root=\"${{AUTOGRADER_ROOT:-/autograder}}\"\n\
         source=\"$root/source\"\n\
         \n\
         {installs}\
         # The autograder's files (the grader, the rubric, any key a course adds) are root's alone.\n\
         chmod 0700 \"$source\"\n\
         # Fails the image build now, with the reason, if this lab-grade cannot run here\n\
         # (for example, a binary built against a newer glibc than the image's).\n\
         \"$source/lab-grade\" --version\n",
        assignment = export.assignment.name(),
        version = env!("CARGO_PKG_VERSION"),
    )
}

/// The text of `run_autograder`: grades the submission, and always leaves a `results.json`.
pub fn run_script(export: &Export, visibility: &str) -> Result<String, ExportError> {
    let mut grader = vec![
        export.assignment.name().to_string(),
        "--format".into(),
        "gradescope".into(),
    ];
    grader.extend(grading_flags(&export.options));
    let grader = quote(&grader)?;
    let rubric = if export.rubric.is_some() {
        " --rubric \"$source/rubric.toml\""
    } else {
        ""
    };
    let command = quote(&export.command)?;
    let time_limit = export.time_limit;
    let assignment = export.assignment.name();
    let version = env!("CARGO_PKG_VERSION");
    Ok(format!(
        r#"#!/bin/sh
# Gradescope runs this as root for each submission. It grades /autograder/submission with
# lab-grade and ALWAYS leaves /autograder/results/results.json behind.
# Made by `lab-grade export-gradescope {assignment}` (lab-grade {version}).
#
# AUTOGRADER_ROOT (default /autograder) lets it run under another folder laid out the same
# way (source/, submission/, results/): see "Check the autograder before uploading" in
# socket-lab's docs/grading.md.
set -u
root="${{AUTOGRADER_ROOT:-/autograder}}"
source="$root/source"
submission="$root/submission"
results="$root/results"
# Seconds lab-grade may take in all: keep it below the autograder timeout set on Gradescope.
time_limit={time_limit}

# fallback MESSAGE: a results.json with score 0 and MESSAGE, which holds no quote or
# backslash (so it needs no JSON escaping), written through a temporary file and a rename.
fallback() {{
    printf '{{"score": 0, "output": "%s", "output_format": "text", "visibility": "{visibility}", "stdout_visibility": "hidden", "tests": []}}\n' "$1" >"$results/.fallback.json" &&
        mv -f "$results/.fallback.json" "$results/results.json"
}}

# The student's program runs as a throwaway unprivileged user (lab-grade does that when it
# runs as root). That user must not write the results, change the autograder or read its
# files (a deploy key, the rubric, Gradescope's submission_metadata.json): everything in
# $root but the submission is root's alone. It may read its submission, but not change
# it, and it may only pass through $root.
mkdir -p "$results" || exit 1
if [ "$(id -u)" = 0 ]; then
    chown -R 0:0 "$source" "$results" "$submission"
fi
for entry in "$root"/* "$root"/.[!.]*; do
    if [ -e "$entry" ] && [ "$entry" != "$submission" ]; then
        chmod go-rwx "$entry"
    fi
done
chmod 0711 "$root"
chmod -R u+rwX,go+rX,go-w "$submission"

# Written first, replaced only by a complete report: if anything below dies or Gradescope
# stops the container, this is the result the student sees.
fallback "Grading did not finish: the autograder stopped before lab-grade wrote a result. Your score is 0 for now: please tell the course staff."
trap 'fallback "Grading was interrupted before it finished. Your score is 0 for now: please tell the course staff."; exit 1' HUP INT TERM

report="$results/.lab-grade.json"
log="$results/.lab-grade.log"
rm -f "$report"
if cd "$submission"; then
    timeout --kill-after=10 "$time_limit" "$source/lab-grade" {grader}{rubric} --output "$report" \
        -- {command} 2>"$log"
    status=$?
else
    echo "lab-grade: no submission folder at $submission" >"$log"
    status=2
fi
# For course staff: Gradescope shows this script's output to instructors only.
cat "$log" >&2
if [ "$status" -eq 0 ] && [ -s "$report" ]; then
    mv -f "$report" "$results/results.json"
    exit 0
fi
case "$status" in
    124) why="lab-grade did not finish within the time limit of $time_limit s" ;;
    126 | 127) why="lab-grade could not be started (exit status $status: did setup.sh pass)" ;;
    *) if [ "$status" -gt 128 ]; then
           why="lab-grade was ended by signal $((status - 128)) (9: out of memory or out of time)"
       else
           why="lab-grade failed with exit status $status"
       fi ;;
esac
detail=$(tail -n 3 "$log" | tr '\n' ' ' | tr -cd 'A-Za-z0-9 .,:;/_()=+-' | cut -c 1-600)
fallback "The autograder could not grade this submission: $why. $detail Your score is 0 for now: please tell the course staff."
exit 0
"#
    ))
}

/// Writes the autograder zip for `export` to `output` (through a temporary file and a
/// rename): `setup.sh`, `run_autograder` and `lab-grade` (mode 0755), and `rubric.toml`.
pub fn export(export: &Export, output: &Path) -> Result<Exported, ExportError> {
    // Debian policy: lowercase letters, digits, `+`, `-`, `.`; starting with a letter or
    // digit. Anything else would be shell syntax in setup.sh.
    if let Some(name) = export.apt_packages.iter().find(|name| {
        !name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
    }) {
        return Err(ExportError::BadPackage { name: name.clone() });
    }
    let binary = std::fs::read(&export.binary).map_err(|source| ExportError::ReadBinary {
        path: export.binary.clone(),
        source,
    })?;
    let glibc = glibc_needed(&binary).map_err(|why| ExportError::NotLinux {
        path: export.binary.clone(),
        why,
    })?;
    if let Some(needed) = glibc.filter(|needed| *needed > IMAGE_GLIBC) {
        return Err(ExportError::GlibcTooNew {
            path: export.binary.clone(),
            needed,
        });
    }
    let (rubric, rubric_text) = match &export.rubric {
        Some(path) => {
            let rubric = Rubric::from_file(path)?;
            let text = std::fs::read(path).map_err(|source| RubricError::Read {
                path: path.display().to_string(),
                source,
            })?;
            (rubric, Some(text))
        }
        None => (Rubric::built_in(), None),
    };
    let mut files: Vec<(String, u32, Vec<u8>)> = vec![
        ("setup.sh".into(), 0o755, setup_script(export).into_bytes()),
        (
            "run_autograder".into(),
            0o755,
            run_script(export, &rubric.visibility)?.into_bytes(),
        ),
        ("lab-grade".into(), 0o755, binary),
    ];
    if let Some(text) = rubric_text {
        files.push(("rubric.toml".into(), 0o644, text));
    }
    let zip_error = |e: &dyn std::fmt::Display| ExportError::Zip {
        path: output.to_path_buf(),
        message: e.to_string(),
    };
    let mut buffer = std::io::Cursor::new(Vec::new());
    let mut zip = zip::ZipWriter::new(&mut buffer);
    for (name, mode, bytes) in &files {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated)
            .unix_permissions(*mode);
        zip.start_file(name.as_str(), options)
            .map_err(|e| zip_error(&e))?;
        zip.write_all(bytes).map_err(|e| zip_error(&e))?;
    }
    zip.finish().map_err(|e| zip_error(&e))?;
    write_atomically(output, buffer.get_ref())?;
    // Written as a temporary file (0600); the zip is an ordinary file for the TA to upload.
    std::fs::set_permissions(output, std::fs::Permissions::from_mode(0o644)).map_err(|source| {
        ExportError::Write {
            path: output.to_path_buf(),
            source,
        }
    })?;
    Ok(Exported {
        files: files
            .into_iter()
            .map(|(name, mode, _)| (name, mode))
            .collect(),
        glibc,
        bytes: buffer.get_ref().len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_are_read_and_ordered_by_number() {
        assert_eq!(GlibcVersion::parse("GLIBC_2.35"), Some(GlibcVersion(2, 35)));
        assert_eq!(GlibcVersion::parse("GLIBC_2.2.5"), Some(GlibcVersion(2, 2)));
        assert_eq!(GlibcVersion::parse("GCC_3.0"), None);
        assert!(GlibcVersion(2, 4) < GlibcVersion(2, 35));
        assert!(GlibcVersion(2, 36) > IMAGE_GLIBC);
    }

    #[test]
    fn a_file_that_is_not_a_linux_program_is_refused() {
        assert!(glibc_needed(b"#!/bin/sh\necho hi\n").is_err());
    }

    #[test]
    fn markdown_in_feedback_is_shown_as_written() {
        assert_eq!(markdown_text("a *b* <c>"), r"a \*b\* \<c\>");
        let code = markdown_code(&["x ``` y".into()]);
        assert!(code.starts_with("````text\n"), "{code}");
        assert!(code.ends_with("\n````"), "{code}");
    }

    fn settings(command: &[&str], apt: &[&str]) -> Export {
        Export {
            assignment: Assignment::EchoServer,
            command: command.iter().map(|w| w.to_string()).collect(),
            options: GradeOptions::default(),
            rubric: Some(PathBuf::from("rubric.toml")),
            binary: PathBuf::from("lab-grade"),
            time_limit: 60,
            apt_packages: apt.iter().map(|w| w.to_string()).collect(),
        }
    }

    /// `sh -n`: the script parses (nothing runs).
    fn assert_parses(script: &str) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("script");
        std::fs::write(&path, script).unwrap();
        let status = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .status()
            .unwrap();
        assert!(status.success(), "{script}");
    }

    #[test]
    fn setup_installs_what_the_command_runs_and_what_the_course_asks() {
        let node = setup_script(&settings(&["node", "server.js", "{port}"], &["gcc"]));
        assert!(node.contains("if ! command -v node "), "{node}");
        assert!(
            node.contains("install -y --no-install-recommends nodejs\n"),
            "{node}"
        );
        assert!(
            node.contains("install -y --no-install-recommends gcc\n"),
            "{node}"
        );
        assert_parses(&node);
        let binary = setup_script(&settings(&["./server", "{port}"], &[]));
        assert!(!binary.contains("apt-get"), "{binary}");
        assert_parses(&binary);
        let run = run_script(
            &settings(&["sh", "-c", "exec ./s $LAB_PORT 'x'"], &[]),
            "hidden",
        )
        .unwrap();
        assert!(run.contains("--rubric \"$source/rubric.toml\""), "{run}");
        assert!(run.contains("\"visibility\": \"hidden\""), "{run}");
        assert!(run.contains("time_limit=60\n"), "{run}");
        assert_parses(&run);
    }

    #[test]
    fn command_words_are_quoted_for_sh() {
        let words = vec!["python3".into(), "my server.py".into(), "{port}".into()];
        let quoted = quote(&words).unwrap();
        assert!(quoted.starts_with("python3 "), "{quoted}");
        assert!(quoted.contains("'my server.py'"), "{quoted}");
        assert!(quote(&["a\0b".into()]).is_err());
        // sh reads the quoted words back exactly, whatever they hold.
        let words: Vec<String> = ["a b", "$HOME", "it's", "`id`", "{port}", "x\ny", "*"]
            .iter()
            .map(|w| w.to_string())
            .collect();
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("printf '%s\\0' {}", quote(&words).unwrap()))
            .output()
            .unwrap();
        let back: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split_terminator('\0')
            .map(String::from)
            .collect();
        assert_eq!(back, words);
    }
}
