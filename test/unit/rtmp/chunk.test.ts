import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import type { RawMessage } from '../../../src/rtmp/chunk.ts';
import { ChunkReader } from '../../../src/rtmp/chunk-reader.ts';
import { ChunkWriter } from '../../../src/rtmp/chunk-writer.ts';
import { MessageType } from '../../../src/rtmp/messages.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';
import { type FixtureName, loadFixture } from '../../fixtures/generate.ts';
import { afterHandshake, fragment, prng, readMessages } from '../../helpers/rtmp-bytes.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const msg = (
  csid: number,
  type: number,
  streamId: number,
  timestamp: number,
  payload: string,
): RawMessage => ({
  csid,
  type,
  streamId,
  timestamp,
  payload: Buffer.from(payload),
});

/** One table for both directions: the writer produces `bytes` from `messages`, the reader the reverse. */
const cases: { name: string; chunkSize: number; messages: RawMessage[]; bytes: Buffer }[] = [
  {
    name: 'fmt 0, one chunk',
    chunkSize: 128,
    messages: [msg(3, 20, 0, 0, 'ab')],
    bytes: hex('03 000000 000002 14 00000000 6162'),
  },
  {
    name: 'fmt 0 with a fmt 3 continuation',
    chunkSize: 2,
    messages: [msg(3, 20, 0, 0, 'abc')],
    bytes: hex('03 000000 000003 14 00000000 6162 c3 63'),
  },
  {
    name: 'fmt 1 when the length changes',
    chunkSize: 128,
    messages: [msg(4, 8, 1, 0, 'a'), msg(4, 8, 1, 10, 'bc')],
    bytes: hex('04 000000 000001 08 01000000 61   44 00000a 000002 08 6263'),
  },
  {
    name: 'fmt 2 when only the delta changes, fmt 3 when nothing does',
    chunkSize: 128,
    messages: [msg(4, 8, 1, 0, 'a'), msg(4, 8, 1, 10, 'b'), msg(4, 8, 1, 20, 'c'), msg(4, 8, 1, 40, 'd')],
    bytes: hex('04 000000 000001 08 01000000 61   84 00000a 62   c4 63   84 000014 64'),
  },
  {
    name: 'extended timestamp, repeated on continuation chunks',
    chunkSize: 1,
    messages: [msg(3, 20, 0, 0x01000000, 'ab')],
    bytes: hex('03 ffffff 000002 14 00000000 01000000 61   c3 01000000 62'),
  },
  {
    name: 'extended delta on fmt 1',
    chunkSize: 128,
    messages: [msg(6, 9, 1, 5, 'a'), msg(6, 9, 1, 5 + 0x01000000, 'bc')],
    bytes: hex('06 000005 000001 09 01000000 61   46 ffffff 000002 09 01000000 6263'),
  },
  {
    name: 'chunk stream id 64',
    chunkSize: 128,
    messages: [msg(64, 8, 1, 0, 'a')],
    bytes: hex('00 00 000000 000001 08 01000000 61'),
  },
  {
    name: 'chunk stream id 319',
    chunkSize: 128,
    messages: [msg(319, 8, 1, 0, 'a')],
    bytes: hex('00 ff 000000 000001 08 01000000 61'),
  },
  {
    name: 'chunk stream id 320',
    chunkSize: 128,
    messages: [msg(320, 8, 1, 0, 'a')],
    bytes: hex('01 0001 000000 000001 08 01000000 61'),
  },
  {
    name: 'chunk stream id 65599',
    chunkSize: 128,
    messages: [msg(65599, 8, 1, 0, 'a')],
    bytes: hex('01 ffff 000000 000001 08 01000000 61'),
  },
  {
    name: 'an empty message',
    chunkSize: 128,
    messages: [msg(3, 20, 0, 0, '')],
    bytes: hex('03 000000 000000 14 00000000'),
  },
];

function strip(messages: RawMessage[]): object[] {
  return messages.map((m) => ({ ...m, payload: m.payload.toString('hex') }));
}

describe('chunk writer and reader (shared table)', () => {
  for (const c of cases) {
    it(`writes ${c.name}`, () => {
      const writer = new ChunkWriter();
      writer.setChunkSize(c.chunkSize);
      assert.equal(
        Buffer.concat(c.messages.map((m) => writer.write(m))).toString('hex'),
        c.bytes.toString('hex'),
      );
    });
    it(`reads ${c.name}, whole and one byte at a time`, () => {
      assert.deepEqual(strip(readMessages([c.bytes], { chunkSize: c.chunkSize })), strip(c.messages));
      const bytewise = [...c.bytes].map((b) => Buffer.from([b]));
      assert.deepEqual(strip(readMessages(bytewise, { chunkSize: c.chunkSize })), strip(c.messages));
    });
  }
});

describe('chunk reader rules', () => {
  it('adds the fmt-0 timestamp as the delta of a fmt-3 message that follows it (spec, FFmpeg)', () => {
    const out = readMessages([hex('03 0003e8 000001 14 00000000 61   c3 62')]);
    assert.deepEqual(
      out.map((m) => m.timestamp),
      [1000, 2000],
    );
  });

  it('tolerates a sender that omits the extended timestamp on continuation chunks', () => {
    const bytes = hex('03 ffffff 000002 14 00000000 01000000 61   c3 62   03 000000 000001 14 00000000 63');
    const out = readMessages([bytes], { chunkSize: 1 });
    assert.deepEqual(
      out.map((m) => [m.timestamp, m.payload.toString()]),
      [
        [0x01000000, 'ab'],
        [0, 'c'],
      ],
    );
  });

  it('wraps 32-bit timestamps', () => {
    const out = readMessages([hex('04 ffffff 000001 08 01000000 fffffff0 61   84 000020 62')]);
    assert.deepEqual(
      out.map((m) => m.timestamp),
      [0xfffffff0, 0x10],
    );
  });

  it('accepts a fmt-1 first chunk (librtmp) with timestamps from 0', () => {
    const out = readMessages([hex('42 000005 000006 04 0006 00000001')]);
    assert.equal(out[0]!.timestamp, 5);
    assert.equal(out[0]!.type, MessageType.UserControl);
  });

  it('drops a partial message on Abort', () => {
    const reader = new ChunkReader();
    reader.setChunkSize(1);
    const seen: RawMessage[] = [];
    reader.push(hex('04 000000 000003 08 01000000 61'), (m) => seen.push(m));
    assert.equal(reader.bufferedBytes, 1);
    reader.abort(4);
    assert.equal(reader.bufferedBytes, 0);
    reader.push(hex('04 000000 000001 08 01000000 7a'), (m) => seen.push(m));
    assert.deepEqual(
      seen.map((m) => m.payload.toString()),
      ['z'],
    );
  });

  const violations: [string, Buffer, string, object?][] = [
    ['fmt 2 with no previous header', hex('82 000001 61'), ErrorCodes.RTMP_CHUNK_NO_PREVIOUS],
    ['fmt 3 with no previous header', hex('c5 61'), ErrorCodes.RTMP_CHUNK_NO_PREVIOUS],
    ['a message over the size limit', hex('03 000000 800001 09 01000000'), ErrorCodes.RTMP_MESSAGE_TOO_LARGE],
    [
      'the largest declarable message',
      hex('03 000000 ffffff 09 01000000'),
      ErrorCodes.RTMP_MESSAGE_TOO_LARGE,
    ],
    [
      'a new header in the middle of a message',
      hex(`04 000000 000200 08 01000000 ${'00'.repeat(128)}04 000000 000001 08 01000000 61`),
      ErrorCodes.RTMP_CHUNK_HEADER_MID_MESSAGE,
    ],
    [
      'too many chunk streams',
      Buffer.concat(
        Array.from({ length: 5 }, (_, i) =>
          hex(`${(4 + i).toString(16).padStart(2, '0')} 000000 000001 08 01000000 61`),
        ),
      ),
      ErrorCodes.RTMP_CHUNK_STREAMS_EXCEEDED,
      { maxChunkStreams: 4 },
    ],
    [
      'partial messages beyond the buffered-bytes cap',
      Buffer.concat([
        hex('04 000000 001000 08 01000000'),
        Buffer.alloc(128),
        hex('05 000000 001000 08 01000000'),
        Buffer.alloc(128),
      ]),
      ErrorCodes.RTMP_BUFFERED_TOO_MUCH,
      { maxBufferedBytes: 200 },
    ],
  ];
  for (const [name, bytes, code, limits] of violations) {
    it(`refuses ${name} (${code})`, () => {
      assert.throws(
        () => readMessages([bytes], limits ? { limits } : {}),
        (e: unknown) => e instanceof RelayError && e.code === code,
      );
    });
  }

  it('refuses chunk size 0 and clamps sizes above 0xFFFFFF', () => {
    const reader = new ChunkReader();
    assert.throws(
      () => reader.setChunkSize(0),
      (e: unknown) => e instanceof RelayError && e.code === ErrorCodes.RTMP_CHUNK_SIZE_INVALID,
    );
    reader.setChunkSize(0x7fffffff);
    assert.equal(reader.chunkSize, 0xffffff);
  });
});

describe('chunk reader on recorded real connections', () => {
  const names: FixtureName[] = ['ffmpeg.rtmp', 'rtmp2sink.rtmp', 'rtmpsink.rtmp'];
  const recordings = new Map<FixtureName, Buffer>();
  before(async () => {
    for (const name of names) recordings.set(name, afterHandshake(await loadFixture(name)));
  });

  for (const name of names) {
    it(`${name}: random TCP fragmentation gives the same messages`, () => {
      const bytes = recordings.get(name)!;
      const whole = readMessages([bytes]);
      assert.ok(whole.filter((m) => m.type === MessageType.Video).length >= 20, 'recording has video');
      const random = prng(42);
      for (const maxPiece of [1, 3, 17, 1500, 65536]) {
        const pieces = fragment(bytes, random, maxPiece);
        assert.deepEqual(strip(readMessages(pieces)), strip(whole), `pieces up to ${maxPiece}`);
      }
    });

    it(`${name}: re-chunked at sizes 1 to 65536 and fragmented, the messages survive`, () => {
      const messages = readMessages([recordings.get(name)!]).filter(
        (m) => m.type !== MessageType.SetChunkSize,
      );
      const random = prng(7);
      for (const chunkSize of [1, 2, 127, 128, 4096, 65536]) {
        const writer = new ChunkWriter();
        writer.setChunkSize(chunkSize);
        const bytes = Buffer.concat(messages.map((m) => writer.write(m)));
        const got = readMessages(fragment(bytes, random, 4096), { chunkSize });
        assert.deepEqual(strip(got), strip(messages), `chunk size ${chunkSize}`);
      }
    });
  }
});
