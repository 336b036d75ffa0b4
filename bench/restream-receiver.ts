// Restream destinations for bench/restream.ts, in their own process so their CPU is not counted: one
// RtmpServer on a free loopback port (and, given a certificate, a TLS listener in front of it), counting what
// every publish delivers.
// Usage: node --import tsx bench/restream-receiver.ts [CERT.pem KEY.pem]
// Prints {"port":…,"tlsPort":…} once listening; then answers each "stats" line on stdin with the totals as
// JSON ({publishes, tags, bytes}), and exits on "exit" or when stdin closes.
import { readFileSync } from 'node:fs';
import type net from 'node:net';
import { createInterface } from 'node:readline';
import tls from 'node:tls';
import { RtmpServer } from '../src/rtmp/server.ts';
import { silentLogger } from '../src/shared/logger.ts';

const [certFile, keyFile] = process.argv.slice(2);
const rtmp = new RtmpServer({
  log: silentLogger(),
  maxConnectionsPerIp: 1000,
  limits: { idleTimeoutMs: 120_000 },
});
const port = await rtmp.listen(0, '127.0.0.1');
let front: tls.Server | null = null;
let tlsPort = 0;
if (certFile && keyFile) {
  const server = tls.createServer({ cert: readFileSync(certFile), key: readFileSync(keyFile) }, (socket) =>
    rtmp.handleSocket(socket),
  );
  front = server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  tlsPort = (server.address() as net.AddressInfo).port;
}

const stats = { publishes: 0, tags: 0, bytes: 0 };
rtmp.on('publish', (publish) => {
  stats.publishes++;
  publish.on('tag', (tag) => {
    stats.tags++;
    stats.bytes += tag.data.length;
  });
});
console.log(JSON.stringify({ port, tlsPort }));

async function exit(): Promise<void> {
  front?.close();
  await rtmp.close();
  process.exit(0);
}

const lines = createInterface({ input: process.stdin });
lines.on('line', (line) => {
  if (line === 'stats') console.log(JSON.stringify(stats));
  else if (line === 'exit') void exit();
});
lines.on('close', () => void exit());
