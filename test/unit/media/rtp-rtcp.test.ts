import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  fullIntraRequest,
  genericNack,
  isRtcp,
  parseGenericNack,
  parseSenderReports,
  pictureLossIndication,
  receiverReport,
} from '../../../src/media/rtp-rtcp.ts';
import { RtpReceiverStats } from '../../../src/media/rtp-stats.ts';

/** A sender report as libwebrtc sends it (SR + SDES in one compound packet). */
function senderReport(ssrc: number, msw: number, lsw: number, rtp: number): Buffer {
  const sr = Buffer.alloc(28);
  sr[0] = 0x80;
  sr[1] = 200;
  sr.writeUInt16BE(6, 2);
  sr.writeUInt32BE(ssrc, 4);
  sr.writeUInt32BE(msw, 8);
  sr.writeUInt32BE(lsw, 12);
  sr.writeUInt32BE(rtp, 16);
  sr.writeUInt32BE(100, 20);
  sr.writeUInt32BE(5000, 24);
  const sdes = Buffer.from([0x81, 202, 0, 2, 0, 0, 0, 1, 0, 0, 0, 0]);
  return Buffer.concat([sr, sdes]);
}

describe('RTCP', () => {
  it('tells RTCP from RTP (RFC 5761)', () => {
    assert.equal(isRtcp(senderReport(1, 2, 3, 4)), true);
    const rtp = Buffer.alloc(12);
    rtp[0] = 0x80;
    rtp[1] = 96;
    assert.equal(isRtcp(rtp), false);
    rtp[1] = 0x80 | 96; // marker set: 224, outside 192-223
    assert.equal(isRtcp(rtp), false);
  });

  it('reads sender reports out of a compound packet, LSR as the middle 32 bits', () => {
    const [sr] = parseSenderReports(senderReport(0xdeadbeef, 0x12345678, 0x9abcdef0, 777));
    assert.equal(sr!.ssrc, 0xdeadbeef);
    assert.equal(sr!.ntpMiddle, 0x56789abc);
    assert.equal(sr!.rtpTimestamp, 777);
    assert.equal(sr!.packetCount, 100);
  });

  it('skips truncated and foreign packets without throwing', () => {
    const good = senderReport(1, 2, 3, 4);
    for (let n = 0; n < good.length; n++) parseSenderReports(good.subarray(0, n));
    assert.deepEqual(parseSenderReports(Buffer.from([0x80, 201, 0xff, 0xff])), []);
    assert.deepEqual(parseSenderReports(Buffer.alloc(64, 0xff)), []);
  });

  it('writes a receiver report block (RFC 3550 6.4.2)', () => {
    const rr = receiverReport(0x11111111, [
      {
        ssrc: 0x22222222,
        fractionLost: 25,
        cumulativeLost: 7,
        highestSequence: 0x1_0005,
        jitter: 90.4,
        lastSr: 0xabcdef01,
        delaySinceLastSr: 65536,
      },
    ]);
    assert.equal(rr.length, 32);
    assert.deepEqual([rr[0], rr[1], rr.readUInt16BE(2)], [0x81, 201, 7]);
    assert.equal(rr.readUInt32BE(4), 0x11111111);
    assert.equal(rr.readUInt32BE(8), 0x22222222);
    assert.equal(rr[12], 25);
    assert.equal(rr.readUIntBE(13, 3), 7);
    assert.equal(rr.readUInt32BE(16), 0x1_0005);
    assert.equal(rr.readUInt32BE(20), 90);
    assert.equal(rr.readUInt32BE(24), 0xabcdef01);
    assert.equal(rr.readUInt32BE(28), 65536);
  });

  it('packs NACKs as PID + bitmask and reads them back, across the wrap', () => {
    const table: number[][] = [[5], [5, 6, 21], [5, 22], [65534, 65535, 0, 3], [1, 2, 3, 100, 101]];
    for (const want of table) {
      const nack = genericNack(1, 2, want)!;
      assert.equal(nack[1], 205);
      assert.equal(nack[0]! & 0x1f, 1);
      const back = parseGenericNack(nack)!;
      assert.equal(back.mediaSsrc, 2);
      assert.deepEqual(back.sequences, want);
    }
    assert.equal(genericNack(1, 2, [5, 6, 21])!.length, 16, 'one FCI entry for 5 and its 16 followers');
    assert.equal(genericNack(1, 2, []), null);
  });

  it('writes PLI and FIR', () => {
    const pli = pictureLossIndication(1, 2);
    assert.deepEqual([...pli], [0x81, 206, 0, 2, 0, 0, 0, 1, 0, 0, 0, 2]);
    const fir = fullIntraRequest(1, 2, 7);
    assert.deepEqual([fir[0], fir[1], fir.readUInt16BE(2)], [0x84, 206, 4]);
    assert.equal(fir.readUInt32BE(8), 0, 'media SSRC field unused');
    assert.equal(fir.readUInt32BE(12), 2);
    assert.equal(fir[16], 7);
  });
});

describe('RtpReceiverStats', () => {
  it('counts loss per interval and in total (RFC 3550 A.3)', () => {
    const s = new RtpReceiverStats(90_000);
    for (let i = 0; i < 100; i++) if (i % 10 !== 5) s.onPacket(i, i * 3000, i * 33.3333);
    const a = s.report(9, 0, 0)!;
    assert.equal(a.cumulativeLost, 10);
    assert.equal(a.fractionLost, Math.floor((10 * 256) / 100));
    assert.equal(a.highestSequence, 99);
    for (let i = 100; i < 200; i++) s.onPacket(i, i * 3000, i * 33.3333);
    const b = s.report(9, 0, 0)!;
    assert.equal(b.fractionLost, 0);
    assert.equal(b.cumulativeLost, 10);
  });

  it('extends the highest sequence across the wrap; jitter ~0 on a steady clock, grows with arrival jitter', () => {
    const s = new RtpReceiverStats(90_000);
    for (let i = 0; i < 50; i++) s.onPacket((65_520 + i) & 0xffff, i * 3000, i * (1000 / 30));
    assert.equal(s.report(1, 0, 0)!.highestSequence, 0x1_0000 + ((65_520 + 49) & 0xffff));
    assert.ok(s.jitterMs < 0.01);
    const t = new RtpReceiverStats(90_000);
    for (let i = 0; i < 200; i++) t.onPacket(i, i * 3000, i * (1000 / 30) + (i % 2 ? 10 : 0));
    assert.ok(t.jitterMs > 5 && t.jitterMs < 15, String(t.jitterMs));
  });
});
