#!/usr/bin/env python3
"""A broken echo server for lab 4, with the usual mistakes.

Usage:  python3 server.py PORT
Graded: lab-grade echo-server -- python3 examples/echo/broken/server.py {port}

What is wrong with it:
- One client at a time: it accepts the next client only when the current one leaves.
- It treats one recv() as one message: strips it and adds a newline, so a line split over
  two segments comes back as two lines.
- A client that vanishes crashes it (ConnectionResetError, uncaught).
"""

import socket
import sys

port = int(sys.argv[1])
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", port))
server.listen(5)
while True:
    conn, addr = server.accept()
    while True:
        data = conn.recv(1024)
        if not data:
            break
        conn.send((data.decode().strip() + "\n").encode())
    conn.close()
