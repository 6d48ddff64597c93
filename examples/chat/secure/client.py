#!/usr/bin/env python3
"""A secure chat client: verifies the server, full duplex, the TLS connection in one thread.

Usage:  python3 client.py HOST PORT [CA]   (CA defaults to $LAB_CA)
Graded: lab-grade chat-client -- python3 examples/chat/secure/client.py {host} {port} {ca}

How it is built, and why:
- It trusts only the CA file it is given, and checks the server's name (localhost):
  ssl.create_default_context(cafile=CA) verifies the chain AND the name. An impostor with
  a certificate from another CA, or for another name, is refused.
- Full duplex in ONE thread: an asyncio loop waits for the server and for the keyboard at
  the same time (no two threads sharing one SSLSocket, which OpenSSL does not allow).
  The keyboard is read by a plain thread that hands lines to the loop: asyncio cannot
  watch stdin on a Windows console. Only the loop touches the TLS connection.
- Framing: lines, read with readline(), so TCP's cuts do not matter.
- Errors are sentences, not tracebacks: a refused connection (nothing listening) or a
  certificate that cannot be verified is reported in one line, with exit code 1.
"""

import asyncio
import os
import ssl
import sys
import threading


def keyboard_lines(loop):
    """Lines typed on stdin, read by a thread and handed to the loop through a queue.

    asyncio cannot watch a Windows console (loop.connect_read_pipe fails there, and select()
    on Windows takes sockets only), so a plain thread reads stdin, on every system alike. It
    never touches the TLS connection: only the loop's one thread does. b"" means end of input.
    """
    lines = asyncio.Queue()

    def hand_over(line):
        try:
            loop.call_soon_threadsafe(lines.put_nowait, line)
        except RuntimeError:  # the loop has closed: nobody is listening any more
            return False
        return True

    def read():
        # os.read, not sys.stdin: a thread blocked inside sys.stdin's buffered reader holds
        # its lock, and Python aborts at exit if a daemon thread still holds it.
        pending = b""
        while True:
            try:
                chunk = os.read(sys.stdin.fileno(), 4096)
            except OSError:
                chunk = b""
            if not chunk:
                if pending:
                    hand_over(pending)
                hand_over(b"")
                return
            pending += chunk
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                if not hand_over(line + b"\n"):
                    return

    threading.Thread(target=read, name="keyboard", daemon=True).start()
    return lines


async def from_server(reader):
    while True:
        line = await reader.readline()
        if not line:
            print("server left", flush=True)
            return
        print(f"server: {line.decode('utf-8', errors='replace').rstrip()}", flush=True)


async def from_keyboard(writer):
    keyboard = keyboard_lines(asyncio.get_running_loop())
    while True:
        line = await keyboard.get()
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line or text == "Exit":  # end of input counts as Exit
            writer.write(b"Exit\n")
            await writer.drain()
            return
        writer.write((text + "\n").encode())
        await writer.drain()


async def main():
    args = sys.argv[1:]
    if len(args) == 2:  # the grader also passes the CA file in the environment
        args.append(os.environ.get("LAB_CA", "ca.pem"))
    if len(args) != 3 or not args[1].isdigit():
        print("usage: client.py HOST PORT [CA]", file=sys.stderr)
        return 2
    host, port, ca = args[0], int(args[1]), args[2]
    try:
        context = ssl.create_default_context(cafile=ca)
        reader, writer = await asyncio.open_connection(
            host, port, ssl=context, server_hostname="localhost"
        )
    except ConnectionRefusedError:
        print(f"client: could not connect to {host}:{port}: connection refused (is the server running?)", file=sys.stderr)
        return 1
    except ssl.SSLCertVerificationError as error:
        print(f"client: refusing the server at {host}:{port}: its certificate could not be verified ({error.verify_message})", file=sys.stderr)
        return 1
    except (OSError, ssl.SSLError) as error:
        print(f"client: could not connect to {host}:{port}: {error}", file=sys.stderr)
        return 1
    version = writer.get_extra_info("ssl_object").version()
    print(f"connected to {host}:{port} ({version}); type Exit to leave", flush=True)
    tasks = [
        asyncio.create_task(from_server(reader)),
        asyncio.create_task(from_keyboard(writer)),
    ]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    except OSError as error:
        print(f"client: the connection failed: {error}", file=sys.stderr)
    for task in tasks:
        task.cancel()
    try:
        writer.close()  # asyncio sends close_notify (a blocking SSLSocket.close() would not)
        await asyncio.wait_for(writer.wait_closed(), 2)
    except (OSError, asyncio.TimeoutError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
