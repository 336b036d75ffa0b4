import assert from 'node:assert/strict';
import { test } from 'node:test';
import { FlvTagType, type MediaTag } from '../../../src/media/flv-tag.ts';
import type { PublishStart } from '../../../src/rtmp/publish.ts';
import { IngestStats, WINDOW_MS } from '../../../src/stream/ingest-stats.ts';

const video = (timestamp: number, keyframe: boolean, bytes = 1000): MediaTag => ({
  type: FlvTagType.Video,
  timestamp,
  data: Buffer.alloc(bytes, keyframe ? 0x17 : 0x27),
  keyframe,
  isConfig: false,
});
const audio = (timestamp: number, bytes = 200): MediaTag => ({
  type: FlvTagType.Audio,
  timestamp,
  data: Buffer.alloc(bytes, 0xaf),
  keyframe: true,
  isConfig: false,
});

function start(over: Partial<PublishStart> = {}): PublishStart {
  return {
    metadata: { width: 854, height: 480 },
    metadataTag: null,
    videoConfig: { ...video(0, true, 5), data: Buffer.from([0x17, 0, 0, 0, 0]), isConfig: true },
    audioConfig: { ...audio(0, 2), data: Buffer.from([0xaf, 0]), isConfig: true },
    hasVideo: true,
    hasAudio: true,
    ...over,
  };
}

test('nothing measured before media: only codecs and size from the configuration', () => {
  const s = new IngestStats();
  assert.deepEqual(s.snapshot(), { bytes: 0 });
  s.start(start());
  assert.deepEqual(s.snapshot(), {
    bytes: 0,
    videoCodec: 'h264',
    audioCodec: 'aac',
    width: 854,
    height: 480,
  });
});

test('fps, keyframe interval and bitrate over the window of media time', () => {
  const s = new IngestStats();
  s.start(start());
  // 12 fps video of 1000 bytes, a keyframe every 1.5 s, 10 s; audio 200 bytes every 100 ms.
  for (let i = 0; i < 120; i++) s.tag(video(Math.round((i * 1000) / 12), i % 18 === 0));
  for (let t = 0; t < 10_000; t += 100) s.tag(audio(t));
  const snap = s.snapshot();
  assert.equal(snap.fps, 12);
  assert.equal(snap.keyframeIntervalSeconds, 1.5);
  // Audio tags arrived after the video (a muxer's order does not matter): the window is the last 5 s.
  assert.ok(snap.bitrateKbps! > 0);
  assert.equal(snap.bytes, 120 * 1000 + 100 * 200);
});

test('bitrate is bytes over media time, steady stream', () => {
  const s = new IngestStats();
  s.start(start({ hasAudio: false, audioConfig: null }));
  for (let i = 0; i <= 100; i++) s.tag(video(i * 100, i % 20 === 0, 1250)); // 10 fps × 10 kbit = 100 kbit/s
  const snap = s.snapshot();
  assert.equal(snap.bitrateKbps, 100);
  assert.equal(snap.fps, 10);
  assert.equal(snap.keyframeIntervalSeconds, 2);
  assert.equal(snap.audioCodec, undefined);
});

test('a frame flood stays bounded, and a reconnect starts the window again', () => {
  const s = new IngestStats();
  s.start(start());
  for (let i = 0; i < 50_000; i++) s.tag(video(i, false, 10)); // 1000 fps for 50 s
  const flooded = s.snapshot();
  assert.ok(flooded.fps! > 900 && flooded.fps! <= 1000, `fps ${flooded.fps}`);
  // The publisher comes back with its clock at 0 and fewer frames.
  s.start(start({ metadata: null }));
  assert.equal(s.snapshot().fps, undefined);
  assert.equal(s.snapshot().width, 854, 'size kept when the new publish has no metadata');
  for (let i = 0; i < 30; i++) s.tag(video(i * 100, i % 10 === 0));
  assert.equal(s.snapshot().fps, 10);
  assert.ok(WINDOW_MS >= 2000);
});

test('configuration tags and script data are not media', () => {
  const s = new IngestStats();
  s.start(start());
  s.tag({ ...video(0, true), isConfig: true });
  s.tag({ type: FlvTagType.Script, timestamp: 0, data: Buffer.alloc(50), keyframe: false, isConfig: true });
  assert.equal(s.snapshot().bytes, 0);
});

test('for ABR: the SPS size of the sequence header and the frame rate onMetaData declares', () => {
  const sps = Buffer.from('6764001facd940881e7bf0110000030001000003003c0f183196', 'hex');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(sps.length);
  const header = Buffer.concat([Buffer.from([0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1]), len, sps]);
  const s = new IngestStats();
  s.start(
    start({
      metadata: { framerate: 15 },
      videoConfig: { ...video(0, true, 5), data: header, isConfig: true },
    }),
  );
  assert.deepEqual(s.spsSize, { width: 540, height: 960 });
  assert.equal(s.metadataFps, 15);
  s.start(start({ metadata: { framerate: 'x' } }));
  assert.equal(s.spsSize, null, 'a configuration without a readable SPS');
  assert.equal(s.metadataFps, undefined);
});
