import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Receiver } from '../../../src/srt/receiver.ts';
import { SEQ_MAX, seqAdd } from '../../../src/srt/seq.ts';

const p = (n: number) => Buffer.from([n & 0xff]);
const bytes = (bufs: Buffer[]) => bufs.map((b) => b[0]);

describe('srt receiver (fake packets, fake clock)', () => {
  it('delivers in order at sender time + latency', () => {
    const r = new Receiver({ initialSeq: 10, latencyUs: 120_000, capacity: 64 });
    assert.equal(r.push(10, 0, p(10), false, 1_000_000), null);
    assert.equal(r.push(11, 10_000, p(11), false, 1_010_000), null);
    assert.deepEqual(bytes(r.deliver(1_119_999)), []);
    assert.deepEqual(bytes(r.deliver(1_120_000)), [10]);
    assert.deepEqual(bytes(r.deliver(1_130_000)), [11]);
    assert.equal(r.ackSeq, 12);
  });

  it('reports a gap at once, recovers it from a retransmission, and NAKs it again periodically', () => {
    const r = new Receiver({ initialSeq: 0, latencyUs: 100_000, capacity: 64 });
    r.push(0, 0, p(0), false, 0);
    assert.deepEqual(r.push(4, 4000, p(4), false, 4000), [[1, 3]]);
    assert.equal(r.stats.packetsLost, 3);
    assert.equal(r.ackSeq, 1);
    assert.deepEqual(r.periodicNak(10_000, 20_000), []);
    assert.deepEqual(r.periodicNak(30_000, 20_000), [[1, 3]]);
    assert.equal(r.push(2, 2000, p(2), true, 31_000), null);
    assert.deepEqual(r.periodicNak(60_000, 20_000), [
      [1, 1],
      [3, 3],
    ]);
    r.push(1, 1000, p(1), true, 61_000);
    r.push(3, 3000, p(3), true, 62_000);
    assert.equal(r.stats.packetsRecovered, 3);
    assert.equal(r.ackSeq, 5);
    assert.deepEqual(bytes(r.deliver(200_000)), [0, 1, 2, 3, 4]);
  });

  it('drops a lost packet when a later one is due (too-late drop), never stalls', () => {
    const r = new Receiver({ initialSeq: 0, latencyUs: 50_000, capacity: 64 });
    r.push(0, 0, p(0), false, 0);
    r.push(2, 2000, p(2), false, 2000);
    assert.deepEqual(bytes(r.deliver(50_000)), [0]);
    assert.deepEqual(bytes(r.deliver(52_000)), [2]);
    assert.equal(r.stats.packetsDropped, 1);
    assert.equal(r.lossCount, 0);
    r.push(1, 1000, p(1), true, 53_000);
    assert.equal(r.stats.packetsBelated, 1);
  });

  it('gives a hole a grace before dropping it, then drops it', () => {
    const r = new Receiver({ initialSeq: 0, latencyUs: 50_000, capacity: 64, holeGraceUs: 50_000 });
    r.push(0, 0, p(0), false, 0);
    r.push(2, 2000, p(2), false, 2000);
    assert.deepEqual(bytes(r.deliver(60_000)), [0]);
    assert.deepEqual(bytes(r.deliver(100_000)), [], 'the hole holds packet 2 back');
    r.push(1, 1000, p(1), true, 100_500);
    assert.deepEqual(bytes(r.deliver(100_500)), [1, 2], 'recovered within the grace');
    r.push(4, 4000, p(4), false, 101_000);
    assert.deepEqual(bytes(r.deliver(103_999)), []);
    assert.deepEqual(bytes(r.deliver(104_000)), [4]);
    assert.equal(r.stats.packetsDropped, 1);
  });

  it('follows a sender clock slower than ours (drift) so the latency does not melt away', () => {
    const r = new Receiver({ initialSeq: 0, latencyUs: 120_000, capacity: 64 });
    // One packet every 10 ms of our time for 10 minutes; the sender's clock runs 0.1 % slow.
    let held = 0;
    for (let i = 0; i < 60_000; i++) {
      const now = i * 10_000;
      r.push(i % 0x7fffffff, Math.floor(now * 0.999), p(i), false, now);
      const out = r.deliver(now);
      held = Math.max(held, r.buffered);
      if (i > 59_000)
        assert.ok(r.buffered >= 10, `packets still wait about the latency (${r.buffered} held)`);
      void out;
    }
    assert.ok(held <= 14);
  });

  it('bounds the buffer in packets and counts duplicates', () => {
    const r = new Receiver({ initialSeq: 0, latencyUs: 1_000_000, capacity: 8 });
    for (let i = 0; i < 8; i++) r.push(i, i, p(i), false, i);
    r.push(8, 8, p(8), false, 8);
    r.push(3, 3, p(3), false, 9);
    assert.equal(r.stats.packetsOverflow, 1);
    assert.equal(r.stats.packetsBelated, 1);
    assert.equal(r.buffered, 8);
  });

  it('follows sequence numbers across the 2^31 wrap', () => {
    const start = SEQ_MAX - 2;
    const r = new Receiver({ initialSeq: start, latencyUs: 0, capacity: 16 });
    for (let i = 0; i < 6; i++) {
      if (i === 4) continue;
      r.push(seqAdd(start, i), i, p(i), false, i);
    }
    assert.equal(r.ackSeq, seqAdd(start, 4));
    assert.deepEqual(r.periodicNak(100, 0), [[1, 1]]);
    assert.deepEqual(bytes(r.deliver(10)), [0, 1, 2, 3, 5]);
  });

  it('drains what it holds when the caller leaves', () => {
    const r = new Receiver({ initialSeq: 0, latencyUs: 10_000_000, capacity: 16 });
    r.push(0, 0, p(0), false, 0);
    r.push(2, 0, p(2), false, 0);
    assert.deepEqual(bytes(r.drain()), [0, 2]);
    assert.equal(r.buffered, 0);
  });
});
