//! Lab 1's packets on the wire: the sequences asserted exactly, the narration (with its
//! ladders) snapshotted with times and ports redacted, the JSON `packets` array, and the pcap
//! files that `tcpdump -r` reads. Capturing needs root or CAP_NET_RAW: without it these
//! tests say so and pass, except in CI (root), where they must run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use assert_cmd::Command;
use lab_capture::{Protocol, Wiretap};
use lab_kit::narrate::{Format, Narrator};
use lab_kit::probe::Probe;
use lab_refused::{Experiment, Options, backlog, on_the_wire, refused, udp};

#[test]
fn refused_is_exactly_one_syn_and_one_reset_for_that_port_pair() {
    let Some(tap) = lab_test_support::wiretap("refused_is_exactly_one_syn_and_one_reset", None)
    else {
        return;
    };
    let report = refused::connect_to_closed_port_watched(&tap).unwrap();
    let wire = report.wire.unwrap();
    assert!(wire.is_complete(), "{:?}", wire.capture);
    assert_eq!(on_the_wire::tcp_flags(&wire), ["SYN", "RST,ACK"]);
    assert!(on_the_wire::is_one_syn_one_reset(&wire));
    assert_eq!(wire.packets[0].dst, report.target.to_string());
}

#[test]
fn a_full_queue_gets_the_syn_again_and_never_a_syn_ack() {
    let Some(tap) = lab_test_support::wiretap("a_full_queue_gets_the_syn_again", None) else {
        return;
    };
    // Linux resends an unanswered SYN after 1 s, then 3 s: a 2.5 s deadline sees two.
    let report =
        backlog::connect_to_full_backlog_watched(Duration::from_millis(2500), &tap).unwrap();
    let wire = report.wire.unwrap();
    assert!(wire.is_complete(), "{:?}", wire.capture);
    let (syns, answers) = on_the_wire::syns_and_answers(&wire);
    assert!(syns >= 2, "{syns} SYNs: {:#?}", wire.packets);
    assert_eq!(answers, 0, "{:#?}", wire.packets);
    assert!(!wire.packets.iter().any(|p| p.has("RST")));
    // The second SYN is the same SYN again (same sequence number, same client port).
    assert_eq!(wire.packets[0].seq, wire.packets[1].seq);
    assert_eq!(wire.packets[0].src, wire.packets[1].src);
}

#[test]
fn udp_to_a_closed_port_comes_back_as_icmp_port_unreachable() {
    let Some(tap) = lab_test_support::wiretap("udp_to_a_closed_port_comes_back_as_icmp", None)
    else {
        return;
    };
    let report = udp::send_to_closed_udp_port_watched(Duration::from_secs(5), &tap).unwrap();
    let wire = report.wire.unwrap();
    assert!(wire.is_complete(), "{:?}", wire.capture);
    let protocols: Vec<Protocol> = wire.packets.iter().map(|p| p.protocol).collect();
    assert_eq!(protocols, [Protocol::Udp, Protocol::Icmp]);
    assert_eq!(wire.packets[0].len, report.sent_bytes.unwrap());
    assert!(on_the_wire::has_port_unreachable(&wire));
}

/// The narration of one experiment, with its packets.
fn narrate_on_the_wire(experiment: Experiment, tap: Wiretap) -> String {
    let probe = Probe::binary(lab_test_support::bin!("lab-refused"));
    let options = Options {
        backlog_deadline: Duration::from_millis(2500),
        wiretap: tap,
        ..Options::default()
    };
    lab_test_support::narration(|n| {
        lab_refused::run_experiment(experiment, &options, &probe, n).map_err(std::io::Error::other)
    })
}

fn filters() -> Vec<(&'static str, &'static str)> {
    let mut filters = lab_test_support::redactions();
    // Counter deltas: other traffic on the machine can add to them.
    filters.push((r"\+\d+  \(", "+[N]  ("));
    // How many times the SYN is sent again within the deadline depends on the kernel
    // (tcp_syn_linear_timeouts): the repeated SYNs become one line.
    filters.push((
        r"(?m)(^  │ │─ SYN seq=0 ─+▶│ \[DURATION\]\n){2,}",
        "  │ [the same SYN, sent again and again]\n",
    ));
    filters
}

#[test]
fn the_ladders_of_lab_1() {
    let Some(tap) = lab_test_support::wiretap("the_ladders_of_lab_1", None) else {
        return;
    };
    for (name, experiment) in [
        ("refused", Experiment::Refused),
        ("backlog", Experiment::Backlog),
        ("udp", Experiment::Udp),
    ] {
        let text = narrate_on_the_wire(experiment, tap.clone());
        let wire_part = &text[text.find("On the wire").expect(&text)..];
        let mut filters = filters();
        if experiment == Experiment::Backlog {
            filters.push((r"On the wire: \d+ packets", "On the wire: [N] packets"));
        }
        insta::with_settings!({ filters => filters, snapshot_suffix => name }, {
            insta::assert_snapshot!(wire_part)
        });
    }
}

#[test]
fn without_the_right_to_capture_a_chapter_says_so_once_and_goes_on() {
    // Simulated with a wiretap that cannot capture: what a student without root sees.
    let tap = Wiretap::unavailable_for_tests("capturing packets needs root or CAP_NET_RAW");
    let (mut narrator, out) = Narrator::capture(Format::Text);
    let probe = Probe::binary(lab_test_support::bin!("lab-refused"));
    let options = Options {
        backlog_deadline: Duration::from_millis(300),
        wiretap: tap,
        ..Options::default()
    };
    lab_refused::run(
        &[Experiment::Refused, Experiment::Backlog, Experiment::Udp],
        &options,
        &probe,
        &mut narrator,
    )
    .unwrap();
    let text = out.text();
    assert_eq!(
        text.matches("skipped: the packets on the wire").count(),
        1,
        "{text}"
    );
    assert!(text.contains("Answer:"));
}

#[test]
fn json_has_a_packets_array_and_pcap_files_that_tcpdump_reads() {
    if lab_test_support::wiretap("json_has_a_packets_array_and_pcap_files", None).is_none() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("lab-refused-pcap-{}", std::process::id()));
    let output = Command::new(lab_test_support::bin!("lab-refused"))
        .args(["--json", "--deadline-ms", "300", "--pcap"])
        .arg(&dir)
        .args(["refused", "udp"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let records: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let refused = &records[0];
    assert_eq!(refused["experiment"], "refused");
    let packets = refused["packets"].as_array().unwrap();
    let flags: Vec<&str> = packets
        .iter()
        .map(|p| p["flags"].as_str().unwrap())
        .collect();
    assert_eq!(flags, ["SYN", "RST,ACK"]);
    for field in ["t_us", "src", "dst", "flags", "len"] {
        assert!(
            packets[0].get(field).is_some(),
            "{field} missing: {}",
            packets[0]
        );
    }
    assert_eq!(records[1]["packets"][1]["protocol"], "ICMP");
    assert_eq!(records[1]["packets"][1]["icmp"], "port unreachable");

    let tcpdump = |file: &str| {
        std::process::Command::new("tcpdump")
            .args(["-n", "-r"])
            .arg(dir.join(file))
            .output()
    };
    let refused = tcpdump("refused.pcap");
    let udp = tcpdump("udp.pcap");
    std::fs::remove_dir_all(&dir).unwrap();
    let (refused, udp) = match (refused, udp) {
        (Ok(refused), Ok(udp)) => (refused, udp),
        (Err(e), _) | (_, Err(e)) => {
            lab_test_support::skip_unless_ci(
                "tcpdump -r on lab 1's pcap files",
                format!("tcpdump: {e}"),
            );
            return;
        }
    };
    let refused = String::from_utf8_lossy(&refused.stdout).into_owned();
    assert!(
        refused.contains("Flags [S]") && refused.contains("Flags [R.]"),
        "{refused}"
    );
    let udp = String::from_utf8_lossy(&udp.stdout).into_owned();
    assert!(
        udp.contains("udp port") && udp.contains("unreachable"),
        "{udp}"
    );
}
