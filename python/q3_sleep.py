#!/usr/bin/env python3
"""Question 3 in Python: what does time.sleep() do?

Run it on your own machine (standard library only; Windows, macOS, Linux):
    python3 q3_sleep.py        (on Windows: py q3_sleep.py)

It measures (always with time.perf_counter(), the clock made for measuring intervals;
time.time() is the wall clock, which can jump):
  1. accuracy: how long time.sleep(d) really lasts for a few d (at least d on Linux and macOS;
     on Windows with Python 3.10 or older, whole ticks of about 15.6 ms);
  2. CPU: a sleeping thread uses almost no CPU, a busy-wait of the same length burns it;
  3. only the calling thread sleeps: another thread keeps counting;
  4. asyncio: time.sleep inside a coroutine blocks the whole event loop, asyncio.sleep does not
     (run with `python3 -X dev` and asyncio's debug mode says so too: "Executing <Task ...>
     took 0.200 seconds");
  5. the kernel does not sleep with the program: a client connects and sends while the server
     sleeps, and the bytes are waiting when it wakes.
Each result is a line starting with "result:". Compare them with the table "On your machine"
in docs/03-sleep.md.
"""

import asyncio
import os
import platform
import socket
import statistics
import sys
import threading
import time

REPEATS = 20


def ms(seconds):
    return f"{seconds * 1000:.3f} ms"


def accuracy():
    for requested in (0.0, 0.001, 0.010):
        lasted = []
        for _ in range(REPEATS):
            started = time.perf_counter()
            time.sleep(requested)
            lasted.append(time.perf_counter() - started)
        short = sum(1 for d in lasted if d < requested)
        print(
            f"result: time.sleep({requested}) x{REPEATS}: min {ms(min(lasted))}, median "
            f"{ms(statistics.median(lasted))}, max {ms(max(lasted))}; shorter than asked: {short}"
        )


def cpu():
    duration = 0.2
    started = time.process_time()
    time.sleep(duration)
    sleeping = time.process_time() - started
    started, wall = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall < duration:
        pass  # a busy-wait: never do this
    busy = time.process_time() - started
    print(f"result: CPU used in {duration} s: sleeping {ms(sleeping)}, busy-waiting {ms(busy)}")


def other_threads():
    count = 0
    stop = threading.Event()

    def counter():
        nonlocal count
        while not stop.is_set():
            count += 1

    thread = threading.Thread(target=counter)
    thread.start()
    time.sleep(0.2)
    stop.set()
    thread.join()
    print(f"result: while the main thread slept 0.2 s, another thread counted to {count}")


async def ticks_during(blocking):
    ticks = 0

    async def ticker():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)  # let the ticker start
    if blocking:
        time.sleep(0.2)  # blocks the loop: no other task runs
    else:
        await asyncio.sleep(0.2)  # gives the loop back to the other tasks
    task.cancel()
    return ticks


def event_loop():
    blocked = asyncio.run(ticks_during(True))
    free = asyncio.run(ticks_during(False))
    print(f"result: asyncio, a 10 ms ticker during 0.2 s: time.sleep -> {blocked} ticks, asyncio.sleep -> {free} ticks")


def kernel_keeps_working():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    address = server.getsockname()
    message = b"sent while the server slept\n"
    results = {}
    sent = threading.Event()

    def client():
        started = time.perf_counter()
        with socket.create_connection(address, timeout=10) as conn:
            results["connected"] = time.perf_counter() - started
            conn.sendall(message)
            sent.set()
            conn.recv(1)  # wait until the server closes

    thread = threading.Thread(target=client)
    thread.start()
    slept = 0.3
    time.sleep(slept)  # the server "sleeps": no accept(), no recv()
    # On a very busy machine the client may not have had the CPU yet: then sleep again.
    while not sent.wait(0.3) and slept < 10:
        slept += 0.3
    server.settimeout(10)
    conn, _ = server.accept()
    with conn:
        # Non-blocking: what is already in the receive buffer, or BlockingIOError if nothing.
        conn.setblocking(False)
        try:
            waiting = len(conn.recv(1024))
        except BlockingIOError:
            waiting = 0
    thread.join()
    server.close()
    print(
        f"result: while the server slept {slept:.1f} s, a client connected in {ms(results['connected'])} and "
        f"sent {len(message)} bytes; at wake-up one non-blocking recv() returned {waiting} bytes"
    )


def main():
    print("socket-lab, question 3 in Python (python/q3_sleep.py)")
    print(f"measured on: {platform.system()} {platform.release()}, Python {platform.python_version()}")
    accuracy()
    cpu()
    other_threads()
    event_loop()
    kernel_keeps_working()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BrokenPipeError:
        # The output went to a program that stopped reading (`| head`): stop quietly, as
        # the Python docs advise (signal module, "Note on SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)
