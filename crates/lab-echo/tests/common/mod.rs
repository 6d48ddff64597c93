//! What the lab-echo test modules share: this lab's snapshot filters, applied after the
//! shared ones (never instead of them).

/// What varies from machine to machine in this lab's output, hidden after the shared
/// redactions (`lab_test_support::assert_redacted_snapshot!(name, text, common::filters())`).
pub fn filters() -> Vec<(&'static str, &'static str)> {
    vec![
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
    ]
}
