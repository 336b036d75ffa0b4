/**
 * The glasses simulator's cloud connection against a stand-in cloud (a ws server): a connection that drops
 * is opened again and the glasses repeat where their publish stands (the cloud may have missed it); one
 * closed because a newer connection replaced it is not. The publish itself goes to a closed port here, so
 * FFmpeg fails at once and the glasses report `reconnecting`.
 */
import assert from 'node:assert/strict';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { type WebSocket, WebSocketServer } from 'ws';
import { silentLogger } from '../../src/shared/logger.ts';
import { GlassesSim } from '../../src/sim/glasses-sim.ts';
import { freePort } from '../helpers/ports.ts';

describe('glasses simulator', () => {
  it('reopens a dropped cloud connection and repeats its publish status; not when replaced', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
    await new Promise<void>((r) => wss.once('listening', () => r()));
    const sockets: { ws: WebSocket; messages: Record<string, unknown>[] }[] = [];
    const waiters: (() => void)[] = [];
    const changed = (): void => {
      for (const w of waiters.splice(0)) w();
    };
    const until = async (what: string, check: () => boolean): Promise<void> => {
      const deadline = Date.now() + 15_000;
      while (!check()) {
        if (Date.now() > deadline) throw new Error(`not seen: ${what}`);
        await new Promise<void>((r) => {
          waiters.push(r);
          setTimeout(r, 200);
        });
      }
    };
    wss.on('connection', (ws) => {
      const entry = { ws, messages: [] as Record<string, unknown>[] };
      sockets.push(entry);
      ws.on('message', (data) => {
        entry.messages.push(JSON.parse(String(data)) as Record<string, unknown>);
        changed();
      });
      changed();
    });
    const closedPort = await freePort();
    const sim = new GlassesSim({
      cloudUrl: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
      userId: 'a@b.com',
      log: silentLogger(),
      firstRetryMs: 60_000, // the publish stays in `reconnecting` for the rest of the test
      cloudRetryMs: { first: 20, max: 100 },
    });
    try {
      await sim.connect();
      await until('the first connection', () => sockets.length === 1);
      sockets[0]!.ws.send(
        JSON.stringify({
          type: 'start_rtmp_stream',
          sessionId: 's',
          rtmpUrl: `rtmp://127.0.0.1:${closedPort}/live/a@b.com/abc`,
          appId: 'MANAGED_STREAM',
          streamId: 'abc',
          timestamp: Date.now(),
        }),
      );
      await until('reconnecting on the first connection', () =>
        sockets[0]!.messages.some((m) => m.status === 'reconnecting'),
      );
      // The connection drops: the glasses come back and say where their publish stands.
      sockets[0]!.ws.terminate();
      await until('the status again on a second connection', () =>
        Boolean(sockets[1]?.messages.some((m) => m.status === 'reconnecting' && m.streamId === 'abc')),
      );
      assert.ok(sim.connected);
      // A newer connection of the same user replaced this one: no fight for the slot.
      sockets[1]!.ws.close(4000, 'replaced by a newer connection');
      await until('closed', () => !sim.connected);
      await new Promise((r) => setTimeout(r, 300)); // several retry pauses: nothing may come
      assert.equal(sockets.length, 2, 'no third connection');
    } finally {
      await sim.close();
      for (const s of sockets) s.ws.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    }
  });
});
