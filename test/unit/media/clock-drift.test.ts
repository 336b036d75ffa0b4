/**
 * ClockDrift (media/clock-drift.ts) on synthetic publishes: a media clock at 0.8× and 1.2× of real time is
 * re-stamped so the output grows with the arrival clock (no backward step per track, audio and video in
 * step, audio frames never overlapping, counted), and then followed: a rate that wanders by less than the
 * bound, or that the first window measured a little off, keeps the output's lead over arrival (what a
 * player's distance to the live edge follows) within 300 ms, through jitter, a stall and its backlog; a
 * correct clock with arrival jitter, and a correct clock with a network stall and its backlog delivered at
 * once, are never re-stamped.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AccessUnit } from '../../../src/media/access-unit.ts';
import { ClockDrift } from '../../../src/media/clock-drift.ts';
import { silentAacFrame } from '../../../src/media/silence.ts';

/** An AAC frame at 48 kHz. */
const AUDIO_FRAME_MS = 1024 / 48;

interface Fed {
  out: AccessUnit[];
  arrivals: number[];
}

/**
 * `seconds` of real time of a publisher that sends `rate` seconds of media per second (the FLV publisher
 * paced at that speed): 30 fps video and AAC (21.3 ms frames at 48 kHz) on an honest media timeline,
 * arriving `rate` times too fast; `arrival(t)` moves the arrival of what would arrive at real time t.
 */
function feed(drift: ClockDrift, seconds: number, rate: number, arrival = (t: number) => t): Fed {
  return feedMedia(drift, seconds * 1000 * rate, (media) => arrival(media / rate));
}

/** Media up to `end` ms (30 fps video, AAC), each unit arriving at `arrivalOf(its media time)`. */
function feedMedia(drift: ClockDrift, end: number, arrivalOf: (media: number) => number): Fed {
  const units: { au: AccessUnit; at: number }[] = [];
  for (let media = 0; media < end; media += 1000 / 30) {
    units.push({
      au: { track: 'video', dts: media, pts: media, keyframe: false, data: Buffer.alloc(1) },
      at: arrivalOf(media),
    });
  }
  for (let media = 0; media < end; media += AUDIO_FRAME_MS) {
    units.push({
      au: { track: 'audio', dts: media, pts: media, keyframe: true, data: Buffer.alloc(1) },
      at: arrivalOf(media),
    });
  }
  units.sort((a, b) => a.at - b.at || a.au.dts - b.au.dts);
  const out: AccessUnit[] = [];
  const arrivals: number[] = [];
  drift.newPublish(true, { frameMs: AUDIO_FRAME_MS, silentFrame: silentAacFrame(1) });
  for (const { au, at } of units) {
    for (const restamped of drift.restamp(au, at)) {
      out.push(restamped);
      arrivals.push(at);
    }
  }
  return { out, arrivals };
}

function assertMonotonic(out: AccessUnit[]): void {
  for (const track of ['video', 'audio'] as const) {
    const dts = out.filter((a) => a.track === track).map((a) => a.dts);
    for (let i = 1; i < dts.length; i++) assert.ok(dts[i]! > dts[i - 1]!, `${track} steps back at ${i}`);
  }
}

/** Output ms per arrival ms over the last `ms` of the feed, per track. */
function outputRate(fed: Fed, track: 'video' | 'audio', ms: number): number {
  const idx = fed.out.map((_a, i) => i).filter((i) => fed.out[i]!.track === track);
  const last = idx[idx.length - 1]!;
  const end = fed.arrivals[last]!;
  const first = idx.find((i) => fed.arrivals[i]! >= end - ms)!;
  return (fed.out[last]!.dts - fed.out[first]!.dts) / (end - fed.arrivals[first]!);
}

describe('clock drift: follow the arrival clock when the media clock lies', () => {
  for (const rate of [0.8, 1.2]) {
    it(`a media clock at ${rate}× real time is re-stamped to real time, smoothly, audio in step`, () => {
      const soon = new ClockDrift();
      feed(soon, 3.5, rate);
      assert.equal(soon.stats.restamps, 1, 'a lie this big is re-stamped within 3.5 s');
      const drift = new ClockDrift();
      const fed = feed(drift, 40, rate);
      assert.ok(drift.stats.restamps >= 1, 'counted');
      assert.ok(Math.abs(drift.stats.scale - 1 / rate) < 0.02, `scale ${drift.stats.scale}`);
      assertMonotonic(fed.out);
      for (const track of ['video', 'audio'] as const) {
        const r = outputRate(fed, track, 20_000);
        assert.ok(Math.abs(r - 1) < 0.01, `${track}: output grows ${r.toFixed(3)}× real time`);
      }
      // Audio and video stay in step: the last of each are as close as they were made.
      const lastOf = (track: string) => fed.out.filter((a) => a.track === track).at(-1)!.dts;
      assert.ok(Math.abs(lastOf('video') - lastOf('audio')) < 60, 'audio and video in step');
      // An audio frame keeps its duration: none overlaps the one before, none leaves a gap (the slower
      // re-stamp drops what no longer fits, the faster one fills with silence).
      const audio = fed.out.filter((a) => a.track === 'audio').map((a) => a.dts);
      for (let i = 1; i < audio.length; i++) {
        const step = audio[i]! - audio[i - 1]!;
        assert.ok(Math.abs(step - AUDIO_FRAME_MS) < 1e-6, `audio frame ${i} after ${step.toFixed(2)} ms`);
      }
      if (rate > 1) {
        assert.ok(drift.stats.audioDropped > 0, 'the audio that no longer fits is dropped');
        assert.equal(drift.stats.silentFrames, 0);
      } else {
        assert.equal(drift.stats.audioDropped, 0);
        assert.ok(drift.stats.silentFrames > 0, 'the time the audio no longer covers is silence');
      }
      // Video frame spacing changes by the scale only: no jitter within a run at one scale.
      const video = fed.out.filter((a) => a.track === 'video').slice(-300);
      const steps = video.slice(1).map((a, i) => a.dts - video[i]!.dts);
      assert.ok(Math.max(...steps) - Math.min(...steps) < 0.01, 'even spacing');
    });
  }

  /** Output minus arrival of the video frames (what a player's distance to the edge follows), by arrival. */
  function leads(fed: Fed): { at: number; lead: number }[] {
    return fed.out
      .map((a, i) => ({ a, at: fed.arrivals[i]! }))
      .filter(({ a }) => a.track === 'video')
      .map(({ a, at }) => ({ at, lead: a.dts - at }));
  }

  /** How far the output's lead over arrival moves from `from` ms of arrival on (max − min). */
  function leadSpread(fed: Fed, from: number): number {
    const l = leads(fed)
      .filter((x) => x.at >= from)
      .map((x) => x.lead);
    return Math.max(...l) - Math.min(...l);
  }

  it('follows a lying clock that wanders by less than the bound after the re-stamp (players stay close)', () => {
    // 0.8x for 10 s of real time, then 0.77x (3.75 % slower: under the 4 % bound, so no second re-stamp
    // would see it; at one scale the output would fall 1.5 s behind real time in 40 s).
    const drift = new ClockDrift();
    const knee = 10_000 * 0.8;
    const fed = feedMedia(drift, 90_000 * 0.77, (m) => (m < knee ? m / 0.8 : 10_000 + (m - knee) / 0.77));
    assert.equal(drift.stats.restamps, 1);
    assert.ok(drift.stats.corrections >= 1, 'followed');
    assert.ok(Math.abs(drift.stats.scale - 1 / 0.77) < 0.01, `scale ${drift.stats.scale}`);
    const spread = leadSpread(fed, 12_000);
    assert.ok(spread < 300, `the output's lead over arrival moved ${spread.toFixed(0)} ms`);
    assertMonotonic(fed.out);
  });

  it('follows a lying clock whose start skews the first measure (a pre-roll sent at once)', () => {
    // At 1.2x, with the first 100 ms of media arriving at 0: the halves of the first window agree within the
    // bound, and its rate is 1.5 % off (at that scale alone the output would fall 1 s behind in 67 s).
    const drift = new ClockDrift();
    const fed = feedMedia(drift, 80_000 * 1.2, (m) => Math.max(0, (m - 100) / 1.2));
    assert.ok(Math.abs(drift.stats.scale - 1 / 1.2) < 0.01, `scale ${drift.stats.scale}`);
    const spread = leadSpread(fed, 10_000);
    assert.ok(spread < 300, `the output's lead over arrival moved ${spread.toFixed(0)} ms`);
  });

  it('follows a lying clock through arrival jitter', () => {
    const drift = new ClockDrift();
    const fed = feed(drift, 60, 0.8, (t) => t + 40 * Math.sin(t / 77));
    assert.equal(drift.stats.restamps, 1);
    assert.ok(Math.abs(drift.stats.scale - 1 / 0.8) < 0.01, `scale ${drift.stats.scale}`);
    const spread = leadSpread(fed, 12_000);
    assert.ok(spread < 300, `the output's lead over arrival moved ${spread.toFixed(0)} ms (jitter ±40)`);
    assertMonotonic(fed.out);
  });

  it('following, a network stall and its backlog move nothing but the late frames', () => {
    const drift = new ClockDrift();
    // 0.8x; from 20 s to 23 s of real time nothing arrives, then it all comes at once.
    const fed = feed(drift, 60, 0.8, (t) => (t >= 20_000 && t < 23_000 ? 22_970 + (t - 20_000) / 100 : t));
    assert.equal(drift.stats.restamps, 1);
    assert.ok(Math.abs(drift.stats.scale - 1 / 0.8) < 0.01, `scale ${drift.stats.scale}`);
    const after = leads(fed).filter((x) => x.at >= 30_000);
    const before = leads(fed).filter((x) => x.at >= 12_000 && x.at < 20_000);
    const mean = (xs: { lead: number }[]) => xs.reduce((s, x) => s + x.lead, 0) / xs.length;
    assert.ok(Math.abs(mean(after) - mean(before)) < 150, `lead ${mean(before)} → ${mean(after)}`);
    assertMonotonic(fed.out);
  });

  it('never re-stamps a correct clock, arrival jitter included', () => {
    const drift = new ClockDrift();
    // ±40 ms of deterministic jitter on arrival.
    const fed = feed(drift, 60, 1, (t) => t + 40 * Math.sin(t / 77));
    assert.equal(drift.stats.restamps, 0);
    assert.equal(drift.stats.scale, 1);
    for (let i = 0; i < fed.out.length; i += 97) assert.equal(fed.out[i]!.dts, fed.out[i]!.pts);
    assert.ok(Math.abs((drift.stats.measuredRate ?? 0) - 1) < 0.02);
  });

  it('leaves a push faster than any lying clock as it is (a file sent at 2x)', () => {
    const drift = new ClockDrift();
    const fed = feed(drift, 20, 2);
    assert.equal(drift.stats.restamps, 0);
    assert.ok(Math.abs((drift.stats.measuredRate ?? 0) - 2) < 0.05);
    assert.equal(fed.out.length, fed.arrivals.length);
  });

  it('never re-stamps a correct clock after a network stall and its backlog delivered at once', () => {
    const drift = new ClockDrift();
    // From 12 s to 15 s nothing arrives; it all comes at 15 s.
    feed(drift, 40, 1, (t) => (t >= 12_000 && t < 15_000 ? 15_000 + (t - 12_000) / 100 : t));
    assert.equal(drift.stats.restamps, 0);
  });
});
