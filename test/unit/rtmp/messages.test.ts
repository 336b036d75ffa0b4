import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeAmf0 } from '../../../src/rtmp/amf0.ts';
import {
  decodeMessage,
  encodeMessage,
  type Message,
  MessageType,
  splitAggregate,
} from '../../../src/rtmp/messages.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

/** Control messages: one table for decode and encode. */
const control: { message: Message; type: number; payload: Buffer }[] = [
  {
    message: { kind: 'set-chunk-size', size: 4096 },
    type: MessageType.SetChunkSize,
    payload: hex('00001000'),
  },
  { message: { kind: 'abort', csid: 4 }, type: MessageType.Abort, payload: hex('00000004') },
  {
    message: { kind: 'acknowledgement', sequence: 2_500_000 },
    type: MessageType.Acknowledgement,
    payload: hex('002625a0'),
  },
  {
    message: { kind: 'window-ack-size', size: 2_500_000 },
    type: MessageType.WindowAckSize,
    payload: hex('002625a0'),
  },
  {
    message: { kind: 'set-peer-bandwidth', size: 2_500_000, limitType: 2 },
    type: MessageType.SetPeerBandwidth,
    payload: hex('002625a0 02'),
  },
  {
    message: { kind: 'user-control', event: 0, value: 1 },
    type: MessageType.UserControl,
    payload: hex('0000 00000001'),
  },
  {
    message: { kind: 'user-control', event: 6, value: 1234 },
    type: MessageType.UserControl,
    payload: hex('0006 000004d2'),
  },
  {
    message: { kind: 'user-control', event: 3, value: 1, extra: 3000 },
    type: MessageType.UserControl,
    payload: hex('0003 00000001 00000bb8'),
  },
];

describe('RTMP messages', () => {
  for (const c of control) {
    it(`encodes and decodes ${c.message.kind} ${JSON.stringify(c.message)}`, () => {
      const raw = encodeMessage(c.message);
      assert.equal(raw.type, c.type);
      assert.equal(raw.csid, 2);
      assert.equal(raw.streamId, 0);
      assert.deepEqual(raw.payload, c.payload);
      assert.deepEqual(
        decodeMessage({ csid: 2, type: c.type, streamId: 0, timestamp: 0, payload: c.payload }),
        c.message,
      );
    });
  }

  it('masks the top bit of Set Chunk Size (31-bit field)', () => {
    const m = decodeMessage({ csid: 2, type: 1, streamId: 0, timestamp: 0, payload: hex('80001000') });
    assert.deepEqual(m, { kind: 'set-chunk-size', size: 4096 });
  });

  it('round-trips commands, with AMF3 commands read past their leading zero', () => {
    const cmd: Message = {
      kind: 'command',
      streamId: 1,
      name: 'publish',
      transactionId: 5,
      args: [null, 'stream1', 'live'],
    };
    const raw = encodeMessage(cmd);
    assert.deepEqual(decodeMessage(raw), cmd);
    const amf3 = {
      ...raw,
      type: MessageType.CommandAmf3,
      payload: Buffer.concat([Buffer.from([0]), raw.payload]),
    };
    assert.deepEqual(decodeMessage(amf3), cmd);
  });

  it("reads GStreamer's transaction id 0 and a missing one as 0", () => {
    const raw = { csid: 3, type: 20, streamId: 0, timestamp: 0, payload: encodeAmf0('FCPublish') };
    assert.equal((decodeMessage(raw) as { transactionId: number }).transactionId, 0);
  });

  it('refuses short control bodies and nameless commands', () => {
    for (const type of [1, 2, 3, 5]) {
      assert.throws(
        () => decodeMessage({ csid: 2, type, streamId: 0, timestamp: 0, payload: hex('0000') }),
        (e: unknown) => e instanceof RelayError && e.code === ErrorCodes.RTMP_MESSAGE_MALFORMED,
      );
    }
    assert.throws(
      () => decodeMessage({ csid: 2, type: 4, streamId: 0, timestamp: 0, payload: hex('0006') }),
      (e: unknown) => e instanceof RelayError && e.code === ErrorCodes.RTMP_MESSAGE_MALFORMED,
    );
    assert.throws(
      () => decodeMessage({ csid: 3, type: 20, streamId: 0, timestamp: 0, payload: encodeAmf0(1, 2) }),
      (e: unknown) => e instanceof RelayError && e.code === ErrorCodes.RTMP_MESSAGE_MALFORMED,
    );
  });

  it('keeps the body of a data message for the FLV script tag', () => {
    const body = encodeAmf0('@setDataFrame', 'onMetaData', { width: 540 });
    const m = decodeMessage({ csid: 4, type: 18, streamId: 1, timestamp: 0, payload: body });
    assert.equal(m.kind, 'data');
    assert.deepEqual(m.kind === 'data' && m.body, body);
  });

  it('splits aggregate messages and rebases their timestamps on the message', () => {
    const tag = (type: number, ts: number, body: string): Buffer => {
      const b = Buffer.from(body);
      const out = Buffer.alloc(11 + b.length + 4);
      out[0] = type;
      out.writeUIntBE(b.length, 1, 3);
      out.writeUIntBE(ts & 0xffffff, 4, 3);
      out[7] = ts >>> 24;
      b.copy(out, 11);
      out.writeUInt32BE(11 + b.length, 11 + b.length);
      return out;
    };
    const data = Buffer.concat([tag(9, 100, 'v1'), tag(8, 120, 'a1'), tag(9, 166, 'v2')]);
    assert.deepEqual(
      splitAggregate(data, 5000).map((t) => [t.type, t.timestamp, t.data.toString()]),
      [
        [9, 5000, 'v1'],
        [8, 5020, 'a1'],
        [9, 5066, 'v2'],
      ],
    );
    for (const bad of [
      data.subarray(0, 5),
      Buffer.concat([tag(9, 0, 'x').subarray(0, 11), Buffer.from('short')]),
    ]) {
      const truncated = Buffer.from(bad);
      if (truncated.length >= 4) truncated.writeUIntBE(1000, 1, 3);
      assert.throws(
        () => splitAggregate(truncated, 0),
        (e: unknown) => e instanceof RelayError && e.code === ErrorCodes.RTMP_MESSAGE_MALFORMED,
      );
    }
  });
});
