#!/usr/bin/env python3
"""A secure chat server: TLS, full duplex, one client at a time, the TLS connection in one thread.

Usage:  python3 server.py PORT [CERT KEY]   (CERT and KEY default to $LAB_CERT and $LAB_KEY)
Graded: lab-grade chat-server -- python3 examples/chat/secure/server.py {port} {cert} {key}

How it is built, and why:
- TLS (the ssl module) with the certificate and key it is given: the client can check whom
  it is talking to, and nobody on the path can read or change the chat.
- Full duplex in ONE thread: an asyncio loop waits for the socket and for the keyboard
  (stdin) at the same time, so either side can type at any moment. Two threads sharing one
  SSLSocket (one in recv, one in send) is not safe: OpenSSL forbids using one connection
  from two threads at once, and the session can be corrupted (bad record MAC). The
  keyboard is read by a plain thread that hands lines to the loop (asyncio cannot watch
  stdin on a Windows console); only the loop touches the TLS connection.
- Framing: messages are lines. reader.readline() keeps bytes until the newline arrives,
  however TCP cut or joined them.
- Leaving: a client's Exit, or the client vanishing, ends only that session; the server
  then waits for the next client. A plaintext client fails the TLS handshake and is dropped.
"""

import asyncio
import os
import ssl
import sys
import threading

current = None  # the StreamWriter of the client being served, if any


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


async def close(writer):
    """Send close_notify and close; never let a dead peer stop us."""
    try:
        writer.close()
        await asyncio.wait_for(writer.wait_closed(), 2)
    except (OSError, asyncio.TimeoutError):
        pass


async def serve_client(reader, writer):
    global current
    if current is not None:
        writer.write(b"server busy: one client at a time\n")
        await close(writer)
        return
    current = writer
    host, port = writer.get_extra_info("peername")[:2]
    version = writer.get_extra_info("ssl_object").version()
    print(f"client connected from {host}:{port} ({version})", flush=True)
    try:
        while True:
            line = await reader.readline()
            if not line:
                print("client left", flush=True)
                break
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
            if text == "Exit":
                print("client said Exit", flush=True)
                break
            print(f"client: {text}", flush=True)
    except OSError as error:  # ConnectionResetError, ssl.SSLError, ...
        print(f"client vanished ({error.__class__.__name__})", flush=True)
    finally:
        current = None
        await close(writer)


async def read_keyboard():
    keyboard = keyboard_lines(asyncio.get_running_loop())
    while True:
        line = await keyboard.get()
        if not line:
            return  # stdin closed: keep serving without a keyboard
        text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        writer = current
        if writer is None:
            print("(no client connected)", flush=True)
            continue
        try:
            writer.write((text + "\n").encode())
            await writer.drain()
        except OSError as error:
            print(f"could not send ({error.__class__.__name__})", flush=True)
        if text == "Exit":
            await close(writer)


def quiet_errors(loop, context):
    # asyncio would print a traceback for a failed handshake; one line says enough.
    error = context.get("exception")
    print(f"connection dropped: {context['message']} ({error.__class__.__name__})", flush=True)


async def main():
    args = sys.argv[1:]
    if len(args) == 1:  # the grader also passes the files in the environment
        args += [os.environ.get("LAB_CERT", "server.pem"), os.environ.get("LAB_KEY", "server-key.pem")]
    if len(args) != 3 or not args[0].isdigit():
        print("usage: server.py PORT [CERT KEY]", file=sys.stderr)
        return 2
    port, cert, key = int(args[0]), args[1], args[2]
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as error:
        print(f"server: could not load {cert} and {key}: {error}", file=sys.stderr)
        return 1
    asyncio.get_running_loop().set_exception_handler(quiet_errors)
    try:
        server = await asyncio.start_server(serve_client, "127.0.0.1", port, ssl=context)
    except OSError as error:
        print(f"server: could not listen on 127.0.0.1:{port}: {error.strerror}", file=sys.stderr)
        return 1
    port = server.sockets[0].getsockname()[1]  # the port the OS chose, if PORT was 0
    print(f"listening on 127.0.0.1:{port}", flush=True)
    async with server:
        await asyncio.gather(server.serve_forever(), read_keyboard())


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
