//! The chapter (and `lab-chat demo`): why each property of the secure chat matters, shown
//! live in one non-interactive run on loopback.
//!
//! 1. **Keys**: a throw-away lab CA, a server certificate for `localhost`, a client
//!    certificate, in a temporary folder.
//! 2. **A conversation in both directions at once**: the server speaks first, to a client
//!    whose user has typed nothing; then both sides send at the same moment.
//! 3. **An eavesdropper** (a relay in the middle, [`crate::eavesdrop`]) reads every word
//!    of the `--plaintext` chat and none of the TLS chat.
//! 4. **An impostor** answers with its own certificate for `localhost`: the client refuses
//!    it, with the verification error, before sending a single line.
//! 5. **Tampering**: the relay rewrites a plaintext line undetected; a TLS record changed
//!    by one bit is refused.
//! 6. **Truncation**: the relay cuts the connection; TLS notices the missing
//!    `close_notify`, plaintext cannot tell a cut from a goodbye.
//! 7. **Mutual TLS**: a server that requires a client certificate names the client, and
//!    turns away a client without one.
//!
//! Everything runs in this process (threads, real sockets on 127.0.0.1), so the chapter
//! works the same from `lab-chat demo` and from the tour. Each experiment
//! ([`experiments`]) returns a plain struct; narration ([`narrate`]) is separate.

pub mod experiments;
pub mod narrate;

use lab_capture::Wiretap;
use lab_kit::narrate::Narrator;
use lab_kit::probe::Probe;
use serde::Serialize;

pub use experiments::*;

use crate::Error;

/// Everything the demo measured, for tests.
#[derive(Debug, Clone, Serialize)]
pub struct DemoReport {
    pub keys: KeysReport,
    pub conversation: ConversationReport,
    pub eavesdrop_plaintext: EavesdropReport,
    pub eavesdrop_tls: EavesdropReport,
    pub impostor: ImpostorReport,
    pub tamper_plaintext: TamperReport,
    pub tamper_tls: TamperReport,
    pub truncation_tls: TruncationReport,
    pub truncation_plaintext: TruncationReport,
    pub mutual_tls: MutualTlsReport,
}

/// Runs and narrates every experiment; returns what was measured.
pub fn run_demo(n: &mut Narrator) -> Result<DemoReport, Error> {
    run_demo_watched(n, &Wiretap::off())
}

/// Like [`run_demo`], with the conversation's packets captured by `tap`.
pub fn run_demo_watched(n: &mut Narrator, tap: &Wiretap) -> Result<DemoReport, Error> {
    n.heading(&crate::CHAPTER.heading())
        .map_err(Error::Narration)?;
    n.say(
        "Every step below runs now, on this machine, over real sockets on 127.0.0.1: \
         a TLS 1.3 chat (rustls), its --plaintext twin, an eavesdropper, an impostor, a cut.",
    )
    .map_err(Error::Narration)?;
    let dir = tempfile::Builder::new().prefix("lab-chat-demo").tempdir()?;
    let certs_dir = dir.path().join("certs");
    let (files, keys) = make_keys(&certs_dir)?;
    narrate::keys(&keys, &certs_dir, n).map_err(Error::Narration)?;
    let conversation = conversation_watched(&files, tap)?;
    narrate::conversation(&conversation, n).map_err(Error::Narration)?;
    crate::on_the_wire::conversation(&conversation, tap, n).map_err(Error::Narration)?;
    let eavesdrop_plaintext = eavesdrop(&files, true)?;
    narrate::eavesdrop(&eavesdrop_plaintext, n).map_err(Error::Narration)?;
    let eavesdrop_tls = eavesdrop(&files, false)?;
    narrate::eavesdrop(&eavesdrop_tls, n).map_err(Error::Narration)?;
    let impostor = impostor_watched(&files, tap)?;
    narrate::impostor(&impostor, n).map_err(Error::Narration)?;
    crate::on_the_wire::impostor(&impostor, tap, n).map_err(Error::Narration)?;
    let tamper_plaintext = tamper(&files, true)?;
    narrate::tamper(&tamper_plaintext, n).map_err(Error::Narration)?;
    let tamper_tls = tamper(&files, false)?;
    narrate::tamper(&tamper_tls, n).map_err(Error::Narration)?;
    let truncation_tls = truncation_watched(&files, false, tap)?;
    narrate::truncation(&truncation_tls, n).map_err(Error::Narration)?;
    crate::on_the_wire::truncation(&truncation_tls, tap, n).map_err(Error::Narration)?;
    let truncation_plaintext = truncation(&files, true)?;
    narrate::truncation(&truncation_plaintext, n).map_err(Error::Narration)?;
    let mutual_tls = mutual_tls(&files)?;
    narrate::mutual_tls(&mutual_tls, n).map_err(Error::Narration)?;
    n.answer(crate::CHAPTER.answer).map_err(Error::Narration)?;
    n.elsewhere(crate::CHAPTER.elsewhere)
        .map_err(Error::Narration)?;
    Ok(DemoReport {
        keys,
        conversation,
        eavesdrop_plaintext,
        eavesdrop_tls,
        impostor,
        tamper_plaintext,
        tamper_tls,
        truncation_tls,
        truncation_plaintext,
        mutual_tls,
    })
}

/// The tour's chapter 5 (`socket-lab chat`) and `lab-chat demo`.
pub fn chapter(narrator: &mut Narrator, _probe: &Probe) -> Result<(), Error> {
    run_demo(narrator).map(|_| ())
}

/// Chapter 5 with the conversation's packets captured by `tap`.
pub fn chapter_watched(
    narrator: &mut Narrator,
    _probe: &Probe,
    tap: &Wiretap,
) -> Result<(), Error> {
    run_demo_watched(narrator, tap).map(|_| ())
}
