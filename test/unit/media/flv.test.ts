import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { FlvSink } from '../../../src/media/flv-sink.ts';
import { FlvTagType, type MediaTag, parseAudioTag, parseVideoTag } from '../../../src/media/flv-tag.ts';
import { flvHeader, flvTag } from '../../../src/media/flv-writer.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');

describe('FLV writer', () => {
  const headers: [{ hasAudio: boolean; hasVideo: boolean }, string][] = [
    [{ hasAudio: true, hasVideo: true }, '464c5601 05 00000009 00000000'],
    [{ hasAudio: false, hasVideo: true }, '464c5601 01 00000009 00000000'],
    [{ hasAudio: true, hasVideo: false }, '464c5601 04 00000009 00000000'],
  ];
  for (const [flags, bytes] of headers) {
    it(`writes the header for ${JSON.stringify(flags)}`, () => {
      assert.equal(flvHeader(flags).toString('hex'), hex(bytes).toString('hex'));
    });
  }

  it('writes a tag with the timestamp split low-24 / high-8 and the previous tag size', () => {
    const tag = flvTag(FlvTagType.Video, 0x12345678, Buffer.from('ab'));
    assert.equal(tag.toString('hex'), hex('09 000002 345678 12 000000 6162 0000000d').toString('hex'));
  });
});

describe('FLV tag bodies', () => {
  const video: [string, Buffer, object][] = [
    [
      'AVC sequence header',
      hex('17 00 000000 01'),
      { enhanced: false, codec: 7, keyframe: true, isConfig: true },
    ],
    ['AVC keyframe', hex('17 01 000000 00'), { enhanced: false, codec: 7, keyframe: true, isConfig: false }],
    ['AVC inter frame', hex('27 01 000000'), { enhanced: false, codec: 7, keyframe: false, isConfig: false }],
    ['video info frame', hex('57 00'), { isCommand: true }],
    [
      'E-RTMP HEVC sequence start',
      hex('90 68766331 01'),
      { enhanced: true, codec: 'hvc1', keyframe: true, isConfig: true },
    ],
    [
      'E-RTMP AV1 coded frames',
      hex('a1 61763031'),
      { enhanced: true, codec: 'av01', keyframe: false, isConfig: false },
    ],
    ['E-RTMP VP9 keyframe', hex('93 76703039'), { enhanced: true, codec: 'vp09', keyframe: true }],
  ];
  for (const [name, body, expected] of video) {
    it(`reads ${name}`, () => {
      const info = parseVideoTag(body);
      assert.ok(info);
      for (const [k, v] of Object.entries(expected)) assert.equal(info[k as keyof typeof info], v, k);
    });
  }

  it('reads AAC, MP3 and E-RTMP audio', () => {
    assert.deepEqual(parseAudioTag(hex('af 00 1210')), { enhanced: false, codec: 10, isConfig: true });
    assert.deepEqual(parseAudioTag(hex('af 01 21')), { enhanced: false, codec: 10, isConfig: false });
    assert.deepEqual(parseAudioTag(hex('2f ff')), { enhanced: false, codec: 2, isConfig: false });
    assert.deepEqual(parseAudioTag(hex('90 4f707573')), { enhanced: true, codec: 'Opus', isConfig: true });
  });

  it('returns null for bodies too short to read', () => {
    assert.equal(parseVideoTag(Buffer.alloc(0)), null);
    assert.equal(parseVideoTag(hex('90 6876')), null);
    assert.equal(parseAudioTag(Buffer.alloc(0)), null);
  });
});

/** A Writable that never drains until told to, so its writableLength grows like a stuck FFmpeg stdin. */
function stuckWritable(): { out: Writable; release: () => void; received: Buffer[] } {
  const received: Buffer[] = [];
  let pending: (() => void) | null = null;
  let stuck = true;
  const out = new Writable({
    highWaterMark: 1024,
    write(chunk: Buffer, _enc, callback) {
      received.push(chunk);
      if (stuck) pending = callback;
      else callback();
    },
  });
  return {
    out,
    received,
    release: () => {
      stuck = false;
      const cb = pending;
      pending = null;
      cb?.();
    },
  };
}

describe('FLV sink', () => {
  const frame = (keyframe: boolean, size = 1000): MediaTag => ({
    type: FlvTagType.Video,
    timestamp: 0,
    data: Buffer.alloc(size, keyframe ? 0x17 : 0x27),
    keyframe,
    isConfig: false,
  });

  it('writes the header, metadata and configuration first', () => {
    const chunks: Buffer[] = [];
    const out = new Writable({
      write(c: Buffer, _e, cb) {
        chunks.push(c);
        cb();
      },
    });
    const sink = new FlvSink(out);
    sink.start({
      hasAudio: true,
      hasVideo: true,
      metadataTag: hex('02000a6f6e4d65746144617461'),
      videoConfig: { type: 9, timestamp: 0, data: hex('1700000000'), keyframe: true, isConfig: true },
      audioConfig: { type: 8, timestamp: 0, data: hex('af001210'), keyframe: true, isConfig: true },
    });
    assert.equal(chunks.length, 4);
    assert.equal(chunks[0]!.subarray(0, 3).toString(), 'FLV');
    assert.deepEqual(
      chunks.slice(1).map((c) => c[0]),
      [18, 9, 8],
    );
  });

  it('never buffers past its cap: drops and counts until a keyframe after the consumer drains', async () => {
    const { out, release, received } = stuckWritable();
    const sink = new FlvSink(out, { maxBufferedBytes: 10_000 });
    sink.start({ hasAudio: false, hasVideo: true, metadataTag: null, videoConfig: null, audioConfig: null });
    for (let i = 0; i < 200; i++) sink.write(frame(i % 30 === 0));
    assert.ok(out.writableLength <= 10_000 + 2_000, `buffered ${out.writableLength}`);
    assert.ok(sink.stats.tagsDropped > 150, `dropped ${sink.stats.tagsDropped}`);
    release();
    await new Promise<void>((resolve) => setImmediate(resolve));
    const before = received.length;
    sink.write(frame(false));
    assert.equal(
      sink.stats.tagsDropped > 150 && received.length,
      before,
      'an inter frame after the gap is dropped',
    );
    sink.write(frame(true));
    await new Promise<void>((resolve) => setImmediate(resolve));
    assert.equal(received.at(-1)![11], 0x17, 'resumes on a keyframe');
  });
});
