import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  FlvDemuxer,
  flvConfigTagOf,
  flvStartOf,
  flvTagOf,
  parseAudioSpecificConfig,
} from '../../../src/media/flv-demux.ts';
import { FlvTagType, type MediaTag } from '../../../src/media/flv-tag.ts';

// A 540x960 High-profile SPS and a PPS, as an avcC record with 4-byte (or 2-byte) NAL lengths.
const SPS = Buffer.from('6764001facd940881e7bf0110000030001000003003c0f183196', 'hex');
const PPS = Buffer.from('68ebe3cb22c0', 'hex');
function avcC(lengthSize = 4): Buffer {
  const len = (b: Buffer): Buffer => Buffer.from([b.length >> 8, b.length & 0xff]);
  return Buffer.concat([
    Buffer.from([1, 0x64, 0, 0x1f, 0xfc | (lengthSize - 1), 0xe1]),
    len(SPS),
    SPS,
    Buffer.from([1]),
    len(PPS),
    PPS,
  ]);
}
const video = (data: Buffer, timestamp = 0, isConfig = false): MediaTag => ({
  type: FlvTagType.Video,
  timestamp,
  data,
  keyframe: data[0]! >> 4 === 1,
  isConfig,
});
const audio = (data: Buffer, timestamp = 0, isConfig = false): MediaTag => ({
  type: FlvTagType.Audio,
  timestamp,
  data,
  keyframe: true,
  isConfig,
});
const nal = (bytes: number[], lengthSize = 4): Buffer => {
  const head = Buffer.alloc(lengthSize);
  head.writeUIntBE(bytes.length, 0, lengthSize);
  return Buffer.concat([head, Buffer.from(bytes)]);
};

test('H.264: the avcC becomes a configuration with the SPS size; frames carry CTS and IDR keyframes', () => {
  const d = new FlvDemuxer();
  const config = d.push(video(Buffer.concat([Buffer.from([0x17, 0, 0, 0, 0]), avcC()]), 0, true))!.config!;
  assert.equal(config.kind, 'video');
  assert.equal(config.codec, 'h264');
  assert.ok(config.codec === 'h264' && config.width === 540 && config.height === 960);
  // An IDR with a composition offset of 66 ms; then a non-IDR marked as a keyframe by the FLV frame type.
  const idr = d.push(video(Buffer.concat([Buffer.from([0x17, 1, 0, 0, 66]), nal([0x65, 1, 2])]), 100))!.au!;
  assert.deepEqual([idr.dts, idr.pts, idr.keyframe], [100, 166, true]);
  const lie = d.push(video(Buffer.concat([Buffer.from([0x17, 1, 0xff, 0xff, 0xff]), nal([0x41, 9])]), 133))!
    .au!;
  assert.deepEqual([lie.pts, lie.keyframe], [132, false], 'signed CTS; keyframe from the NAL type only');
});

test('2-byte NAL lengths are rewritten to 4, and the record says so', () => {
  const d = new FlvDemuxer();
  const config = d.push(video(Buffer.concat([Buffer.from([0x17, 0, 0, 0, 0]), avcC(2)]), 0, true))!.config!;
  assert.ok(config.codec === 'h264' && (config.record[4]! & 3) === 3);
  const au = d.push(
    video(Buffer.concat([Buffer.from([0x17, 1, 0, 0, 0]), nal([0x65, 7], 2), nal([0x06], 2)])),
  )!.au!;
  assert.deepEqual([...au.data], [0, 0, 0, 2, 0x65, 7, 0, 0, 0, 1, 0x06]);
});

test('hostile input is skipped and counted, never thrown', () => {
  const d = new FlvDemuxer();
  const cases: MediaTag[] = [
    video(Buffer.from([0x17, 0, 0, 0, 0, 1, 0x64, 0, 0x1f, 0xff, 0xe1, 0xff, 0xff]), 0, true), // SPS past the end
    video(Buffer.from([0x17, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0]), 0, true), // version 2
    video(Buffer.from([0x17, 1, 0, 0, 0, 0, 0, 0, 9, 0x65])), // a frame before any configuration
    video(Buffer.from([0x17])),
    audio(Buffer.from([0xaf, 0, 0xf8])), // a truncated AudioSpecificConfig
    audio(Buffer.from([0xaf, 1, 1, 2])), // AAC before its configuration
  ];
  for (const tag of cases) assert.equal(d.push(tag), null);
  assert.equal(d.skipped, cases.length);
  d.push(video(Buffer.concat([Buffer.from([0x17, 0, 0, 0, 0]), avcC()]), 0, true));
  assert.equal(
    d.push(video(Buffer.from([0x17, 1, 0, 0, 0, 0, 0, 0, 9, 0x65]))),
    null,
    'a NAL length past the end',
  );
});

test('AAC: rate, channels and frame length from the AudioSpecificConfig; raw frames', () => {
  assert.deepEqual(parseAudioSpecificConfig(Buffer.from([0x12, 0x10])), {
    objectType: 2,
    sampleRate: 44100,
    channels: 2,
    frameSamples: 1024,
  });
  assert.equal(parseAudioSpecificConfig(Buffer.from([0x11, 0x88]))?.sampleRate, 48000);
  assert.equal(parseAudioSpecificConfig(Buffer.from([0x12, 0x14]))?.frameSamples, 960);
  const d = new FlvDemuxer();
  const config = d.push(audio(Buffer.from([0xaf, 0, 0x12, 0x08]), 0, true))!.config!;
  assert.ok(config.codec === 'aac' && config.channels === 1 && config.sampleRate === 44100);
  const au = d.push(audio(Buffer.from([0xaf, 1, 0x21, 0x22]), 23))!.au!;
  assert.deepEqual([au.track, au.dts, [...au.data]], ['audio', 23, [0x21, 0x22]]);
});

test('other codecs are opaque: whole tag bodies, named once', () => {
  const d = new FlvDemuxer();
  const first = d.push(video(Buffer.from([0x12, 0xaa, 0xbb]), 40))!;
  assert.deepEqual(first.config, { kind: 'video', codec: 'opaque', name: 'flv:2', record: null });
  assert.deepEqual([first.au!.keyframe, [...first.au!.data]], [true, [0x12, 0xaa, 0xbb]]);
  assert.equal(d.push(video(Buffer.from([0x22, 0xcc]), 80))!.config, undefined);
  const mp3 = d.push(audio(Buffer.from([0x2f, 0xff, 0xfb])))!;
  assert.equal(mp3.config?.codec === 'opaque' && mp3.config.name, 'flv:2');
});

test('back to FLV: the same tag bodies come out', () => {
  const d = new FlvDemuxer();
  const avcHeader = Buffer.concat([Buffer.from([0x17, 0, 0, 0, 0]), avcC()]);
  const config = d.push(video(avcHeader, 0, true))!.config!;
  assert.deepEqual(flvConfigTagOf(config, 5)?.data, avcHeader);
  const body = Buffer.concat([Buffer.from([0x27, 1, 0, 0, 33]), nal([0x41, 1, 2, 3])]);
  const au = d.push(video(body, 200))!.au!;
  const tag = flvTagOf(au, config)!;
  assert.deepEqual([tag.timestamp, tag.keyframe, tag.data], [200, false, body]);
  const aacHeader = Buffer.from([0xaf, 0, 0x12, 0x08]);
  const aac = d.push(audio(aacHeader, 0, true))!.config!;
  const start = flvStartOf({ video: config, audio: aac, hasVideo: true, hasAudio: true, metadata: null }, 9);
  assert.deepEqual([start.audioConfig?.data, start.audioConfig?.timestamp], [aacHeader, 9]);
  assert.equal(
    flvTagOf(au, {
      kind: 'audio',
      codec: 'opus',
      config: Buffer.alloc(0),
      sampleRate: 48000,
      channels: 2,
      frameSamples: 960,
    }),
    null,
  );
});
