//! What the lab-sleep test files share: the snapshot filters.
//!
//! lab-kit's filters hide ports, durations and PIDs; this lab also prints counts, byte
//! counts, tries and the numbers inside strace lines, so every remaining number is hidden
//! too, and the padding that varies with a number's width is made uniform.

#![allow(dead_code)]

/// lab-kit's filters, then this lab's own.
pub fn filters() -> Vec<(&'static str, &'static str)> {
    let mut filters = lab_kit::redact::filters();
    filters.extend([
        // Pointers in strace lines: 0x7ffc794235e8.
        (r"\b0x[0-9a-fA-F]+\b", "[ADDR]"),
        // Every other number: counts (9,011,841), bytes, tries, tv_sec=1017, 3.11.
        (r"\b\d+(?:[.,]\d+)*\b", "[N]"),
        // The accuracy table pads each duration to a column: the padding varies with the
        // number's width, so it is made one space.
        (r"(\[DURATION\]) +", "$1 "),
    ]);
    filters
}

/// True when strace can trace here; otherwise says so on stderr (visible with --nocapture
/// and in CI logs).
pub fn strace_available(test: &str) -> bool {
    match lab_kit::strace::locate() {
        Ok(_) => true,
        Err(why) => {
            lab_kit::skip::skip_unless_ci(test, why);
            false
        }
    }
}
