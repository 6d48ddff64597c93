#!/usr/bin/env python3
"""Question 4 in Python: what do bind(), listen(), accept(), connect(), send() and recv() do?

Run it on your own machine (standard library only; Windows, macOS, Linux):
    python3 q4_calls.py        (on Windows: py q4_calls.py)

It measures, with real sockets on 127.0.0.1:
  1. the calls in order, each with what it returned; connect() binds the client to a free
     ("ephemeral") port by itself, and completes before the server calls accept();
  2. no message boundaries: two send() calls, one recv() that gets both;
  3. sendall() vs send(): a non-blocking socket (setblocking(False)) whose peer does not read
     takes part of a large buffer, then raises BlockingIOError; sendall() with a timeout raises
     TimeoutError and cannot say how much was sent;
  4. recv() returns b"" when the peer has closed; close() with unread data sends a reset
     (RST) instead, and the peer's recv() raises ConnectionResetError; sending on after a
     reset raises BrokenPipeError or ConnectionResetError;
  5. the accept queue: how many connections complete with listen(0) and no accept()
     (Linux: backlog + 1);
  6. SO_REUSEADDR while a server listens: Linux and macOS refuse the second bind
     (address in use); Windows lets the second socket take the port.
Each result is a line starting with "result:". The error numbers differ per system: compare
them with the table "On your machine" in docs/04-socket-calls.md.
"""

import errno
import os
import platform
import socket
import sys
import time


def describe(error):
    text = type(error).__name__
    if error.errno is not None:
        text += f", errno {error.errno} ({errno.errorcode.get(error.errno, '?')})"
    winerror = getattr(error, "winerror", None)
    if winerror is not None:
        text += f", WinError {winerror}"
    return text


def pair():
    """A listening server and a connected client, and the server's accepted socket."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    client = socket.create_connection(server.getsockname(), timeout=10)
    accepted, _ = server.accept()
    accepted.settimeout(10)
    server.close()
    return client, accepted


def wait_for_bytes(sock, count):
    """Waits until `count` bytes have arrived, without taking them (MSG_PEEK)."""
    while len(sock.recv(count, socket.MSG_PEEK)) < count:
        time.sleep(0.001)  # a short pause between peeks: recv(MSG_PEEK) has no "wait for n"


def walk_through():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    print("  socket()                 -> a TCP socket: no address, no connection yet")
    server.bind(("127.0.0.1", 0))
    print(f"  bind(127.0.0.1, 0)       -> the OS chose port {server.getsockname()[1]}")
    server.listen(8)
    print("  listen(8)                -> the OS now completes handshakes and queues them")
    client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    client.settimeout(10)
    client.connect(server.getsockname())
    local = client.getsockname()
    print(f"  connect()                -> connected, from {local[0]}:{local[1]} (never bound by us)")
    print(f"result: connect() bound the client by itself to {local[0]}, port {local[1]}, before any accept()")
    conn, peer = server.accept()
    conn.settimeout(10)
    print(f"  accept()                 -> a NEW socket for the client {peer[0]}:{peer[1]}")
    client.sendall(b"hello, server\n")
    data = conn.recv(1024)
    print(f"  sendall() / recv(1024)   -> {data!r}")
    client.shutdown(socket.SHUT_WR)
    end = conn.recv(1024)
    print(f"result: after the client's shutdown(SHUT_WR) the server's recv() returned {end!r}: end of stream")
    for s in (conn, client, server):
        s.close()


def no_boundaries():
    client, accepted = pair()
    with client, accepted:
        client.sendall(b"first message\n")
        client.sendall(b"second message\n")
        wait_for_bytes(accepted, len(b"first message\nsecond message\n"))
        data = accepted.recv(1024)
    print(f"result: two send() calls, one recv(1024) returned {data!r}")


def partial_send():
    client, accepted = pair()
    with client, accepted:
        client.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
        accepted.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        client.setblocking(False)
        payload = b"x" * (4 * 1024 * 1024)
        taken = client.send(payload)
        more, outcome = 0, "no error"
        try:
            while more < 64 * 1024 * 1024:  # bounded: some systems buffer a lot
                more += client.send(payload)
        except BlockingIOError as error:
            outcome = describe(error)
        print(f"result: non-blocking send() of {len(payload)} bytes took {taken}; the next send() calls took {more} more in all, then {outcome}")
        client.setblocking(True)
        client.settimeout(0.5)
        try:
            client.sendall(payload)
            outcome = "sent everything"
        except socket.timeout as error:  # TimeoutError since Python 3.10
            outcome = f"{describe(error)}: some bytes may have been sent, nobody can say how many"
        print(f"result: sendall() with a 0.5 s timeout to a peer that does not read: {outcome}")


def closing():
    client, accepted = pair()
    with accepted:
        client.close()
        print(f"result: after the peer's close(), recv() returned {accepted.recv(1024)!r}")
    client, accepted = pair()
    with client:
        accepted.sendall(b"data the client never reads\n")
        wait_for_bytes(client, 1)  # it has arrived in the client's receive buffer
        client.close()  # unread data: the OS sends a reset, not a FIN
        try:
            outcome = f"returned {accepted.recv(1024)!r}"
        except OSError as error:
            outcome = f"raised {describe(error)}"
        print(f"result: the peer closed with unread data (RST): recv() {outcome}")
        try:
            for _ in range(3):
                accepted.sendall(b"anyone there?\n")
                time.sleep(0.05)
            outcome = "succeeded"
        except OSError as error:
            outcome = f"raised {describe(error)}"
        accepted.close()
        print(f"result: sending on after the reset: sendall() {outcome}")


def accept_queue():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    clients = []
    outcome = "all completed"
    try:
        for _ in range(8):
            try:
                # 2.5 s: longer than Windows' 2 s of SYN resends before "refused"
                clients.append(socket.create_connection(server.getsockname(), timeout=2.5))
            except OSError as error:
                outcome = describe(error)
                break
        print(f"result: listen(0), no accept(): {len(clients)} connection(s) completed, the next one: {outcome}")
    finally:
        for c in clients:
            c.close()
        server.close()


def reuse_address():
    first = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    first.bind(("127.0.0.1", 0))
    first.listen(8)
    port = first.getsockname()[1]
    second = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    second.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        second.bind(("127.0.0.1", port))
        outcome = "bound: this socket can take the port from the listening server"
    except OSError as error:
        outcome = f"bind failed: {describe(error)}"
    finally:
        second.close()
        first.close()
    print(f"result: SO_REUSEADDR, bind to a port a server is listening on: {outcome}")


def main():
    print("socket-lab, question 4 in Python (python/q4_calls.py)")
    print(f"measured on: {platform.system()} {platform.release()}, Python {platform.python_version()}")
    walk_through()
    no_boundaries()
    partial_send()
    closing()
    accept_queue()
    reuse_address()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The output went to a program that stopped reading (`| head`): stop quietly, as
        # the Python docs advise (signal module, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
