/**
 * The SDK's event stream against a stand-in cloud (node:http): a dropped or ended connection is followed
 * again without telling the app anything false (no `error` for a network fault, no repeat of what it heard),
 * and a cloud that no longer knows the stream ends it with `error`.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import type { ManagedStreamStatus } from '../../../src/contracts/mentra.ts';
import { ManagedStreamClient } from '../../../src/sdk/client.ts';

const URL1 = 'http://relay-1:8888/hls/a-b.com/abc/index.m3u8';
const WHEP1 = 'http://relay-1:8888/whep/a-b.com/abc';
const status = (s: Partial<ManagedStreamStatus>): ManagedStreamStatus => ({
  type: 'managed_stream_status',
  streamId: 'abc',
  status: 'initializing',
  ...s,
});

describe('managed stream client', () => {
  it('follows a dropped event stream again and tells the app only the truth', async () => {
    let connections = 0;
    const server = http.createServer((req, res) => {
      if (req.method === 'POST') {
        res.setHeader('content-type', 'application/json');
        res.end(JSON.stringify(status({})));
        return;
      }
      const n = ++connections;
      if (n === 3) {
        res.statusCode = 404; // the cloud restarted and forgot the stream
        res.end(JSON.stringify({ error: 'no such stream' }));
        return;
      }
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      const send = (s: ManagedStreamStatus): boolean => res.write(`data: ${JSON.stringify(s)}\n\n`);
      if (n === 1) {
        send(status({}));
        send(status({ status: 'active', hlsUrl: URL1, dashUrl: '', webrtcUrl: WHEP1 }));
        setTimeout(() => req.socket.destroy(), 20); // the connection breaks
      } else {
        // A new connection starts with the current status (already heard), then news, then it ends.
        send(status({ status: 'active', hlsUrl: URL1, dashUrl: '', webrtcUrl: WHEP1 }));
        send(status({ status: 'reconnecting', message: 'glasses reconnecting' }));
        setTimeout(() => res.end(), 20);
      }
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const client = new ManagedStreamClient({
      cloudUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      userId: 'a@b.com',
      packageName: 'com.app',
      reconnectMs: { first: 10, max: 50 },
    });
    const heard: ManagedStreamStatus[] = [];
    let ended: () => void = () => {};
    const over = new Promise<void>((r) => (ended = r));
    client.onManagedStreamStatus((s) => {
      heard.push(s);
      if (s.status === 'error') ended();
    });
    try {
      const urls = await client.startManagedStream();
      assert.equal(urls.hlsUrl, URL1);
      assert.equal(urls.webrtcUrl, WHEP1, 'WHEP beside HLS');
      await over;
      assert.deepEqual(
        heard.map((s) => s.status),
        ['initializing', 'initializing', 'active', 'reconnecting', 'error'],
      );
      assert.equal(heard.at(-1)?.message, 'the cloud no longer knows this stream');
      assert.equal(connections, 3);
    } finally {
      client.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
