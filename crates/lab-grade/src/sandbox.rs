//! Where and as whom a student's program runs: the isolation every grading run gets.
//!
//! A student's program is untrusted. It may fork without end, fill the disk, read the
//! grader's secrets, rewrite the report after the grader exits, or overwrite a classmate's
//! submission. A [`Sandbox`] is one grading run's answer to all of that, made once per run
//! and used for every start of the program:
//!
//! - **A throwaway user.** When the grader runs as root, the program runs as a fresh uid
//!   and gid that no one else uses (no passwd entry is needed: the kernel only knows
//!   numbers). It cannot write the grader's files or a classmate's, and at the end of each
//!   scene *every* process of that uid is killed, which also ends a process that left the
//!   process group or the session (`setsid`). When the grader is not root it cannot change
//!   users: the program then runs as the grader's own user ([`Isolation::SameUser`], the
//!   documented reduced mode: limits and the clean environment still apply, killing is by
//!   process group and pid).
//! - **Limits set before `exec`** ([`LIMITS`]): processes, file size, address space, CPU
//!   time, open files.
//! - **A read-only copy of the submission** (batch mode), so that a program cannot change
//!   its own files or reach a classmate's through `../`.
//! - **Only its own files.** The program gets the CA certificate and its own role's
//!   certificate and key; never the CA's key, never the other role's key.
//! - **A clean environment** ([`ENV_ALLOW_LIST`]): the grader's secrets (a Gradescope token,
//!   a cloud key) never reach the program, and so never reach its output.
//! - **A private folder** (mode 0700, or 0750 for the throwaway group only), removed when the
//!   run ends, also when the grader is interrupted ([`clean_up_after_interrupt`]).
//!
//! Issue 10's exporters (Gradescope, GitHub Classroom) reuse this type unchanged.

use std::ffi::OsString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::program::{GraderPki, SetupError};

/// A resource limit set on the program before it starts: `(resource, name, soft, hard)`.
pub type Limit = (libc::__rlimit_resource_t, &'static str, u64, u64);

/// The limits every program runs under. Generous for a chat (which needs a few MiB, a
/// handful of files and milliseconds of CPU), small enough that a runaway program only
/// harms itself.
pub const LIMITS: &[Limit] = &[
    // Per user: counts only the throwaway uid's processes (not applied in SameUser mode,
    // where it would count the grader's own).
    (libc::RLIMIT_NPROC, "processes", 64, 64),
    (libc::RLIMIT_FSIZE, "file size", 16 << 20, 16 << 20),
    // The JVM reserves a quarter of the RAM for its heap up front: give Java -Xmx on a
    // machine with more than ~24 GiB.
    (libc::RLIMIT_AS, "address space", 8 << 30, 8 << 30),
    (libc::RLIMIT_CPU, "CPU seconds", 60, 65),
    (libc::RLIMIT_NOFILE, "open files", 256, 256),
];

/// The only environment variables a program gets (besides `LAB_*` and the placeholders'
/// values): `PATH` (the grader's, without folders the program's user cannot enter), `HOME`
/// and `TMPDIR` (a private scratch folder), `LANG` (`C.UTF-8`), `TERM` (`dumb`), `NO_COLOR`
/// (`1`: its standard output is a terminal, but the grader reads text) and
/// `PYTHONUNBUFFERED` (`1`).
pub const ENV_ALLOW_LIST: &[&str] = &[
    "PATH",
    "HOME",
    "TMPDIR",
    "LANG",
    "TERM",
    "NO_COLOR",
    "PYTHONUNBUFFERED",
];

/// How much of a submission folder is copied (a submission is a few source files).
pub const COPY_LIMIT: u64 = 64 << 20;

/// Whom the program runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// A fresh uid and gid, used by nothing else (the grader is root).
    ThrowawayUser { uid: u32, gid: u32 },
    /// The grader's own user (the grader is not root): the reduced mode.
    SameUser,
}

impl Isolation {
    /// In words, for reports and docs.
    pub fn describe(&self) -> String {
        match self {
            Isolation::ThrowawayUser { uid, .. } => format!("as throwaway user {uid}"),
            Isolation::SameUser => "as the grader's own user (not root: reduced isolation)".into(),
        }
    }
}

/// The files of one role, in the run's folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleFiles {
    pub ca: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Folders and uids of the sandboxes alive in this process, for [`clean_up_after_interrupt`].
static LIVE: Mutex<Vec<(PathBuf, Isolation)>> = Mutex::new(Vec::new());

/// One grading run's isolation: its folder, its files, its user.
#[derive(Debug)]
pub struct Sandbox {
    dir: tempfile::TempDir,
    isolation: Isolation,
    pub server: RoleFiles,
    pub client: RoleFiles,
    /// The read-only copy of the submission, if one was given.
    pub submission: Option<PathBuf>,
    /// A folder the program may write (its `HOME` and `TMPDIR`).
    pub scratch: PathBuf,
}

fn io_error(what: &str, path: &Path, error: std::io::Error) -> SetupError {
    SetupError::TempDir(std::io::Error::new(
        error.kind(),
        format!("{what} {}: {error}", path.display()),
    ))
}

impl Sandbox {
    /// A new run folder with the role files, and a read-only copy of `submission`; the
    /// program may read only the files of its own role (`as_server`: the server's).
    ///
    /// Root gets a throwaway user; anyone else the reduced [`Isolation::SameUser`] mode.
    pub fn new(
        pki: &GraderPki,
        submission: Option<&Path>,
        as_server: bool,
    ) -> Result<Self, SetupError> {
        // SAFETY: geteuid only reads the process's credentials.
        let isolation = if unsafe { libc::geteuid() } == 0 {
            let id = unused_id();
            Isolation::ThrowawayUser { uid: id, gid: id }
        } else {
            Isolation::SameUser
        };
        Self::with_isolation(pki, submission, as_server, isolation)
    }

    /// Like [`new`](Self::new), with the isolation chosen by the caller (tests use
    /// [`Isolation::SameUser`] as root to exercise the reduced mode).
    pub fn with_isolation(
        pki: &GraderPki,
        submission: Option<&Path>,
        as_server: bool,
        isolation: Isolation,
    ) -> Result<Self, SetupError> {
        let dir = tempfile::Builder::new()
            .prefix("lab-grade-")
            .tempdir()
            .map_err(SetupError::TempDir)?;
        register(dir.path(), isolation);
        let root = dir.path().to_path_buf();
        let sandbox = |server, client, submission, scratch| Sandbox {
            dir,
            isolation,
            server,
            client,
            submission,
            scratch,
        };
        // The folder: the grader's alone (0700), or readable by the throwaway group only.
        let group = match isolation {
            Isolation::ThrowawayUser { gid, .. } => Some(gid),
            Isolation::SameUser => None,
        };
        share_with_group(&root, group, true)?;
        let lab = &pki.lab;
        let role = |name: &str, cert: &str, key: &str| -> Result<RoleFiles, SetupError> {
            let folder = root.join(name);
            std::fs::create_dir(&folder).map_err(|e| io_error("could not create", &folder, e))?;
            // The other role's folder stays the grader's alone.
            let group = group.filter(|_| (name == "server") == as_server);
            share_with_group(&folder, group, true)?;
            let files = RoleFiles {
                ca: folder.join("ca.pem"),
                cert: folder.join("cert.pem"),
                key: folder.join("key.pem"),
            };
            for (path, text) in [
                (&files.ca, lab.ca.cert_pem()),
                (&files.cert, cert),
                (&files.key, key),
            ] {
                std::fs::write(path, text).map_err(|e| io_error("could not write", path, e))?;
                share_with_group(path, group, false)?;
            }
            Ok(files)
        };
        let server = role("server", &lab.server.cert_pem, &lab.server.key_pem)?;
        let client = role("client", &lab.client.cert_pem, &lab.client.key_pem)?;
        let copy = match submission {
            Some(original) => {
                let copy = root.join("submission");
                let mut budget = COPY_LIMIT;
                copy_read_only(original, &copy, group, &mut budget)?;
                Some(copy)
            }
            None => None,
        };
        let scratch = root.join("scratch");
        std::fs::create_dir(&scratch).map_err(|e| io_error("could not create", &scratch, e))?;
        std::fs::set_permissions(&scratch, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| io_error("could not protect", &scratch, e))?;
        if let Isolation::ThrowawayUser { uid, gid } = isolation {
            std::os::unix::fs::chown(&scratch, Some(uid), Some(gid))
                .map_err(|e| io_error("could not hand over", &scratch, e))?;
        }
        Ok(sandbox(server, client, copy, scratch))
    }

    /// Whom the program runs as.
    pub fn isolation(&self) -> Isolation {
        self.isolation
    }

    /// The run's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The files a program in `role` gets (`as_server`: the server's).
    pub fn role_files(&self, as_server: bool) -> &RoleFiles {
        if as_server {
            &self.server
        } else {
            &self.client
        }
    }

    /// Applies the isolation to `command`: a clean environment with `vars` added, the
    /// throwaway user, and the limits (set in the child, before `exec`).
    pub fn confine(&self, command: &mut Command, vars: &[(String, String)]) {
        command.env_clear();
        command.env("PATH", self.path_for_program());
        command.env("HOME", &self.scratch);
        command.env("TMPDIR", &self.scratch);
        command.env("LANG", "C.UTF-8");
        command.env("TERM", "dumb");
        command.env("NO_COLOR", "1");
        command.env("PYTHONUNBUFFERED", "1");
        for (name, value) in vars {
            command.env(name, value);
        }
        let per_user_limits = match self.isolation {
            Isolation::ThrowawayUser { uid, gid } => {
                // std drops the supplementary groups (setgroups) before setgid/setuid.
                command.gid(gid).uid(uid);
                true
            }
            Isolation::SameUser => false,
        };
        // SAFETY: the closure runs in the forked child before exec and only calls
        // sigemptyset, sigprocmask and setrlimit, which are async-signal-safe; it allocates
        // nothing.
        unsafe {
            command.pre_exec(move || {
                // A signal mask survives exec: the grader's binary blocks SIGINT and SIGTERM
                // (it takes them in one thread), and a program started with them blocked
                // never sees the polite SIGTERM of `stop`, only the SIGKILL after the grace.
                let mut none: libc::sigset_t = std::mem::zeroed();
                libc::sigemptyset(&mut none);
                if libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut()) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                for &(resource, _, soft, hard) in LIMITS {
                    if resource == libc::RLIMIT_NPROC && !per_user_limits {
                        continue;
                    }
                    let limit = libc::rlimit {
                        rlim_cur: soft,
                        rlim_max: hard,
                    };
                    if libc::setrlimit(resource, &limit) != 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                }
                Ok(())
            });
        }
    }

    /// The grader's `PATH` without the folders the program's user could not enter (on this
    /// kind of machine `/root/.pyenv/shims` is inside `/root`, mode 0700).
    fn path_for_program(&self) -> OsString {
        let path =
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        if self.isolation == Isolation::SameUser {
            return path;
        }
        let kept: Vec<PathBuf> = std::env::split_paths(&path)
            .filter(|folder| folder.is_absolute() && others_can_enter(folder))
            .collect();
        std::env::join_paths(kept).unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into())
    }

    /// Ends every process of the throwaway user (also those that left the process group or
    /// the session); nothing in [`Isolation::SameUser`] mode. Bounded: a few rounds.
    pub fn end_all(&self) {
        if let Isolation::ThrowawayUser { uid, gid } = self.isolation {
            end_all_of(uid, gid);
        }
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.end_all();
        unregister(self.dir.path());
        // TempDir removes the folder (the scratch folder's files belong to the throwaway
        // user, which root may remove).
    }
}

fn register(path: &Path, isolation: Isolation) {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .push((path.to_path_buf(), isolation));
}

fn unregister(path: &Path) {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .retain(|(p, _)| p != path);
}

/// For the binary's SIGINT/SIGTERM handler: ends every live sandbox's processes and
/// removes its folder. Drop would do it, but an interrupted process runs no destructors.
pub fn clean_up_after_interrupt() {
    // The programs running now are this process's descendants (in the reduced mode the
    // only way to find them; as root their throwaway users catch escapees too).
    for pid in descendants_of(std::process::id()) {
        // SAFETY: kill only sends a signal to a process this grader started.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
    let live = std::mem::take(&mut *LIVE.lock().unwrap_or_else(PoisonError::into_inner));
    for (path, isolation) in live {
        if let Isolation::ThrowawayUser { uid, gid } = isolation {
            end_all_of(uid, gid);
        }
        let _ = std::fs::remove_dir_all(&path);
    }
}

/// Every process whose chain of parents leads to `root` (from `/proc`).
fn descendants_of(root: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(i32, i32)> = entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root as i32];
    let mut at = 0;
    while at < found.len() {
        let parent = found[at];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        at += 1;
    }
    found.remove(0);
    found
}

/// The folders of the sandboxes alive now (tests check that an interrupt removes them).
pub fn live_folders() -> Vec<PathBuf> {
    LIVE.lock()
        .unwrap_or_else(PoisonError::into_inner)
        .iter()
        .map(|(p, _)| p.clone())
        .collect()
}

/// A uid (and gid) that no process uses and no account names: chosen at random from a
/// range far above ordinary accounts (they end at 60000; container ranges at 2^31).
fn unused_id() -> u32 {
    loop {
        let mut bytes = [0u8; 4];
        // SAFETY: getrandom writes at most `bytes.len()` bytes into our buffer.
        let got = unsafe { libc::getrandom(bytes.as_mut_ptr().cast(), bytes.len(), 0) };
        let random = if got == 4 {
            u32::from_ne_bytes(bytes)
        } else {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
            std::process::id().wrapping_mul(2_654_435_761) ^ nanos
        };
        let id = 3_000_000_000 + random % 1_000_000_000;
        if processes_of(id).is_empty() && !names_id(id) {
            return id;
        }
    }
}

/// True if `/etc/passwd` or `/etc/group` names `id`.
fn names_id(id: u32) -> bool {
    ["/etc/passwd", "/etc/group"].iter().any(|file| {
        std::fs::read_to_string(file).is_ok_and(|text| {
            text.lines()
                .any(|line| line.split(':').nth(2) == Some(&id.to_string()))
        })
    })
}

/// The pids of the processes whose real or effective uid is `uid`.
pub fn processes_of(uid: u32) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids = Vec::new();
    for entry in entries.flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
            continue;
        };
        let zombie = status
            .lines()
            .any(|l| l.starts_with("State:") && l.contains('Z'));
        let ours = status
            .lines()
            .find(|l| l.starts_with("Uid:"))
            .is_some_and(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(2)
                    .any(|field| field == uid.to_string())
            });
        if ours && !zombie {
            pids.push(pid);
        }
    }
    pids
}

/// Kills every process of `uid`: a helper switches to that uid and calls `kill(-1,
/// SIGKILL)`, which reaches every process the uid owns at once (a fork bomb cannot outrun
/// it), and this repeats until `/proc` shows none (at most a few rounds).
fn end_all_of(uid: u32, gid: u32) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !processes_of(uid).is_empty() && Instant::now() < deadline {
        let mut helper = Command::new("/");
        helper.uid(uid).gid(gid);
        // SAFETY: runs in the forked helper after it became `uid`; kill and _exit are
        // async-signal-safe. kill(-1) signals every process the helper may signal, except
        // itself: exactly the uid's processes. It never reaches exec.
        unsafe {
            helper.pre_exec(|| {
                libc::kill(-1, libc::SIGKILL);
                libc::_exit(0);
            });
        }
        if let Ok(mut child) = helper.spawn() {
            let _ = child.wait();
        }
        // A killed process disappears from /proc once reaped by its parent (init or the
        // grader): poll briefly before the next round.
        let round = Instant::now() + Duration::from_millis(200);
        while !processes_of(uid).is_empty() && Instant::now() < round {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

/// True if every folder from `/` down to `folder` lets others in (mode o+x).
pub fn others_can_enter(folder: &Path) -> bool {
    folder
        .ancestors()
        .all(|f| std::fs::metadata(f).is_ok_and(|m| m.is_dir() && m.mode() & 0o001 != 0))
}

/// Makes `path` root's (or the grader's) with access for `group` only: 0750/0640 (or
/// 0700/0600 without a group). `dir`: a folder.
fn share_with_group(path: &Path, group: Option<u32>, dir: bool) -> Result<(), SetupError> {
    let mode = match (group.is_some(), dir) {
        (true, true) => 0o750,
        (true, false) => 0o640,
        (false, true) => 0o700,
        (false, false) => 0o600,
    };
    if let Some(gid) = group {
        std::os::unix::fs::chown(path, None, Some(gid))
            .map_err(|e| io_error("could not hand over", path, e))?;
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| io_error("could not protect", path, e))
}

/// Copies `from` into `to`, read-only for the program (symbolic links are not followed:
/// they are left out), at most `budget` bytes.
fn copy_read_only(
    from: &Path,
    to: &Path,
    group: Option<u32>,
    budget: &mut u64,
) -> Result<(), SetupError> {
    std::fs::create_dir(to).map_err(|e| io_error("could not create", to, e))?;
    let entries = std::fs::read_dir(from).map_err(|e| io_error("could not read", from, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| io_error("could not read", from, e))?;
        let source = entry.path();
        let target = to.join(entry.file_name());
        let meta = std::fs::symlink_metadata(&source)
            .map_err(|e| io_error("could not read", &source, e))?;
        if meta.is_dir() {
            copy_read_only(&source, &target, group, budget)?;
        } else if meta.is_file() {
            *budget = budget.checked_sub(meta.len()).ok_or_else(|| {
                io_error(
                    "could not copy",
                    from,
                    std::io::Error::other(format!(
                        "the submission is larger than {} MiB",
                        COPY_LIMIT >> 20
                    )),
                )
            })?;
            std::fs::copy(&source, &target).map_err(|e| io_error("could not copy", &source, e))?;
            let executable = meta.mode() & 0o111 != 0;
            share_with_group(&target, group, false)?;
            if executable {
                let mode = if group.is_some() { 0o750 } else { 0o700 };
                std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode))
                    .map_err(|e| io_error("could not protect", &target, e))?;
            }
        }
    }
    share_with_group(to, group, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_gets_only_its_roles_files_and_a_clean_environment() {
        let pki = GraderPki::generate().unwrap();
        let sandbox = Sandbox::new(&pki, None, true).unwrap();
        let mut names: Vec<String> = walk(sandbox.path());
        names.sort();
        assert_eq!(
            names,
            [
                "client/ca.pem",
                "client/cert.pem",
                "client/key.pem",
                "scratch",
                "server/ca.pem",
                "server/cert.pem",
                "server/key.pem"
            ]
        );
        for file in walk(sandbox.path()) {
            let text = std::fs::read_to_string(sandbox.path().join(&file)).unwrap_or_default();
            assert!(
                !text.contains(pki.lab.ca.key_pem()),
                "{file} holds the CA key"
            );
        }
        let mut command = Command::new("env");
        // As if the grader's own environment held a secret: it must not get through.
        command.env("GRADESCOPE_API_TOKEN", "secret-token-9");
        sandbox.confine(&mut command, &[("LAB_PORT".into(), "9".into())]);
        let out = command.output().unwrap();
        let env = String::from_utf8_lossy(&out.stdout);
        assert!(!env.contains("secret-token-9"), "{env}");
        for line in env.lines() {
            let name = line.split('=').next().unwrap();
            assert!(
                ENV_ALLOW_LIST.contains(&name) || name.starts_with("LAB_"),
                "{name} is not on the allow-list"
            );
        }
    }

    fn walk(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.path().is_dir() && name != "scratch" {
                for inner in walk(&entry.path()) {
                    found.push(format!("{name}/{inner}"));
                }
            } else {
                found.push(name);
            }
        }
        found
    }

    #[test]
    fn as_root_the_program_is_a_throwaway_user_with_limits_and_all_its_processes_end() {
        // SAFETY: reads credentials only.
        if unsafe { libc::geteuid() } != 0 {
            // The reduced mode is tested below; CI runs as root, so there this must run.
            lab_test_support::skip_unless_ci(
                "the throwaway user, its limits and its processes' end",
                "they need root",
            );
            return;
        }
        let pki = GraderPki::generate().unwrap();
        let sandbox = Sandbox::new(&pki, None, true).unwrap();
        let Isolation::ThrowawayUser { uid, .. } = sandbox.isolation() else {
            panic!("root gets a throwaway user");
        };
        let mut command = Command::new("sh");
        command.args([
            "-c",
            "id -u; cat /proc/self/limits; setsid sleep 300 </dev/null >/dev/null 2>&1 &",
        ]);
        sandbox.confine(&mut command, &[]);
        let out = command.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            text.lines().next(),
            Some(uid.to_string().as_str()),
            "{text}"
        );
        let words: Vec<&str> = text.split_whitespace().collect();
        let words = words.join(" ");
        for limit in [
            "Max cpu time 60 65 seconds",
            "Max file size 16777216 16777216 bytes",
            "Max processes 64 64 processes",
            "Max open files 256 256 files",
            "Max address space 8589934592 8589934592 bytes",
        ] {
            assert!(words.contains(limit), "{limit} in {text}");
        }
        assert!(!processes_of(uid).is_empty(), "the setsid escapee runs");
        sandbox.end_all();
        assert!(processes_of(uid).is_empty(), "the setsid escapee was ended");
        let path = sandbox.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o750);
        drop(sandbox);
        assert!(!path.exists());
    }

    #[test]
    fn a_submission_is_copied_read_only_without_its_symlinks() {
        let pki = GraderPki::generate().unwrap();
        let original = tempfile::tempdir().unwrap();
        std::fs::write(original.path().join("server.py"), "print('hi')\n").unwrap();
        std::fs::create_dir(original.path().join("lib")).unwrap();
        std::fs::write(original.path().join("lib/util.py"), "x = 1\n").unwrap();
        std::os::unix::fs::symlink("/etc/shadow", original.path().join("secrets")).unwrap();
        let sandbox = Sandbox::new(&pki, Some(original.path()), true).unwrap();
        let copy = sandbox.submission.clone().unwrap();
        assert!(copy.join("server.py").exists());
        assert!(copy.join("lib/util.py").exists());
        assert!(!copy.join("secrets").exists());
        let mode = std::fs::metadata(copy.join("server.py")).unwrap().mode() & 0o777;
        assert_eq!(mode & 0o022, 0, "no one but the owner may write: {mode:o}");
        if let Isolation::ThrowawayUser { .. } = sandbox.isolation() {
            let mut command = Command::new("sh");
            command
                .args(["-c", "echo changed > server.py"])
                .current_dir(&copy);
            sandbox.confine(&mut command, &[]);
            assert!(!command.status().unwrap().success());
            assert_eq!(
                std::fs::read_to_string(copy.join("server.py")).unwrap(),
                "print('hi')\n"
            );
        }
    }

    #[test]
    fn the_reduced_mode_still_clears_the_environment_and_limits() {
        let pki = GraderPki::generate().unwrap();
        let sandbox = Sandbox::with_isolation(&pki, None, true, Isolation::SameUser).unwrap();
        let mode = std::fs::metadata(sandbox.path()).unwrap().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let mut command = Command::new("sh");
        command.args(["-c", "ulimit -n; echo $HOME"]);
        sandbox.confine(&mut command, &[]);
        let out = command.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.starts_with("256\n"), "{text}");
        assert!(text.contains("scratch"), "{text}");
    }
}
