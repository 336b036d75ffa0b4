import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Amf0EcmaArray, decodeAmf0All, encodeAmf0 } from '../../../src/rtmp/amf0.ts';
import { type MediaTag, Publish, type PublishStart } from '../../../src/rtmp/publish.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const target = { key: 'live/u/s', userId: 'u', streamId: 's', token: undefined, params: {} };

function collect(p: Publish): { starts: PublishStart[]; tags: MediaTag[] } {
  const starts: PublishStart[] = [];
  const tags: MediaTag[] = [];
  p.on('start', (s) => starts.push(s));
  p.on('tag', (t) => tags.push(t));
  return { starts, tags };
}

function metadata(width: number): Buffer {
  return encodeAmf0(
    '@setDataFrame',
    'onMetaData',
    new Amf0EcmaArray({ width, videocodecid: 7, audiocodecid: 10 }),
  );
}

describe('publish', () => {
  it('starts on the first frame with the metadata and both sequence headers', () => {
    const p = new Publish(1, target, '127.0.0.1');
    const { starts, tags } = collect(p);
    const meta = metadata(540);
    p.pushData(decodeAmf0All(meta), meta, 0);
    p.pushMedia(9, 0, hex('17 00 000000 0164001f'));
    p.pushMedia(8, 0, hex('af 00 1210'));
    assert.equal(starts.length, 0, 'no start before a frame');
    p.pushMedia(9, 0, hex('17 01 000000 65'));
    assert.equal(starts.length, 1);
    const s = starts[0]!;
    assert.equal(s.hasVideo, true);
    assert.equal(s.hasAudio, true);
    assert.equal(s.metadata?.width, 540);
    assert.equal(s.metadataTag!.subarray(3, 13).toString(), 'onMetaData', '@setDataFrame stripped');
    assert.ok(s.videoConfig?.isConfig && s.audioConfig?.isConfig);
    assert.equal(tags.length, 1);
    assert.equal(p.stats.keyframes, 1);
  });

  it('forwards only the first metadata (FFmpeg 5.1 makes a data stream of the rest)', () => {
    const p = new Publish(1, target, '127.0.0.1');
    const { tags } = collect(p);
    const meta = metadata(540);
    p.pushData(decodeAmf0All(meta), meta, 0);
    p.pushMedia(9, 0, hex('17 01 000000 65'));
    for (let i = 0; i < 5; i++) p.pushData(decodeAmf0All(metadata(999)), metadata(999), 100 * i);
    assert.equal(p.stats.droppedMetadata, 5);
    assert.ok(tags.every((t) => t.type !== 18));
  });

  it('takes hasAudio from metadata when audio has not arrived yet, and video-only without it', () => {
    const a = new Publish(1, target, 'x');
    const withMeta = collect(a);
    const meta = metadata(540);
    a.pushData(decodeAmf0All(meta), meta, 0);
    a.pushMedia(9, 0, hex('17 01 000000 65'));
    assert.equal(withMeta.starts[0]!.hasAudio, true);
    const b = new Publish(2, target, 'x');
    const bare = collect(b);
    b.pushMedia(9, 0, hex('17 01 000000 65'));
    assert.equal(bare.starts[0]!.hasAudio, false);
  });

  it('forwards a configuration change after start, and skips empty media', () => {
    const p = new Publish(1, target, 'x');
    const { tags } = collect(p);
    p.pushMedia(9, 0, hex('17 01 000000 65'));
    p.pushMedia(9, 40, hex('17 00 000000 0164'));
    p.pushMedia(9, 80, Buffer.alloc(0));
    assert.deepEqual(
      tags.map((t) => t.isConfig),
      [false, true],
    );
    assert.equal(p.stats.skippedTags, 1);
  });

  const enhanced: [string, number, Buffer][] = [
    ['HEVC (hvc1)', 9, hex('90 68766331 0102')],
    ['AV1 (av01)', 9, hex('90 61763031 81')],
    ['VP9 (vp09)', 9, hex('91 76703039')],
    ['Opus audio', 8, hex('90 4f707573 00')],
  ];
  for (const [name, type, body] of enhanced) {
    it(`refuses Enhanced RTMP ${name} with RTMP_UNSUPPORTED_CODEC`, () => {
      const p = new Publish(1, target, 'x');
      const { starts, tags } = collect(p);
      assert.throws(
        () => p.pushMedia(type as 8 | 9, 0, body),
        (e: unknown) =>
          e instanceof RelayError &&
          e.code === ErrorCodes.RTMP_UNSUPPORTED_CODEC &&
          /not supported/.test(e.message),
      );
      assert.equal(starts.length + tags.length, 0);
    });
  }

  it('ends once, and ignores media after the end', () => {
    const p = new Publish(1, target, 'x');
    const ends: string[] = [];
    p.on('end', (r) => ends.push(r.kind));
    const { tags } = collect(p);
    p.end({ kind: 'unpublish' });
    p.end({ kind: 'disconnect' });
    p.pushMedia(9, 0, hex('17 01 000000 65'));
    assert.deepEqual(ends, ['unpublish']);
    assert.equal(tags.length, 0);
  });

  it('survives a listener that throws', () => {
    const p = new Publish(1, target, 'x');
    const original = process.emitWarning;
    const warnings: string[] = [];
    process.emitWarning = ((w: string) => warnings.push(String(w))) as typeof process.emitWarning;
    try {
      p.on('tag', () => {
        throw new Error('buggy consumer');
      });
      const { tags } = collect(p);
      p.pushMedia(9, 0, hex('17 01 000000 65'));
      p.pushMedia(9, 40, hex('27 01 000000 41'));
      assert.equal(tags.length, 2);
      assert.equal(warnings.length, 2);
    } finally {
      process.emitWarning = original;
    }
  });
});
