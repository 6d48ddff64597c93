#!/usr/bin/env python3
"""The classic first attempt at the homework's client: plaintext, strict alternation.

Usage:  python3 client.py PORT
Graded: lab-grade chat-client --plaintext -- python3 examples/chat/insecure/client.py {port}

What is wrong with it (each is a check lab-grade fails, with an explanation):
- Plaintext TCP, and no way to know who is at the other end.
- Strict alternation: it waits in input() for its user before it reads the socket again,
  so a message from the server is not shown until the user has typed something.
- One recv() is taken as one message.
- No server running: a raw ConnectionRefusedError traceback instead of a sentence.
"""

import socket
import sys

port = int(sys.argv[1])
client = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
client.connect(("127.0.0.1", port))
while True:
    message = input("You: ")
    client.send(message.encode())
    if message == "Exit":
        break
    data = client.recv(1024).decode()
    if not data:
        break
    print("Server: " + data.strip())
client.close()
