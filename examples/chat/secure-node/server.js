// A secure chat server in Node.js: TLS, full duplex, one client at a time.
//
// Usage:  node server.js PORT [CERT KEY]   (CERT and KEY default to $LAB_CERT and $LAB_KEY)
// Graded: lab-grade chat-server -- node examples/chat/secure-node/server.js {port} {cert} {key}
//
// How it is built, and why:
// - tls.createServer with the certificate and key it is given: the client can check whom
//   it is talking to, and nobody on the path can read or change the chat.
// - Full duplex comes free: Node.js is one event loop, so the socket's lines and the
//   keyboard's lines are handled as they come, in any order.
// - Framing: readline over the TLS socket keeps bytes until a newline arrives, however
//   TCP cut or joined them.
// - Every socket, and the readline interface over it (which passes the socket's errors
//   on), has an 'error' handler: a client that vanishes (ECONNRESET) ends only its own
//   session. An 'error' event without a handler ends the whole Node.js process.
'use strict';
const fs = require('fs');
const readline = require('readline');
const tls = require('tls');

const [port, cert = process.env.LAB_CERT, key = process.env.LAB_KEY] = process.argv.slice(2);
let current = null; // the client being served, if any

const server = tls.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (socket) => {
  if (current) {
    socket.end('server busy: one client at a time\n');
    return;
  }
  current = socket;
  console.log(`client connected from ${socket.remoteAddress}:${socket.remotePort} (${socket.getProtocol()})`);
  const leave = (why) => {
    if (current === socket) {
      console.log(why);
      current = null;
    }
  };
  const vanished = (error) => leave(`client vanished (${error.code})`);
  socket.on('error', vanished);
  socket.on('close', () => leave('client left'));
  const lines = readline.createInterface({ input: socket });
  lines.on('error', vanished);
  lines.on('line', (line) => {
    if (line === 'Exit') {
      console.log('client said Exit');
      socket.end(); // close_notify, then FIN
      return;
    }
    console.log(`client: ${line}`);
  });
});
// A plaintext client, or one that gives up mid-handshake, is dropped without a word.
server.on('tlsClientError', () => {});
server.listen(Number(port), '127.0.0.1', () => console.log(`listening on 127.0.0.1:${port}`));

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (current) current.write(`${line}\n`);
  else console.log('(no client connected)');
});
