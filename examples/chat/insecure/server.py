#!/usr/bin/env python3
"""The classic first attempt at the homework: plaintext, strict alternation.

Usage:  python3 server.py PORT
Graded: lab-grade chat-server --plaintext -- python3 examples/chat/insecure/server.py {port}

What is wrong with it (each is a check lab-grade fails, with an explanation):
- Plaintext TCP: anyone on the path reads and changes the chat.
- Strict alternation: after printing the client's message it blocks in input() until its
  own user types, so the client cannot say two things in a row.
- One recv() is taken as one message: TCP keeps no boundaries, so two lines can arrive in
  one recv() and one line can arrive in two.
- A client that vanishes crashes it (ConnectionResetError / BrokenPipeError, a traceback).
"""

import socket
import sys

port = int(sys.argv[1])
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
server.bind(("127.0.0.1", port))
server.listen(1)
print("Waiting for a connection...")
conn, addr = server.accept()
print("Connected to", addr)
while True:
    data = conn.recv(1024).decode()
    if not data or data.strip() == "Exit":
        break
    print("Client: " + data.strip())
    reply = input("You: ")
    conn.send((reply + "\n").encode())
    if reply == "Exit":
        break
conn.close()
server.close()
