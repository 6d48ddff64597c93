//! The chapter's narration: each experiment's report told to a student, one function per
//! experiment and named after it (`narrate::tamper` tells what `experiments::tamper`
//! found), so that each can be snapshot-tested on its own, from a report made by hand.

use std::path::Path;

use lab_kit::narrate::Narrator;

use super::experiments::{
    ConversationReport, EavesdropReport, ImpostorReport, KeysReport, MutualTlsReport, SECRET,
    TamperReport, TruncationReport,
};
use std::io;

pub fn keys(report: &KeysReport, dir: &Path, n: &mut Narrator) -> io::Result<()> {
    n.section("1. Keys: a lab CA, a server certificate, a client certificate")?;
    n.say(&format!(
        "`lab-chat keygen --out {}` made (private keys readable by their owner only):",
        dir.display()
    ))?;
    for file in &report.files {
        let subject = file.subject.as_deref().unwrap_or("private key");
        n.fact(&file.name, format!("mode {}  {subject}", file.mode))?;
    }
    n.record(report)?;
    Ok(())
}

pub fn conversation(report: &ConversationReport, n: &mut Narrator) -> io::Result<()> {
    n.section("2. A conversation in both directions at once (TLS 1.3)")?;
    n.say(
        "The server speaks first, to a client whose user has typed nothing; then both \
         users type three lines at the same moment. Neither waits for the other.",
    )?;
    n.say("What the server printed:")?;
    for line in &report.server_output {
        n.evidence(line)?;
    }
    n.say("What the client printed:")?;
    for line in &report.client_output {
        n.evidence(line)?;
    }
    n.fact(
        "server spoke first",
        if report.server_spoke_first {
            "yes: the client showed it at once"
        } else {
            "NO"
        },
    )?;
    n.fact(
        "sent at once, received",
        format!(
            "{} each way; client got {}, server got {}",
            report.sent_at_once, report.client_received, report.server_received
        ),
    )?;
    n.record(report)?;
    Ok(())
}

pub fn eavesdrop(report: &EavesdropReport, n: &mut Narrator) -> io::Result<()> {
    if report.plaintext {
        n.section("3a. An eavesdropper in the middle of the --plaintext chat")?;
    } else {
        n.section("3b. The same eavesdropper in the middle of the TLS chat")?;
    }
    n.say(&format!(
        "The client sends {SECRET:?} through a relay that forwards every byte and keeps a copy:"
    ))?;
    for line in &report.capture {
        n.evidence(line)?;
    }
    n.fact("bytes captured", report.bytes_captured)?;
    n.fact(
        "secret in the capture",
        if report.secret_seen {
            "YES, byte for byte"
        } else {
            "no: only TLS records of ciphertext"
        },
    )?;
    n.fact(
        "chat still worked",
        if report.delivered { "yes" } else { "no" },
    )?;
    if !report.plaintext {
        n.say(
            "What it still learns: that these two talk, when, and how long each line is \
             (a record is the line plus 22 bytes: 5 of header, 1 of type, 16 of tag).",
        )?;
    }
    n.record(report)?;
    Ok(())
}

pub fn impostor(report: &ImpostorReport, n: &mut Narrator) -> io::Result<()> {
    n.section("4. An impostor with its own certificate for localhost")?;
    n.say(&format!(
        "A server presents a certificate for localhost ({}) signed by its own CA, not the \
         lab's. Encryption alone would not notice; the client's verification does:",
        report.impostor_subject.as_deref().unwrap_or("?")
    ))?;
    n.evidence(&format!("client: lab-chat: {}", report.client_error))?;
    n.evidence(&format!("impostor: {}", report.impostor_saw))?;
    n.fact(
        "impostor refused",
        if report.refused { "yes" } else { "NO" },
    )?;
    n.fact("lines the impostor got", report.lines_leaked)?;
    n.record(report)?;
    Ok(())
}

pub fn tamper(report: &TamperReport, n: &mut Narrator) -> io::Result<()> {
    if report.plaintext {
        n.section("5a. The man in the middle changes a --plaintext line in flight")?;
    } else {
        n.section("5b. The same attacker against TLS: it can only flip bits of ciphertext")?;
    }
    n.evidence(&format!("client sent: {}", report.sent))?;
    n.evidence(&format!("server: {}", report.server_saw))?;
    n.fact(
        "forgery accepted",
        if report.forgery_accepted {
            "YES: the server cannot tell"
        } else {
            "no"
        },
    )?;
    n.fact(
        "tampering detected",
        if report.detected {
            "yes: the record's tag did not verify; the session was ended"
        } else {
            "no"
        },
    )?;
    n.record(report)?;
    Ok(())
}

pub fn truncation(report: &TruncationReport, n: &mut Narrator) -> io::Result<()> {
    if report.plaintext {
        n.section("6b. The same cut, in the --plaintext chat")?;
    } else {
        n.section("6a. The relay cuts the TLS chat (a bare FIN, no close_notify)")?;
    }
    n.evidence(&format!("server: {}", report.server_saw))?;
    n.evidence(&format!("client: {}", report.client_saw))?;
    n.fact(
        "truncation detected",
        if report.detected {
            "yes"
        } else {
            "no: it looks exactly like a goodbye"
        },
    )?;
    n.record(report)?;
    Ok(())
}

pub fn mutual_tls(report: &MutualTlsReport, n: &mut Narrator) -> io::Result<()> {
    n.section("7. Mutual TLS: the server asks who the client is (--require-client-cert)")?;
    n.fact(
        "client with certificate",
        format!(
            "let in as {}",
            report.client_subject.as_deref().unwrap_or("?")
        ),
    )?;
    n.evidence(&format!("server: {}", report.server_saw))?;
    n.evidence(&format!(
        "client without one: {}",
        report.anonymous_client_saw
    ))?;
    n.record(report)?;
    Ok(())
}
