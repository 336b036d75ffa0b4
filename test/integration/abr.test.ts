/**
 * The ABR profile end to end with real FFmpeg: the dirty 540x960 glasses stream published with
 * `?profile=abr` becomes a ladder of 540p (the input's own size: never upscaled), 480p and 360p from one
 * decode. The stream's `index.m3u8` is the multivariant playlist (BANDWIDTH, RESOLUTION, CODECS,
 * FRAME-RATE), each rendition's media playlist is valid LL-HLS with rendition reports for the others and
 * answers blocking reloads, every segment of every rung starts with a keyframe at the same time as the
 * other rungs' segment of the same number, and hls.js in Chromium plays 15 s switching rungs without a stall.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { type BrowserHandle, launchBrowser, stallTrace } from '../helpers/browser.ts';
import { type FlvPublisher, publishFlv } from '../helpers/flv-publisher.ts';
import { type StreamRecord, startTestRelay } from '../helpers/relay-harness.ts';

const WATCH_SECONDS = 15;
const PATH = 'glasses-user.com/abr';

describe('the ABR profile', () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let hls: (p: string) => string;
  let browser: BrowserHandle;
  let pub: FlvPublisher;
  let rec: StreamRecord;

  before(async () => {
    ({ relay, records, hls } = await startTestRelay({
      HLS_LOW_LATENCY: 'on',
      HLS_PART_SECONDS: '0.5',
      RECONNECT_WINDOW_SECONDS: '1',
    }));
    browser = await launchBrowser();
    pub = publishFlv(await fixturePath('dirty-540x960.flv'), {
      port: relay.rtmpPort,
      user: 'glasses@user.com',
      stream: 'abr?profile=abr',
    });
    await pub.started;
    rec = records.get('abr')!;
    await rec.ready;
  });

  after(async () => {
    await pub?.stop().catch(() => {}); // already over when the tests ran to the end
    await browser?.close();
    await relay?.close();
  });

  it('serves the multivariant playlist at index.m3u8: 540p, 480p and 360p with their attributes', async () => {
    const res = await fetch(hls(`${PATH}/index.m3u8`));
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'application/vnd.apple.mpegurl');
    const text = await res.text();
    const lines = text.trim().split('\n');
    assert.equal(lines[0], '#EXTM3U');
    assert.ok(lines.includes('#EXT-X-INDEPENDENT-SEGMENTS'));
    const variants = lines
      .map((line, i) => ({ line, uri: lines[i + 1] }))
      .filter((v) => v.line.startsWith('#EXT-X-STREAM-INF:'));
    assert.deepEqual(
      variants.map((v) => v.uri),
      ['540p.m3u8', '480p.m3u8', '360p.m3u8'],
      text,
    );
    const resolutions = variants.map((v) => /RESOLUTION=(\d+x\d+)/.exec(v.line)?.[1]);
    assert.deepEqual(resolutions, ['540x960', '480x854', '360x640']);
    for (const v of variants) {
      assert.match(v.line, /BANDWIDTH=\d+/);
      assert.match(v.line, /CODECS="avc1\.[0-9a-f]{6},mp4a\.40\.2"/);
      assert.match(v.line, /FRAME-RATE=15\.000/); // onMetaData's 15 fps: the ladder keeps the input's frames
    }
    assert.equal(rec.stream.abr?.renditions.length, 3);
    assert.equal(rec.stream.decision.startsWith('abr:'), true, rec.stream.decision);
  });

  it('serves a valid LL-HLS media playlist per rendition, with rendition reports and blocking reload', async () => {
    const names = ['540p', '480p', '360p'];
    for (const name of names) {
      const res = await fetch(hls(`${PATH}/${name}.m3u8`));
      assert.equal(res.status, 200, name);
      const text = await res.text();
      assert.match(text, /^#EXTM3U\n/);
      assert.match(text, /#EXT-X-TARGETDURATION:2\n/);
      assert.match(text, /#EXT-X-PART-INF:PART-TARGET=0\.5/);
      assert.match(text, /#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES/);
      const reports = [
        ...text.matchAll(/#EXT-X-RENDITION-REPORT:URI="([^"]+)",LAST-MSN=(\d+)(,LAST-PART=\d+)?/g),
      ];
      assert.deepEqual(
        reports.map((m) => m[1]).sort(),
        names
          .filter((n) => n !== name)
          .map((n) => `${n}.m3u8`)
          .sort(),
        text,
      );
      // Every URI it lists resolves.
      const uris = [
        ...[...text.matchAll(/URI="([^"]+\.m4s|[^"]+\.mp4)"/g)].map((m) => m[1]!),
        ...text.split('\n').filter((l) => l.endsWith('.m4s')),
      ];
      const hint = /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="([^"]+)"/.exec(text)?.[1];
      for (const uri of uris.filter((u) => u !== hint).slice(-4)) {
        const seg = await fetch(hls(`${PATH}/${uri}`));
        assert.equal(seg.status, 200, `${name}: ${uri}`);
        await seg.arrayBuffer();
      }
      // Blocking reload: the next segment of this rendition.
      const msn = Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1]);
      const listed = text.split('\n').filter((l) => l.startsWith('#EXTINF')).length;
      const next = msn + listed;
      const blocked = await fetch(hls(`${PATH}/${name}.m3u8?_HLS_msn=${next}`));
      assert.equal(blocked.status, 200);
      const later = await blocked.text();
      assert.ok(
        later.split('\n').filter((l) => l.startsWith('#EXTINF')).length +
          Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(later)?.[1]) >
          next,
        later,
      );
    }
    // A rendition name the stream does not have, and a rendition playlist name for a missing stream.
    assert.equal((await fetch(hls(`${PATH}/720p.m3u8`))).status, 404);
    assert.equal((await fetch(hls('glasses-user.com/none/540p.m3u8'))).status, 404);
  });

  it(`plays in hls.js for ${WATCH_SECONDS} s, switching rungs, without a stall`, async () => {
    const report = await browser.playHls(hls(`${PATH}/index.m3u8`), {
      seconds: WATCH_SECONDS,
      lowLatency: true,
      switchLevels: [
        { afterSeconds: 4, level: 0 },
        { afterSeconds: 9, level: 2 },
      ],
    });
    assert.deepEqual(report.fatalErrors, []);
    assert.deepEqual(report.stalls, [], stallTrace(report));
    assert.ok(report.playedSeconds >= WATCH_SECONDS - 2, `played ${report.playedSeconds} s`);
    assert.deepEqual(report.levels.map((l) => `${l.width}x${l.height}`).sort(), [
      '360x640',
      '480x854',
      '540x960',
    ]);
    const distinct = new Set(report.levelSwitches.map((s) => s.level));
    assert.ok(distinct.size >= 2, `level switches: ${JSON.stringify(report.levelSwitches)}`);
  });

  it('cuts every rung at keyframes at the same times', async () => {
    await pub.done;
    await rec.ended;
    const renditions = rec.stream.abr!.renditions;
    const starts = renditions.map(
      (r) => new Map(r.packager.segments.map((s) => [s.msn, s.fragments[0]!.startSeconds] as const)),
    );
    let compared = 0;
    for (const r of renditions) {
      for (const s of r.packager.segments) assert.ok(s.independent, `${r.rung.name} segment ${s.msn}`);
    }
    for (const [msn, start] of starts[0]!) {
      for (const other of starts.slice(1)) {
        const t = other.get(msn);
        if (t === undefined) continue;
        assert.ok(Math.abs(t - start) < 0.001, `segment ${msn}: ${start} s vs ${t} s`);
        compared++;
      }
    }
    assert.ok(compared >= 8, `compared ${compared} segment starts`);
  });
});
