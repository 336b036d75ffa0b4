import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RtpJitterBuffer } from '../../../src/media/rtp-jitter.ts';
import type { RtpPacket } from '../../../src/media/rtp-packet.ts';

const pkt = (sequence: number): RtpPacket => ({
  payloadType: 96,
  marker: false,
  sequence: sequence & 0xffff,
  timestamp: 0,
  ssrc: 1,
  payload: Buffer.from([sequence & 0xff]),
});
const seqs = (ps: RtpPacket[]): number[] => ps.map((p) => p.sequence);

describe('RtpJitterBuffer', () => {
  it('releases packets in order as they come', () => {
    const j = new RtpJitterBuffer();
    assert.deepEqual(seqs(j.push(pkt(10), 0)), [10]);
    assert.deepEqual(seqs(j.push(pkt(11), 1)), [11]);
    assert.equal(j.held, 0);
  });

  it('holds packets behind a gap, NACKs it, and releases all once it is filled', () => {
    const j = new RtpJitterBuffer({ nackIntervalMs: 50, maxNackRetries: 2, maxDelayMs: 200 });
    j.push(pkt(1), 0);
    assert.deepEqual(seqs(j.push(pkt(4), 1)), []);
    assert.equal(j.held, 1);
    assert.deepEqual(j.poll(2).nack, [2, 3]);
    assert.deepEqual(j.poll(20).nack, [], 'not again before the interval');
    assert.deepEqual(j.poll(60).nack, [2, 3], 'one retry');
    assert.deepEqual(j.poll(120).nack, [], 'retries exhausted');
    assert.deepEqual(seqs(j.push(pkt(3), 121)), []);
    assert.deepEqual(seqs(j.push(pkt(2), 122)), [2, 3, 4]);
    assert.equal(j.counters.missing, 2);
    assert.equal(j.counters.recovered, 2);
    assert.equal(j.counters.lost, 0);
    assert.equal(j.counters.nacked, 4);
  });

  it('gives a gap up after maxDelayMs: later packets come out, the hole is counted lost', () => {
    const j = new RtpJitterBuffer({ maxDelayMs: 100 });
    j.push(pkt(1), 0);
    j.push(pkt(3), 10);
    assert.deepEqual(seqs(j.poll(50).released), []);
    assert.deepEqual(seqs(j.poll(111).released), [3]);
    assert.equal(j.counters.lost, 1);
    // The missing one arriving now is late.
    assert.deepEqual(seqs(j.push(pkt(2), 120)), []);
    assert.equal(j.counters.late, 1);
  });

  it('drops duplicates', () => {
    const j = new RtpJitterBuffer();
    j.push(pkt(1), 0);
    j.push(pkt(3), 0);
    assert.deepEqual(seqs(j.push(pkt(3), 1)), []);
    assert.deepEqual(seqs(j.push(pkt(1), 1)), []);
    assert.equal(j.counters.duplicates, 1);
    assert.equal(j.counters.late, 1);
  });

  it('crosses the 16-bit wrap in order', () => {
    const j = new RtpJitterBuffer();
    j.push(pkt(65534), 0);
    assert.deepEqual(seqs(j.push(pkt(0), 1)), []);
    assert.deepEqual(j.poll(2).nack, [65535]);
    assert.deepEqual(seqs(j.push(pkt(65535), 3)), [65535, 0]);
    assert.deepEqual(seqs(j.push(pkt(1), 4)), [1]);
  });

  it('is bounded: a full buffer gives the oldest gap up at once', () => {
    const j = new RtpJitterBuffer({ maxPackets: 8, maxDelayMs: 10_000 });
    j.push(pkt(0), 0);
    const out: number[] = [];
    for (let s = 2; s <= 9; s++) out.push(...seqs(j.push(pkt(s), 1)));
    assert.deepEqual(out, [2, 3, 4, 5, 6, 7, 8, 9]);
    assert.equal(j.counters.overflow, 1);
    assert.equal(j.held, 0);
  });

  it('treats a jump beyond the buffer as a numbering restart, not thousands of NACKs', () => {
    const j = new RtpJitterBuffer({ maxPackets: 64 });
    j.push(pkt(100), 0);
    j.push(pkt(102), 1);
    assert.deepEqual(seqs(j.push(pkt(30_000), 2)), [102, 30_000]);
    assert.equal(j.counters.resets, 1);
    assert.deepEqual(j.poll(3).nack, []);
    assert.deepEqual(seqs(j.push(pkt(30_001), 4)), [30_001]);
  });

  it('sends no NACK when retries are 0 (audio)', () => {
    const j = new RtpJitterBuffer({ maxNackRetries: 0, maxDelayMs: 60 });
    j.push(pkt(1), 0);
    j.push(pkt(3), 0);
    assert.deepEqual(j.poll(1).nack, []);
    assert.deepEqual(seqs(j.poll(61).released), [3]);
  });

  it('survives 10^4 random sequence numbers with bounded memory', () => {
    const j = new RtpJitterBuffer({ maxPackets: 128 });
    let seed = 1;
    for (let i = 0; i < 10_000; i++) {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      j.push(pkt(seed & 0xffff), i);
      if (i % 7 === 0) j.poll(i);
      assert.ok(j.held <= 128);
    }
  });
});
