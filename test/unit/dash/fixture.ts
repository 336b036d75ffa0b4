/**
 * A stream for the DASH unit tests: a real packager fed by the real CMAF writer (10 fps H.264 with a
 * keyframe every 2 s, AAC 44.1 kHz) on an injected clock.
 */
import type { MpdView } from '../../../src/dash/presentation.ts';
import { Packager } from '../../../src/hls/packager.ts';
import type { AudioConfig, VideoConfig } from '../../../src/media/access-unit.ts';
import { CmafWriter } from '../../../src/media/cmaf-writer.ts';
import { buildAvcConfig } from '../../../src/media/nal.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const H264: VideoConfig = {
  kind: 'video',
  codec: 'h264',
  record: buildAvcConfig(
    [hex('6764001facd940881e7bf0110000030001000003003c0f183196')],
    [hex('68ebe3cb22c0')],
  ),
  width: 540,
  height: 960,
};
const AAC: AudioConfig = {
  kind: 'audio',
  codec: 'aac',
  config: hex('1210'),
  sampleRate: 44100,
  channels: 2,
  frameSamples: 1024,
};

export const view: MpdView = {
  url: (_r, name) => `../../../hls/u/s/${name}`,
  utcTiming: [{ scheme: 'urn:mpeg:dash:utc:http-iso:2014', value: 'http://relay/dash/time' }],
};

/** A stream on an injected clock: `run(fromMs, toMs)` feeds 10 fps video (keyframe every 2 s) and AAC. */
export function stream(prefix: string, options: { lowLatency?: boolean } = {}) {
  let now = 1_800_000_000_000;
  const packager = new Packager({
    segmentSeconds: 2,
    targetDuration: 2,
    listSize: 5,
    now: () => now,
    prefix,
    lowLatency: options.lowLatency ?? false,
    partSeconds: 0.5,
  });
  let writer: CmafWriter | null = null;
  return {
    packager,
    advance(ms: number) {
      now += ms;
    },
    /** A new output run (a publisher back): a new writer and init. */
    newRun() {
      writer = new CmafWriter({ video: H264, audio: AAC });
      packager.setInit(writer.init);
    },
    feed(fromMs: number, toMs: number) {
      const w = writer!;
      let audio = fromMs;
      for (let t = fromMs; t < toMs; t += 100) {
        const key = t % 2000 === 0;
        for (const f of w.push({
          track: 'video',
          dts: t,
          pts: t,
          keyframe: key,
          data: hex(key ? '000000026588' : '000000024101'),
        }))
          packager.pushFragment(f);
        for (; audio < t + 100; audio += 1024 / 44.1) {
          for (const f of w.push({ track: 'audio', dts: audio, pts: audio, keyframe: true, data: hex('21') }))
            packager.pushFragment(f);
        }
        now += 100;
      }
    },
  };
}
