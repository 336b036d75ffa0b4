import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { FlvTagStream, readFlv } from '../../../src/media/flv-reader.ts';
import { FlvTagType, type FlvTagTypeId } from '../../../src/media/flv-tag.ts';
import { flvHeader, flvTag } from '../../../src/media/flv-writer.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';
import { AAC_CONFIG, AVC_CONFIG, AVC_FRAME, AVC_KEYFRAME } from '../../helpers/rtmp-test-client.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const META = hex('02000a6f6e4d65746144617461 08 00000000 000009');
const AAC_FRAME = hex('af01 2110');

const TAGS: [FlvTagTypeId, number, Buffer][] = [
  [FlvTagType.Script, 0, META],
  [FlvTagType.Video, 0, AVC_CONFIG],
  [FlvTagType.Audio, 0, AAC_CONFIG],
  [FlvTagType.Video, 0, AVC_KEYFRAME],
  [FlvTagType.Audio, 23, AAC_FRAME],
  [FlvTagType.Video, 67, AVC_FRAME],
  [FlvTagType.Video, 0x00ffffff, AVC_FRAME], // the largest 24-bit timestamp
  [FlvTagType.Video, 0x01000000, AVC_FRAME], // the first that needs the extended byte
  [FlvTagType.Audio, 0xfedcba98, AAC_FRAME], // past 2^31: read unsigned
  [FlvTagType.Video, 0xfedcbaff, Buffer.alloc(0)], // an empty body is kept, neither keyframe nor config
];

function file(tags = TAGS, flags = { hasAudio: true, hasVideo: true }): Buffer {
  return Buffer.concat([flvHeader(flags), ...tags.map(([type, ts, body]) => flvTag(type, ts, body))]);
}

function assertMalformed(buf: Buffer, pattern: RegExp): void {
  assert.throws(
    () => readFlv(buf),
    (err: unknown) =>
      err instanceof RelayError && err.code === ErrorCodes.FLV_MALFORMED && pattern.test(err.message),
  );
}

describe('FLV reader', () => {
  it('round-trips what the writer writes: flags, types, timestamps, bodies, keyframe and config', () => {
    const { header, tags } = readFlv(file());
    assert.deepEqual(header, { hasAudio: true, hasVideo: true });
    assert.deepEqual(
      tags.map((t) => [t.type, t.timestamp, t.data.toString('hex')]),
      TAGS.map(([type, ts, body]) => [type, ts, body.toString('hex')]),
    );
    assert.deepEqual(
      tags.map((t) => [t.keyframe, t.isConfig]),
      [
        [false, true], // metadata
        [true, true], // AVC sequence header
        [true, true], // AAC sequence header
        [true, false],
        [true, false], // audio frames are sync points
        [false, false],
        [false, false],
        [false, false],
        [true, false],
        [false, false],
      ],
    );
    // Writing the parsed tags again gives the same bytes.
    const again = Buffer.concat([flvHeader(header), ...tags.map((t) => flvTag(t.type, t.timestamp, t.data))]);
    assert.deepEqual(again, file());
  });

  it('reads the header flags and a file with no tags', () => {
    assert.deepEqual(readFlv(flvHeader({ hasAudio: false, hasVideo: true })), {
      header: { hasAudio: false, hasVideo: true },
      tags: [],
    });
    assert.deepEqual(readFlv(file([], { hasAudio: true, hasVideo: false })).header, {
      hasAudio: true,
      hasVideo: false,
    });
  });

  it('rejects every truncation of a valid file with FLV_MALFORMED, never anything else', () => {
    const whole = file();
    const boundaries = new Set<number>([13]);
    for (let at = 13, i = 0; i < TAGS.length; i++) {
      at += 11 + TAGS[i]![2].length + 4;
      boundaries.add(at);
    }
    for (let n = 0; n < whole.length; n++) {
      if (boundaries.has(n)) {
        assert.doesNotThrow(
          () => readFlv(whole.subarray(0, n)),
          `a cut at the tag boundary ${n} is a whole file`,
        );
        continue;
      }
      assertMalformed(whole.subarray(0, n), /FLV: /);
    }
  });

  it('rejects absurd sizes, bad previous tag sizes, unknown or encrypted types and bad headers', () => {
    const one = file([[FlvTagType.Video, 40, AVC_FRAME]]);

    const huge = Buffer.from(one);
    huge.writeUIntBE(0xffffff, 13 + 1, 3);
    assertMalformed(huge, /claims 16777215 bytes/);

    const offByOne = Buffer.from(one);
    offByOne.writeUIntBE(AVC_FRAME.length + 1, 13 + 1, 3);
    assertMalformed(offByOne, /claims|PreviousTagSize/);

    const badPrevious = Buffer.from(one);
    badPrevious.writeUInt32BE(7, badPrevious.length - 4);
    assertMalformed(badPrevious, /PreviousTagSize 7/);

    const unknown = Buffer.from(one);
    unknown[13] = 7;
    assertMalformed(unknown, /unknown tag type 7/);

    const encrypted = Buffer.from(one);
    encrypted[13] = 0x20 | FlvTagType.Video;
    assertMalformed(encrypted, /encrypted/);

    assertMalformed(Buffer.concat([Buffer.from('FLX'), one.subarray(3)]), /signature/);
    const v2 = Buffer.from(one);
    v2[3] = 2;
    assertMalformed(v2, /version 2/);
    const bigHeader = Buffer.from(one);
    bigHeader.writeUInt32BE(0xffffffff, 5);
    assertMalformed(bigHeader, /header size/);
    const smallHeader = Buffer.from(one);
    smallHeader.writeUInt32BE(3, 5);
    assertMalformed(smallHeader, /header size/);
    const firstPrevious = Buffer.from(one);
    firstPrevious.writeUInt32BE(11, 9);
    assertMalformed(firstPrevious, /PreviousTagSize0/);
  });

  it('is total on garbage: parses or throws FLV_MALFORMED', () => {
    let seed = 0x1234567;
    const next = (): number => {
      seed = (seed * 1103515245 + 12345) >>> 0;
      return seed >>> 16;
    };
    const valid = file();
    for (let i = 0; i < 2000; i++) {
      const buf = Buffer.from(valid.subarray(0, next() % (valid.length + 1)));
      for (let k = next() % 4; k > 0 && buf.length > 0; k--) buf[next() % buf.length] = next() & 0xff;
      try {
        readFlv(buf);
      } catch (err) {
        assert.ok(err instanceof RelayError && err.code === ErrorCodes.FLV_MALFORMED, String(err));
      }
    }
  });
});

describe('FLV tag stream (FFmpeg writing FLV to a pipe)', () => {
  it('yields the same tags as the whole-file reader, whatever the chunk boundaries', () => {
    const whole = file();
    const expected = readFlv(whole).tags;
    for (const size of [1, 3, 9, 11, 13, 64, whole.length]) {
      const stream = new FlvTagStream();
      const got = [];
      for (let at = 0; at < whole.length; at += size) got.push(...stream.push(whole.subarray(at, at + size)));
      assert.deepEqual(got, expected, `chunks of ${size} bytes`);
    }
  });

  it('throws FLV_MALFORMED on a stream that is not FLV or lies about a tag size', () => {
    const isMalformed = (err: unknown) => err instanceof RelayError && err.code === ErrorCodes.FLV_MALFORMED;
    assert.throws(() => new FlvTagStream().push(Buffer.from('not an flv file')), isMalformed);
    const bad = file([[FlvTagType.Video, 0, AVC_CONFIG]]);
    bad.writeUInt32BE(7, bad.length - 4); // the tag's PreviousTagSize
    assert.throws(() => new FlvTagStream().push(bad), isMalformed);
  });
});
