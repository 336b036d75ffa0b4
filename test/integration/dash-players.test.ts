/**
 * DASH end to end: real FFmpeg publishes to a real relay, and dash.js in Chromium plays the stream's MPD
 * from another origin (the page is served from another port: CORS on the MPD, the inits and the segments).
 * A copy stream, a transcoded one and an ABR ladder play without an error or a stall, their audio decoded
 * (the muxed Representation carries both tracks); every MPD passes the strict structural check
 * (test/helpers/mpd-check.ts: the DASH schema cannot be had offline); a publisher that drops and comes back
 * is a new Period that dash.js plays on into; low-latency DASH (`?ll=1`: the segment being made fetched while
 * it is made) plays; an ended stream's MPD is static and plays from its start;
 * bad paths are 400 and unknown streams 404 over real HTTP.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { type DashBrowser, type DashReport, launchDashBrowser } from '../helpers/dash-browser.ts';
import { checkMpd } from '../helpers/mpd-check.ts';
import { startTool, type ToolRun } from '../helpers/process.ts';
import { publisherArgv } from '../helpers/publishers.ts';
import { type StreamRecord, segmentsAtLeast, startTestRelay } from '../helpers/relay-harness.ts';

const WATCH_SECONDS = 8;

describe('DASH with dash.js in Chromium', () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let browser: DashBrowser;
  const tools: ToolRun[] = [];

  before(async () => {
    ({ relay, records } = await startTestRelay({
      RECONNECT_WINDOW_SECONDS: '20',
      HLS_LOW_LATENCY: 'on',
    }));
    browser = await launchDashBrowser();
  });

  after(async () => {
    for (const t of tools) t.kill();
    await browser?.close();
    await relay?.close();
  });

  const mpdUrl = (stream: string): string =>
    `http://127.0.0.1:${relay.hlsPort}/dash/u-x.com/${stream}/index.mpd`;

  /** FFmpeg publishes 540x960 14 fps H.264 (2 s GOPs) + AAC live for `seconds`. */
  const publish = (stream: string, seconds: number): ToolRun => {
    const { command, args } = publisherArgv('ffmpeg', {
      url: `rtmp://127.0.0.1:${relay.rtmpPort}/live/u@x.com/${stream}`,
      seconds,
      gop: 28,
    });
    const run = startTool(command, args);
    tools.push(run);
    return run;
  };

  /** The record of a stream, once it exists (the relay creates it on the publish). */
  const recordOf = async (streamId: string): Promise<StreamRecord> => {
    const existing = records.get(streamId);
    if (existing) return existing;
    return new Promise((resolve) => {
      const on = (stream: { streamId: string }): void => {
        if (stream.streamId !== streamId) return;
        relay.streams.off('created', on);
        setImmediate(() => resolve(records.get(streamId)!));
      };
      relay.streams.on('created', on);
    });
  };

  const assertPlayed = (name: string, report: DashReport, seconds: number): void => {
    const detail = `${name}: ${JSON.stringify({ ...report, samples: report.samples.slice(-3) })}`;
    assert.deepEqual(report.errors, [], detail);
    assert.ok(report.playedSeconds >= seconds, detail);
    assert.deepEqual(report.stalls, [], detail);
    const last = report.samples.at(-1)!;
    assert.ok(last.audioBytes > 0, `${name}: audio decoded`);
    assert.ok(last.videoFrames > 0, `${name}: video decoded`);
  };

  const cases: { name: string; stream: string; query: string; profile: string; reps: string[] }[] = [
    { name: 'copy (no FFmpeg)', stream: 'copy', query: '', profile: 'copy', reps: ['v0'] },
    { name: 'transcoded', stream: 'tc', query: '?profile=transcode', profile: 'transcode', reps: ['v0'] },
    {
      name: 'ABR ladder',
      stream: 'abr',
      query: '?profile=abr',
      profile: 'transcode',
      reps: ['540p', '480p', '360p'],
    },
  ];
  for (const c of cases) {
    it(`plays a live ${c.name} stream from another origin`, async () => {
      publish(`${c.stream}${c.query}`, 40);
      const rec = await recordOf(c.stream);
      await rec.ready;
      assert.equal(rec.stream.pipelineProfile, c.profile);
      assert.equal(rec.stream.abr !== null, c.reps.length > 1, 'ABR renditions');
      const res = await fetch(mpdUrl(c.stream), { headers: { origin: 'http://elsewhere.example' } });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/dash+xml');
      assert.equal(res.headers.get('access-control-allow-origin'), '*');
      const text = await res.text();
      const mpd = checkMpd(text);
      assert.equal(mpd.type, 'dynamic');
      assert.doesNotMatch(text, /availabilityTimeComplete/, 'complete segments unless ?ll=1');
      assert.deepEqual(
        mpd.periods[0]!.representations.map((r) => r.id),
        c.reps,
      );
      const report = await browser.playDash(mpdUrl(c.stream), { seconds: WATCH_SECONDS });
      assertPlayed(c.name, report, WATCH_SECONDS - 2);
      assert.deepEqual(
        report.representations.map((r) => r.id).sort(),
        [...c.reps].sort(),
        'dash.js sees every rung',
      );
      assert.ok(report.manifestLoads >= 2, 'the live MPD is reloaded');
    });
  }

  it('low-latency DASH (?ll=1): dash.js fetches the segment being made and plays', async () => {
    publish('ll', 30);
    const rec = await recordOf('ll');
    await rec.ready;
    const text = await (await fetch(`${mpdUrl('ll')}?ll=1`)).text();
    checkMpd(text);
    assert.match(text, /availabilityTimeComplete="false"/);
    const report = await browser.playDash(`${mpdUrl('ll')}?ll=1`, { seconds: WATCH_SECONDS });
    // Lenient on stalls: dash.js 5.2 on low-latency DASH stalled under load here (see routes.ts).
    assert.deepEqual(report.errors, [], JSON.stringify(report.errors));
    assert.ok(report.playedSeconds >= WATCH_SECONDS / 2, `played ${report.playedSeconds} s`);
    assert.ok(rec.stream.packager.lowLatency);
  });

  it('a publisher that drops and comes back is a new Period; dash.js plays on into it', async () => {
    let pub = publish('back', 40);
    const rec = await recordOf('back');
    await rec.ready;
    const playing = browser.playDash(mpdUrl('back'), { seconds: 20 });
    await segmentsAtLeast(rec, rec.segments.length + 2);
    pub.kill();
    await new Promise<void>((resolve) => {
      const on = (state: string): void => {
        if (state !== 'reconnecting') return;
        rec.stream.off('state', on);
        resolve();
      };
      rec.stream.on('state', on);
    });
    pub = publish('back', 40);
    // The MPD once the new run has a segment (later the old run's segments leave the window).
    await new Promise<void>((resolve) => {
      const on = (segment: { discontinuity: boolean }): void => {
        if (!segment.discontinuity) return;
        rec.stream.packager.off('segment', on);
        resolve();
      };
      rec.stream.packager.on('segment', on);
    });
    const mpd = checkMpd(await (await fetch(mpdUrl('back'))).text());
    const report = await playing;
    const ids = mpd.periods.map((p) => p.id);
    // The run before, then the slate's Period when the gap reached a second (SLATE=on), and the run after.
    assert.equal(ids[0], 'p0');
    assert.ok(ids.length >= 2, `periods ${ids.join(' ')}`);
    const [p0, p1] = mpd.periods;
    const r0 = p0!.representations[0]!;
    const end0 =
      p0!.start + (r0.segments.at(-1)!.t + r0.segments.at(-1)!.d - r0.presentationTimeOffset) / r0.timescale;
    assert.ok(p1!.start >= end0 - 0.001, `p1 (${p1!.start}) after p0's end (${end0})`);
    assert.notEqual(p1!.representations[0]!.initialization, r0.initialization, 'a new init');
    assert.deepEqual(report.errors, [], JSON.stringify(report.errors));
    assert.equal(report.periods[0], 'p0');
    assert.ok(report.periods.length >= 2, `dash.js switched Periods: ${report.periods.join(' ')}`);
    const last = report.periods.at(-1);
    const inLast = report.samples.filter((s) => s.period === last);
    assert.ok(inLast.length >= 8, `played in ${last} for ${inLast.length} samples`);
    assert.ok(inLast.at(-1)!.currentTime - inLast[0]!.currentTime >= 2, 'and time went on there');
  });

  it("an ended stream's MPD is static, and dash.js plays it from its start", async () => {
    const rec = records.get('copy')!;
    await rec.stream.close();
    await rec.ended;
    const res = await fetch(mpdUrl('copy'));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('cache-control'), 'public, max-age=60');
    const mpd = checkMpd(await res.text());
    assert.equal(mpd.type, 'static');
    const listed = rec.stream.packager.segments.reduce((sum, s) => sum + s.duration, 0);
    assert.ok(
      Math.abs(mpd.mediaPresentationDuration! - listed) < 0.01,
      `${mpd.mediaPresentationDuration} vs ${listed}`,
    );
    const report = await browser.playDash(mpdUrl('copy'), { seconds: 4 });
    assert.deepEqual(report.errors, []);
    assert.ok(report.playedSeconds >= 3, `played ${report.playedSeconds} s`);
    assert.ok(report.samples[0]!.currentTime < 1, 'from the start');
  });

  it('answers 400 for a path that breaks the name rules and 404 for an unknown stream', async () => {
    const base = `http://127.0.0.1:${relay.hlsPort}`;
    const cases: [string, number][] = [
      ['/dash/u-x.com/nope/index.mpd', 404],
      ['/dash/..%2Fetc/copy/index.mpd', 400],
      ['/dash/u-x.com/a%20b/index.mpd', 400],
      ['/dash/u-x.com/copy/index.m3u8', 404],
    ];
    for (const [path, status] of cases) {
      const res = await fetch(`${base}${path}`);
      assert.equal(res.status, status, path);
      assert.equal(res.headers.get('access-control-allow-origin'), '*', path);
    }
  });
});
