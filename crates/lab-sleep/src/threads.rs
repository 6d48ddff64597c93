//! A sleep suspends only the calling thread, not the process.
//!
//! The kernel schedules threads, not programs. `sleep` takes the *calling* thread off the
//! CPU and leaves every other thread of the process runnable. Here a second thread counts as
//! fast as it can while the calling thread sleeps: if sleep paused the whole process, the
//! count would not move. (In Python the same holds: `time.sleep` releases the GIL, so other
//! Python threads run while one sleeps.)

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Error;

/// The counter gives up by itself after this long, whatever happens to the sleeper.
const COUNTER_SAFETY_LIMIT: Duration = Duration::from_secs(60);

/// The result of counting in one thread while another sleeps.
#[derive(Debug, Clone, Serialize)]
pub struct OnlyCallingThreadReport {
    pub experiment: &'static str,
    /// How long the calling thread asked to sleep, and how long it was away.
    pub requested_us: u64,
    pub slept_us: u64,
    /// The other thread's count just before and just after the sleep.
    pub count_before_sleep: u64,
    pub count_after_sleep: u64,
    /// How far the other thread counted while the calling thread slept.
    pub counted_during_sleep: u64,
}

/// Starts a counting thread, sleeps `sleep` in the calling thread, and reads the count
/// before and after.
pub fn count_while_main_thread_sleeps(sleep: Duration) -> Result<OnlyCallingThreadReport, Error> {
    let count = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Both threads meet here, so the sleep starts only once the counter is really running.
    let started = Arc::new(Barrier::new(2));

    let counter = {
        let (count, stop, started) = (Arc::clone(&count), Arc::clone(&stop), Arc::clone(&started));
        thread::spawn(move || {
            started.wait();
            let give_up = Instant::now() + COUNTER_SAFETY_LIMIT;
            while !stop.load(Ordering::Relaxed) {
                let n = count.fetch_add(1, Ordering::Relaxed) + 1;
                if n % 1_000_000 == 0 && Instant::now() > give_up {
                    break;
                }
            }
        })
    };

    started.wait();
    let count_before_sleep = count.load(Ordering::Relaxed);
    let sleep_started = Instant::now();
    thread::sleep(sleep);
    let slept = sleep_started.elapsed();
    let count_after_sleep = count.load(Ordering::Relaxed);
    stop.store(true, Ordering::Relaxed);
    counter
        .join()
        .map_err(|_| Error::ThreadPanicked("counter"))?;

    Ok(OnlyCallingThreadReport {
        experiment: "only_calling_thread_sleeps",
        requested_us: lab_kit::narrate::saturating_micros(sleep),
        slept_us: lab_kit::narrate::saturating_micros(slept),
        count_before_sleep,
        count_after_sleep,
        counted_during_sleep: count_after_sleep.saturating_sub(count_before_sleep),
    })
}
