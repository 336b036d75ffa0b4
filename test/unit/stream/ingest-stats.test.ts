import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { AccessUnit, SourceStart, VideoConfig } from '../../../src/media/access-unit.ts';
import { FlvDemuxer } from '../../../src/media/flv-demux.ts';
import { FlvTagType } from '../../../src/media/flv-tag.ts';
import { IngestStats, WINDOW_MS } from '../../../src/stream/ingest-stats.ts';

const video = (dts: number, keyframe: boolean, bytes = 1000): AccessUnit => ({
  track: 'video',
  dts,
  pts: dts,
  keyframe,
  data: Buffer.alloc(bytes, keyframe ? 0x17 : 0x27),
});
const audio = (dts: number, bytes = 200): AccessUnit => ({
  track: 'audio',
  dts,
  pts: dts,
  keyframe: true,
  data: Buffer.alloc(bytes, 0xaf),
});

const H264: VideoConfig = { kind: 'video', codec: 'h264', record: Buffer.alloc(7), width: 0, height: 0 };

function start(over: Partial<SourceStart> = {}): SourceStart {
  return {
    metadata: { width: 854, height: 480 },
    video: H264,
    audio: {
      kind: 'audio',
      codec: 'aac',
      config: Buffer.from([0x12, 0x10]),
      sampleRate: 44100,
      channels: 2,
      frameSamples: 1024,
    },
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
  for (let i = 0; i < 120; i++) s.au(video(Math.round((i * 1000) / 12), i % 18 === 0));
  for (let t = 0; t < 10_000; t += 100) s.au(audio(t));
  const snap = s.snapshot();
  assert.equal(snap.fps, 12);
  assert.equal(snap.keyframeIntervalSeconds, 1.5);
  // Audio arrived after the video (a muxer's order does not matter): the window is the last 5 s.
  assert.ok(snap.bitrateKbps! > 0);
  assert.equal(snap.bytes, 120 * 1000 + 100 * 200);
});

test('bitrate is bytes over media time, steady stream', () => {
  const s = new IngestStats();
  s.start(start({ hasAudio: false, audio: null }));
  for (let i = 0; i <= 100; i++) s.au(video(i * 100, i % 20 === 0, 1250)); // 10 fps × 10 kbit = 100 kbit/s
  const snap = s.snapshot();
  assert.equal(snap.bitrateKbps, 100);
  assert.equal(snap.fps, 10);
  assert.equal(snap.keyframeIntervalSeconds, 2);
  assert.equal(snap.audioCodec, undefined);
});

test('a frame flood stays bounded, and a reconnect starts the window again', () => {
  const s = new IngestStats();
  s.start(start());
  for (let i = 0; i < 50_000; i++) s.au(video(i, false, 10)); // 1000 fps for 50 s
  const flooded = s.snapshot();
  assert.ok(flooded.fps! > 900 && flooded.fps! <= 1000, `fps ${flooded.fps}`);
  // The publisher comes back with its clock at 0 and fewer frames.
  s.start(start({ metadata: null }));
  assert.equal(s.snapshot().fps, undefined);
  assert.equal(s.snapshot().width, 854, 'size kept when the new publish has no metadata');
  for (let i = 0; i < 30; i++) s.au(video(i * 100, i % 10 === 0));
  assert.equal(s.snapshot().fps, 10);
  assert.ok(WINDOW_MS >= 2000);
});

test('opaque codecs are named as before; a mid-publish configuration updates codec and size', () => {
  const s = new IngestStats();
  s.start(
    start({
      video: { kind: 'video', codec: 'opaque', name: 'flv:2', record: null },
      audio: { kind: 'audio', codec: 'opaque', name: 'flv:2', record: null },
    }),
  );
  assert.equal(s.snapshot().videoCodec, 'flv-video-2');
  assert.equal(s.snapshot().audioCodec, 'mp3');
  s.config({ ...H264, width: 540, height: 960 });
  assert.equal(s.snapshot().videoCodec, 'h264');
  assert.deepEqual(s.spsSize, { width: 540, height: 960 });
});

test('for ABR: the SPS size of the sequence header and the frame rate onMetaData declares', () => {
  const sps = Buffer.from('6764001facd940881e7bf0110000030001000003003c0f183196', 'hex');
  const len = Buffer.alloc(2);
  len.writeUInt16BE(sps.length);
  // An avcC with the SPS and no PPS (the count byte says 0).
  const header = Buffer.concat([
    Buffer.from([0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1]),
    len,
    sps,
    Buffer.from([0]),
  ]);
  const demux = new FlvDemuxer();
  const config = demux.push({
    type: FlvTagType.Video,
    timestamp: 0,
    data: header,
    keyframe: true,
    isConfig: true,
  });
  const s = new IngestStats();
  s.start(start({ metadata: { framerate: 15 }, video: config!.config! }));
  assert.deepEqual(s.spsSize, { width: 540, height: 960 });
  assert.equal(s.metadataFps, 15);
  s.start(start({ metadata: { framerate: 'x' } }));
  assert.equal(s.spsSize, null, 'a configuration without a readable SPS');
  assert.equal(s.metadataFps, undefined);
});
