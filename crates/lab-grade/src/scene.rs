//! The scene toolkit: the machinery every check uses, and nothing else.
//!
//! A check is a short scene with the student's program: start it on a fresh port, connect
//! to it or let it connect, say or type something, and watch what comes out, each step with
//! its own deadline. At the end of a scene the program is stopped with its whole process
//! group (SIGTERM, then SIGKILL after a short grace), whatever it did.
//!
//! A careful TA does not restart the program for every question. They start it, and ask
//! one question after another in the same session while the answers are right; after a
//! wrong answer (a line lost, a crash, a program stuck in `input()`) they restart it, so
//! that the next question is judged on a program in a known state. [`Run::shared_scene`]
//! does the same: consecutive checks share one run of the program (and one connection)
//! while each passes and leaves the program healthy; a failed check ends the run, and the
//! next check starts a fresh copy. The checks that provoke the end of a session (`Exit`, a
//! reset, a plaintext client, an impostor) come last in a shared run or get a run of their
//! own, in a [`Run::lane`] running at the same time as the others: each lane is a separate
//! copy of the program in its own sandbox, on its own port, so that lanes cannot meet, and
//! the seconds a check spends watching for a crash overlap instead of adding up.
//!
//! The assignment-specific scenes are in [`crate::chat_server`], [`crate::chat_client`] and
//! [`crate::echo_server`]; they import this module, and [`crate::grade`] (the dispatcher)
//! imports them: the dependencies go one way, with no circle.

use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use lab_kit::child::{RunningChild, Stream};
use lab_kit::tls::SessionFacts;

use crate::advice::{Language, Remedy};
use crate::program::{
    self, GraderPki, GraderTls, Health, NotListening, SetupError, StudentProgram,
};
use crate::report::Verdict;
use crate::rubric::CheckSpec;
use crate::sandbox::Sandbox;
use crate::wire::{GraderConn, HandshakeFailure, Waited};

mod two_lines;
pub use two_lines::{ShownAlone, judge_two_lines};

/// How long each step may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadlines {
    /// From starting the program until it accepts a connection (or connects).
    pub start: Duration,
    /// For each step after that: a handshake, a line to arrive, the program to exit.
    pub step: Duration,
    /// How long the grader watches a program for a crash after provoking it.
    pub watch: Duration,
    /// Between SIGTERM and SIGKILL when the program is stopped.
    pub grace: Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Deadlines {
            start: Duration::from_secs(10),
            step: Duration::from_secs(3),
            watch: Duration::from_secs(1),
            grace: Duration::from_millis(500),
        }
    }
}

/// What the course asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GradeOptions {
    /// The grader speaks plaintext (TCP without TLS) to the program.
    pub plaintext: bool,
    /// With `plaintext`: TLS checks are skipped (worth nothing) instead of failed.
    pub no_tls_required: bool,
    pub deadlines: Deadlines,
}

/// The gap between the two halves of a split line.
///
/// Part of the test input, not a wait for readiness: 50 ms is far longer than loopback
/// delivery (microseconds), so the first half is delivered, and a program that reads in a
/// loop has read it, before the second half is sent. A program that treats one `recv()` as
/// one message then sees half a line, as it would on a real network with a slow link.
pub const SPLIT_GAP: Duration = Duration::from_millis(50);

/// How many rounds of simultaneous traffic the full-duplex check sends.
///
/// One round can pass by luck: two threads sharing one `ssl.SSLSocket` corrupt the TLS
/// session only when their calls overlap (see the field notes: 1 run in 5 in one series).
/// Several rounds, each with both directions at once, make the overlap likely.
pub const DUPLEX_ROUNDS: usize = 5;
/// Lines each way in every round.
pub const LINES_PER_ROUND: usize = 3;

/// One grading run of one program (or one lane of it: see [`Run::lane`]).
#[derive(Debug)]
pub struct Run<'a> {
    pub program: &'a StudentProgram,
    /// The run's certificates, for the sandboxes of its lanes.
    pub pki: &'a GraderPki,
    /// True when the program plays the server (it gets the server's files).
    pub as_server: bool,
    /// Where and as whom the program runs.
    pub sandbox: Sandbox,
    /// The submission's language, for advice in its own terms.
    pub language: Language,
    pub tls: GraderTls,
    pub options: GradeOptions,
    /// How many times the program was started, over this run and all its lanes.
    pub starts: Arc<AtomicUsize>,
}

/// A program and the grader's connection with it.
#[derive(Debug)]
pub struct Scene {
    pub child: RunningChild,
    pub conn: GraderConn,
    /// What TLS negotiated, when TLS was used.
    pub facts: Option<SessionFacts>,
    /// False when a check leaves something on its way (an answer the grader stopped
    /// waiting for): the next check must then not share this connection, or that late
    /// answer would be taken for the next check's.
    pub settled: bool,
}

impl Scene {
    /// The scene a TLS handshake with the started program leads to, whichever side the
    /// grader played in it: a session, or a failure that keeps the program for its output.
    fn after_handshake(
        child: RunningChild,
        handshake: Result<(GraderConn, SessionFacts), HandshakeFailure>,
    ) -> Result<Scene, SceneFailure> {
        match handshake {
            Ok((conn, facts)) => Ok(Scene {
                child,
                conn,
                facts: Some(facts),
                settled: true,
            }),
            Err(failure) => Err(SceneFailure {
                reason: SceneProblem::Handshake(failure),
                child: Some(Box::new(child)),
            }),
        }
    }
}

/// Why a scene could not be set up.
#[derive(Debug)]
pub struct SceneFailure {
    pub reason: SceneProblem,
    /// The program, if it was started (for its output and exit status).
    pub child: Option<Box<RunningChild>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SceneProblem {
    Setup(String),
    NotListening(NotListening),
    Handshake(HandshakeFailure),
}

impl SceneProblem {
    pub fn describe(&self) -> String {
        match self {
            SceneProblem::Setup(error) => format!("The grader could not set up: {error}."),
            SceneProblem::NotListening(reason) => reason.describe(),
            SceneProblem::Handshake(failure) => {
                format!("The TLS handshake failed: {}.", failure.describe())
            }
        }
    }
}

impl<'a> Run<'a> {
    /// A grading run of `program`, in a sandbox of its own; `as_server` when it plays the
    /// server. Its language (for advice) is read from its command and folder.
    pub fn new(
        program: &'a StudentProgram,
        pki: &'a GraderPki,
        as_server: bool,
        options: GradeOptions,
    ) -> Result<Self, SetupError> {
        Ok(Run {
            program,
            pki,
            as_server,
            sandbox: Sandbox::new(pki, program.dir.as_deref(), as_server)?,
            language: crate::advice::detect_language(
                &program.argv,
                program.dir.as_deref().or(program.workdir.as_deref()),
            ),
            tls: GraderTls::new(pki)?,
            options,
            starts: Arc::new(AtomicUsize::new(0)),
        })
    }

    /// Another lane of this run: the same program and settings, in a sandbox of its own (its
    /// own folder, user and port), so that it can run at the same time as this one without
    /// meeting it. Its starts count toward this run's.
    pub fn lane(&self) -> Result<Run<'a>, SetupError> {
        Ok(Run {
            program: self.program,
            pki: self.pki,
            as_server: self.as_server,
            sandbox: Sandbox::new(self.pki, self.program.dir.as_deref(), self.as_server)?,
            language: self.language,
            tls: self.tls.clone(),
            options: self.options,
            starts: Arc::clone(&self.starts),
        })
    }

    /// How many times the program was started so far, over this run and its lanes.
    pub fn program_starts(&self) -> usize {
        self.starts.load(Ordering::Relaxed)
    }

    /// Starts the program in this run's sandbox, counting the start.
    pub fn start_program(
        &self,
        port: u16,
        as_server: bool,
    ) -> Result<RunningChild, lab_kit::child::SpawnError> {
        self.starts.fetch_add(1, Ordering::Relaxed);
        self.program.start(&self.sandbox, port, as_server)
    }
}

/// Runs `check` in a lane of its own (see [`Run::lane`]) on a thread of `scope`; `id` names
/// the check in the verdict given if the lane cannot be set up or the check panics.
pub fn in_lane<'scope, 'env, 'a: 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    run: &'env Run<'a>,
    id: &'static str,
    check: impl FnOnce(&Run<'a>) -> Verdict + Send + 'scope,
) -> Lane<'scope> {
    Lane {
        id,
        handle: scope.spawn(move || match run.lane() {
            Ok(lane) => check(&lane),
            Err(e) => Verdict::failed(id, format!("The grader could not set up: {e}.")),
        }),
    }
}

/// A check running in its own lane; [`Lane::verdict`] waits for it.
#[derive(Debug)]
pub struct Lane<'scope> {
    id: &'static str,
    handle: std::thread::ScopedJoinHandle<'scope, Verdict>,
}

/// Adds each lane's verdict to `verdicts`, unless `verdicts` already holds one for its check
/// (given by the shared run, which found the check could not mean anything); every lane is
/// waited for either way.
pub fn join_lanes<'s>(verdicts: &mut Vec<Verdict>, lanes: impl IntoIterator<Item = Lane<'s>>) {
    for lane in lanes {
        let verdict = lane.verdict();
        if !verdicts.iter().any(|v| v.id == verdict.id) {
            verdicts.push(verdict);
        }
    }
}

impl Lane<'_> {
    /// The lane's verdict, once its check has finished.
    pub fn verdict(self) -> Verdict {
        self.handle.join().unwrap_or_else(|_| {
            Verdict::failed(
                self.id,
                "This check did not finish: the grader failed while running it (a bug in the grader: please report it).",
            )
        })
    }
}

impl Run<'_> {
    /// The deadline for a step starting now.
    pub fn step_deadline(&self) -> Instant {
        Instant::now() + self.options.deadlines.step
    }

    /// Starts the program as a server on a fresh port and connects to it (TLS if `secure`).
    ///
    /// If another program turns out to be listening on that port (see
    /// [`program::free_port`]), this copy is stopped and the program is started again on
    /// another port, up to three times.
    pub fn open_server(&self, secure: bool) -> Result<Scene, SceneFailure> {
        let mut attempt = 0;
        let (child, tcp) = loop {
            attempt += 1;
            let port = program::free_port().map_err(|e| SceneFailure {
                reason: SceneProblem::Setup(e.to_string()),
                child: None,
            })?;
            let mut child = self.start_program(port, true).map_err(|e| SceneFailure {
                reason: SceneProblem::NotListening(NotListening::Spawn(e.to_string())),
                child: None,
            })?;
            match program::connect_to_started(&mut child, port, self.options.deadlines.start) {
                Ok(tcp) if program::listener_is_ours(&child, port) => break (child, tcp),
                Ok(_) if attempt < 3 => self.stop(&mut child),
                Ok(_) => {
                    return Err(SceneFailure {
                        reason: SceneProblem::Setup(format!(
                            "another program was listening on the port given to this one, {attempt} times in a row"
                        )),
                        child: Some(Box::new(child)),
                    });
                }
                Err(reason) => {
                    return Err(SceneFailure {
                        reason: SceneProblem::NotListening(reason),
                        child: Some(Box::new(child)),
                    });
                }
            }
        };
        if !secure {
            return Ok(Scene {
                child,
                conn: GraderConn::plain(tcp),
                facts: None,
                settled: true,
            });
        }
        let handshake = GraderConn::tls_client(
            tcp,
            self.tls.client.clone(),
            program::SERVER_NAME,
            self.step_deadline(),
        );
        Scene::after_handshake(child, handshake)
    }

    /// Listens on a fresh port, starts the program as a client of it, and accepts its
    /// connection; with `server_config`, completes a TLS handshake as that server.
    pub fn open_client(
        &self,
        server_config: Option<std::sync::Arc<rustls::ServerConfig>>,
    ) -> Result<Scene, SceneFailure> {
        let setup = |e: std::io::Error| SceneFailure {
            reason: SceneProblem::Setup(format!("could not listen on 127.0.0.1: {e}")),
            child: None,
        };
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(setup)?;
        let port = listener.local_addr().map_err(setup)?.port();
        let mut child = self.start_program(port, false).map_err(|e| SceneFailure {
            reason: SceneProblem::NotListening(NotListening::Spawn(e.to_string())),
            child: None,
        })?;
        let tcp = match accept_from(&listener, &mut child, self.options.deadlines.start) {
            Ok(tcp) => tcp,
            Err(reason) => {
                return Err(SceneFailure {
                    reason: SceneProblem::NotListening(reason),
                    child: Some(Box::new(child)),
                });
            }
        };
        let Some(config) = server_config else {
            return Ok(Scene {
                child,
                conn: GraderConn::plain(tcp),
                facts: None,
                settled: true,
            });
        };
        let handshake = GraderConn::tls_server(tcp, config, self.step_deadline());
        Scene::after_handshake(child, handshake)
    }

    /// Stops the program (SIGTERM to its group, SIGKILL after the grace), reaps it, and
    /// ends every other process of its throwaway user (escapees from its group included).
    pub fn stop(&self, child: &mut RunningChild) {
        program::stop(child, self.options.deadlines.grace);
        self.sandbox.end_all();
    }

    /// Watches the program for up to `watch` (less if it exits), then reads its health.
    pub fn settle(&self, child: &mut RunningChild) -> Health {
        let _ = program::wait_exit(child, self.options.deadlines.watch);
        program::health(child, self.language)
    }

    /// The first check of a server assignment, passed: the program accepted the grader's
    /// connection on its port within the deadline (timed from `started`).
    pub fn listening_passed(&self, started: Instant) -> Verdict {
        let mut listening = Verdict::passed(
            "listening",
            "The server accepted the grader's connection on the port it was given.",
        );
        listening.elapsed = started.elapsed();
        listening
    }

    /// Every verdict of a server assignment whose program never accepted a connection: the
    /// first check failed with what the program showed, and each later check of `checks`
    /// failed unrun, since all of them need a connection.
    pub fn never_listening(
        &self,
        failure: SceneFailure,
        started: Instant,
        checks: &[CheckSpec],
    ) -> Vec<Verdict> {
        let mut listening = self.scene_failed("listening", failure);
        listening.elapsed = started.elapsed();
        // A TLS check under --plaintext gets the verdict it gets from a server that did
        // listen (skipped with --no-tls-required): the maximum score must not depend on
        // whether the program started.
        let unrun = checks.iter().skip(1).map(|spec| {
            if spec.tls && self.options.plaintext {
                self.tls_not_used(spec.id)
            } else {
                Verdict::failed(
                    spec.id,
                    "Not run: the server never accepted a connection (see the first check).",
                )
            }
        });
        std::iter::once(listening).chain(unrun).collect()
    }

    /// The verdict for a TLS-only check when the grader spoke plaintext.
    pub fn tls_not_used(&self, id: &'static str) -> Verdict {
        if self.options.no_tls_required {
            Verdict::skipped(
                id,
                "Skipped: this course does not require TLS (--no-tls-required).",
            )
        } else {
            Verdict::failed(
                id,
                "Not secure: the program was graded with --plaintext and speaks no TLS, so anyone on the path can read and change every message (lab 5's eavesdropper shows it), and no one can tell a real peer from an impostor.",
            )
        }
    }

    /// Runs `body` in a scene made by `open`, timing it and always stopping the program.
    pub fn scene(
        &self,
        id: &'static str,
        open: impl FnOnce(&Self) -> Result<Scene, SceneFailure>,
        body: impl FnOnce(&Self, &mut Scene) -> Verdict,
    ) -> Verdict {
        let started = Instant::now();
        let mut verdict = match open(self) {
            Ok(mut scene) => {
                let verdict = body(self, &mut scene);
                self.stop(&mut scene.child);
                verdict
            }
            Err(failure) => self.scene_failed(id, failure),
        };
        verdict.elapsed = started.elapsed();
        verdict
    }

    /// Runs `body` on the scene the checks before it left in `shared` (see the module
    /// docs), or on a fresh one made by `open` if they left none.
    ///
    /// Afterwards the scene goes back into `shared` only if the check passed and the program
    /// is still running without a crash; otherwise the program is stopped, and the next
    /// check starts a fresh copy. Call [`end_shared`](Self::end_shared) after the last.
    pub fn shared_scene(
        &self,
        id: &'static str,
        shared: &mut Option<Scene>,
        open: impl FnOnce(&Self) -> Result<Scene, SceneFailure>,
        body: impl FnOnce(&Self, &mut Scene) -> Verdict,
    ) -> Verdict {
        let started = Instant::now();
        let mut scene = match shared.take() {
            Some(scene) => scene,
            None => match open(self) {
                Ok(scene) => scene,
                Err(failure) => {
                    let mut verdict = self.scene_failed(id, failure);
                    verdict.elapsed = started.elapsed();
                    return verdict;
                }
            },
        };
        let mut verdict = body(self, &mut scene);
        self.keep_if_sound(shared, scene, &verdict);
        verdict.elapsed = started.elapsed();
        verdict
    }

    /// Puts `scene` into `shared` for the next check if `verdict` passed, nothing is still
    /// on its way ([`Scene::settled`]) and the program runs without a crash; stops it
    /// otherwise.
    pub fn keep_if_sound(&self, shared: &mut Option<Scene>, mut scene: Scene, verdict: &Verdict) {
        let health = self.health(&mut scene.child);
        if verdict.status == crate::report::Status::Passed
            && scene.settled
            && health.exited.is_none()
            && health.crash.is_none()
        {
            *shared = Some(scene);
        } else {
            self.stop(&mut scene.child);
        }
    }

    /// Stops the program of a shared run, if one is still running.
    pub fn end_shared(&self, shared: &mut Option<Scene>) {
        if let Some(mut scene) = shared.take() {
            self.stop(&mut scene.child);
        }
    }

    /// A failed verdict for a scene that could not be set up, with the program's output.
    pub fn scene_failed(&self, id: &'static str, failure: SceneFailure) -> Verdict {
        let mut verdict = Verdict::failed(
            id,
            format!(
                "This check could not start: {}",
                lowercase_first(&failure.reason.describe())
            ),
        );
        if let Some(mut child) = failure.child {
            self.settle_then_stop(&mut child);
            verdict = self.with_output(verdict, &mut child);
        }
        verdict
    }

    /// Gives a program that is already on its way out (a traceback printed, the socket
    /// closed) a moment to finish, so that its real exit status is reported, then stops it.
    pub fn settle_then_stop(&self, child: &mut RunningChild) {
        let _ = program::wait_exit(
            child,
            self.options.deadlines.watch.min(Duration::from_millis(300)),
        );
        self.stop(child);
    }
}

impl Run<'_> {
    /// The advice for `remedy`, in the submission's language.
    pub fn remedy(&self, remedy: Remedy) -> String {
        crate::advice::remedy(remedy, self.language)
    }

    /// The program's health now, with advice in its language.
    pub fn health(&self, child: &mut RunningChild) -> Health {
        program::health(child, self.language)
    }

    /// Adds the program's crash line, advice and last output lines to a failed verdict.
    pub fn with_output(&self, verdict: Verdict, child: &mut RunningChild) -> Verdict {
        with_program_output(verdict, child, self.language)
    }
}

/// Adds the program's crash line, advice and last output lines to a failed verdict.
fn with_program_output(
    mut verdict: Verdict,
    child: &mut RunningChild,
    language: Language,
) -> Verdict {
    let health = program::health(child, language);
    if let Some(status) = &health.exited {
        verdict = verdict.saw(format!("the program ended: {status}"));
    }
    if let Some(crash) = &health.crash {
        verdict = verdict.saw(format!("it crashed with: {crash}"));
    }
    let stderr = program::tail(child, Stream::Stderr, 3);
    if health.crash.is_none() && !stderr.is_empty() {
        verdict = verdict.saw_all(stderr.into_iter().map(|l| format!("stderr: {l}")));
    }
    let stdout = program::tail(child, Stream::Stdout, 3);
    verdict = verdict.saw_all(stdout.into_iter().map(|l| format!("stdout: {l}")));
    let dropped = child.dropped_bytes(Stream::Stdout) + child.dropped_bytes(Stream::Stderr);
    if dropped > 0 {
        verdict = verdict.say(format!(
            "The program printed far more than a chat does: {dropped} bytes beyond the grader's {} KiB limit were thrown away.",
            program::OUTPUT_LIMIT / 1024
        ));
    }
    verdict.advise(health.advice)
}

fn lowercase_first(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// Waits for the program to connect to `listener`, at most `timeout`, noticing at once if
/// it exits first. `poll` waits for the listening socket to become readable (a connection
/// in the backlog) in slices of 50 ms, between which the program's status is checked.
pub fn accept_from(
    listener: &TcpListener,
    child: &mut RunningChild,
    timeout: Duration,
) -> Result<TcpStream, NotListening> {
    let started = Instant::now();
    let deadline = started + timeout;
    loop {
        let mut fds = [libc::pollfd {
            fd: listener.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        }];
        let slice = deadline
            .saturating_duration_since(Instant::now())
            .min(Duration::from_millis(50));
        // SAFETY: one valid pollfd for a socket we own, and its length.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, slice.as_millis() as libc::c_int) };
        if ready > 0 {
            match listener.accept() {
                Ok((tcp, _)) => {
                    let _ = tcp.set_nonblocking(false);
                    return Ok(tcp);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(NotListening::Spawn(format!("accept failed: {e}"))),
            }
        }
        if let Ok(Some(status)) = child.try_status() {
            return Err(NotListening::Exited(lab_kit::child::describe_status(
                status,
            )));
        }
        if Instant::now() >= deadline {
            return Err(NotListening::Silent {
                waited_ms: started.elapsed().as_millis(),
                last_error: "the program never connected".into(),
            });
        }
    }
}

/// `nothing arrived within 3000 ms` or how the connection ended.
pub fn waited_words(waited: &Waited, run: &Run<'_>) -> String {
    match waited {
        Waited::Arrived => "it arrived".into(),
        Waited::TimedOut => format!(
            "nothing arrived within {} ms",
            run.options.deadlines.step.as_millis()
        ),
        Waited::Ended(ending) => ending.describe(),
    }
}

/// The line of `text` that contains `token`, if any.
pub fn line_with(text: &str, token: &str) -> Option<String> {
    text.lines()
        .find(|line| line.contains(token))
        .map(str::to_string)
}

/// Waits for a line of the program's standard output containing `token`.
pub fn wait_shown(child: &RunningChild, token: &str, deadline: Instant) -> Option<String> {
    child.wait_for_line(
        Stream::Stdout,
        deadline.saturating_duration_since(Instant::now()),
        |line| line.contains(token),
    )
}
