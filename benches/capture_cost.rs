//! What capturing the packets costs the tour: its wall time with and without capture, side
//! by side in one run (`cargo bench --bench capture_cost`; `ROUNDS=5` for more rounds).
//!
//! Each round runs the whole tour twice, once with `--no-capture` and once capturing (as
//! root or with CAP_NET_RAW), alternating which goes first so that neither always runs on a
//! warmer machine. The target (issue 13): capture costs the tour at most 10% of its time.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn main() {
    let exe = env!("CARGO_BIN_EXE_socket-lab");
    if let Some(why) = lab_capture::Wiretap::on(None).unavailable() {
        println!("capture_cost: cannot capture here ({why}); nothing to compare");
        return;
    }
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .filter(|&r| (1..=50).contains(&r))
        .unwrap_or(3);
    println!("the whole tour, {rounds} rounds, each run once without and once with capture");
    println!(
        "{:>5}  {:>14}  {:>14}",
        "round", "--no-capture", "capturing"
    );
    let (mut without, mut with) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        let order: [bool; 2] = if round % 2 == 1 {
            [false, true]
        } else {
            [true, false]
        };
        for capturing in order {
            let took = run_tour(exe, capturing);
            if capturing {
                with.push(took);
            } else {
                without.push(took);
            }
        }
        println!(
            "{round:>5}  {:>14}  {:>14}",
            seconds(without[round - 1]),
            seconds(with[round - 1])
        );
    }
    let (without, with) = (median(&mut without), median(&mut with));
    let overhead = (with.as_secs_f64() - without.as_secs_f64()) / without.as_secs_f64() * 100.0;
    println!(
        "{:>5}  {:>14}  {:>14}",
        "median",
        seconds(without),
        seconds(with)
    );
    println!(
        "capture costs the tour {overhead:+.1}% of its wall time (target: at most +10%): {}",
        if overhead <= 10.0 { "met" } else { "NOT met" }
    );
}

fn run_tour(exe: &str, capturing: bool) -> Duration {
    let mut command = Command::new(exe);
    if !capturing {
        command.arg("--no-capture");
    }
    let started = Instant::now();
    let status = command
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .status();
    let took = started.elapsed();
    match status {
        Ok(status) if status.success() => took,
        Ok(status) => panic!("the tour failed ({status}); see its errors above"),
        Err(e) => panic!("could not run {exe}: {e}"),
    }
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times[times.len() / 2]
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}
