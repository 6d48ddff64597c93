//! Turning what a program printed (a Python traceback, a Rust error, an errno) into advice.
//!
//! Students read a traceback as "it crashed". A TA reads the *kind* of error and knows
//! what it means on the wire: `ConnectionRefusedError` is errno 111, nothing listening;
//! `BrokenPipeError` is writing to a peer that left; `CERTIFICATE_VERIFY_FAILED` is TLS
//! doing its job. This module is that TA: it looks for the known signs in a program's
//! output and answers each with one piece of plain advice.
//!
//! Advice is given in the submission's own language ([`Language`], detected from the
//! command): a Node.js student is told about `socket.on('error')`, not `sendall()`. Facts
//! that hold for one language only (two threads sharing one `ssl.SSLSocket` corrupt it)
//! are said only to that language's programs.

use lab_kit::errors::{ErrorFacts, errno_name};

mod language;
pub use language::{Language, detect_language};

/// A piece of advice whose remedy depends on the language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Remedy {
    /// Lines over a byte stream: buffer until the newline.
    Framing,
    /// An echo server: send back exactly what each read returned.
    EchoExact,
    /// Write everything, not just what one call accepted.
    SendAll,
    /// Wait for stdin and the socket at once.
    Duplex,
    /// A peer that vanished must not crash the program.
    PeerGone,
    /// A server: serve several clients at once.
    ManyClients,
    /// A client: speak TLS with the lab CA and the name localhost.
    TlsClient,
    /// A client: verify the chain to the lab CA.
    VerifyChain,
    /// A client: verify the name.
    VerifyName,
    /// A client: report a verification failure in one sentence.
    ReportVerifyFailure,
    /// A server: wrap each accepted connection with TLS.
    TlsServer,
    /// A server: survive a client that fails the handshake.
    SurviveBadHandshake,
    /// End a TLS session with close_notify.
    CloseNotify,
}

/// The advice for `remedy`, in `language`'s terms.
pub fn remedy(remedy: Remedy, language: Language) -> String {
    use Language::*;
    use Remedy::*;
    let read = match language {
        Python | Native => "recv()",
        _ => "read",
    };
    let stream = format!(
        "TCP is a byte stream: it keeps no message boundaries, so one {read} can return two messages or half of one. Keep a buffer, and take a message out only when its newline has arrived"
    );
    match remedy {
        Framing => format!(
            "{stream} ({}).",
            match language {
                Python => "Python: sock.makefile('r') and readline(), or asyncio's reader.readline()",
                Node => "Node.js: readline.createInterface({ input: socket }) and its 'line' event, or append each 'data' chunk to a string and split it at '\n'",
                Java => "Java: new BufferedReader(new InputStreamReader(socket.getInputStream())) and readLine()",
                Native => "C: append each recv() to a buffer and take out the lines up to each '\n', or fdopen() the socket and use fgets()",
                Go => "Go: bufio.NewReader(conn) and ReadString('\n'), or a bufio.Scanner",
                DotNet => ".NET: a StreamReader over the NetworkStream and ReadLine()",
                Ruby => "Ruby: sock.gets",
                Unknown => "most languages have a buffered line reader over a socket: use it",
            }
        ),
        EchoExact => format!(
            "An echo server needs no framing: send back exactly the bytes each {read} returned, without stripping or adding anything, and all of them ({}).",
            match language {
                Python => "sendall(data)",
                Node => "socket.write(data), or socket.pipe(socket)",
                Java => "out.write(buf, 0, n) on the socket's OutputStream",
                Native => "loop on send() until all n bytes are written",
                Go => "io.Copy(conn, conn)",
                DotNet => "stream.Write(buffer, 0, n)",
                Ruby => "sock.write(data)",
                Unknown => "a write-everything call, or a loop until every byte is written",
            }
        ),
        SendAll => match language {
            Python => "Use sendall(data) rather than send(data): send may write only part of a large buffer and return how much it wrote.".into(),
            Native => "send() may write only part of a large buffer and returns how much it wrote: loop until every byte is written.".into(),
            Node => "socket.write() queues everything; a server that stops reading while it writes gets stuck: keep reading, and respect 'drain' for large writes.".into(),
            _ => "A single write call may accept only part of a large buffer: write everything (a write-all call, or a loop), and keep reading while you write.".into(),
        },
        Duplex => {
            let waits = if language == Python { " (input())" } else { "" };
            let design = format!("This is the strict-alternation design: the program waits for its own user to type{waits} before it reads the socket again, or the other way round, so the conversation must go turn by turn. A chat must wait for both at once");
            match language {
                Python => format!("{design}: one thread or loop that watches stdin and the socket together (selectors or asyncio), as the reference solution does. Two threads that share one ssl.SSLSocket are not safe: OpenSSL forbids using one connection from two threads at once."),
                Node => format!("{design}. Node.js is event-driven already: handle the socket's 'data' events and a readline interface's 'line' events side by side, and never block on a synchronous prompt (readline-sync, prompt-sync)."),
                Java => format!("{design}: a reader thread for the socket beside the main thread reading System.in (one SSLSocket used by one reader and one writer thread is a normal, safe design)."),
                Native => format!("{design}: poll() or select() on stdin and the socket together, or one thread per direction (with OpenSSL, one SSL object must not be used by two threads at once)."),
                Go => format!("{design}: a goroutine reading the connection while the main goroutine reads stdin."),
                DotNet => format!("{design}: an async read of the stream beside Console.ReadLine on another task."),
                Ruby => format!("{design}: IO.select on $stdin and the socket, or a reader thread."),
                Unknown => format!("{design}: wait on stdin and the socket together (an event loop, poll/select, or a reader thread)."),
            }
        }
        ManyClients => {
            let design = "The server serves one client at a time: it returns to accept() only when the first client leaves, so one slow or idle client blocks all the others. Serve each client on its own";
            match language {
                Python => format!("{design} thread (threading.Thread per accepted socket, or socketserver.ThreadingTCPServer), or all of them in one loop (selectors or asyncio)."),
                Node => "The server serves one client at a time, so one slow or idle client blocks all the others. net.createServer calls its handler for every client: keep one socket per client (not one shared variable), do not close the server or cap maxConnections, and never block the event loop with synchronous calls.".into(),
                Java => format!("{design} thread (new Thread per accepted Socket, or an ExecutorService), or all of them with a java.nio Selector."),
                Native => format!("{design} process or thread (fork() or pthread_create() after accept()), or all of them in one poll()/select() loop."),
                Go => format!("{design} goroutine: go handle(conn) after each Accept()."),
                DotNet => format!("{design} task (await AcceptTcpClientAsync(), then handle it without awaiting it first)."),
                Ruby => format!("{design} thread (Thread.new(server.accept) {{ … }}), or all of them with IO.select."),
                Unknown => format!("{design} thread or process, or all of them in one event loop."),
            }
        }
        PeerGone => match language {
            Python => "Catch ConnectionResetError and BrokenPipeError per client.".into(),
            Node => "Give every socket an 'error' handler (socket.on('error', …)): an unhandled 'error' event, such as ECONNRESET, ends the whole process.".into(),
            Java => "Catch IOException (SocketException: Connection reset) around each client's reads and writes, and end that client only.".into(),
            Native => "Check every recv()/send() for -1 (ECONNRESET, EPIPE) and end that client only; ignore SIGPIPE (signal(SIGPIPE, SIG_IGN) or send(..., MSG_NOSIGNAL)), or a write to a vanished peer kills the program.".into(),
            Go => "Check the error of every Read and Write, and close that connection only.".into(),
            DotNet => "Catch IOException and SocketException per client.".into(),
            Ruby => "Rescue Errno::ECONNRESET and Errno::EPIPE per client.".into(),
            Unknown => "Handle a reset (ECONNRESET) and a broken pipe (EPIPE) per client, without crashing.".into(),
        },
        TlsClient => format!(
            "Speak TLS and trust the CA file the program is given ({{ca}}, or LAB_CA), for the name localhost ({}), or grade it with --plaintext.",
            tls_client_words(language)
        ),
        VerifyChain => match language {
            Python => "Verify the server: ssl.create_default_context(cafile={ca}) checks the chain to the lab CA; never ssl._create_unverified_context() or verify_mode = ssl.CERT_NONE.".into(),
            Node => "Verify the server: tls.connect({ ca: fs.readFileSync(ca), servername: 'localhost' }) checks the chain to the lab CA; never rejectUnauthorized: false or NODE_TLS_REJECT_UNAUTHORIZED=0.".into(),
            Java => "Verify the server: trust the lab CA through a TrustManagerFactory over a KeyStore that holds it; never a TrustManager that accepts everything.".into(),
            Native => "Verify the server: SSL_CTX_load_verify_locations(ctx, ca, NULL) and SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL); never SSL_VERIFY_NONE.".into(),
            Go => "Verify the server: tls.Config{RootCAs: a pool holding the lab CA}; never InsecureSkipVerify: true.".into(),
            _ => "Verify the server's certificate chain against the lab CA ({ca}); never turn verification off.".into(),
        },
        VerifyName => match language {
            Python => "Verify the name too: keep check_hostname = True (the default of create_default_context) and pass server_hostname='localhost'.".into(),
            Node => "Verify the name too: pass servername: 'localhost' and never replace checkServerIdentity with a function that accepts anything.".into(),
            Java => "Verify the name too: sslParameters.setEndpointIdentificationAlgorithm(\"HTTPS\") on the SSLSocket (plain SSLSockets do not check the name by default).".into(),
            Native => "Verify the name too: SSL_set1_host(ssl, \"localhost\") (and SNI with SSL_set_tlsext_host_name).".into(),
            Go => "Verify the name too: ServerName: \"localhost\" in the tls.Config.".into(),
            _ => "Verify the name too: the certificate must be for localhost, the name the program connects to.".into(),
        },
        ReportVerifyFailure => match language {
            Python => "Refusing was right, but the student sees a raw traceback: catch ssl.SSLCertVerificationError and print one sentence (\"the server's certificate could not be verified: …\").".into(),
            Node => "Refusing was right, but the student sees a raw error dump: handle the socket's 'error' event and print one sentence (\"the server's certificate could not be verified: …\").".into(),
            Java => "Refusing was right, but the student sees a raw stack trace: catch SSLHandshakeException and print one sentence.".into(),
            _ => "Refusing was right, but the student sees a raw crash: catch the verification error and print one sentence (\"the server's certificate could not be verified: …\").".into(),
        },
        TlsServer => match language {
            Python => "wrap the accepted socket with an ssl.SSLContext (PROTOCOL_TLS_SERVER, load_cert_chain({cert}, {key}))".into(),
            Node => "use tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }) instead of net.createServer".into(),
            Java => "use an SSLServerSocket from an SSLContext initialised with a KeyManagerFactory over {cert} and {key}".into(),
            Native => "wrap each accepted socket with OpenSSL (SSL_CTX_use_certificate_file({cert}), SSL_CTX_use_PrivateKey_file({key}), SSL_accept)".into(),
            Go => "use tls.Listen with tls.LoadX509KeyPair({cert}, {key})".into(),
            _ => "wrap each accepted connection with TLS, using the certificate and key it is given ({cert}, {key})".into(),
        },
        SurviveBadHandshake => match language {
            Python => "Catch ssl.SSLError around the handshake and go on to the next client.".into(),
            Node => "Handle 'tlsClientError' on the server (and 'error' on each socket) so that a bad handshake ends only that connection.".into(),
            Java => "Catch SSLException around the handshake (startHandshake or the first read) and go on to the next client.".into(),
            Native => "Check SSL_accept's result: on failure free that SSL object, close that socket, and go on to the next client.".into(),
            _ => "Handle a failed handshake as the end of that connection only, and go on to the next client.".into(),
        },
        CloseNotify => match language {
            Python => "It closed without a TLS close_notify: call unwrap() (or close the SSLSocket) so the peer can tell a goodbye from a cut connection.".into(),
            Node => "It closed without a TLS close_notify: end the TLS socket with socket.end() (not destroy()) so the peer can tell a goodbye from a cut connection.".into(),
            Java => "It closed without a TLS close_notify: close the SSLSocket itself (not only the underlying socket) so the peer can tell a goodbye from a cut connection.".into(),
            Native => "It closed without a TLS close_notify: call SSL_shutdown() before close() so the peer can tell a goodbye from a cut connection.".into(),
            _ => "It closed without a TLS close_notify: end the TLS session properly before closing the socket, so the peer can tell a goodbye from a cut connection.".into(),
        },
    }
}

fn tls_client_words(language: Language) -> &'static str {
    match language {
        Language::Python => {
            "ssl.create_default_context(cafile={ca}).wrap_socket(sock, server_hostname='localhost')"
        }
        Language::Node => {
            "tls.connect({ host, port, ca: fs.readFileSync(ca), servername: 'localhost' })"
        }
        Language::Java => {
            "an SSLSocketFactory from an SSLContext whose TrustManagerFactory holds the lab CA"
        }
        Language::Native => {
            "OpenSSL: SSL_CTX_load_verify_locations with {ca}, SSL_set1_host(ssl, \"localhost\"), SSL_connect"
        }
        Language::Go => "tls.Dial with RootCAs holding {ca} and ServerName \"localhost\"",
        _ => "your language's TLS library, with {ca} as the only trusted CA",
    }
}

/// A sign to look for (any of `patterns`, case-sensitive) and the advice it earns; a
/// sign whose advice names Python's API counts only for Python programs (`only`).
struct Sign {
    patterns: &'static [&'static str],
    advice: &'static str,
    /// For every other language (and an unknown one): the same fact in neutral words, and
    /// the language's remedy after it.
    other: Option<(&'static str, Option<Remedy>)>,
    only: Option<Language>,
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
        other: Some((
            "The connection was refused: nothing was listening on that host and port (lab 1). The kernel answers at once and never retries for you. Start the server first, check the port, and handle the error to print one clear sentence instead of a crash.",
            None,
        )),
        only: None,
    },
    Sign {
        patterns: &[
            "SSLCertVerificationError",
            "CERTIFICATE_VERIFY_FAILED",
            "certificate verify failed",
            "InvalidCertificate",
        ],
        advice: "Certificate verification failed: the program did not trust the certificate it was shown. Against the real server, trust the course CA given as {ca} (LAB_CA), e.g. ssl.create_default_context(cafile=ca), and connect with server_hostname='localhost'.",
        other: Some((
            "Certificate verification failed: the program did not trust the certificate it was shown. Against the real server, trust the course CA given as {ca} (LAB_CA), for the name localhost.",
            None,
        )),
        only: None,
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
        other: Some((
            "The other side had already gone (EPIPE: writing to a closed connection; ECONNRESET: the peer reset it). A peer can vanish at any moment.",
            Some(Remedy::PeerGone),
        )),
        only: None,
    },
    Sign {
        patterns: &[
            "[Errno 98]",
            "Address already in use",
            "EADDRINUSE",
            "kind: AddrInUse",
        ],
        advice: "bind() failed because the port was in use (errno 98, EADDRINUSE). Listen on the port the grader gives ({port} or LAB_PORT), not a fixed one, and set SO_REUSEADDR before bind() so a restart does not trip over old connections.",
        other: None,
        only: None,
    },
    Sign {
        patterns: &[
            "SSLEOFError",
            "UNEXPECTED_EOF_WHILE_READING",
            "EOF occurred in violation of protocol",
        ],
        advice: "The TLS connection ended without a close_notify (ssl.SSLEOFError): the peer vanished. That can happen any time; catch ssl.SSLError around reads and treat it as the peer leaving.",
        other: None,
        only: Some(Language::Python),
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
        other: Some((
            "One side spoke TLS and the other did not: a TLS program received bytes that are not a TLS record. A server must survive that.",
            Some(Remedy::SurviveBadHandshake),
        )),
        only: None,
    },
    Sign {
        patterns: &["BAD_RECORD_MAC", "DECRYPTION_FAILED", "bad record mac"],
        advice: "The TLS session was corrupted (bad record MAC). The usual cause in a chat: two threads using one ssl.SSLSocket at the same time, one in recv() and one in send(). OpenSSL does not allow that. Use one thread that waits on both stdin and the socket (selectors or asyncio), as the reference solution does.",
        other: Some((
            "The TLS session was corrupted (bad record MAC): the bytes of its records were changed or interleaved on the way, for example by two writers on one TLS connection without a lock.",
            None,
        )),
        only: None,
    },
    Sign {
        patterns: &["UnicodeDecodeError"],
        advice: "Bytes were decoded before a whole character had arrived, or were not UTF-8 (UnicodeDecodeError). recv() can split a character in two: keep bytes in a buffer until a newline, then decode the whole line.",
        other: None,
        only: Some(Language::Python),
    },
    Sign {
        patterns: &["FileNotFoundError", "No such file or directory"],
        advice: "A file was not found. Use the paths the grader passes ({ca}, {cert}, {key}, or LAB_CA, LAB_CERT, LAB_KEY) instead of fixed file names, and check the command after --.",
        other: None,
        only: None,
    },
    Sign {
        patterns: &["can't open file"],
        advice: "python3 could not open the program file: check the path in the command after -- (it is relative to the folder the grader runs in).",
        other: None,
        only: Some(Language::Python),
    },
    Sign {
        patterns: &["ModuleNotFoundError", "ImportError"],
        advice: "A module could not be imported: only Python's standard library is available when grading (socket, ssl, selectors, asyncio, threading).",
        other: None,
        only: Some(Language::Python),
    },
    Sign {
        patterns: &["EOFError"],
        advice: "input() raised EOFError: standard input ended. Treat the end of input like Exit: say goodbye, close the connection, and exit 0.",
        other: None,
        only: Some(Language::Python),
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
        other: Some((
            "A timeout fired inside the program. A fixed timeout on reads ends a chat whenever the other side is quiet for a while; wait for input without a timeout.",
            None,
        )),
        only: None,
    },
    Sign {
        patterns: &["panicked at"],
        advice: "The Rust program panicked: an unwrap() or expect() on a network result turns an ordinary network event into a crash. Match on the io::ErrorKind and report it instead.",
        other: None,
        only: None,
    },
];

/// Advice for every known sign found in `output` (the program's stderr and stdout), in
/// the order of the table, each at most once, in `language`'s terms.
pub fn for_output(output: &str, language: Language) -> Vec<String> {
    let mut advice = Vec::new();
    for sign in SIGNS {
        if sign.only.is_some_and(|only| only != language)
            || !sign.patterns.iter().any(|p| output.contains(p))
        {
            continue;
        }
        match (language, sign.other) {
            (Language::Python, _) | (_, None) => advice.push(sign.advice.to_string()),
            (_, Some((text, None))) => advice.push(text.to_string()),
            (_, Some((text, Some(fix)))) => {
                advice.push(format!("{text} {}", remedy(fix, language)))
            }
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

/// The crash in a program's error output, if there was one, as its real error line: the
/// exception of the last Python traceback (`BrokenPipeError: [Errno 32] Broken pipe`),
/// Node.js's error under its dump (`Error: connect ECONNREFUSED 127.0.0.1:9`), a Java or
/// .NET exception, a Go or Rust panic, a Ruby exception (`… (Errno::ECONNREFUSED)`), a C
/// or C++ crash (`Segmentation fault`, `terminate called …`, a failed assertion).
pub fn crash_line(stderr: &str) -> Option<String> {
    let lines: Vec<&str> = stderr.lines().collect();
    let found =
        |wanted: &dyn Fn(&str) -> bool| lines.iter().find(|l| wanted(l)).map(|l| l.to_string());
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
    // Node.js: a source excerpt, a caret, then the error, its stack, and `Node.js vN`.
    let node = lines.iter().any(|l| {
        l.starts_with("Node.js v")
            || l.contains("Unhandled 'error' event")
            || l.starts_with("node:")
    });
    if node
        && let Some(line) = found(&|l: &str| {
            !l.starts_with(' ') && (l.starts_with("Uncaught ") || is_error_head(l))
        })
    {
        return Some(line);
    }
    found(&|l: &str| {
        l.contains("panicked at")                        // Rust
            || l.starts_with("Exception in thread")      // Java
            || l.starts_with("Unhandled exception.")     // .NET
            || l.starts_with("panic: ")                  // Go
            || l.starts_with("fatal error: ")            // Go runtime
            || l.starts_with("terminate called")         // C++
            || l.contains("Segmentation fault")          // C, via a shell
            || l.contains("*** stack smashing detected")
            || l.contains("double free or corruption")
            || l.contains("free(): invalid")
            || (l.contains("Assertion `") && l.contains("' failed"))
            || l.trim_end().ends_with("Aborted")
            || l.contains("(core dumped)")
            || is_ruby_exception(l)
    })
}

/// `Error: boom`, `TypeError: x is not a function`, `Error [ERR_X]: …`: an error's head line.
fn is_error_head(line: &str) -> bool {
    let Some((head, _)) = line.split_once(": ") else {
        return false;
    };
    let name = head.split(" [").next().unwrap_or(head);
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
        && (name.ends_with("Error") || name.ends_with("Exception"))
}

/// Ruby: `client.rb:3:in 'initialize': Connection refused - … (Errno::ECONNREFUSED)`.
fn is_ruby_exception(line: &str) -> bool {
    let line = line.trim_end();
    line.contains(":in ")
        && line.ends_with(')')
        && line.rsplit_once(" (").is_some_and(|(_, class)| {
            let class = class.trim_end_matches(')');
            class.starts_with("Errno::") || class.ends_with("Error") || class.ends_with("Exception")
        })
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
        let advice = for_output(REFUSED, Language::Python);
        assert_eq!(advice.len(), 1);
        assert!(advice[0].contains("nothing was listening"));
    }

    #[test]
    fn errors_are_recognised_from_python_rust_and_errno() {
        let verify = "ssl.SSLCertVerificationError: [SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed";
        let py = Language::Python;
        assert!(for_output(verify, py)[0].contains("course CA"));
        assert!(for_output("BrokenPipeError: [Errno 32] Broken pipe", py)[0].contains("EPIPE"));
        let rust =
            "Error: Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" }";
        assert!(for_output(rust, Language::Native)[0].contains("refused"));
        assert!(for_output("OSError: [Errno 113] No route to host", py)[0].contains("errno 113"));
        assert!(for_output("all fine", py).is_empty());
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

    const NODE_REFUSED: &str = "node:events:497\n      throw er; // Unhandled 'error' event\n      ^\n\nError: connect ECONNREFUSED 127.0.0.1:39999\n    at TCPConnectWrap.afterConnect [as oncomplete] (node:net:1611:16)\nEmitted 'error' event on Socket instance at:\n    at emitErrorNT (node:internal/streams/destroy:169:8)\n {\n  errno: -111,\n  code: 'ECONNREFUSED',\n  syscall: 'connect',\n  address: '127.0.0.1',\n  port: 39999\n}\n\nNode.js v20.20.2\n";

    #[test]
    fn crashes_are_recognised_in_the_languages_students_use() {
        let cases = [
            (NODE_REFUSED, "Error: connect ECONNREFUSED 127.0.0.1:39999"),
            (
                "/s/server.js:4\n    throw new TypeError('bad');\n    ^\n\nTypeError: bad\n    at Object.<anonymous> (/s/server.js:4:11)\n\nNode.js v20.20.2\n",
                "TypeError: bad",
            ),
            (
                "Exception in thread \"main\" java.net.ConnectException: Connection refused\n\tat java.base/sun.nio.ch.Net.connect0(Native Method)\n",
                "Exception in thread \"main\" java.net.ConnectException: Connection refused",
            ),
            (
                "sh: line 1:  4242 Segmentation fault      ./server 9\n",
                "sh: line 1:  4242 Segmentation fault      ./server 9",
            ),
            (
                "terminate called after throwing an instance of 'std::runtime_error'\n  what():  recv\n",
                "terminate called after throwing an instance of 'std::runtime_error'",
            ),
            (
                "server: server.c:12: main: Assertion `n > 0' failed.\n",
                "server: server.c:12: main: Assertion `n > 0' failed.",
            ),
            (
                "panic: dial tcp 127.0.0.1:9: connect: connection refused\n\ngoroutine 1 [running]:\nmain.main()\n",
                "panic: dial tcp 127.0.0.1:9: connect: connection refused",
            ),
            (
                "thread 'main' panicked at src/main.rs:3:5:\nboom\n",
                "thread 'main' panicked at src/main.rs:3:5:",
            ),
            (
                "Unhandled exception. System.Net.Sockets.SocketException (111): Connection refused\n   at System.Net.Sockets.Socket.Connect()\n",
                "Unhandled exception. System.Net.Sockets.SocketException (111): Connection refused",
            ),
            (
                "client.rb:3:in 'initialize': Connection refused - connect(2) for \"127.0.0.1\" port 9 (Errno::ECONNREFUSED)\n\tfrom client.rb:3:in 'new'\n",
                "client.rb:3:in 'initialize': Connection refused - connect(2) for \"127.0.0.1\" port 9 (Errno::ECONNREFUSED)",
            ),
        ];
        for (output, line) in cases {
            assert_eq!(crash_line(output).as_deref(), Some(line), "{output}");
        }
        // A program's own words are not a crash.
        assert_eq!(
            crash_line("could not connect to 127.0.0.1:9: connection refused\n"),
            None
        );
        assert_eq!(
            crash_line("Error connecting: is the server running?\n"),
            None
        );
    }

    #[test]
    fn advice_speaks_the_programs_language() {
        let reset = "Error: read ECONNRESET\n    at TCP.onStreamRead\nNode.js v20\n";
        let node = for_output(reset, Language::Node).join(" ");
        assert!(node.contains("socket.on('error'"), "{node}");
        assert!(!node.contains("BrokenPipeError"), "{node}");
        let mac = "javax.net.ssl.SSLException: bad record mac";
        let java = for_output(mac, Language::Java).join(" ");
        assert!(
            !java.contains("ssl.SSLSocket") && !java.contains("not safe"),
            "{java}"
        );
        assert!(for_output(mac, Language::Python)[0].contains("ssl.SSLSocket"));
        for language in [
            Language::Node,
            Language::Java,
            Language::Native,
            Language::Go,
        ] {
            for fix in [
                Remedy::Framing,
                Remedy::Duplex,
                Remedy::PeerGone,
                Remedy::EchoExact,
                Remedy::ManyClients,
            ] {
                let text = remedy(fix, language);
                for python in [
                    "sendall",
                    "makefile",
                    "input()",
                    "ssl.SSLSocket",
                    "unwrap()",
                    "selectors",
                ] {
                    assert!(!text.contains(python), "{language:?} {fix:?}: {text}");
                }
            }
        }
        assert!(remedy(Remedy::Duplex, Language::Java).contains("safe design"));
        assert!(remedy(Remedy::ManyClients, Language::Java).contains("new Thread"));
        assert!(remedy(Remedy::ManyClients, Language::Native).contains("fork()"));
        assert!(remedy(Remedy::ManyClients, Language::Python).contains("threading"));
    }
}
