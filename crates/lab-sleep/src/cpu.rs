//! Sleeping costs no CPU; busy-waiting does.
//!
//! A sleeping thread is not on any CPU: the kernel parks it on a timer and runs something
//! else (or lets the core idle). A loop that checks the clock until the time is up ("spin",
//! or busy-wait) waits just as long but keeps a core busy the whole time, stealing it from
//! every other program. The kernel counts each thread's CPU time; this experiment reads it
//! with `clock_gettime(CLOCK_THREAD_CPUTIME_ID)`, the calling thread's own CPU clock, so
//! other threads of the process (such as the test harness's) do not blur the figures.
//!
//! Why not `getrusage(RUSAGE_THREAD)`? On Linux it reports the CPU time accounted at the
//! last scheduler event, which for a thread that is running can lag by up to a scheduler
//! tick (4 ms at 250 Hz); measured here, it charged a 200 ms sleep with anything from 11 µs
//! to 3 ms. The thread CPU clock includes the time not yet accounted, to the nanosecond.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Error;

/// The clock this experiment reads, named in its output.
pub const CPU_CLOCK: &str = "clock_gettime(CLOCK_THREAD_CPUTIME_ID)";

/// Wall-clock time and CPU time of one way of waiting.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct WaitCost {
    /// Time that passed, by the monotonic clock.
    pub wall_us: u64,
    /// CPU time the thread used meanwhile, in its own code and in the kernel on its behalf:
    /// what the waiting cost the machine.
    pub cpu_us: u64,
    /// The same, in nanoseconds (a sleep's CPU time is often below a microsecond).
    pub cpu_ns: u64,
}

/// The result of the CPU-cost experiment.
#[derive(Debug, Clone, Serialize)]
pub struct CpuCostReport {
    pub experiment: &'static str,
    /// Which clock measured the CPU time.
    pub cpu_clock: &'static str,
    /// How long each way of waiting was asked to last.
    pub requested_us: u64,
    pub sleep: WaitCost,
    pub spin: WaitCost,
    /// How many times the spin loop looked at the clock.
    pub spin_clock_reads: u64,
}

/// CPU time used so far by the calling thread.
fn thread_cpu_time() -> Result<Duration, Error> {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid, writable timespec for the duration of the call.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut now) };
    if rc != 0 {
        return Err(Error::io(format!("{CPU_CLOCK} failed"))(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(Duration::new(
        u64::try_from(now.tv_sec).unwrap_or(0),
        u32::try_from(now.tv_nsec).unwrap_or(0),
    ))
}

/// Runs `wait` and measures the wall-clock and CPU time of the calling thread around it.
fn measure(wait: impl FnOnce()) -> Result<WaitCost, Error> {
    let cpu_before = thread_cpu_time()?;
    let started = Instant::now();
    wait();
    let wall = started.elapsed();
    let cpu = thread_cpu_time()?.saturating_sub(cpu_before);
    Ok(WaitCost {
        wall_us: lab_kit::narrate::saturating_micros(wall),
        cpu_us: lab_kit::narrate::saturating_micros(cpu),
        cpu_ns: lab_kit::narrate::saturating_nanos(cpu),
    })
}

/// Waits `duration` twice in the calling thread, once with `thread::sleep` and once by
/// spinning on the clock, and reports the CPU time each used.
pub fn compare_sleep_with_spin(duration: Duration) -> Result<CpuCostReport, Error> {
    let sleep = measure(|| std::thread::sleep(duration))?;
    let mut spin_clock_reads = 0u64;
    let spin = measure(|| {
        let started = Instant::now();
        // The busy-wait: ask "is it time yet?" as fast as the CPU allows.
        while started.elapsed() < duration {
            spin_clock_reads += 1;
            std::hint::spin_loop();
        }
    })?;
    Ok(CpuCostReport {
        experiment: "cpu_cost_sleep_vs_spin",
        cpu_clock: CPU_CLOCK,
        requested_us: lab_kit::narrate::saturating_micros(duration),
        sleep,
        spin,
        spin_clock_reads,
    })
}
