#!/usr/bin/env python3
"""A correct echo server for lab 4: many clients at once, every byte sent back.

Usage:  python3 server.py PORT
Graded: lab-grade echo-server -- python3 examples/echo/correct/server.py {port}

- One thread per client, so an idle client never blocks the others.
- It sends back exactly what each recv() returned, with sendall (send may write less than
  asked): an echo needs no framing at all, and adds or removes nothing.
- A client that vanishes (ConnectionResetError) ends only its own thread.
"""

import socket
import sys
import threading


def serve(conn):
    with conn:
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                conn.sendall(data)
        except OSError:  # the client vanished
            return


def main():
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", port))
    server.listen(16)
    print(f"listening on 127.0.0.1:{port}", flush=True)
    while True:
        conn, _ = server.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()


if __name__ == "__main__":
    main()
