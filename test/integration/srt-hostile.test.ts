/**
 * Hostile SRT input against a live listener: 10^4 random and mutated datagrams (conclusions with a valid
 * cookie and mutated fields, control and data packets routed to a live connection with mutated headers and
 * payloads, plain garbage), a handshake flood from many source ports, a caller that goes silent mid-stream,
 * and 100 connect/disconnect cycles. Nothing throws, every table drains back to empty, and a clean caller
 * still gets in. `SRT_FUZZ_CASES` raises the count (`npm run fuzz`).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { EndReason } from '../../src/contracts/publish.ts';
import { SrtListener } from '../../src/srt/listener.ts';
import { encodePacket } from '../../src/srt/packet.ts';
import type { SrtSource } from '../../src/srt/source.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { TestCaller } from '../helpers/srt-caller.ts';
import { tsReference } from '../helpers/srt-publish.ts';

const CASES = Number(process.env.SRT_FUZZ_CASES ?? 10_000);

function rng(seed: number): () => number {
  let s = seed;
  return () => {
    s = (s * 1103515245 + 12345) & 0x7fffffff;
    return s;
  };
}

/** Lets the listener read what was sent (loopback UDP drops what piles up in the socket buffer). */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

function nextEnd(listener: SrtListener, streamId: string): Promise<EndReason> {
  return new Promise((resolve) => {
    const onEnd = (s: SrtSource, r: EndReason) => {
      if (s.info.streamId !== streamId) return;
      listener.off('end', onEnd);
      resolve(r);
    };
    listener.on('end', onEnd);
  });
}

const EMPTY = { connections: 0, peers: 0, pending: 0, addresses: 0, live: 0 };

describe('SRT against hostile input', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'srt-hostile-'));
  const logs = captureLogs('warn');
  let ts: Buffer;

  before(async () => {
    ts = readFileSync((await tsReference(dir, 2)).file);
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it(`${CASES} random and mutated datagrams: nothing throws, the listener still serves`, {
    timeout: 180_000,
  }, async () => {
    const listener = new SrtListener({
      log: logs.log,
      handshakesPerIpPerSecond: 1e9,
      handshakesPerSecond: 1e9,
      peerIdleTimeoutMs: 1000,
    });
    const port = await listener.listen(0, '127.0.0.1');
    const caller = await new TestCaller().bind();
    try {
      assert.deepEqual(await caller.connect(port, 'publish:live/fuzz/s1'), { ok: true });
      for (let i = 0; i < 40; i++) caller.sendData(ts.subarray(i * 1316, (i + 1) * 1316));
      const rand = rng(42);
      const bytes = (n: number) => Buffer.from(Array.from({ length: n }, () => rand() & 0xff));
      for (let i = 0; i < CASES; i++) {
        let d: Buffer;
        switch (i % 4) {
          case 0:
            d = bytes(rand() % 1600);
            break;
          case 1: {
            // A conclusion with this caller's valid cookie and a new socket id, mutated past the cookie.
            const hs = {
              ...caller.conclusion(caller.cookie, `publish:live/fuzz/m${i}?token=x`),
              socketId: rand(),
            };
            d = caller.handshakePacket(hs);
            for (let k = rand() % 4; k > 0; k--) d[48 + (rand() % (d.length - 48))] = rand() & 0xff;
            if (rand() % 4 === 0) d = d.subarray(0, 16 + (rand() % (d.length - 16)));
            break;
          }
          case 2:
            d = encodePacket({
              kind: 'control',
              type: rand() % 9 === 5 ? 0x7fff : rand() % 9,
              subtype: rand() % 6,
              info: rand(),
              timestamp: rand(),
              destSocketId: caller.peerSocketId,
              cif: bytes(rand() % 80),
            });
            break;
          default: {
            const off = (rand() % 60) * 188;
            const payload = Buffer.from(ts.subarray(off, off + 1316));
            for (let k = 0; k < 3; k++) payload[rand() % payload.length] = rand() & 0xff;
            d = encodePacket({
              kind: 'data',
              seq: rand() % 2 === 0 ? caller.seq + (rand() % 64) - 32 : rand(),
              position: rand() & 3,
              inOrder: false,
              key: (rand() & 3) as 0 | 1 | 2 | 3,
              retransmitted: rand() % 2 === 0,
              messageNumber: rand() & 0x3ffffff,
              timestamp: rand(),
              destSocketId: caller.peerSocketId,
              payload,
            });
          }
        }
        caller.sendRaw(d);
        if (i % 20 === 0) await turn();
      }
      await turn();
      assert.ok(listener.stats.datagrams >= CASES / 2, `${listener.stats.datagrams} datagrams read`);
      assert.ok(listener.tracked.connections <= 20, 'at most the per-address connection limit');
      const fresh = await new TestCaller().bind();
      // The fuzz may have filled this address's 20 connections: they idle out within a second.
      let result = await fresh.connect(port, 'publish:live/fuzz/after');
      for (let tries = 0; !result.ok && tries < 20; tries++) {
        await new Promise<void>((resolve) => listener.once('end', () => resolve()));
        result = await fresh.connect(port, 'publish:live/fuzz/after');
      }
      assert.deepEqual(result, { ok: true });
      fresh.shutdown();
      await fresh.close();
    } finally {
      await caller.close();
      await listener.close();
    }
    assert.deepEqual(listener.tracked, EMPTY);
  });

  it('a handshake flood from many source ports gets nothing and keeps nothing', {
    timeout: 60_000,
  }, async () => {
    const listener = new SrtListener({ log: logs.log, handshakesPerIpPerSecond: 50 });
    const port = await listener.listen(0, '127.0.0.1');
    const callers = await Promise.all(Array.from({ length: 100 }, () => new TestCaller().bind()));
    try {
      for (let round = 0; round < 5; round++) {
        for (const c of callers) {
          c.sendRaw(c.handshakePacket(c.induction()), port);
          c.sendRaw(c.handshakePacket(c.conclusion(12345, 'publish:live/flood/x')), port);
        }
        await turn();
      }
      // Wait until the listener has read a good part of the flood (the kernel may drop some of it).
      while (listener.stats.datagrams < 400) await new Promise<void>((resolve) => setTimeout(resolve, 10));
      const s = listener.stats;
      // 50 a second from one address, so at most two windows' worth got an answer or a look.
      assert.ok(
        s.inductions + s.conclusions <= 100,
        `${s.inductions} inductions, ${s.conclusions} conclusions`,
      );
      assert.ok(s.handshakesDropped >= 300, `${s.handshakesDropped} dropped`);
      assert.equal(listener.stats.connectionsAccepted, 0);
      assert.deepEqual(listener.tracked, EMPTY);
    } finally {
      await Promise.all(callers.map((c) => c.close()));
      await listener.close();
    }
  });

  it('a caller that goes silent mid-stream ends by the peer idle timeout', { timeout: 30_000 }, async () => {
    const listener = new SrtListener({ log: logs.log, peerIdleTimeoutMs: 500 });
    const port = await listener.listen(0, '127.0.0.1');
    const caller = await new TestCaller().bind();
    try {
      const ended = nextEnd(listener, 'quiet');
      assert.deepEqual(await caller.connect(port, 'publish:live/u/quiet'), { ok: true });
      for (let i = 0; i < 20; i++) caller.sendData(ts.subarray(i * 1316, (i + 1) * 1316));
      const reason = await ended;
      assert.equal(reason.kind, 'idle-timeout');
      assert.equal(reason.code, 'SRT_IDLE_TIMEOUT');
      assert.deepEqual(listener.tracked, EMPTY);
    } finally {
      await caller.close();
      await listener.close();
    }
  });

  it('an operator kick and the listener closing end their publishes with their reasons', {
    timeout: 30_000,
  }, async () => {
    const listener = new SrtListener({ log: logs.log });
    const port = await listener.listen(0, '127.0.0.1');
    const a = await new TestCaller().bind();
    const b = await new TestCaller().bind();
    try {
      const kicked = nextEnd(listener, 'kick');
      const closed = nextEnd(listener, 'close');
      assert.deepEqual(await a.connect(port, 'publish:live/u/kick'), { ok: true });
      assert.deepEqual(await b.connect(port, 'publish:live/u/close'), { ok: true });
      assert.equal(listener.publishes.length, 2);
      assert.ok(listener.kick('live/u/kick'));
      assert.equal((await kicked).kind, 'kicked');
      assert.equal(listener.kick('live/u/kick'), false);
      await listener.close();
      assert.equal((await closed).kind, 'server-close');
      await listener.close();
      assert.deepEqual(listener.tracked, EMPTY);
    } finally {
      await a.close();
      await b.close();
      await listener.close();
    }
  });

  it('100 connect/disconnect cycles leave nothing behind', { timeout: 120_000 }, async () => {
    const listener = new SrtListener({ log: logs.log, handshakesPerIpPerSecond: 1e6 });
    const port = await listener.listen(0, '127.0.0.1');
    const heapBefore = process.memoryUsage().heapUsed;
    try {
      for (let i = 0; i < 100; i++) {
        const caller = await new TestCaller().bind();
        const ended = nextEnd(listener, `c${i}`);
        assert.deepEqual(await caller.connect(port, `publish:live/u/c${i}`), { ok: true });
        for (let k = 0; k < 10; k++) caller.sendData(ts.subarray(k * 1316, (k + 1) * 1316));
        caller.shutdown();
        assert.equal((await ended).kind, 'unpublish');
        await caller.close();
      }
      assert.equal(listener.stats.publishes, 100);
      assert.deepEqual(listener.tracked, EMPTY);
      assert.equal(listener.stats.connectionsOpen, 0);
      const grown = process.memoryUsage().heapUsed - heapBefore;
      assert.ok(grown < 50 * 1024 * 1024, `heap grew ${grown} bytes`);
    } finally {
      await listener.close();
    }
  });
});
