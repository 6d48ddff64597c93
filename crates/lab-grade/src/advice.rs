//! Turning what a program printed (a Python traceback, a Rust error, an errno) into advice.
//!
//! Students read a traceback as "it crashed". A TA reads the *kind* of error and knows
//! what it means on the wire: `ConnectionRefusedError` is errno 111, nothing listening;
//! `BrokenPipeError` is writing to a peer that left; `CERTIFICATE_VERIFY_FAILED` is TLS
//! doing its job. This module is that TA: it looks for the known signs in a program's
//! output and answers each with one piece of plain advice.

use lab_kit::errors::{ErrorFacts, errno_name};

/// A sign to look for (any of `patterns`, case-sensitive) and the advice it earns.
struct Sign {
    patterns: &'static [&'static str],
    advice: &'static str,
}

const SIGNS: &[Sign] = &[
    Sign {
        patterns: &[
            "ConnectionRefusedError",
            "[Errno 111]",
            "ECONNREFUSED",
            "kind: ConnectionRefused",
        ],
        advice: "The connection was refused: nothing was listening on that host and port (lab 1). The kernel answers at once and never retries for you. Start the server first, check the port, and catch the error (Python: ConnectionRefusedError) to print one clear sentence instead of a traceback.",
    },
    Sign {
        patterns: &[
            "SSLCertVerificationError",
            "CERTIFICATE_VERIFY_FAILED",
            "certificate verify failed",
            "InvalidCertificate",
        ],
        advice: "Certificate verification failed: the program did not trust the certificate it was shown. Against the real server, trust the course CA given as {ca} (LAB_CA), e.g. ssl.create_default_context(cafile=ca), and connect with server_hostname='localhost'.",
    },
    Sign {
        patterns: &[
            "BrokenPipeError",
            "ConnectionResetError",
            "[Errno 32]",
            "[Errno 104]",
            "EPIPE",
            "ECONNRESET",
            "kind: BrokenPipe",
            "kind: ConnectionReset",
        ],
        advice: "The other side had already gone (BrokenPipeError, errno 32 EPIPE: writing to a closed connection; ConnectionResetError, errno 104 ECONNRESET: the peer reset it). A peer can vanish at any moment: catch these around send/recv, say that the peer left, and end that session without crashing.",
    },
    Sign {
        patterns: &[
            "[Errno 98]",
            "Address already in use",
            "EADDRINUSE",
            "kind: AddrInUse",
        ],
        advice: "bind() failed because the port was in use (errno 98, EADDRINUSE). Listen on the port the grader gives ({port} or LAB_PORT), not a fixed one, and set SO_REUSEADDR before bind() so a restart does not trip over old connections.",
    },
    Sign {
        patterns: &[
            "SSLEOFError",
            "UNEXPECTED_EOF_WHILE_READING",
            "EOF occurred in violation of protocol",
        ],
        advice: "The TLS connection ended without a close_notify (ssl.SSLEOFError): the peer vanished. That can happen any time; catch ssl.SSLError around reads and treat it as the peer leaving.",
    },
    Sign {
        patterns: &[
            "WRONG_VERSION_NUMBER",
            "wrong version number",
            "HTTP_REQUEST",
            "http request",
            "record layer failure",
            "RECORD_LAYER_FAILURE",
        ],
        advice: "One side spoke TLS and the other did not: a TLS program received bytes that are not a TLS record. A server must survive that: catch ssl.SSLError around the handshake (accept, then wrap, then do_handshake) so one bad client cannot stop it.",
    },
    Sign {
        patterns: &["BAD_RECORD_MAC", "DECRYPTION_FAILED", "bad record mac"],
        advice: "The TLS session was corrupted (bad record MAC). The usual cause in a chat: two threads using one ssl.SSLSocket at the same time, one in recv() and one in send(). OpenSSL does not allow that. Use one thread that waits on both stdin and the socket (selectors or asyncio), as the reference solution does.",
    },
    Sign {
        patterns: &["UnicodeDecodeError"],
        advice: "Bytes were decoded before a whole character had arrived, or were not UTF-8 (UnicodeDecodeError). recv() can split a character in two: keep bytes in a buffer until a newline, then decode the whole line.",
    },
    Sign {
        patterns: &["FileNotFoundError", "No such file or directory"],
        advice: "A file was not found. Use the paths the grader passes ({ca}, {cert}, {key}, or LAB_CA, LAB_CERT, LAB_KEY) instead of fixed file names, and check the command after --.",
    },
    Sign {
        patterns: &["can't open file"],
        advice: "python3 could not open the program file: check the path in the command after -- (it is relative to the folder the grader runs in).",
    },
    Sign {
        patterns: &["ModuleNotFoundError", "ImportError"],
        advice: "A module could not be imported: only Python's standard library is available when grading (socket, ssl, selectors, asyncio, threading).",
    },
    Sign {
        patterns: &["EOFError"],
        advice: "input() raised EOFError: standard input ended. Treat the end of input like Exit: say goodbye, close the connection, and exit 0.",
    },
    Sign {
        patterns: &[
            "socket.timeout",
            "TimeoutError",
            "timed out",
            "kind: TimedOut",
            "kind: WouldBlock",
        ],
        advice: "A timeout fired inside the program. A fixed timeout on recv() ends a chat whenever the other side is quiet for a while; wait for input without a timeout (or with selectors/asyncio).",
    },
    Sign {
        patterns: &["panicked at"],
        advice: "The Rust program panicked: an unwrap() or expect() on a network result turns an ordinary network event into a crash. Match on the io::ErrorKind and report it instead.",
    },
];

/// Advice for every known sign found in `output` (the program's stderr and stdout), in
/// the order of the table, each at most once.
pub fn for_output(output: &str) -> Vec<String> {
    let mut advice = Vec::new();
    for sign in SIGNS {
        if sign.patterns.iter().any(|p| output.contains(p)) {
            advice.push(sign.advice.to_string());
        }
    }
    if advice.is_empty()
        && let Some(errno) = first_errno(output)
    {
        let name = errno_name(errno).unwrap_or("see `man errno`");
        advice.push(format!(
            "The program stopped on an operating-system error, errno {errno} ({name}). Catch socket errors (Python: OSError) and report them in one sentence."
        ));
    }
    advice
}

/// The number in the first `[Errno N]` of Python's output, if any.
fn first_errno(output: &str) -> Option<i32> {
    let start = output.find("[Errno ")? + "[Errno ".len();
    let digits: String = output[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Advice for an error the grader itself met on its side of the connection.
pub fn for_grader_error(facts: &ErrorFacts) -> String {
    match facts.error_kind.as_str() {
        "ConnectionRefused" => format!(
            "The grader's connection was refused ({}): the program was not listening on the port it was given.",
            facts.summary()
        ),
        "ConnectionReset" => format!(
            "The program reset the connection ({}): it closed its socket with unread data, or crashed.",
            facts.summary()
        ),
        "WouldBlock" | "TimedOut" => {
            format!("The grader waited and nothing came ({}).", facts.summary())
        }
        _ => format!("The grader's connection failed: {}.", facts.summary()),
    }
}

/// The crash in a program's error output, if there was one: the exception line of the
/// last Python traceback (`BrokenPipeError: [Errno 32] Broken pipe`), a Rust panic, or a
/// Java exception.
pub fn crash_line(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().collect();
    if let Some(start) = lines
        .iter()
        .rposition(|l| l.starts_with("Traceback (most recent call last)"))
    {
        // The frames are indented; the exception line is the first one that is not.
        return lines[start + 1..]
            .iter()
            .find(|l| !l.starts_with(' ') && !l.is_empty())
            .map(|l| l.to_string())
            .or_else(|| Some("Traceback (most recent call last)".into()));
    }
    lines
        .iter()
        .find(|l| l.contains("panicked at") || l.starts_with("Exception in thread"))
        .map(|l| l.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    const REFUSED: &str = "Traceback (most recent call last):\n  File \"client.py\", line 4, in <module>\n    s.connect((host, port))\nConnectionRefusedError: [Errno 111] Connection refused\n";

    #[test]
    fn a_refused_connection_traceback_gets_lab_1_advice() {
        assert_eq!(
            crash_line(REFUSED).as_deref(),
            Some("ConnectionRefusedError: [Errno 111] Connection refused")
        );
        let advice = for_output(REFUSED);
        assert_eq!(advice.len(), 1);
        assert!(advice[0].contains("nothing was listening"));
    }

    #[test]
    fn errors_are_recognised_from_python_rust_and_errno() {
        let verify = "ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed";
        assert!(for_output(verify)[0].contains("course CA"));
        assert!(for_output("BrokenPipeError: [Errno 32] Broken pipe")[0].contains("EPIPE"));
        let rust =
            "Error: Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" }";
        assert!(for_output(rust)[0].contains("refused"));
        assert!(for_output("OSError: [Errno 113] No route to host")[0].contains("errno 113"));
        assert!(for_output("all fine").is_empty());
        assert_eq!(
            crash_line("thread 'main' panicked at src/main.rs:3:5:\nboom").as_deref(),
            Some("thread 'main' panicked at src/main.rs:3:5:")
        );
    }

    #[test]
    fn grader_side_errors_name_the_kind_and_errno() {
        let facts = ErrorFacts::of(&std::io::Error::from_raw_os_error(libc::ECONNRESET));
        assert!(for_grader_error(&facts).contains("ECONNRESET"));
    }
}
