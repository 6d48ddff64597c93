//! Network namespaces: separate copies of Linux's network stack (own interfaces, own
//! loopback, own ports), for experiments that need a second "host" or a link of their own
//! without touching the machine's real network.
//!
//! Creating one needs root (`CAP_SYS_ADMIN`) and the `ip` tool (iproute2):
//! [`unavailable_reason`] says why not, so that a lab can say `skipped:` and go on. Each
//! [`Namespace`] has a unique name, `PREFIX-PID-N`, and is deleted when dropped, whatever
//! happened; one left behind by a run that was killed (its PID gone) is deleted by the next
//! [`Namespace::create`] with the same prefix.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

/// Why namespaces cannot be created here, or `None` when they can be tried.
pub fn unavailable_reason() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return Some("network namespaces are a Linux feature".into());
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        return Some("creating network namespaces needs root".into());
    }
    // Root in a container may still lack the capability that creating namespaces needs.
    if !has_capability(CAP_SYS_ADMIN) {
        return Some(
            "creating network namespaces needs CAP_SYS_ADMIN, which this process lacks".into(),
        );
    }
    match Command::new("ip").arg("-V").output() {
        Ok(out) if out.status.success() => None,
        _ => Some("the `ip` tool is missing (on Debian/Ubuntu: apt-get install iproute2)".into()),
    }
}

/// The capability number of CAP_SYS_ADMIN (linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;

/// Whether this process's effective capabilities (`CapEff` in /proc/self/status) include `cap`.
fn has_capability(cap: u32) -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            let hex = status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))?
                .trim()
                .to_string();
            u64::from_str_radix(&hex, 16).ok()
        })
        .is_some_and(|caps| caps & (1 << cap) != 0)
}

/// One network namespace, deleted (with every interface in it) when dropped.
#[derive(Debug)]
pub struct Namespace {
    name: String,
}

impl Namespace {
    /// Creates `PREFIX-PID-N` with its loopback up.
    pub fn create(prefix: &str) -> io::Result<Self> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        remove_leftovers(prefix);
        let name = format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        ip(&["netns", "add", &name])?;
        // From here on, `namespace` is dropped (and deleted) on any early return.
        let namespace = Namespace { name };
        namespace.ip(&["link", "set", "lo", "up"])?;
        Ok(namespace)
    }

    /// Its name, as `ip netns` lists it.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs `ip -n NAME ARGS…`, e.g. `ns.ip(&["addr", "add", "192.0.2.1/24", "dev", "v0"])`.
    pub fn ip(&self, args: &[&str]) -> io::Result<()> {
        let mut all = vec!["-n", self.name.as_str()];
        all.extend_from_slice(args);
        ip(&all)
    }

    /// Runs `work` on a fresh thread that has joined this namespace; sockets it creates
    /// belong to the namespace for their whole life, whichever thread uses them later.
    pub fn run_in<T: Send>(&self, work: impl FnOnce() -> T + Send) -> io::Result<T> {
        let handle = File::open(format!("/run/netns/{}", self.name))?;
        std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    // setns changes the namespace of the calling thread only; this thread
                    // ends right after `work`, so no other code runs in the wrong namespace.
                    // SAFETY: `handle` is an open namespace file for the whole call.
                    let rc = unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) };
                    if rc != 0 {
                        return Err(io::Error::last_os_error());
                    }
                    Ok(work())
                })
                .join()
                .unwrap_or_else(|_| Err(io::Error::other("a namespace thread panicked")))
        })
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
    }
}

/// Deletes namespaces named `PREFIX-PID-N` whose PID is no longer alive: an earlier run was
/// killed (SIGKILL) before its `Drop` could run.
fn remove_leftovers(prefix: &str) {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('-'))
        else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", &name]).output();
        }
    }
}

/// Runs `ip ARGS…`; a failure says which command failed and what `ip` said.
pub fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new("ip").args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}
