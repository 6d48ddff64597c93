//! A smoke run of `lab-chat bench --quick`: every part of the benchmark works (tiny sizes,
//! bounded, seconds). The figures themselves are not asserted: speed is measured by the
//! real benchmark, never in a timed test.

use crate::common::*;

#[test]
fn the_benchmark_runs_every_part_and_loses_no_line() {
    let output = command(&["--json", "bench", "--quick"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let records: Vec<serde_json::Value> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let experiments: Vec<&str> = records
        .iter()
        .map(|r| r["experiment"].as_str().unwrap())
        .collect();
    assert_eq!(
        experiments,
        ["bulk_throughput", "full_handshakes", "round_trip", "room"]
    );
    assert!(records[0]["ours"].as_f64().unwrap() > 0.0);
    assert!(records[1]["ours"].as_f64().unwrap() > 0.0);
    assert!(records[2]["tls_p50_us"].as_f64().unwrap() > 0.0);
    let room = &records[3];
    // Every line reached every other client, in the fan-out and in the crowd.
    assert_eq!(room["ours"]["delivered"], room["ours"]["expected"]);
    assert_eq!(room["crowd"]["delivered"], room["crowd"]["expected"]);
    assert!(room["crowd"]["peak_server_memory_kib"].as_u64().unwrap() > 0);
    for tool_name in ["openssl", "ncat"] {
        if tool(tool_name).is_none() {
            lab_test_support::skip_unless_ci(
                &format!("the {tool_name} reference figures"),
                format!("{tool_name} is not installed"),
            );
        }
    }
    if tool("ncat").is_some() {
        assert_eq!(room["ncat"]["delivered"], room["ncat"]["expected"]);
    }
}
