//! The room's members and how a line reaches them: the member list behind one lock, each
//! member's mailbox (an unbounded queue whose bytes are counted by its [`Backlog`], so a
//! slow member is dropped, not buffered without bound), the speaker that turns a read's
//! lines into one batch, and the writer task that turns a queue into as few TLS writes as
//! possible.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::timeout;

use super::rules::{Backlog, RateLimit, check_name, line_cost};
use super::{ANNOUNCE_UP_TO, RoomOptions, WELCOME_NAMES, WRITE_TIMEOUT};
use crate::session::{ChatEvent, EXIT_WORD, EventSink, NOTICE_PREFIX};

/// What a member's writer task is told to do.
#[derive(Debug)]
pub(super) enum Outgoing {
    /// Lines for this member (one or more, without the final newline), shared by every
    /// recipient.
    Lines(Arc<str>),
    /// The room closes: our goodbye (`Exit`), then `close_notify`.
    Leave,
    /// Too far behind: one notice, then `close_notify`.
    Drop(String),
    /// The peer broke the rules: one error line, then `close_notify`.
    Error(String),
    /// The peer closed its side: answer with our `close_notify`.
    Close,
    /// The peer vanished: stop at once.
    Abort,
}

/// Where a member's lines go: its writer task, and the count of what waits there.
#[derive(Debug, Clone)]
pub(super) struct Mailbox {
    pub(super) tx: UnboundedSender<Outgoing>,
    pub(super) backlog: Arc<Backlog>,
}

impl Mailbox {
    /// Queues `text` (counted in the backlog until written); the new backlog.
    pub(super) fn lines(&self, text: Arc<str>) -> usize {
        let unsent = self.backlog.push(text.len() + 1);
        let _ = self.tx.send(Outgoing::Lines(text));
        unsent
    }

    pub(super) fn tell(&self, text: String) {
        self.lines(Arc::from(text));
    }
}

pub(super) struct Member {
    pub(super) id: u64,
    pub(super) name: String,
    /// The name came from a verified client certificate and cannot be changed.
    pub(super) certified: bool,
    pub(super) mailbox: Mailbox,
}

pub(super) struct Room {
    pub(super) members: Mutex<Vec<Member>>,
    pub(super) options: RoomOptions,
    pub(super) events: EventSink,
    pub(super) next_guest: AtomicU64,
    pub(super) stopping: AtomicBool,
}

/// Why a member could not join.
pub(super) enum JoinRefused {
    Full(usize),
    NameTaken(String),
}

impl Room {
    pub(super) fn lock(&self) -> MutexGuard<'_, Vec<Member>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `text` (one or more lines) for every member except `from`; drops members
    /// whose backlog reached twice the limit (their writer is stuck).
    pub(super) fn broadcast(&self, from: Option<u64>, text: &str) {
        // One copy of the text, shared by every member's queue.
        let shared: Arc<str> = Arc::from(text);
        let mut dropped = Vec::new();
        {
            let mut members = self.lock();
            members.retain(|member| {
                if Some(member.id) == from {
                    return true;
                }
                let backlog = &member.mailbox.backlog;
                if member.mailbox.lines(Arc::clone(&shared)) > 2 * backlog.limit() {
                    let reason = backlog.drop_reason();
                    backlog.drop_with(reason.clone());
                    let _ = member.mailbox.tx.send(Outgoing::Drop(reason));
                    dropped.push(member.name.clone());
                    return false;
                }
                !member.mailbox.tx.is_closed()
            });
        }
        for name in dropped {
            self.announce_dropped(&name);
        }
    }

    pub(super) fn announce_dropped(&self, name: &str) {
        let reason = format!("more than {} bytes behind", self.options.max_backlog);
        (self.events)(ChatEvent::Dropped {
            name: name.to_string(),
            reason: reason.clone(),
        });
        self.broadcast(None, &format!("* {name} was dropped: {reason}"));
    }

    pub(super) fn name_of(&self, id: u64) -> Option<String> {
        self.lock()
            .iter()
            .find(|m| m.id == id)
            .map(|m| m.name.clone())
    }

    /// Adds a member, unless the room is full or the name is taken; returns the first
    /// [`WELCOME_NAMES`] of those already here, and how many they are.
    pub(super) fn join(&self, member: Member) -> Result<(Vec<String>, usize), JoinRefused> {
        let mut members = self.lock();
        if members.len() >= self.options.max_members {
            return Err(JoinRefused::Full(self.options.max_members));
        }
        if members
            .iter()
            .any(|m| m.name.eq_ignore_ascii_case(&member.name))
        {
            return Err(JoinRefused::NameTaken(member.name));
        }
        let here = members
            .iter()
            .take(WELCOME_NAMES)
            .map(|m| m.name.clone())
            .collect();
        let count = members.len();
        members.push(member);
        Ok((here, count))
    }

    /// Whether joins and leaves are told to everyone (see [`ANNOUNCE_UP_TO`]).
    pub(super) fn announces(&self) -> bool {
        self.lock().len() <= ANNOUNCE_UP_TO
    }

    /// Removes a member; false if it was already gone (dropped).
    pub(super) fn remove(&self, id: u64) -> bool {
        let mut members = self.lock();
        let before = members.len();
        members.retain(|m| m.id != id);
        members.len() != before
    }

    /// Handles `/name NEW`: the notice to send back to the member only, if any.
    pub(super) fn rename(&self, id: u64, wanted: &str) -> Option<String> {
        if let Err(rule) = check_name(wanted) {
            return Some(format!("* {rule}"));
        }
        let from = {
            let mut members = self.lock();
            let taken = members
                .iter()
                .any(|m| m.id != id && m.name.eq_ignore_ascii_case(wanted));
            if taken {
                return Some(format!("* the name {wanted} is taken"));
            }
            let member = members.iter_mut().find(|m| m.id == id)?;
            if member.certified {
                return Some(format!(
                    "* your name comes from your certificate: {}",
                    member.name
                ));
            }
            std::mem::replace(&mut member.name, wanted.to_string())
        };
        (self.events)(ChatEvent::Renamed {
            from: from.clone(),
            to: wanted.to_string(),
        });
        self.broadcast(None, &format!("* {from} is now {wanted}"));
        None
    }

    /// The room closes: every member says goodbye.
    pub(super) fn close(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for member in self.lock().iter() {
            let _ = member.mailbox.tx.send(Outgoing::Leave);
        }
    }
}

/// A member's lines on their way to the room: the rate limit, `/name`, the `NAME: ` prefix.
/// The lines of one read are gathered into one batch: [`begin`](Self::begin), a
/// [`line`](Self::line) each, [`finish`](Self::finish).
pub(super) struct Speaker {
    pub(super) id: u64,
    pub(super) room: Arc<Room>,
    pub(super) mailbox: Mailbox,
    pub(super) rate: RateLimit,
    /// The member's name as the batch began (or after its `/name`).
    pub(super) name: String,
    pub(super) batch: String,
    /// Lines of this batch past the rate limit.
    pub(super) over_rate: usize,
}

impl Speaker {
    pub(super) fn begin(&mut self) {
        self.name = self.room.name_of(self.id).unwrap_or_default();
        self.batch.clear();
        self.over_rate = 0;
    }

    pub(super) fn line(&mut self, text: &str) {
        let room = &self.room;
        if !self.rate.allow(line_cost(text)) {
            self.over_rate += 1;
            return;
        }
        if let Some(wanted) = text.strip_prefix("/name ") {
            // What was said before the new name goes out under the old one.
            if !self.batch.is_empty() {
                room.broadcast(Some(self.id), &self.batch);
                self.batch.clear();
            }
            if let Some(notice) = room.rename(self.id, wanted.trim()) {
                self.mailbox.tell(notice);
            }
            self.name = room.name_of(self.id).unwrap_or_default();
            return;
        }
        if !self.batch.is_empty() {
            self.batch.push('\n');
        }
        self.batch.push_str(&self.name);
        self.batch.push_str(": ");
        self.batch.push_str(text);
    }

    pub(super) fn finish(&mut self) {
        let room = &self.room;
        if !self.batch.is_empty() {
            room.broadcast(Some(self.id), &self.batch);
            self.batch.clear();
        }
        if self.over_rate > 0 {
            self.mailbox.tell(format!(
                "* slow down: {} of your lines were not relayed (at most {} lines a second, \
                 a line costing one more per KiB)",
                self.over_rate, room.options.max_lines_per_second
            ));
            self.over_rate = 0;
        }
    }
}

/// A member's writer task: takes every line already queued (up to 64 KiB) into one write,
/// and ends with a goodbye, a notice, or nothing, as it is told.
pub(super) async fn write_member(
    mut writer: impl AsyncWrite + Unpin,
    mut queue: UnboundedReceiver<Outgoing>,
    backlog: Arc<Backlog>,
) {
    let mut bytes = Vec::new();
    loop {
        let Some(first) = queue.recv().await else {
            return;
        };
        bytes.clear();
        let mut next = Some(first);
        let mut end = None;
        while let Some(item) = next.take().or_else(|| queue.try_recv().ok()) {
            match item {
                Outgoing::Lines(text) => {
                    bytes.extend_from_slice(text.as_bytes());
                    bytes.push(b'\n');
                    if bytes.len() >= 64 * 1024 {
                        break;
                    }
                }
                other => {
                    end = Some(other);
                    break;
                }
            }
        }
        // Marked as dropped (here, or by the room): the queue is abandoned.
        if let Some(reason) = backlog.dropped() {
            end = Some(Outgoing::Drop(reason));
            bytes.clear();
        }
        if !bytes.is_empty() {
            let written = timeout(WRITE_TIMEOUT, async {
                writer.write_all(&bytes).await?;
                writer.flush().await
            })
            .await;
            if !matches!(written, Ok(Ok(()))) {
                return;
            }
            // The bytes are with the kernel now; what is still queued is really unsent.
            backlog.sent(bytes.len());
            if let Some(reason) = backlog.too_far_behind() {
                backlog.drop_with(reason);
            }
        }
        let last_words = match end {
            None => continue,
            Some(Outgoing::Leave) => Some(format!("{EXIT_WORD}\n")),
            Some(Outgoing::Drop(reason)) => Some(format!("{NOTICE_PREFIX}{reason}\n")),
            Some(Outgoing::Error(error)) => {
                Some(format!("{NOTICE_PREFIX}error: {error}; disconnecting\n"))
            }
            Some(Outgoing::Close) => None,
            Some(Outgoing::Abort | Outgoing::Lines(_)) => return,
        };
        let _ = timeout(Duration::from_secs(2), async {
            if let Some(words) = last_words {
                writer.write_all(words.as_bytes()).await?;
            }
            // close_notify, then FIN.
            writer.shutdown().await
        })
        .await;
        return;
    }
}
