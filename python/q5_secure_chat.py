#!/usr/bin/env python3
"""Question 5 in Python: what makes a chat secure? The TLS facts a chat program relies on.

Run it on your own machine (standard library only; Windows, macOS, Linux):
    python3 q5_secure_chat.py CERTS        (on Windows: py q5_secure_chat.py CERTS)
CERTS is a folder with ca.pem, server.pem and server-key.pem, as `lab-chat keygen --out
CERTS` writes them (the Python standard library cannot make certificates).

The chat itself, a full reference pair that runs on all three systems, is
examples/chat/secure/server.py and client.py. This script runs that pair for one short
conversation (when it finds it next to this folder), then measures, on 127.0.0.1, what
they rely on:
  0. the reference pair: the server's line reaches the client and the client's the
     server, and Exit ends the client cleanly;
  1. the handshake: the TLS version and cipher that were negotiated, and that the client
     checked the server's certificate against the lab CA and the name "localhost";
  2. a line each way, encrypted;
  3. impostors: a client that trusts only the lab CA refuses a server whose certificate is
     not for "localhost"; a client with only the system's CAs refuses the lab's certificate;
  4. the end of a session: a blocking SSLSocket.close() sends NO close_notify (only unwrap()
     does), and Python's default suppress_ragged_eofs=True makes that look like a normal
     goodbye; with suppress_ragged_eofs=False the receiver sees the truncation.
Each result is a line starting with "result:". Compare with docs/05-secure-chat.md.
"""

import os
import platform
import queue
import socket
import ssl
import subprocess
import sys
import threading

TIMEOUT = 10


def load(certs):
    paths = {name: os.path.join(certs, name) for name in ("ca.pem", "server.pem", "server-key.pem")}
    missing = [p for p in paths.values() if not os.path.isfile(p)]
    if missing:
        print(f"q5_secure_chat.py: missing {', '.join(missing)}; make them with: lab-chat keygen --out {certs}", file=sys.stderr)
        print("  (lab-chat is the Rust lab: on Windows run it in WSL2, or on any Linux machine, and copy the folder here;", file=sys.stderr)
        print("  the files are plain PEM, the same on every system)", file=sys.stderr)
        return None
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.minimum_version = ssl.TLSVersion.TLSv1_2
    server.load_cert_chain(paths["server.pem"], paths["server-key.pem"])
    client = ssl.create_default_context(cafile=paths["ca.pem"])
    return server, client


class OneConnectionServer:
    """A TLS server on 127.0.0.1 that serves one connection with `handler` in a thread."""

    def __init__(self, context, handler, suppress_ragged_eofs=True):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(1)
        self.listener.settimeout(TIMEOUT)
        self.address = self.listener.getsockname()
        self.result = None
        self.thread = threading.Thread(target=self._serve, args=(context, handler, suppress_ragged_eofs))
        self.thread.start()

    def _serve(self, context, handler, suppress_ragged_eofs):
        try:
            raw, _ = self.listener.accept()
            raw.settimeout(TIMEOUT)
            with context.wrap_socket(raw, server_side=True, suppress_ragged_eofs=suppress_ragged_eofs) as conn:
                self.result = handler(conn)
        except (OSError, ssl.SSLError) as error:
            self.result = f"{type(error).__name__}"

    def finish(self):
        self.thread.join(TIMEOUT * 2)
        self.listener.close()
        return self.result


def connect(context, address, name="localhost"):
    raw = socket.create_connection(address, timeout=TIMEOUT)
    try:
        return context.wrap_socket(raw, server_hostname=name)
    except BaseException:
        raw.close()
        raise


def read_line(conn):
    line = b""
    while not line.endswith(b"\n"):
        chunk = conn.recv(1024)
        if not chunk:
            break
        line += chunk
    return line


def handshake_and_lines(server_context, client_context):
    def echo_one_line(conn):
        line = read_line(conn)
        conn.sendall(b"noted: " + line)
        return line

    server = OneConnectionServer(server_context, echo_one_line)
    with connect(client_context, server.address) as conn:
        name, version, bits = conn.cipher()
        print(f"result: handshake: {conn.version()}, cipher {name} ({bits}-bit key), server verified as localhost by the lab CA")
        conn.sendall(b"meet at 9\n")
        reply = read_line(conn)
    got = server.finish()
    print(f"result: one line each way: the server got {got!r}, the client got {reply!r}")


def impostors(server_context, client_context):
    server = OneConnectionServer(server_context, read_line)
    try:
        connect(client_context, server.address, name="bank.example").close()
        outcome = "connected?!"
    except ssl.SSLCertVerificationError as error:
        outcome = f"refused: SSLCertVerificationError ({error.verify_message})"
    server.finish()
    print(f"result: a certificate that is not for the name asked (bank.example): {outcome}")
    server = OneConnectionServer(server_context, read_line)
    try:
        connect(ssl.create_default_context(), server.address).close()
        outcome = "connected?!"
    except ssl.SSLCertVerificationError as error:
        outcome = f"refused: SSLCertVerificationError ({error.verify_message})"
    server.finish()
    print(f"result: a client with only the system's CAs, facing the lab's certificate: {outcome}")


def endings(server_context, client_context):
    def what_recv_says(conn):
        line = read_line(conn)
        conn.sendall(b"ok\n")
        try:
            end = conn.recv(1024)
            outcome = f"returned {end!r}"
        except ssl.SSLError as error:
            outcome = f"raised {type(error).__name__}"
        try:
            conn.unwrap()  # answer a close_notify with ours, if one came
        except (OSError, ssl.SSLError, ValueError):
            pass
        return line, outcome

    for close_politely in (False, True):
        for suppress in (True, False):
            if close_politely and suppress:
                continue
            server = OneConnectionServer(server_context, what_recv_says, suppress_ragged_eofs=suppress)
            conn = connect(client_context, server.address)
            conn.sendall(b"bye\n")
            # Read the answer: it also takes in what TLS 1.3 sent before it (session
            # tickets), so that nothing unread is left: close() with unread data would
            # send a reset instead of ending the connection (question 4).
            read_line(conn)
            if close_politely:
                try:
                    conn.unwrap()  # sends close_notify, waits for the server's
                except (OSError, ssl.SSLError):
                    pass
            conn.close()  # a blocking SSLSocket.close(): no close_notify of its own
            result = server.finish()
            outcome = result[1] if isinstance(result, tuple) else f"failed: {result}"
            how = "unwrap() then close()" if close_politely else "close() only"
            print(f"result: client {how}; server with suppress_ragged_eofs={suppress}: recv() {outcome}")


class Program:
    """A Python program run with pipes; its output lines arrive in a queue, read by a thread."""

    def __init__(self, *args):
        self.process = subprocess.Popen(
            [sys.executable, "-u", *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines = queue.Queue()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\r\n"))
        self.lines.put(None)

    def wait_for(self, start):
        """The first line starting with `start`, or None after TIMEOUT or at end of output."""
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                return None
            if line is None or line.startswith(start):
                return line

    def type(self, line):
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def stop(self):
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self.reader.join(TIMEOUT)  # it has read to the end: the program is gone
        for pipe in (self.process.stdin, self.process.stdout):
            try:
                pipe.close()
            except OSError:  # stdin: a line still buffered cannot reach a program that is gone
                pass


def reference_pair(certs):
    here = os.path.dirname(os.path.abspath(__file__))
    secure = os.path.join(here, "..", "examples", "chat", "secure")
    if not os.path.isfile(os.path.join(secure, "server.py")):
        print("result: reference pair: examples/chat/secure/ is not next to this folder; skipped")
        return
    paths = [os.path.join(certs, name) for name in ("server.pem", "server-key.pem", "ca.pem")]
    server = Program(os.path.join(secure, "server.py"), "0", paths[0], paths[1])
    client = None
    try:
        listening = server.wait_for("listening on ")
        if listening is None:
            print("result: reference pair: the server did not start")
            return
        port = listening.rsplit(":", 1)[1]
        client = Program(os.path.join(secure, "client.py"), "127.0.0.1", port, paths[2])
        connected = client.wait_for("connected to ")
        client.type("hello from the client")
        got_client = server.wait_for("client: ")
        server.type("hello from the server")
        got_server = client.wait_for("server: ")
        client.type("Exit")
        said_exit = server.wait_for("client said Exit")
        try:
            code = client.process.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            code = "still running"
        print(f"result: reference pair: client printed {connected!r}")
        print(f"result: reference pair: server printed {got_client!r}, client printed {got_server!r}")
        print(f"result: reference pair: after Exit the server printed {said_exit!r}; the client exited with {code}")
    finally:
        for program in (client, server):
            if program is not None:
                program.stop()


def main():
    print("socket-lab, question 5 in Python (python/q5_secure_chat.py)")
    print(f"measured on: {platform.system()} {platform.release()}, Python {platform.python_version()}, {ssl.OPENSSL_VERSION}")
    if len(sys.argv) != 2:
        print("usage: q5_secure_chat.py CERTS   (a folder made by: lab-chat keygen --out CERTS)", file=sys.stderr)
        return 2
    contexts = load(sys.argv[1])
    if contexts is None:
        return 1
    reference_pair(sys.argv[1])
    handshake_and_lines(*contexts)
    impostors(*contexts)
    endings(*contexts)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The output went to a program that stopped reading (`| head`): stop quietly, as
        # the Python docs advise (signal module, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
