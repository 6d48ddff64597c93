//! The docs as a student reads them: each chapter page answers first (in at most ten lines),
//! has an "On your machine" table (Linux / macOS / Windows) in which every fact names its
//! source and only Linux facts are marked "measured here" (the lab measures Linux), links its
//! Python twin and the glossary, and does not paste the tour's answer again. Every relative
//! link resolves. The Linux facts themselves are proven by the tests each page's last table
//! names; this file checks that the facts about the other systems are present, with a source.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The chapter pages, with their Python twins, from the tour's own list.
fn chapters() -> Vec<(&'static str, String)> {
    socket_lab::CHAPTERS
        .iter()
        .map(|chapter| (chapter.docs, chapter.twin.shown_as()))
        .collect()
}

const TABLE_HEADER: &str = "| Fact | Linux | macOS | Windows | Sources |";

/// Which column a required fact is in.
#[derive(Debug, Clone, Copy)]
enum System {
    Linux = 1,
    MacOS = 2,
    Windows = 3,
}

/// (page, words of the row's "Fact" cell, column, what that cell must say, what the
/// "Sources" cell must name).
const REQUIRED: &[(&str, &str, System, &str, &str)] = &[
    // Question 1.
    (
        "01",
        "closed port",
        System::Linux,
        "errno 111",
        "ubuntu-latest",
    ),
    ("01", "closed port", System::MacOS, "errno 61", "errno.h"),
    ("01", "closed port", System::MacOS, "at once", "macos-15"),
    (
        "01",
        "closed port",
        System::Windows,
        "[WinError 10061]",
        "KB 175523",
    ),
    (
        "01",
        "closed port",
        System::Windows,
        "about 2 s",
        "unsloth PR 11213",
    ),
    (
        "01",
        "resend the SYN after the RST",
        System::Windows,
        "SIO_TCP_INITIAL_RTO",
        "TCP_INITIAL_RTO_PARAMETERS",
    ),
    (
        "01",
        "resend the SYN after the RST",
        System::Linux,
        "TCP_INFO",
        "KB 175523",
    ),
    (
        "01",
        "unanswered SYN is resent",
        System::MacOS,
        "1, 1, 1, 1, 1, 2, 4, 8",
        "tcp_syn_backoff",
    ),
    (
        "01",
        "accept queue is full",
        System::Windows,
        "refused",
        "`listen` function",
    ),
    (
        "01",
        "accept queue is full",
        System::MacOS,
        "ignored",
        "`listen(2)`",
    ),
    (
        "01",
        "unanswered SYN is resent",
        System::Linux,
        "1 s after the first",
        "ccce324dabfe",
    ),
    (
        "01",
        "unanswered SYN is resent",
        System::Linux,
        "1, 3, 7, 15, 31, 63 s",
        "ip-sysctl.rst",
    ),
    (
        "01",
        "unanswered SYN is resent",
        System::Windows,
        "21 s",
        "TcpMaxConnectRetransmissions",
    ),
    (
        "01",
        "host that is down",
        System::Linux,
        "EHOSTUNREACH",
        "arp(7)",
    ),
    (
        "01",
        "firewall that drops",
        System::Windows,
        "WinError 10060",
        "stealth mode",
    ),
    (
        "01",
        "UDP to a closed port",
        System::Windows,
        "[WinError 10054]",
        "SIO_UDP_CONNRESET",
    ),
    // Question 2.
    (
        "02",
        "resolves to",
        System::Windows,
        "`::1` first",
        "cpython issue 106130",
    ),
    (
        "02",
        "resolves to",
        System::MacOS,
        "`::1` first",
        "RFC 6724",
    ),
    (
        "02",
        "create_connection",
        System::Windows,
        "about 2 s",
        "cpython issue 106130",
    ),
    (
        "02",
        "create_connection",
        System::Linux,
        "each address in order",
        "Lib/socket.py",
    ),
    (
        "02",
        "socket.socket()",
        System::Windows,
        "the same",
        "socket.socket",
    ),
    (
        "02",
        "socket.socket()",
        System::Linux,
        "IPv4 only",
        "socket.socket",
    ),
    (
        "02",
        "belong to loopback",
        System::MacOS,
        "errno 49",
        "ifconfig lo0",
    ),
    (
        "02",
        "belong to loopback",
        System::Windows,
        "127.0.0.0/8",
        "RFC 1122",
    ),
    ("02", "MTU", System::MacOS, "16384", "ifconfig lo0"),
    (
        "02",
        "`[::]`",
        System::Windows,
        "IPv6 only",
        "Dual-Stack Sockets",
    ),
    (
        "02",
        "Ephemeral range",
        System::Windows,
        "49152–65535",
        "KB 929851",
    ),
    (
        "02",
        "Ephemeral range",
        System::MacOS,
        "49152–65535",
        "portrange",
    ),
    // Question 3.
    (
        "03",
        "asks the system for",
        System::Linux,
        "clock_nanosleep",
        "What's New In Python 3.11",
    ),
    (
        "03",
        "asks the system for",
        System::Linux,
        "Python 3.10: `select()`",
        "timemodule.c",
    ),
    (
        "03",
        "asks the system for",
        System::MacOS,
        "nanosleep",
        "timemodule.c",
    ),
    (
        "03",
        "asks the system for",
        System::Windows,
        "waitable timer",
        "What's New In Python 3.11",
    ),
    (
        "03",
        "shorter than asked",
        System::Windows,
        "15.6 ms",
        "`Sleep` function",
    ),
    (
        "03",
        "shorter than asked",
        System::Linux,
        "at least its request",
        "POSIX",
    ),
    (
        "03",
        "inside `asyncio`",
        System::Windows,
        "the same",
        "Developing with asyncio",
    ),
    (
        "03",
        "inside `asyncio`",
        System::Linux,
        "blocks the whole event loop",
        "asyncio",
    ),
    (
        "03",
        "Clock to measure with",
        System::Linux,
        "perf_counter",
        "time.perf_counter",
    ),
    // Question 4.
    (
        "04",
        "Peer reset",
        System::MacOS,
        "errno 54",
        "bsd/sys/errno.h",
    ),
    (
        "04",
        "Peer reset",
        System::Windows,
        "10054",
        "Windows Sockets Error Codes",
    ),
    (
        "04",
        "Address in use",
        System::Windows,
        "10048",
        "the same three",
    ),
    (
        "04",
        "Address in use",
        System::MacOS,
        "errno 48",
        "the same three",
    ),
    (
        "04",
        "Sending after the peer's reset",
        System::Linux,
        "BrokenPipeError",
        "OS exceptions",
    ),
    (
        "04",
        "Non-blocking",
        System::Windows,
        "10035",
        "the same three",
    ),
    (
        "04",
        "`SO_REUSEADDR`",
        System::Windows,
        "SO_EXCLUSIVEADDRUSE",
        "Using SO_REUSEADDR and SO_EXCLUSIVEADDRUSE",
    ),
    (
        "04",
        "`listen(backlog)`",
        System::Linux,
        "backlog + 1",
        "SOMAXCONN to 4096",
    ),
    (
        "04",
        "`listen(backlog)`",
        System::MacOS,
        "kern.ipc.somaxconn",
        "macOS `listen(2)`",
    ),
    (
        "04",
        "`close()` with unread data",
        System::Linux,
        "sends a reset",
        "RFC 1122",
    ),
    // Question 5.
    (
        "05",
        "blocking `SSLSocket.close()`",
        System::Linux,
        "**no** `close_notify`",
        "unwrap()",
    ),
    (
        "05",
        "blocking `SSLSocket.close()`",
        System::Windows,
        "the same",
        "unwrap()",
    ),
    (
        "05",
        "cut without `close_notify`",
        System::Linux,
        "SSLEOFError",
        "suppress_ragged_eofs",
    ),
    (
        "05",
        "`writer.close()`",
        System::Linux,
        "sends `close_notify`",
        "sslproto.py",
    ),
    (
        "05",
        "Reading the keyboard",
        System::Windows,
        "fails on a console",
        "Platform Support",
    ),
    (
        "05",
        "Cipher negotiated",
        System::Linux,
        "AES_256_GCM",
        "OPENSSL_VERSION",
    ),
    (
        "05",
        "trusts with no `cafile`",
        System::Windows,
        "system stores",
        "load_default_certs",
    ),
];

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// The lines of the `## title` section (up to the next `## `).
fn section<'a>(page: &'a str, title: &str) -> Vec<&'a str> {
    let heading = format!("## {title}");
    let mut lines = page.lines().skip_while(|l| l.trim_end() != heading);
    assert!(lines.next().is_some(), "no section {heading:?}");
    lines.take_while(|l| !l.starts_with("## ")).collect()
}

/// The rows of the "On your machine" table, as cells.
fn table(page: &str, name: &str) -> Vec<Vec<String>> {
    let lines = section(page, "On your machine");
    let mut rows = lines.iter().skip_while(|l| !l.starts_with('|'));
    assert_eq!(
        rows.next().map(|l| l.trim_end()),
        Some(TABLE_HEADER),
        "{name}: the table's header"
    );
    rows.next(); // |---|---|
    rows.take_while(|l| l.starts_with('|'))
        .map(|row| {
            let cells: Vec<String> = row
                .trim()
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_string())
                .collect();
            assert_eq!(cells.len(), 5, "{name}: a row needs five cells: {row}");
            cells
        })
        .collect()
}

#[test]
fn each_chapter_answers_first_in_at_most_ten_lines() {
    for (page, _) in chapters() {
        let text = read(page);
        let first = text.lines().find(|l| l.starts_with("## ")).unwrap();
        assert_eq!(first, "## The answer", "{page}: the answer comes first");
        let lines = section(&text, "The answer")
            .into_iter()
            .filter(|l| !l.trim().is_empty())
            .count();
        assert!(lines <= 10, "{page}: the answer takes {lines} lines");
    }
}

#[test]
fn every_fact_about_each_system_is_present_with_its_source() {
    for (page, _) in chapters() {
        let rows = table(&read(page), page);
        assert!(rows.len() >= 5, "{page}: only {} rows", rows.len());
        for row in &rows {
            assert!(
                row.iter().all(|c| !c.is_empty()),
                "{page}: an empty cell in {row:?}"
            );
            assert!(row[4].len() > 5, "{page}: no source for {row:?}");
            // This lab measures Linux: only Linux facts may say "measured here".
            for (column, cell) in row.iter().enumerate() {
                if column != 1 {
                    assert!(!cell.contains("(measured here"), "{page}: {cell}");
                }
            }
        }
        assert!(
            rows.iter().any(|r| r[1].contains("(measured here")),
            "{page}: which Linux facts were measured here?"
        );
    }
    for (number, fact, os, says, source) in REQUIRED {
        let page = chapters()
            .into_iter()
            .map(|(page, _)| page)
            .find(|page| page.starts_with(&format!("docs/{number}")))
            .unwrap();
        let rows = table(&read(page), page);
        let row = rows
            .iter()
            .find(|r| r[0].contains(fact))
            .unwrap_or_else(|| panic!("{page}: no row about {fact:?}"));
        assert!(
            row[*os as usize].contains(says),
            "{page}, {fact:?}, {os:?}: {:?} does not say {says:?}",
            row[*os as usize]
        );
        assert!(
            row[4].contains(source),
            "{page}, {fact:?}: the sources {:?} do not name {source:?}",
            row[4]
        );
    }
}

#[test]
fn each_chapter_links_its_python_twin_and_the_glossary() {
    for (page, twin) in chapters() {
        let text = read(page);
        assert!(text.contains(&twin), "{page} does not name {twin}");
        assert!(root().join(&twin).is_file(), "{twin} is missing");
        assert!(
            text.contains("(glossary.md)"),
            "{page} does not link the glossary"
        );
    }
    let glossary = read("docs/glossary.md");
    for term in [
        "**SYN, SYN-ACK, ACK**",
        "**RST (reset)**",
        "**errno**",
        "**WinError**",
        "**listen, backlog, accept queue**",
        "**port 0, ephemeral port**",
        "**`close_notify`**",
        "**loopback**",
    ] {
        assert!(glossary.contains(term), "the glossary lacks {term}");
    }
}

#[test]
fn no_page_pastes_the_tours_answer_again() {
    for (page, _) in chapters() {
        let mut in_code = false;
        for line in read(page).lines() {
            if line.trim_start().starts_with("```") {
                in_code = !in_code;
            }
            assert!(
                !(in_code && line.starts_with("Answer:")),
                "{page} pastes the tour's answer: the answer is at the top"
            );
        }
    }
}

#[test]
fn every_relative_link_resolves() {
    let mut pages = vec![root().join("README.md")];
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        pages.push(entry.unwrap().path());
    }
    for page in pages {
        let text = std::fs::read_to_string(&page).unwrap();
        let dir = page.parent().unwrap();
        for target in text
            .split("](")
            .skip(1)
            .filter_map(|rest| rest.split(')').next())
        {
            if target.starts_with("http") || target.starts_with('#') {
                continue;
            }
            let path = target.split('#').next().unwrap();
            assert!(
                Path::new(dir).join(path).exists(),
                "{}: the link {target} leads nowhere",
                page.display()
            );
        }
    }
}

/// CONTRIBUTING.md's "Add a lab": a chapter in the tour's list is numbered in order, has its
/// docs page, its Python twin and a README row that names its subcommand, page and twin.
#[test]
fn every_chapter_in_the_tours_list_has_its_page_twin_and_readme_row() {
    let readme = read("README.md");
    let mut slugs = std::collections::BTreeSet::new();
    for (index, chapter) in socket_lab::CHAPTERS.iter().enumerate() {
        assert_eq!(
            usize::from(chapter.number),
            index + 1,
            "{}: the tour lists the chapters in the homework's order",
            chapter.slug
        );
        assert!(
            slugs.insert(chapter.slug),
            "{}: a second chapter with that slug",
            chapter.slug
        );
        assert!(
            root().join(chapter.docs).is_file(),
            "{} is missing",
            chapter.docs
        );
        assert!(
            chapter.twin.path().is_file(),
            "{} is missing",
            chapter.twin.shown_as()
        );
        let row = readme
            .lines()
            .find(|line| line.starts_with(&format!("| {} |", chapter.number)))
            .unwrap_or_else(|| panic!("README.md has no row for chapter {}", chapter.number));
        for needed in [
            chapter.docs.to_string(),
            chapter.twin.shown_as(),
            format!("-- {}`", chapter.slug),
        ] {
            assert!(
                row.contains(&needed),
                "README row {row:?} does not name {needed:?}"
            );
        }
        assert!(
            !chapter.answer.is_empty() && !chapter.question.is_empty(),
            "{}: a chapter has a question and an answer",
            chapter.slug
        );
    }
}

/// CONTRIBUTING.md names files and folders a contributor is sent to: each one exists.
#[test]
fn every_path_contributing_names_exists() {
    let text = read("CONTRIBUTING.md");
    let mut named = 0;
    for quoted in text.split('`').skip(1).step_by(2) {
        let path = quoted.trim_end_matches('/');
        let is_path = (path.starts_with("crates/")
            || path.starts_with("src/")
            || path.starts_with("tests/")
            || path.starts_with("docs/")
            || path.starts_with("python/")
            || path.starts_with(".ci/"))
            && !path.contains(['*', ' ', '<'])
            && !path.contains("NAME")
            && !path.contains("0N");
        if is_path {
            named += 1;
            let in_root = root().join(path).exists();
            let in_grader = root().join("crates/lab-grade").join(path).exists();
            assert!(
                in_root || in_grader,
                "CONTRIBUTING.md names {path}, which does not exist"
            );
        }
    }
    assert!(
        named >= 8,
        "CONTRIBUTING.md should send contributors to real files"
    );
}
