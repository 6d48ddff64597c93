//! Question 3 on the wire: while the server sleeps, its kernel completes the handshake and
//! acknowledges every byte the client sends. Capturing needs root or CAP_NET_RAW: without it
//! this test says so and passes, except in CI (root), where it must run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use lab_capture::Wiretap;
use lab_sleep::kernel_works::{self, marks};
use lab_sleep::on_the_wire;

#[test]
fn the_clients_data_is_acknowledged_while_the_server_sleeps() {
    let tap = Wiretap::on(None);
    if let Some(why) = tap.unavailable() {
        lab_test_support::skip_unless_ci(
            "the_clients_data_is_acknowledged_while_the_server_sleeps",
            why,
        );
        return;
    }
    let report =
        kernel_works::client_during_server_sleep_watched(Duration::from_millis(200), &tap).unwrap();
    assert!(report.client_finished_during_sleep(), "{report:?}");
    let wire = report.wire.as_ref().unwrap();
    assert!(wire.is_complete(), "{:?}", wire.capture);
    let labels: Vec<&str> = wire
        .capture
        .marks
        .iter()
        .map(|m| m.label.as_str())
        .collect();
    assert_eq!(labels, [marks::SLEEP_BEGAN, marks::WOKE]);
    assert!(
        on_the_wire::acknowledged_while_asleep(wire, report.bytes_sent),
        "{:#?}",
        wire.packets
    );
    // The acknowledgment of the last byte came from the sleeping server's side.
    let ack = on_the_wire::ack_of_everything(wire, report.bytes_sent).unwrap();
    assert!(!ack.toward_server);
}
