#!/usr/bin/env python3
"""Question 2 in Python: what is localhost, and how is it used to develop networked programs?

Run it on your own machine (standard library only; Windows, macOS, Linux):
    python3 q2_localhost.py        (on Windows: py q2_localhost.py)

It measures:
  1. what getaddrinfo("localhost") returns, in order (Windows and macOS: ::1 first);
  2. the trap: a server on 127.0.0.1 only, and socket.create_connection(("localhost", port)),
     which tries each address in order (on Windows a refused ::1 costs about 2 seconds),
     against a plain socket.socket(), which is IPv4 only and goes straight to 127.0.0.1;
  3. whether 127.0.0.2 can be bound (Linux and Windows: yes; macOS: no, errno 49);
  4. port 0: the operating system picks a free ("ephemeral") port;
  5. whether a socket on [::] also takes IPv4 (IPV6_V6ONLY: off on Linux and macOS, on on Windows).
Each result is a line starting with "result:". Compare them with the table "On your machine"
in docs/02-localhost.md.
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


def ms(seconds):
    return f"{seconds * 1000:.2f} ms"


def resolution():
    infos = socket.getaddrinfo("localhost", 80, type=socket.SOCK_STREAM)
    addresses = [info[4][0] for info in infos]
    print('getaddrinfo("localhost") asks the system resolver (the hosts file, then DNS)')
    print(f"result: localhost resolves to, in this order: {', '.join(addresses)}")
    return addresses


def trap(addresses):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    port = server.getsockname()[1]
    print(f"a server on 127.0.0.1:{port} only; a client asks for localhost:{port}")
    try:
        # What create_connection does inside: each address in order, until one connects.
        for info in socket.getaddrinfo("localhost", port, type=socket.SOCK_STREAM):
            family, kind, proto, _, address = info
            attempt = socket.socket(family, kind, proto)
            attempt.settimeout(10)
            started = time.perf_counter()
            try:
                attempt.connect(address)
                outcome = "connected"
            except OSError as error:
                outcome = describe(error)
            finally:
                attempt.close()
            print(f"  try {address[0]}: {outcome} in {ms(time.perf_counter() - started)}")
            if outcome == "connected":
                break  # as create_connection does: the first address that connects wins
        if addresses[0] != "::1":
            # Windows and macOS list ::1 first: try the two loopbacks in their order.
            print("  as on Windows and macOS, which list ::1 first:")
            outcomes = []
            for address in ("::1", "127.0.0.1"):
                family = socket.AF_INET6 if ":" in address else socket.AF_INET
                attempt = socket.socket(family, socket.SOCK_STREAM)
                attempt.settimeout(10)
                started = time.perf_counter()
                try:
                    attempt.connect((address, port))
                    outcome = "connected"
                except OSError as error:
                    outcome = describe(error)
                finally:
                    attempt.close()
                took = ms(time.perf_counter() - started)
                print(f"  try {address}: {outcome} in {took}")
                outcomes.append(f"{address} {outcome} in {took}")
            print(f"result: a client trying ::1 first: {'; then '.join(outcomes)}")
        started = time.perf_counter()
        with socket.create_connection(("localhost", port), timeout=10) as client:
            peer = client.getpeername()[0]
        took = time.perf_counter() - started
        print(f"result: create_connection(localhost) connected to {peer} after {ms(took)}")
        started = time.perf_counter()
        with socket.socket() as plain:  # AF_INET: IPv4 only
            plain.settimeout(10)
            plain.connect(("localhost", port))
            peer = plain.getpeername()[0]
        took = time.perf_counter() - started
        print(f"result: socket.socket().connect(localhost) (IPv4 only) connected to {peer} after {ms(took)}")
    finally:
        server.close()


def other_loopback_address():
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.2", 0))
            outcome = "bound"
        except OSError as error:
            outcome = f"could not bind: {describe(error)}"
    print(f"result: bind 127.0.0.2: {outcome}")


def ephemeral_ports():
    ports = []
    for _ in range(3):
        with socket.socket() as server:
            server.bind(("127.0.0.1", 0))
            ports.append(server.getsockname()[1])
    print(f"result: port 0 gave ports {', '.join(map(str, ports))}")


def dual_stack():
    if not socket.has_ipv6:
        print("result: [::] IPV6_V6ONLY: this Python has no IPv6")
        return
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as six:
            v6only = six.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
    except OSError as error:
        print(f"result: [::] IPV6_V6ONLY: could not ask ({describe(error)})")
        return
    takes = "IPv6 only" if v6only else "also takes IPv4"
    print(f"result: [::] IPV6_V6ONLY is {v6only} by default: a server on [::] {takes}")


def main():
    print("socket-lab, question 2 in Python (python/q2_localhost.py)")
    print(f"measured on: {platform.system()} {platform.release()}, Python {platform.python_version()}")
    trap(resolution())
    other_loopback_address()
    ephemeral_ports()
    dual_stack()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The output went to a program that stopped reading (`| head`): stop quietly, as
        # the Python docs advise (signal module, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
