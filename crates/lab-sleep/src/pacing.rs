//! What sleep is for, and what it is not for.
//!
//! **For pacing and backoff.** A sender that must not flood its peer (a heartbeat, a polite
//! crawler, a game's tick) sleeps between messages; a client retrying a refused connection
//! sleeps longer after each failure (lab 1's retry loop). There the delay *is* the goal.
//!
//! **Not for waiting for something to happen.** A receiver that sleeps "until the data is
//! probably there" guesses: too short and it checks again in vain, too long and the data
//! waits for it. A blocking `recv` (or `accept`, or `connect`, each with a timeout) lets the
//! kernel wake the thread *when the event happens*. Here a sender paces datagrams with sleep,
//! and the receiver blocks in `recv`: each message is received microseconds after it was
//! sent, whatever the interval.

use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::Error;

/// How many datagrams the paced sender sends.
pub const MESSAGES: usize = 5;
/// The pause between them.
pub const INTERVAL: Duration = Duration::from_millis(50);
/// The receiver gives up after this long without a datagram (only if something broke).
const DEADLINE: Duration = Duration::from_secs(10);

/// One paced datagram, timed from the start of the run.
#[derive(Debug, Clone, Serialize)]
pub struct PacedMessage {
    /// When the sender called `send`, and the time since its previous send.
    pub sent_at_us: u64,
    pub gap_since_previous_send_us: Option<u64>,
    /// When the receiver's blocking `recv` returned with it, and the difference.
    pub received_at_us: u64,
    pub delivery_us: u64,
}

/// The result of the pacing experiment.
#[derive(Debug, Clone, Serialize)]
pub struct PacingReport {
    pub experiment: &'static str,
    /// The sender's pause between datagrams.
    pub interval_us: u64,
    pub messages: Vec<PacedMessage>,
    /// The shortest gap between two sends: at least the interval.
    pub min_send_gap_us: u64,
    /// The median time from `send` to the blocking `recv` returning.
    pub median_delivery_us: u64,
}

/// A thread sends `count` datagrams to a UDP socket on 127.0.0.1, sleeping `interval`
/// between them; the calling thread receives them with a blocking `recv`.
pub fn paced_sender_blocking_receiver(
    count: usize,
    interval: Duration,
) -> Result<PacingReport, Error> {
    let receiver =
        UdpSocket::bind("127.0.0.1:0").map_err(Error::io("could not bind 127.0.0.1:0 (UDP)"))?;
    receiver
        .set_read_timeout(Some(DEADLINE))
        .map_err(Error::io("could not set the receiver's timeout"))?;
    let receiver_addr = receiver
        .local_addr()
        .map_err(Error::io("could not read the receiver's address"))?;
    let sender =
        UdpSocket::bind("127.0.0.1:0").map_err(Error::io("could not bind 127.0.0.1:0 (UDP)"))?;
    let start = Instant::now();

    let paced_sender = thread::spawn(move || -> Result<Vec<Duration>, Error> {
        let mut sent_at = Vec::with_capacity(count);
        for number in 0..count {
            if number > 0 {
                // Pacing: here the delay is the point.
                thread::sleep(interval);
            }
            // Timed just *before* the send: the datagram cannot arrive before it was sent, so
            // "received - sent" is a true delivery time, and each gap is at least `interval`.
            sent_at.push(start.elapsed());
            sender
                .send_to(format!("message {number}").as_bytes(), receiver_addr)
                .map_err(Error::io("the paced sender could not send"))?;
        }
        Ok(sent_at)
    });

    let mut received_at = Vec::with_capacity(count);
    let mut buffer = [0u8; 512];
    let mut receive_error = None;
    for _ in 0..count {
        // Blocking: the kernel wakes this thread when a datagram arrives, not before, not later.
        match receiver.recv(&mut buffer) {
            Ok(_) => received_at.push(start.elapsed()),
            Err(e) => {
                receive_error = Some(Error::io("the receiver's blocking recv failed")(e));
                break;
            }
        }
    }
    let sent_at = paced_sender
        .join()
        .map_err(|_| Error::ThreadPanicked("paced sender"))??;
    if let Some(error) = receive_error {
        return Err(error);
    }

    let messages: Vec<PacedMessage> = sent_at
        .iter()
        .zip(&received_at)
        .enumerate()
        .map(|(i, (&sent, &received))| PacedMessage {
            sent_at_us: lab_kit::narrate::saturating_micros(sent),
            gap_since_previous_send_us: i.checked_sub(1).map(|previous| {
                lab_kit::narrate::saturating_micros(sent.saturating_sub(sent_at[previous]))
            }),
            received_at_us: lab_kit::narrate::saturating_micros(received),
            delivery_us: lab_kit::narrate::saturating_micros(received.saturating_sub(sent)),
        })
        .collect();
    let min_send_gap_us = messages
        .iter()
        .filter_map(|m| m.gap_since_previous_send_us)
        .min()
        .unwrap_or(0);
    let mut deliveries: Vec<u64> = messages.iter().map(|m| m.delivery_us).collect();
    deliveries.sort_unstable();
    Ok(PacingReport {
        experiment: "pacing_with_sleep",
        interval_us: lab_kit::narrate::saturating_micros(interval),
        min_send_gap_us,
        median_delivery_us: deliveries.get(deliveries.len() / 2).copied().unwrap_or(0),
        messages,
    })
}
