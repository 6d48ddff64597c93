#!/usr/bin/env python3
"""The secure client with ONE mistake: it does not verify the server.

Usage:  python3 client.py HOST PORT [CA]   (CA defaults to $LAB_CA)
Graded: lab-grade chat-client -- python3 examples/chat/unverified/client.py {host} {port} {ca}

Everything is as in ../secure/client.py except the SSL context: certificate checking is
turned off (CERT_NONE, no hostname check). The grader's impostor servers are accepted, and
what the user types goes to them. lab-grade fails the two impostor checks and explains.
"""

import asyncio
import os
import ssl
import sys


async def from_server(reader):
    while True:
        line = await reader.readline()
        if not line:
            print("server left", flush=True)
            return
        print(f"server: {line.decode('utf-8', errors='replace').rstrip()}", flush=True)


async def from_keyboard(writer):
    loop = asyncio.get_running_loop()
    keyboard = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(keyboard), sys.stdin)
    while True:
        line = await keyboard.readline()
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
        # THE MISTAKE: "it didn't work with the certificate, so I turned checking off".
        # The chat is still encrypted, but to whom? Any impostor's certificate is accepted.
        context = ssl.create_default_context(cafile=ca)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
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
        writer.close()  # sends close_notify
        await asyncio.wait_for(writer.wait_closed(), 2)
    except (OSError, asyncio.TimeoutError):
        pass
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
