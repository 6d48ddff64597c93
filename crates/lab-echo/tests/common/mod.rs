//! What the lab-echo test files share: narration into a string, and the snapshot filters
//! (lab-kit's, then this lab's own, never instead of them).

#![allow(dead_code)]

use lab_kit::narrate::{Format, Narrator};

/// Narrates `report` with `narrate` into a string, for a snapshot.
pub fn narration<R>(report: &R, narrate: fn(&R, &mut Narrator) -> std::io::Result<()>) -> String {
    let (mut narrator, captured) = Narrator::capture(Format::Text);
    narrate(report, &mut narrator).unwrap();
    captured.text()
}

/// lab-kit's redactions, then what varies from machine to machine in this lab's output.
pub fn filters() -> Vec<(&'static str, &'static str)> {
    let mut filters = lab_kit::redact::filters();
    filters.extend([
        // File descriptors: the narration's `fd 3`, strace's `bind(3, ` and `= 3` results.
        (r"\bfd \d+", "fd [FD]"),
        (r"\b(\w+)\(\d+, ", "$1([FD], "),
        (r"(?m)^(  │ (?:socket|accept4)\(.*\)) += \d+$", "$1 = [FD]"),
        // What localhost resolves to depends on /etc/hosts (127.0.0.1, often also ::1).
        (r"(?m)^(  localhost resolves to +).*$", "$1[ADDRESSES]"),
        (
            r"(?m)(^  │ try .*\n)+",
            "  │ try [each address localhost resolves to, in order]\n",
        ),
        // Ports the kernel chose, listed bare; the ephemeral range of this machine.
        (r"got \d+, \d+, \d+", "got [PORT], [PORT], [PORT]"),
        (
            r"\d+–\d+ \(ip_local_port_range\)",
            "[LOW]–[HIGH] (ip_local_port_range)",
        ),
        // Counters and buffer-dependent byte counts.
        (r"≥ \d+", "≥ [N]"),
        (r"(first send returned +)\d+", "$1[N]"),
        (
            r"\d+ more send\(s\) accepted \d+",
            "[N] more send(s) accepted [N]",
        ),
        (
            r"\d+ bytes in \d+ send\(\) calls, \d+",
            "[N] bytes in [N] send() calls, [N]",
        ),
        (r"\d+ write\(\) call", "[N] write() call"),
    ]);
    filters
}

/// Pins `text` as snapshot `name` (in `tests/snapshots/NAME.snap`), redacted.
pub fn assert_redacted_snapshot(name: &str, text: &str) {
    insta::with_settings!({
        filters => filters(),
        snapshot_path => "../snapshots",
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(name, text);
    });
}
