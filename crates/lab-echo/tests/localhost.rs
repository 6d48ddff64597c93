//! Each claim of question 2 (and of docs/02-localhost.md) as a test that fails if the claim
//! is false, plus the narration of each experiment pinned as a snapshot.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::Path;

use lab_echo::localhost::{self, outcome_for};
use lab_echo::namespaces::{self, NamespacePair};
use lab_echo::narrate;
use lab_kit::attempt::Outcome;

/// True when this machine has IPv6 loopback (some containers disable IPv6).
fn ipv6_loopback_available() -> bool {
    TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

#[test]
fn localhost_resolves_to_loopback_addresses() {
    let report = localhost::resolve_localhost().unwrap();
    assert!(!report.addresses.is_empty());
    assert!(
        report.includes_loopback,
        "localhost resolved to {:?}",
        report.addresses
    );
    assert!(
        report.all_loopback,
        "localhost resolved to {:?}",
        report.addresses
    );
    lab_test_support::assert_redacted_snapshot!(
        "resolution",
        &lab_test_support::narration(|n| narrate::resolution(&report, n)),
        common::filters()
    );
}

#[test]
fn a_server_on_127_0_0_1_is_refused_on_ipv6_loopback_yet_std_connect_to_localhost_works() {
    let report = localhost::ipv6_first_trap().unwrap();
    let port = report.server.port();
    assert_eq!(report.server.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
    let [v6, v4] = &report.ipv6_first_attempts[..] else {
        panic!("expected two attempts: {:?}", report.ipv6_first_attempts)
    };
    assert_eq!(v6.target, SocketAddr::from((Ipv6Addr::LOCALHOST, port)));
    if ipv6_loopback_available() {
        assert_eq!(v6.outcome(), Outcome::Refused, "{v6:?}");
        assert_eq!(v6.attempt.errno_name, Some("ECONNREFUSED"));
    } else {
        eprintln!("skipped: the ::1 refusal: IPv6 loopback is not available here");
        assert_ne!(v6.outcome(), Outcome::Connected);
    }
    assert_eq!(v4.outcome(), Outcome::Connected, "{v4:?}");
    // TcpStream::connect tries every address localhost resolves to, until one connects.
    assert_eq!(
        report.std_connected_to,
        Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port)))
    );
    assert!(
        report
            .localhost_attempts
            .iter()
            .any(|a| a.outcome() == Outcome::Connected)
    );
    // The narration pins the IPv6 lines as they read where IPv6 loopback exists.
    if ipv6_loopback_available() {
        lab_test_support::assert_redacted_snapshot!(
            "ipv6_first_trap",
            &lab_test_support::narration(|n| narrate::ipv6_first_trap(&report, n)),
            common::filters()
        );
    } else {
        eprintln!("skipped: the ipv6_first_trap snapshot: IPv6 loopback is not available here");
    }
}

#[test]
fn loopback_is_a_virtual_interface_that_owns_all_of_127_0_0_0_slash_8() {
    let report = localhost::loopback_interface().unwrap();
    if cfg!(target_os = "linux") {
        assert_eq!(report.mtu, Some(65536), "the MTU of lo");
        // Four round trips, each at least a handshake and two data segments, counted on lo.
        assert!(
            report.lo_packets_delta.is_some_and(|p| p >= 4 * 3),
            "{report:?}"
        );
    }
    assert_eq!(report.range_round_trips.len(), 4);
    for trip in &report.range_round_trips {
        assert!(trip.address.is_loopback());
        assert!(trip.bound && trip.echoed, "{trip:?}");
    }
    // An address outside 127/8 that no interface has cannot be bound.
    let error = report
        .foreign_bind
        .error
        .as_ref()
        .expect("192.0.2.1 must not be bindable");
    assert_eq!(error.error_kind, "AddrNotAvailable");
    lab_test_support::assert_redacted_snapshot!(
        "loopback_interface",
        &lab_test_support::narration(|n| narrate::loopback_interface(&report, n)),
        common::filters()
    );
}

#[test]
fn the_bind_address_decides_who_can_connect() {
    let report = localhost::bind_address_matters().unwrap();
    let local = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let other = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
    let loopback_only = &report.servers[0];
    assert_eq!(loopback_only.bound_to.ip(), local);
    assert_eq!(
        outcome_for(&loopback_only.attempts, local),
        Some(Outcome::Connected)
    );
    assert_eq!(
        outcome_for(&loopback_only.attempts, other),
        Some(Outcome::Refused)
    );
    let wildcard = &report.servers[1];
    assert!(wildcard.bound_to.ip().is_unspecified());
    assert_eq!(
        outcome_for(&wildcard.attempts, local),
        Some(Outcome::Connected)
    );
    assert_eq!(
        outcome_for(&wildcard.attempts, other),
        Some(Outcome::Connected)
    );
    match report.servers.get(2) {
        Some(dual_stack) => {
            assert_eq!(dual_stack.bound_to.ip(), IpAddr::V6(Ipv6Addr::UNSPECIFIED));
            for attempt in &dual_stack.attempts {
                assert_eq!(attempt.outcome(), Outcome::Connected, "{attempt:?}");
            }
        }
        None => eprintln!("skipped: the [::] server: {:?}", report.ipv6_skipped),
    }
    // The narration pins the IPv6 lines as they read where IPv6 loopback exists.
    if ipv6_loopback_available() {
        lab_test_support::assert_redacted_snapshot!(
            "bind_address",
            &lab_test_support::narration(|n| narrate::bind_address(&report, n)),
            common::filters()
        );
    } else {
        eprintln!("skipped: the bind_address snapshot: IPv6 loopback is not available here");
    }
}

#[test]
fn port_0_gives_a_port_in_the_ephemeral_range() {
    let report = localhost::ephemeral_port().unwrap();
    assert_eq!(report.ports.len(), 3);
    assert!(report.ports.iter().all(|&p| p != 0));
    match localhost::read_ephemeral_range() {
        Some((low, high)) => {
            for port in &report.ports {
                assert!((low..=high).contains(port), "{port} outside {low}–{high}");
            }
            assert_eq!(report.all_in_range, Some(true));
        }
        None => eprintln!(
            "skipped: the ephemeral range check: /proc/sys/net/ipv4/ip_local_port_range is not readable"
        ),
    }
    lab_test_support::assert_redacted_snapshot!(
        "ephemeral_port",
        &lab_test_support::narration(|n| narrate::ephemeral_port(&report, n)),
        common::filters()
    );
}

#[test]
fn across_a_link_the_wildcard_server_answers_and_the_loopback_one_is_refused() {
    if let Some(why) = namespaces::unavailable_reason() {
        lab_test_support::skip_unless_ci("the namespace experiment", why);
        return;
    }
    let report = namespaces::across_a_link().unwrap();
    assert_eq!(
        report.to_wildcard_server.outcome(),
        Outcome::Connected,
        "{report:?}"
    );
    assert_eq!(
        report.wildcard_server_saw_peer.map(|peer| peer.ip()),
        Some(IpAddr::V4(namespaces::CLIENT_HOST)),
        "the server sees the client host's own address"
    );
    assert_eq!(
        report.to_loopback_server.outcome(),
        Outcome::Refused,
        "{report:?}"
    );
    // 127.0.0.1 on the client host is the client host's own loopback.
    assert_eq!(
        report.to_own_loopback.outcome(),
        Outcome::Refused,
        "{report:?}"
    );
    lab_test_support::assert_redacted_snapshot!(
        "across_a_link",
        &lab_test_support::narration(|n| narrate::across_a_link(&report, n)),
        common::filters()
    );
}

#[test]
fn namespaces_are_deleted_when_the_pair_is_dropped_even_after_a_panic() {
    if let Some(why) = namespaces::unavailable_reason() {
        lab_test_support::skip_unless_ci("the namespace cleanup test", why);
        return;
    }
    let mut names = Vec::new();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let pair = NamespacePair::create().unwrap();
        names.push(pair.server_ns.clone());
        names.push(pair.client_ns.clone());
        assert!(Path::new(&format!("/run/netns/{}", pair.server_ns)).exists());
        panic!("a failing experiment");
    }));
    assert!(outcome.is_err());
    assert_eq!(names.len(), 2);
    for name in names {
        assert!(
            !Path::new(&format!("/run/netns/{name}")).exists(),
            "namespace {name} was left behind"
        );
    }
}

#[test]
fn namespaces_left_by_a_killed_run_are_removed_by_the_next_one() {
    if let Some(why) = namespaces::unavailable_reason() {
        lab_test_support::skip_unless_ci("the namespace leftovers test", why);
        return;
    }
    // A name as a run with a process id that cannot exist would have left it (pid_max is
    // at most 4194304 on Linux).
    let stale = "lab-echo-srv-4999999-0";
    let added = std::process::Command::new("ip")
        .args(["netns", "add", stale])
        .status()
        .unwrap();
    assert!(added.success());
    let pair = NamespacePair::create().unwrap();
    assert!(!Path::new(&format!("/run/netns/{stale}")).exists());
    drop(pair);
}
