//! The tour's packets: `--json` records carry a `packets` array, `--pcap DIR` writes one pcap
//! file per watched experiment, and a pcap directory that cannot be made is a clear error.
//! Capturing needs root or CAP_NET_RAW: without it, the capture tests say so and pass,
//! except in CI (root), where they must run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use predicates::prelude::*;

use crate::socket_lab;

#[test]
fn the_tour_writes_a_pcap_file_per_watched_experiment_and_json_packets() {
    if lab_test_support::wiretap("the_tour_writes_a_pcap_file_per_watched_experiment", None)
        .is_none()
    {
        return;
    }
    let dir = std::env::temp_dir().join(format!("socket-lab-tour-pcap-{}", std::process::id()));
    let output = socket_lab()
        .args(["--json", "--pcap"])
        .arg(&dir)
        .arg("calls")
        .output()
        .unwrap();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    std::fs::remove_dir_all(&dir).ok();
    assert!(output.status.success(), "{output:?}");
    files.sort();
    assert_eq!(
        files,
        [
            "nagle.pcap",
            "nagle_nodelay.pcap",
            "peer_closes.pcap",
            "socket_calls.pcap"
        ]
    );
    let text = String::from_utf8(output.stdout).unwrap();
    let walk: serde_json::Value = text
        .lines()
        .map(|line| serde_json::from_str::<serde_json::Value>(line).unwrap())
        .find(|record| record["experiment"] == "socket_calls")
        .unwrap();
    let flags: Vec<&str> = walk["packets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["flags"].as_str().unwrap())
        .collect();
    assert_eq!(&flags[..2], ["SYN", "SYN,ACK"], "{flags:?}");
    assert_eq!(walk["capture"]["kernel_drops"], 0);
    assert!(
        walk["capture"]["pcap"]
            .as_str()
            .unwrap()
            .ends_with("socket_calls.pcap")
    );
}

#[test]
fn no_capture_leaves_the_packets_out() {
    let output = socket_lab()
        .args(["--json", "--no-capture", "calls"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    assert!(!text.contains("\"packets\""), "{text}");
}

#[test]
fn a_pcap_directory_that_cannot_be_made_is_a_clear_error() {
    socket_lab()
        .args(["--pcap", "/proc/socket-lab-cannot-be-here", "refused"])
        .assert()
        .failure()
        .stderr(predicate::str::contains(
            "cannot create the pcap directory /proc/socket-lab-cannot-be-here",
        ));
}

#[test]
fn without_cap_net_raw_each_chapter_says_so_once_and_goes_on() {
    let exe = lab_test_support::bin!("socket-lab");
    // Where this test may capture, it gives CAP_NET_RAW up for the child (setpriv, from
    // util-linux), as a student's ordinary account has it; elsewhere it already lacks it.
    let mut command = if lab_capture::Wiretap::on(None).captures() {
        let mut command = std::process::Command::new("setpriv");
        command
            .args(["--bounding-set=-net_raw", "--inh-caps=-net_raw", "--"])
            .arg(exe);
        command
    } else {
        std::process::Command::new(exe)
    };
    let output = match command.args(["calls"]).env("NO_COLOR", "1").output() {
        Ok(output) => output,
        Err(e) => {
            lab_test_support::skip_unless_ci(
                "the tour without CAP_NET_RAW",
                format!("setpriv: {e}"),
            );
            return;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        text.matches(
            "skipped: the packets on the wire: capturing packets needs root or CAP_NET_RAW"
        )
        .count(),
        1,
        "{text}"
    );
    assert!(!text.contains("On the wire:"), "{text}");
    assert!(text.contains("Answer:"), "{text}");
}
