//! `socket-lab --html FILE`: the page is self-contained (nothing fetched), and a real browser
//! (headless Chromium, installed by .ci/run) loads it without a console message, draws the
//! ladder diagrams (the screenshot is not blank and shows the reset's red arrow), and keeps
//! the packet labels as SVG text. Chromium and packet capture are required in CI (root).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use lab_kit::child::RunningChild;

/// A directory for one test, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("socket-lab-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_report(dir: &Path) -> String {
    let path = dir.join("tour.html");
    let output = assert_cmd::Command::new(lab_test_support::bin!("socket-lab"))
        .env("NO_COLOR", "1")
        .arg("--html")
        .arg(&path)
        .arg("refused")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    std::fs::read_to_string(&path).unwrap()
}

#[test]
fn the_report_is_one_self_contained_page_with_the_chapter_and_its_ladders() {
    let scratch = Scratch::new("html-content");
    let page = write_report(&scratch.0);
    assert!(page.starts_with("<!DOCTYPE html>"));
    for fetched in [
        "<script",
        "<link",
        " src=",
        "http://",
        "https://",
        "@import",
        "@font-face",
    ] {
        assert!(
            !page.contains(fetched),
            "the page must fetch nothing, found {fetched}"
        );
    }
    assert!(page.contains("Question 1:") && page.contains("Answer:"));
    assert!(page.contains("ConnectionRefused (errno 111, ECONNREFUSED)"));
    if lab_test_support::wiretap("the_report_has_ladders", None).is_some() {
        assert_eq!(
            page.matches("<svg class=\"ladder\"").count(),
            3,
            "refused, backlog, udp"
        );
        assert!(page.contains(">SYN seq=0</text>"));
        assert!(page.contains(">RST,ACK seq=0 ack=1</text>"));
        assert!(page.contains(">ICMP port unreachable</text>"));
        // The text ladder is replaced by the drawing, not shown twice.
        assert!(!page.contains("│─ SYN seq=0"));
    }
}

/// Runs headless Chromium with `args` on `page`; returns (stdout, stderr).
fn chromium(profile: &Path, args: &[&str], page: &Path) -> Option<(String, String)> {
    let mut command = Command::new("chromium");
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--enable-logging=stderr",
            "--v=0",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(format!("file://{}", page.display()));
    let mut child = match RunningChild::spawn(&mut command) {
        Ok(child) => child,
        Err(e) => {
            lab_test_support::skip_unless_ci("the HTML report in headless Chromium", e);
            return None;
        }
    };
    let status = child.wait_timeout(Duration::from_secs(120)).unwrap();
    let stdout = child.text(lab_kit::child::Stream::Stdout);
    let stderr = child.text(lab_kit::child::Stream::Stderr);
    let _ = child.kill();
    assert!(
        status.is_some_and(|s| s.success()),
        "chromium failed or hung: {stderr}"
    );
    Some((stdout, stderr))
}

#[test]
fn chromium_draws_the_report_without_console_messages() {
    if lab_test_support::wiretap("chromium_draws_the_report", None).is_none() {
        return;
    }
    let scratch = Scratch::new("html-chromium");
    let page = write_report(&scratch.0);
    let path = scratch.0.join("tour.html");
    assert!(page.contains("<svg"));

    // The DOM as the browser parsed it: the SVG text holds the packet labels.
    let Some((dom, stderr)) = chromium(&scratch.0.join("profile-dom"), &["--dump-dom"], &path)
    else {
        return;
    };
    assert!(!stderr.contains(":CONSOLE"), "console messages: {stderr}");
    assert!(dom.contains("<svg class=\"ladder\""), "{dom}");
    for label in ["SYN seq=0", "RST,ACK seq=0 ack=1", "ICMP port unreachable"] {
        assert!(
            dom.contains(&format!(">{label}</text>")),
            "{label} missing from the DOM"
        );
    }

    // The screenshot: not blank, and the reset's red arrow is drawn.
    let shot = scratch.0.join("shot.png");
    let screenshot = format!("--screenshot={}", shot.display());
    let Some((_, stderr)) = chromium(
        &scratch.0.join("profile-shot"),
        &[&screenshot, "--window-size=1280,2400"],
        &path,
    ) else {
        return;
    };
    assert!(!stderr.contains(":CONSOLE"), "console messages: {stderr}");
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&shot).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut pixels = vec![0; reader.output_buffer_size().unwrap()];
    let frame = reader.next_frame(&mut pixels).unwrap();
    let channels = frame.color_type.samples();
    let pixels = &pixels[..frame.buffer_size()];
    let (mut inked, mut red) = (0usize, 0usize);
    for px in pixels.chunks(channels) {
        let (r, g, b) = (px[0], px[1], px[2]);
        if r < 200 || g < 200 || b < 200 {
            inked += 1;
        }
        // The RST arrow's colour, #c62828.
        if r > 170 && g < 80 && b < 80 {
            red += 1;
        }
    }
    let total = pixels.len() / channels;
    assert!(
        inked * 100 > total,
        "the screenshot is (nearly) blank: {inked} of {total} pixels"
    );
    assert!(
        red > 50,
        "no red reset arrow in the screenshot ({red} red pixels)"
    );
}
