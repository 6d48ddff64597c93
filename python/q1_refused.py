#!/usr/bin/env python3
"""Question 1 in Python: what happens when a TCP client connects and no server is running?

Run it on your own machine (standard library only; Windows, macOS, Linux):
    python3 q1_refused.py        (on Windows: py q1_refused.py)

It measures, with real sockets on 127.0.0.1 (loopback, this machine only):
  1. a connect to a port where nothing listens: the exception, its errno (and WinError on
     Windows), and how long the call took (time.perf_counter);
  2. a retry loop that WE wrote, finding a server that starts a little later;
  3. a listener whose accept queue is full: on Linux and macOS no answer at all, so the
     connect ends at our timeout; on Windows a refusal;
  4. UDP: send() to a closed port succeeds, the refusal comes back on the next recv().
Each result is a line starting with "result:". Compare them with the table "On your machine"
in docs/01-connection-refused.md: Linux refuses in microseconds (errno 111), macOS too
(errno 61), Windows only after about 2 seconds (WinError 10061).
"""

import errno
import os
import platform
import socket
import sys
import threading
import time

LOOPBACK = "127.0.0.1"


def describe(error):
    """ConnectionRefusedError, errno 111 (ECONNREFUSED) [, WinError 10061]."""
    text = type(error).__name__
    if error.errno is not None:
        text += f", errno {error.errno} ({errno.errorcode.get(error.errno, '?')})"
    winerror = getattr(error, "winerror", None)
    if winerror is not None:
        text += f", WinError {winerror}"
    return text


def ms(seconds):
    return f"{seconds * 1000:.2f} ms"


def closed_port():
    """A port that refuses: bound by us (so nobody else takes it) but not listening."""
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.bind((LOOPBACK, 0))
    return holder, holder.getsockname()[1]


def refused():
    holder, port = closed_port()
    with holder:
        client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        client.settimeout(30)
        started = time.perf_counter()
        try:
            client.connect((LOOPBACK, port))
            print(f"result: refused: connected to {LOOPBACK}:{port}?! (another program took the port)")
            return
        except OSError as error:
            took = time.perf_counter() - started
            print(f"connect to {LOOPBACK}:{port}, where nothing listens")
            print(f"result: refused: {describe(error)} after {ms(took)}")
        finally:
            client.close()
    print("  The exception is raised once: nothing retries unless the program loops.")


def retry_loop():
    holder, port = closed_port()
    delay = 0.06

    def start_listening_later():
        time.sleep(delay)
        holder.listen(1)

    server = threading.Thread(target=start_listening_later)
    server.start()
    started = time.perf_counter()
    pause, refusals, connected = 0.005, 0, False
    for attempt in range(1, 13):
        try:
            socket.create_connection((LOOPBACK, port), timeout=5).close()
            connected = True
            break
        except ConnectionRefusedError:
            refusals += 1
            time.sleep(pause)  # sleep to pace retries: what sleep is for
            pause = min(pause * 2, 0.2)
    took = time.perf_counter() - started
    server.join()
    holder.close()
    print(f"a loop we wrote: connect, and if refused pause and try again (server starts after {ms(delay)})")
    if connected:
        print(f"result: retry loop: connected at attempt {attempt}, after {refusals} refusals, {ms(took)}")
    else:
        print(f"result: retry loop: gave up after {refusals} refusals, {ms(took)}")
    if platform.system() == "Windows":
        # Not checked by this lab: what Windows does when the server appears during those 2 s.
        print("  On Windows one refused connect() itself lasts about 2 s of SYN resends, far longer")
        print("  than the server's delay: compare the attempts and the time with Linux's.")


def full_queue():
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind((LOOPBACK, 0))
    listener.listen(0)  # and never accept()
    address = listener.getsockname()
    fillers = []
    try:
        for _ in range(16):  # fill the accept queue (Linux queues backlog + 1)
            try:
                fillers.append(socket.create_connection(address, timeout=0.25))
            except OSError:
                break
        timeout = 2.5  # long enough for Linux's first SYN resend, 1 s after the first
        started = time.perf_counter()
        try:
            socket.create_connection(address, timeout=timeout).close()
            outcome = "connected"
        except OSError as error:
            outcome = describe(error)
        took = time.perf_counter() - started
        print(f"a listener with backlog 0 that never calls accept(); {len(fillers)} connection(s) fill its queue")
        print(f"result: full accept queue: {outcome} after {ms(took)} (our timeout: {timeout:.1f} s)")
    finally:
        for filler in fillers:
            filler.close()
        listener.close()


def udp():
    holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    holder.bind((LOOPBACK, 0))
    port = holder.getsockname()[1]
    holder.close()  # now nothing is bound there
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.connect((LOOPBACK, port))
        sent = client.send(b"is anybody there?")
        client.settimeout(2)
        try:
            client.recv(100)
            outcome = "a datagram?!"
        except OSError as error:
            outcome = describe(error)
    print(f"UDP: one datagram to {LOOPBACK}:{port}, where nothing is bound, then recv()")
    print(f"result: udp: send() succeeded ({sent} bytes), the next recv() raised {outcome}")


def main():
    print("socket-lab, question 1 in Python (python/q1_refused.py)")
    print(f"measured on: {platform.system()} {platform.release()}, Python {platform.python_version()}")
    refused()
    retry_loop()
    full_queue()
    udp()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The output went to a program that stopped reading (`| head`): stop quietly, as
        # the Python docs advise (signal module, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
