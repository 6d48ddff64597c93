// A secure chat client in Node.js: verifies the server, full duplex.
//
// Usage:  node client.js HOST PORT [CA]   (CA defaults to $LAB_CA)
// Graded: lab-grade chat-client -- node examples/chat/secure-node/client.js {host} {port} {ca}
//
// How it is built, and why:
// - It trusts only the CA file it is given and checks the name: tls.connect with `ca` and
//   `servername: 'localhost'` verifies the chain AND the name, so an impostor is refused.
// - Full duplex comes free: one event loop handles the server's lines and the keyboard's.
// - Framing: readline over the TLS socket, so TCP's cuts do not matter.
// - Errors are sentences, not stack dumps: the 'error' handler (on the socket and on the
//   readline interface over it, which passes the socket's errors on) reports a refused
//   connection or a certificate that cannot be verified in one line, with exit code 1.
'use strict';
const fs = require('fs');
const readline = require('readline');
const tls = require('tls');

const [host, port, ca = process.env.LAB_CA] = process.argv.slice(2);
const socket = tls.connect({ host, port: Number(port), ca: fs.readFileSync(ca), servername: 'localhost' });

socket.on('secureConnect', () => {
  console.log(`connected to ${host}:${port} (${socket.getProtocol()}); type Exit to leave`);
  readline.createInterface({ input: process.stdin })
    .on('line', (line) => {
      socket.write(`${line}\n`);
      if (line === 'Exit') socket.end();
    })
    .on('close', () => socket.end('Exit\n')); // end of input counts as Exit
});
const fromServer = readline.createInterface({ input: socket });
fromServer.on('line', (line) => console.log(`server: ${line}`));
socket.on('end', () => {
  console.log('server left');
  process.exit(0);
});
const failed = (error) => {
  const why = error.code === 'ECONNREFUSED'
    ? 'connection refused (is the server running?)'
    : error.message;
  console.error(`client: could not talk to ${host}:${port}: ${why}`);
  process.exit(1);
};
socket.on('error', failed);
fromServer.on('error', failed);
