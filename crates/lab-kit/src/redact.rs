//! Snapshot filters: what changes from run to run is replaced by a placeholder.
//!
//! A lab's narration contains live measurements: ports chosen by the kernel, durations,
//! process ids, file descriptors, temporary paths. Snapshot tests (insta) pin everything
//! else, word for word. Use them as
//! `insta::with_settings!({ filters => lab_kit::redact::filters() }, { … })`.
//! Order matters: more specific patterns come first.

/// `(regex, replacement)` pairs in the form insta's `filters` setting takes.
pub const REDACTIONS: &[(&str, &str)] = &[
    // Temporary paths (before anything inside them is redacted).
    (r"/tmp/[^\s'`)]+", "[TMP]"),
    // IPv4 and IPv6 socket addresses: keep the address (127.0.0.1 vs 127.0.0.2 matters),
    // hide the port the kernel chose.
    (r"\b((?:\d{1,3}\.){3}\d{1,3}):\d{1,5}\b", "$1:[PORT]"),
    (r"\[([0-9a-fA-F:.]+)\]:\d{1,5}\b", "[$1]:[PORT]"),
    // strace's view of an address: sin_port=htons(41234), sin6_port=htons(41234).
    (r"port=htons\(\d+\)", "port=htons([PORT])"),
    (r"\b[Pp]ort \d{1,5}\b", "port [PORT]"),
    // Process ids, as in "pid 1234" and strace's "[pid  1234]".
    (r"\[pid\s+\d+\]", "[pid [PID]]"),
    (r"\bpid[ =:]\s*\d+", "pid [PID]"),
    // Durations: 16 µs, 1.5 ms, 44ms, 2.000s, 1.2µs.
    (r"\b\d+(?:\.\d+)?\s?(?:ns|µs|us|ms|s)\b", "[DURATION]"),
];

/// The filters as an owned vector, the form `insta::with_settings!` wants.
pub fn filters() -> Vec<(&'static str, &'static str)> {
    REDACTIONS.to_vec()
}
