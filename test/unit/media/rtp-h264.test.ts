import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { H264Depacketizer } from '../../../src/media/rtp-h264.ts';
import { parseRtp, type RtpPacket, seqAfter } from '../../../src/media/rtp-packet.ts';

const SPS = Buffer.from([0x67, 0x42, 0xc0, 0x1f, 0xda]);
const PPS = Buffer.from([0x68, 0xce, 0x3c, 0x80]);
const IDR = Buffer.concat([Buffer.from([0x65]), Buffer.alloc(3000, 0xab)]);
const SLICE = Buffer.from([0x41, 0x9a, 0x01, 0x02]);

const lp = (...nals: Buffer[]): Buffer =>
  Buffer.concat(
    nals.flatMap((n) => {
      const len = Buffer.alloc(4);
      len.writeUInt32BE(n.length);
      return [len, n];
    }),
  );
const stapA = (...nals: Buffer[]): Buffer =>
  Buffer.concat([
    Buffer.from([0x78]),
    ...nals.flatMap((n) => [Buffer.from([n.length >> 8, n.length & 0xff]), n]),
  ]);
/** FU-A fragments of `nal`, `size` bytes of payload each. */
function fuA(nal: Buffer, size: number): Buffer[] {
  const body = nal.subarray(1);
  const out: Buffer[] = [];
  for (let at = 0; at < body.length; at += size) {
    const start = at === 0 ? 0x80 : 0;
    const end = at + size >= body.length ? 0x40 : 0;
    out.push(
      Buffer.concat([
        Buffer.from([(nal[0]! & 0xe0) | 28, start | end | (nal[0]! & 0x1f)]),
        body.subarray(at, at + size),
      ]),
    );
  }
  return out;
}

function packets(payloads: Buffer[], timestamp: number, firstSeq: number): RtpPacket[] {
  return payloads.map((payload, i) => ({
    payloadType: 102,
    marker: i === payloads.length - 1,
    sequence: (firstSeq + i) & 0xffff,
    timestamp,
    ssrc: 1,
    payload,
  }));
}

describe('RTP packets', () => {
  const header = (b0: number, extra: number[] = []): Buffer =>
    Buffer.from([b0, 0x80 | 102, 0x12, 0x34, 0, 0, 0x03, 0xe8, 0, 0, 0, 7, ...extra]);
  const cases: { name: string; buf: Buffer; payload: number[] | null }[] = [
    { name: 'plain', buf: header(0x80, [1, 2, 3]), payload: [1, 2, 3] },
    { name: 'one CSRC', buf: header(0x81, [0, 0, 0, 9, 1, 2]), payload: [1, 2] },
    { name: 'an extension', buf: header(0x90, [0xbe, 0xde, 0, 1, 0x10, 0xff, 0, 0, 5]), payload: [5] },
    { name: 'padding', buf: header(0xa0, [4, 5, 0, 0, 3]), payload: [4, 5] },
    { name: 'version 1', buf: header(0x40, [1]), payload: null },
    { name: 'CSRCs past the end', buf: header(0x8f, [1]), payload: null },
    { name: 'an extension past the end', buf: header(0x90, [0xbe, 0xde, 0xff, 0xff]), payload: null },
    { name: 'padding longer than the packet', buf: header(0xa0, [200]), payload: null },
    { name: 'too short', buf: Buffer.from([0x80, 1, 2]), payload: null },
  ];
  for (const c of cases) {
    it(`parses ${c.name}`, () => {
      const p = parseRtp(c.buf);
      if (c.payload === null) return assert.equal(p, null);
      assert.ok(p);
      assert.deepEqual([...p.payload], c.payload);
      assert.equal(p.sequence, 0x1234);
      assert.equal(p.timestamp, 1000);
      assert.equal(p.marker, true);
      assert.equal(p.payloadType, 102);
    });
  }

  it('compares sequence numbers across the wrap', () => {
    assert.equal(seqAfter(1, 0), true);
    assert.equal(seqAfter(0, 0xffff), true);
    assert.equal(seqAfter(0xffff, 0), false);
    assert.equal(seqAfter(5, 5), false);
  });
});

describe('H.264 depacketizer', () => {
  it('reassembles STAP-A + FU-A into a keyframe, and single NAL packets into the next frames', () => {
    const d = new H264Depacketizer();
    const out = [
      ...packets([stapA(SPS, PPS), ...fuA(IDR, 1000)], 9000, 65534).flatMap((p) => d.push(p)),
      ...packets([SLICE], 12000, 2).flatMap((p) => d.push(p)),
    ];
    assert.deepEqual(out, [
      { timestamp: 9000, keyframe: true, data: lp(SPS, PPS, IDR) },
      { timestamp: 12000, keyframe: false, data: lp(SLICE) },
    ]);
    assert.deepEqual(d.sps, SPS);
    assert.deepEqual(d.pps, PPS);
  });

  it('ends a frame on a timestamp change when the marker was lost, and puts SPS/PPS before a bare keyframe', () => {
    const fresh = new H264Depacketizer();
    for (const p of packets([stapA(SPS, PPS), ...fuA(IDR, 1000)], 0, 0)) fresh.push(p);
    const noMarker = { ...packets([SLICE], 3000, 4)[0]!, marker: false };
    assert.deepEqual(fresh.push(noMarker), []);
    const next = fresh.push(packets([IDR], 6000, 5)[0]!);
    assert.deepEqual(
      next.map((f) => [f.timestamp, f.keyframe]),
      [
        [3000, false],
        [6000, true],
      ],
    );
    assert.deepEqual(next[1]!.data, lp(SPS, PPS, IDR));
  });

  it('drops a frame with a gap and everything after it until a keyframe, asking for one', () => {
    const d = new H264Depacketizer();
    for (const p of packets([stapA(SPS, PPS), ...fuA(IDR, 1000)], 0, 100)) d.push(p);
    assert.equal(d.needsKeyframe, false);
    const frag = packets(fuA(Buffer.concat([Buffer.from([0x41]), Buffer.alloc(2500, 1)]), 1000), 3000, 104);
    assert.deepEqual([d.push(frag[0]!), d.push(frag[2]!)].flat(), []); // frag[1] lost
    assert.equal(d.needsKeyframe, true);
    assert.deepEqual(d.push(packets([SLICE], 6000, 107)[0]!), []);
    const key = packets([IDR], 9000, 108).flatMap((p) => d.push(p));
    assert.equal(key.length, 1);
    assert.equal(key[0]!.keyframe, true);
    assert.equal(d.needsKeyframe, false);
    assert.equal(d.dropped, 2);
  });

  it('survives random payloads', () => {
    const d = new H264Depacketizer();
    let seed = 3;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed;
    };
    for (let i = 0; i < 5000; i++) {
      const payload = Buffer.alloc(rand() % 200);
      for (let j = 0; j < payload.length; j++) payload[j] = rand() & 0xff;
      d.push({
        payloadType: 102,
        marker: rand() % 4 === 0,
        sequence: i & 0xffff,
        timestamp: (i >> 2) * 3000,
        ssrc: 1,
        payload,
      });
      parseRtp(payload);
    }
  });
});
