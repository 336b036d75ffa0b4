/**
 * The CMAF writer round trip, 10^4 random access-unit sequences (seeded): H.264/HEVC + AAC/Opus, video-only
 * and audio-only, payloads of 1 B to 200 KB, frame-rate jitter, gaps, B-frames (PTS > DTS), repeated and
 * reversed DTS, audio jitter, overlaps and bursts, late interleavings, flushes mid-stream. For each: the
 * writer never throws; Fmp4Reader, fed the bytes in random pieces, reports exactly the init and fragments
 * the writer returned; and the samples parsed out of the fragments here (an independent trun walk) are the
 * samples that went in: count, payload bytes, sync flags, decode times and composition offsets (within one
 * tick of the input's, except where the writer documents a change: raised DTS, audio on its sample clock).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccessUnit, AudioConfig, VideoConfig } from '../../../src/media/access-unit.ts';
import { CmafWriter, type CmafWriterOptions } from '../../../src/media/cmaf-writer.ts';
import { type Fmp4Fragment, type Fmp4Init, Fmp4Reader, isSyncSample } from '../../../src/media/fmp4.ts';
import { buildAvcConfig } from '../../../src/media/nal.ts';
import { prng } from '../../helpers/rtmp-bytes.ts';

const hex = (s: string): Buffer => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const H264: VideoConfig = {
  kind: 'video',
  codec: 'h264',
  record: buildAvcConfig([hex('6742c01fd900881e7bf0110000030001000003003c0f183248')], [hex('68ebe3cb22c0')]),
  width: 540,
  height: 960,
};
const HEVC: VideoConfig = {
  kind: 'video',
  codec: 'hevc',
  record: hex('01 01 60000000 900000000000 5d f000 fc fd f8 f8 0000 0f 00'),
  width: 854,
  height: 480,
};
const AAC_ASC: Record<number, string> = {
  8000: '1590',
  22050: '1390',
  44100: '1210',
  48000: '1190',
  96000: '1010',
};

// ---- An independent sample-level walk of one moof+mdat (fields per ISO 14496-12 §8.8) ----

interface ParsedSample {
  trackId: number;
  decode: number;
  duration: number;
  flags: number;
  cto: number;
  data: Buffer;
}

function parseSamples(frag: Buffer): ParsedSample[] {
  const out: ParsedSample[] = [];
  assert.equal(frag.toString('latin1', 4, 8), 'moof');
  const moofSize = frag.readUInt32BE(0);
  assert.equal(frag.toString('latin1', moofSize + 4, moofSize + 8), 'mdat');
  assert.equal(frag.readUInt32BE(moofSize), frag.length - moofSize, 'one mdat, to the end');
  let dataEnd = moofSize + 8;
  for (let at = 8; at < moofSize; ) {
    const size = frag.readUInt32BE(at);
    const type = frag.toString('latin1', at + 4, at + 8);
    if (type === 'traf') {
      let trackId = 0;
      let decode = -1;
      for (let p = at + 8; p < at + size; ) {
        const s = frag.readUInt32BE(p);
        const t = frag.toString('latin1', p + 4, p + 8);
        const vf = frag.readUInt32BE(p + 8);
        if (t === 'tfhd') {
          assert.equal(vf, 0x020000, 'tfhd: default-base-is-moof only');
          trackId = frag.readUInt32BE(p + 12);
        } else if (t === 'tfdt') {
          assert.equal(vf >>> 24, 1, 'tfdt version 1');
          decode = frag.readUInt32BE(p + 12) * 2 ** 32 + frag.readUInt32BE(p + 16);
        } else if (t === 'trun') {
          const flags = vf & 0xffffff;
          const count = frag.readUInt32BE(p + 12);
          let q = p + 16;
          let dataAt = -1;
          if (flags & 0x1) {
            dataAt = frag.readInt32BE(q);
            q += 4;
          }
          assert.equal(dataAt, dataEnd, 'sample data contiguous, in traf order');
          /** The next per-sample field when the trun has it (signed for the composition offset). */
          const field = (bit: number, signed = false): number => {
            if (!(flags & bit)) return 0;
            q += 4;
            return signed ? frag.readInt32BE(q - 4) : frag.readUInt32BE(q - 4);
          };
          for (let i = 0; i < count; i++) {
            const duration = field(0x100);
            const sz = field(0x200);
            const f = field(0x400);
            const cto = field(0x800, true);
            out.push({ trackId, decode, duration, flags: f, cto, data: frag.subarray(dataAt, dataAt + sz) });
            decode += duration;
            dataAt += sz;
          }
          assert.equal(q, p + s, 'trun holds its table exactly');
          dataEnd = dataAt;
        }
        p += s;
      }
    }
    at += size;
  }
  assert.equal(dataEnd, frag.length, 'mdat holds exactly the samples');
  return out;
}

// ---- Random sequences ----

interface Case {
  options: CmafWriterOptions;
  /** Access units in push order; null = flush there. */
  events: (AccessUnit | null)[];
}

const POOL = (() => {
  const random = prng(1);
  const b = Buffer.alloc(256 * 1024);
  for (let i = 0; i < b.length; i++) b[i] = Math.floor(random() * 256);
  return b;
})();

function makeCase(random: () => number): Case {
  const pick = <T>(xs: T[]): T => xs[Math.floor(random() * xs.length)]!;
  const payload = (max: number): Buffer => {
    const size = Math.min(max, Math.max(1, Math.floor(Math.exp(random() * Math.log(max)))));
    const at = Math.floor(random() * (POOL.length - size));
    return POOL.subarray(at, at + size);
  };
  const mode = pick(['av', 'av', 'av', 'video', 'audio', 'audio']);
  let audio: AudioConfig | null = null;
  if (mode !== 'video') {
    if (random() < 0.2) {
      audio = {
        kind: 'audio',
        codec: 'opus',
        config: Buffer.alloc(0),
        sampleRate: 48000,
        channels: 2,
        frameSamples: 960,
      };
    } else {
      const rate = pick([8000, 22050, 44100, 48000, 96000]);
      audio = {
        kind: 'audio',
        codec: 'aac',
        config: hex(AAC_ASC[rate]!),
        sampleRate: rate,
        channels: 2,
        frameSamples: 1024,
      };
    }
  }
  const video = mode === 'audio' ? null : random() < 0.8 ? H264 : HEVC;
  const options: CmafWriterOptions = { video, audio, audioFragmentMs: pick([20, 100, 250]) };
  if (random() < 0.2) options.maxAudioHoldMs = 20 + random() * 300;

  const start = random() < 0.3 ? 0 : random() < 0.5 ? random() * 1e5 : Math.floor(random() * 1e9);
  const tagged: { au: AccessUnit; arrival: number }[] = [];
  const lateness = random() < 0.5 ? 0 : random() * 600;
  if (video) {
    const fps = 5 + random() * 55;
    const bframes = random() < 0.4;
    let dts = start + random() * 100;
    let arrival = 0;
    const n = Math.floor(random() * 30);
    for (let i = 0; i < n; i++) {
      const interval = (1000 / fps) * (0.7 + random() * 0.6);
      if (i > 0) {
        const r = random();
        if (r < 0.03)
          dts += 500 + random() * 20000; // a gap
        else if (r < 0.05)
          dts += 0; // a repeated DTS
        else if (r < 0.06)
          dts -= interval; // a reversed one
        else dts += interval;
        if (random() < 0.5) dts = Math.round(dts); // RTMP's integer milliseconds
      }
      const pts = bframes ? dts + interval * Math.floor(random() * 3) : dts;
      const au: AccessUnit = {
        track: 'video',
        dts,
        pts,
        keyframe: i === 0 || random() < 0.1,
        data: payload(200_000),
      };
      arrival = Math.max(arrival, dts + random() * lateness);
      tagged.push({ au, arrival });
    }
  }
  if (audio) {
    const frameMs = (audio.frameSamples * 1000) / audio.sampleRate;
    let dts = start + random() * 100;
    let arrival = 0;
    const n = Math.floor(random() * 60);
    const jitter = random() < 0.5 ? 0 : frameMs * 0.4;
    for (let i = 0; i < n; i++) {
      if (i > 0) {
        const r = random();
        if (r < 0.03)
          dts += 200 + random() * 5000; // a gap
        else if (r < 0.05)
          dts -= frameMs * (1 + random() * 2); // an overlap
        else dts += frameMs;
      }
      const stamp = Math.round(dts + (random() - 0.5) * 2 * jitter);
      const au: AccessUnit = { track: 'audio', dts: stamp, pts: stamp, keyframe: true, data: payload(2000) };
      // Bursts: sometimes a run of audio arrives together, late.
      arrival = Math.max(arrival, random() < 0.1 ? dts + lateness + 300 : dts + random() * lateness);
      tagged.push({ au, arrival });
    }
  }
  tagged.sort((x, y) => x.arrival - y.arrival); // stable: each track keeps its own order
  const events: (AccessUnit | null)[] = [];
  for (const t of tagged) {
    events.push(t.au);
    if (random() < 0.02) events.push(null);
  }
  return { options, events };
}

// ---- The model: what each track's samples must be ----

interface Expected {
  au: AccessUnit;
  decode: number;
  duration: number;
  cto: number;
  /** The decode time is the input's own (not raised, not on the audio sample clock). */
  own: boolean;
}

function expectedSamples(
  c: Case,
  audioScale: number,
): { video: Expected[]; audio: Expected[]; raised: number; resyncs: number } {
  const video: Expected[] = [];
  const audio: Expected[] = [];
  let lastDecode = -1;
  let lastDuration: number | null = null;
  let held: Expected | null = null;
  let nextAudio: number | null = null;
  let raised = 0;
  let resyncs = 0;
  const fs = c.options.audio?.frameSamples ?? 0;
  const flush = (): void => {
    if (held) held.duration = lastDuration ?? 3000;
    held = null;
  };
  for (const au of c.events) {
    if (au === null) {
      flush();
      continue;
    }
    if (au.track === 'video') {
      const own = Math.round(au.dts * 90);
      const decode = own > lastDecode ? own : lastDecode + 1;
      if (decode !== own) raised++;
      lastDecode = decode;
      const e: Expected = {
        au,
        decode,
        duration: -1,
        cto: Math.round(au.pts * 90) - decode,
        own: decode === own,
      };
      if (held) {
        held.duration = decode - held.decode;
        lastDuration = held.duration;
      }
      held = e;
      video.push(e);
    } else {
      const raw = Math.round((au.dts * audioScale) / 1000);
      const own = Math.max(0, raw);
      const time: number = nextAudio !== null && Math.abs(own - nextAudio) <= fs ? nextAudio : own;
      if (nextAudio !== null && time !== nextAudio) resyncs++;
      nextAudio = time + fs;
      audio.push({ au, decode: time, duration: fs, cto: 0, own: time === raw });
    }
  }
  flush();
  return { video, audio, raised, resyncs };
}

function checkCase(c: Case, random: () => number, label: string): CmafWriter['stats'] {
  const w = new CmafWriter(c.options);
  const fragments: Fmp4Fragment[] = [];
  const audio = c.options.audio;
  // Audio-only: every fragment a push returns holds exactly audioFragmentMs of samples (rounded up).
  const cadence =
    audio && !c.options.video
      ? Math.ceil(
          ((c.options.audioFragmentMs ?? 100) * w.init.tracks[0]!.timescale) / 1000 / audio.frameSamples,
        )
      : 0;
  for (const au of c.events) {
    const out = au === null ? w.flush() : w.push(au);
    if (au !== null && cadence > 0) {
      for (const f of out)
        assert.equal(
          f.runs.reduce((n, r) => n + r.sampleCount, 0),
          cadence,
          label,
        );
    }
    fragments.push(...out);
  }
  fragments.push(...w.flush());

  // The reader, fed random pieces, reports exactly what the writer returned.
  const reader = new Fmp4Reader();
  let init: Fmp4Init | null = null;
  const read: Fmp4Fragment[] = [];
  const bytes = Buffer.concat([w.init.data, ...fragments.map((f) => f.data)]);
  for (let at = 0; at < bytes.length; ) {
    const n = 1 + Math.floor(random() * 70_000);
    reader.push(bytes.subarray(at, at + n), {
      init: (i) => {
        init = i;
      },
      fragment: (f) => read.push(f),
    });
    at += n;
  }
  assert.deepEqual(init, w.init, label);
  assert.equal(read.length, fragments.length, label);
  for (let i = 0; i < read.length; i++) {
    const { data: got, ...gotRest } = read[i]!;
    const { data: want, ...wantRest } = fragments[i]!;
    assert.ok(got.equals(want), `${label}: fragment ${i} bytes`);
    assert.deepEqual(gotRest, wantRest, `${label}: fragment ${i}`);
  }

  // Same samples out, per track, in order.
  const videoId = c.options.video ? 1 : 0;
  const audioId = c.options.audio ? (c.options.video ? 2 : 1) : 0;
  const audioScale = w.init.tracks.find((t) => t.id === audioId)?.timescale ?? 1;
  const parsed = fragments.flatMap((f) => {
    const samples = parseSamples(f.data);
    const videos = samples.filter((s) => s.trackId === videoId);
    assert.ok(videos.length <= 1, `${label}: at most one frame per fragment`);
    if (videos.length === 1) assert.equal(f.keyframe, isSyncSample(videos[0]!.flags), label);
    return samples;
  });
  const want = expectedSamples(c, audioScale);
  for (const [id, list] of [
    [videoId, want.video],
    [audioId, want.audio],
  ] as const) {
    const got = parsed.filter((s) => s.trackId === id);
    assert.equal(got.length, list.length, `${label}: track ${id} sample count`);
    for (let i = 0; i < list.length; i++) {
      const g = got[i]!;
      const e = list[i]!;
      const at = `${label}: track ${id} sample ${i}`;
      assert.ok(g.data.equals(e.au.data), `${at} payload`);
      assert.equal(g.decode, e.decode, `${at} decode time`);
      assert.equal(g.duration, e.duration, `${at} duration`);
      assert.equal(g.cto, e.cto, `${at} composition offset`);
      assert.equal(
        id === videoId ? isSyncSample(g.flags) : g.flags === 0,
        id === videoId ? e.au.keyframe : true,
        `${at} sync`,
      );
      if (e.own) {
        const scale = id === videoId ? 90 : audioScale / 1000;
        assert.ok(Math.abs(g.decode - e.au.dts * scale) <= 1, `${at} decode within a tick of the DTS`);
        assert.ok(
          Math.abs(g.decode + g.cto - e.au.pts * scale) <= 1,
          `${at} presentation within a tick of the PTS`,
        );
      }
    }
  }
  assert.equal(w.stats.videoDtsRaised, want.raised, `${label}: raised DTS`);
  assert.equal(w.stats.audioResyncs, want.resyncs, `${label}: audio resyncs`);
  assert.equal(w.stats.fragments, fragments.length);
  assert.equal(w.stats.samples, parsed.length);
  assert.equal(w.stats.bytes, bytes.length - w.init.data.length);
  return w.stats;
}

describe('cmaf: writer → reader round trip', () => {
  it('10^4 random access-unit sequences: never throws, always parses, same samples out', (t) => {
    const random = prng(20261204);
    const totals = {
      fragments: 0,
      samples: 0,
      bytes: 0,
      audioResyncs: 0,
      videoDtsRaised: 0,
      audioHoldOverflows: 0,
      audioPadded: 0,
    };
    const started = performance.now();
    for (let i = 0; i < 10_000; i++) {
      const stats = checkCase(makeCase(random), random, `case ${i}`);
      for (const key of Object.keys(totals) as (keyof typeof totals)[]) totals[key] += stats[key];
    }
    const seconds = (performance.now() - started) / 1000;
    t.diagnostic(`${JSON.stringify(totals)} in ${seconds.toFixed(1)} s`);
    // The generator reaches every path it is meant to.
    assert.ok(totals.samples > 100_000 && totals.audioResyncs > 1000 && totals.videoDtsRaised > 1000);
    assert.ok(totals.audioHoldOverflows > 100);
  });
});
