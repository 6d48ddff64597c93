//! What the lab-sleep test files share: the snapshot filters.
//!
//! lab-kit's filters hide ports, durations and PIDs; this lab also prints counts, byte
//! counts, tries and the numbers inside strace lines, so every remaining number is hidden
//! too, and the padding that varies with a number's width is made uniform.

/// lab-kit's filters, then this lab's own.
pub fn filters() -> Vec<(&'static str, &'static str)> {
    // Facts from sources are constants, not measurements, and the snapshots must pin them (a
    // Python version, Windows' timer tick, a docs page): they are masked from the number
    // filters below, then restored by the last ones.
    let mut filters = vec![
        (r"\b(Python|Windows) (\d+)\.(\d+)", "$1 VERSION${2}x$3"),
        (r"\babout 15\.6 ms\b", "about TICK15x6ms"),
        (r"\bdocs/(\d+)", "docs/PAGE$1"),
    ];
    filters.extend(lab_test_support::redactions());
    filters.extend([
        // Pointers in strace lines: 0x7ffc794235e8.
        (r"\b0x[0-9a-fA-F]+\b", "[ADDR]"),
        // Every other number: counts (9,011,841), bytes, tries, tv_sec=1017.
        (r"\b\d+(?:[.,]\d+)*\b", "[N]"),
        // The accuracy table pads each duration to a column: the padding varies with the
        // number's width, so it is made one space.
        (r"(\[DURATION\]) +", "$1 "),
        // The facts masked above, back as they were.
        (r"\b(Python|Windows) VERSION(\d+)x(\d+)", "$1 $2.$3"),
        (r"\bTICK15x6ms", "15.6 ms"),
        (r"\bdocs/PAGE(\d+)", "docs/$1"),
    ]);
    filters
}

/// True when strace can trace here; otherwise says so on stderr (visible with --nocapture
/// and in CI logs).
pub fn strace_available(test: &str) -> bool {
    match lab_kit::strace::locate() {
        Ok(_) => true,
        Err(why) => {
            lab_test_support::skip_unless_ci(test, why);
            false
        }
    }
}
