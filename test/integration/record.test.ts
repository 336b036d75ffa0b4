/**
 * Recordings end to end with real peers: a real relay (in this process) records real publishes into a real
 * S3-compatible server (s3rver), and the recording is listed from the store, replayed in hls.js in Chromium
 * from its VOD playlist, and downloaded as one MP4 whose duration ffprobe reads. A reconnect within the
 * window gives one recording with a discontinuity; the S3 server stopped for 10 s mid-stream loses nothing;
 * retention deletes every object; names that try to leave the recordings tree are refused.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Writable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { Retention } from '../../src/record/retention.ts';
import { S3Store } from '../../src/record/s3-store.ts';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { createLogger, silentLogger } from '../../src/shared/logger.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { type BrowserHandle, launchBrowser } from '../helpers/browser.ts';
import { publishFlv } from '../helpers/flv-publisher.ts';
import { runTool } from '../helpers/process.ts';
import { type StreamRecord, startTestRelay } from '../helpers/relay-harness.ts';
import { S3RVER_KEYS, startS3, type TestS3 } from '../helpers/s3-server.ts';

interface Listing {
  recordings: {
    id: string;
    state: 'uploading' | 'ready';
    startedAt: string;
    endedAt: string | null;
    durationSeconds: number;
    hlsUrl: string;
    mp4Url: string;
    thumbnailUrl: string | null;
  }[];
}

const FIXTURE = 'glasses-854x480.flv';
const FIXTURE_SECONDS = 20;

describe('recordings in S3', () => {
  let s3: TestS3;
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let base: string;
  let spool: string;
  let browser: BrowserHandle;
  const tmp = mkdtempSync(path.join(os.tmpdir(), 'rtmp-relay-record-'));
  const savedEnv = { ...process.env };

  before(async () => {
    s3 = await startS3();
    const env = s3.env('rec');
    // The SDK's credential chain reads these from the process environment.
    process.env.AWS_ACCESS_KEY_ID = S3RVER_KEYS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = S3RVER_KEYS.secretAccessKey;
    spool = path.join(tmp, 'spool');
    ({ relay, records } = await startTestRelay({
      ...env,
      RECORDING: 'on',
      RECORDING_SPOOL_DIR: spool,
      CLEAN_PROFILE: 'copy',
      RECONNECT_WINDOW_SECONDS: '3',
    }));
    base = `http://127.0.0.1:${relay.hlsPort}/recordings`;
    browser = await launchBrowser();
  });

  after(async () => {
    await browser?.close();
    await relay?.close();
    await s3?.close();
    process.env = savedEnv;
    rmSync(tmp, { recursive: true, force: true });
  });

  async function listing(user: string, stream: string): Promise<Listing> {
    const res = await fetch(`${base}/${user}/${stream}`);
    const body = await res.text();
    assert.equal(res.status, 200, body);
    return JSON.parse(body) as Listing;
  }

  /** Polls the listing (read from S3) until one recording is ready. */
  async function ready(user: string, stream: string, timeoutMs = 60_000): Promise<Listing['recordings'][0]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const l = await listing(user, stream);
      const r = l.recordings.find((x) => x.state === 'ready');
      if (r) return r;
      if (Date.now() > deadline) throw new Error(`no ready recording: ${JSON.stringify(l)}`);
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  async function mp4Seconds(url: string, name: string): Promise<number> {
    const res = await fetch(url);
    assert.equal(res.status, 200);
    assert.equal(res.headers.get('content-type'), 'video/mp4');
    const bytes = Buffer.from(await res.arrayBuffer());
    assert.equal(bytes.length, Number(res.headers.get('content-length')));
    const file = path.join(tmp, name);
    writeFileSync(file, bytes);
    // Decoding every packet: the duration of what is really in the file, not a header's claim.
    const out = await runTool('ffprobe', [
      '-v',
      'error',
      '-show_entries',
      'format=duration:stream=codec_type',
      '-of',
      'json',
      file,
    ]);
    const parsed = JSON.parse(out) as { format: { duration: string }; streams: { codec_type: string }[] };
    assert.deepEqual(parsed.streams.map((s) => s.codec_type).sort(), ['audio', 'video']);
    return Number(parsed.format.duration);
  }

  it('records a stream: listed from the store, VOD playlist plays in hls.js, the MP4 has its duration', async () => {
    const pub = publishFlv(await fixturePath(FIXTURE), {
      port: relay.rtmpPort,
      user: 'u',
      stream: 'one',
      speed: 4,
    });
    await pub.done;
    const rec = await ready('u', 'one');
    assert.match(rec.id, /^r\d{13}$/);
    assert.ok(Math.abs(rec.durationSeconds - FIXTURE_SECONDS) < 1.5, `duration ${rec.durationSeconds}`);
    assert.ok(rec.endedAt && rec.startedAt <= rec.endedAt);
    const playlist = await (await fetch(rec.hlsUrl)).text();
    assert.match(playlist, /#EXT-X-PLAYLIST-TYPE:VOD/);
    assert.match(playlist, /#EXT-X-ENDLIST/);
    for (const m of playlist.matchAll(/^#EXTINF:([\d.]+),/gm)) assert.ok(Number(m[1]) <= 10, m[0]);
    const seconds = await mp4Seconds(rec.mp4Url, 'one.mp4');
    assert.ok(Math.abs(seconds - FIXTURE_SECONDS) < 1.5, `mp4 duration ${seconds}`);
    const report = await browser.playHls(rec.hlsUrl, { seconds: 4 });
    assert.deepEqual(report.fatalErrors, []);
    assert.ok(report.playedSeconds >= 3, `played ${report.playedSeconds}`);
    // The stream's thumbnail is kept with it.
    assert.ok(rec.thumbnailUrl);
    const thumb = await fetch(rec.thumbnailUrl);
    assert.equal(thumb.status, 200);
    assert.equal(thumb.headers.get('content-type'), 'image/jpeg');
  });

  it('a reconnect within the window continues the same recording, with a discontinuity', async () => {
    const file = await fixturePath(FIXTURE);
    const first = publishFlv(file, {
      port: relay.rtmpPort,
      user: 'u',
      stream: 'two',
      speed: 4,
      toMs: 10_000,
    });
    await first.done;
    const second = publishFlv(file, {
      port: relay.rtmpPort,
      user: 'u',
      stream: 'two',
      speed: 4,
      fromMs: 10_000,
      rebase: true,
    });
    await second.done;
    const rec = await ready('u', 'two');
    const l = await listing('u', 'two');
    assert.equal(l.recordings.length, 1, JSON.stringify(l));
    assert.equal(records.get('two')!.stream.state === 'ended', true);
    const playlist = await (await fetch(rec.hlsUrl)).text();
    assert.ok(playlist.includes('#EXT-X-DISCONTINUITY'), playlist);
    assert.ok(Math.abs(rec.durationSeconds - FIXTURE_SECONDS) < 2.5, `duration ${rec.durationSeconds}`);
    const seconds = await mp4Seconds(rec.mp4Url, 'two.mp4');
    assert.ok(Math.abs(seconds - rec.durationSeconds) < 1.5, `mp4 ${seconds} vs ${rec.durationSeconds}`);
  });

  it('leaves out the slate a reconnecting stream shows: the recording is the publisher media only', async () => {
    const slated = await startTestRelay({
      ...s3.env('rec'),
      RECORDING: 'on',
      RECORDING_SPOOL_DIR: path.join(tmp, 'spool-slate'),
      CLEAN_PROFILE: 'copy',
      RECONNECT_WINDOW_SECONDS: '60',
      // The first publish ends with a clean unpublish: the stream must wait for the second, slate meanwhile.
      UNPUBLISH_GRACE_SECONDS: '60',
    });
    try {
      const file = await fixturePath(FIXTURE);
      const first = publishFlv(file, {
        port: slated.relay.rtmpPort,
        user: 'u',
        stream: 'slated',
        toMs: 10_000,
        speed: 4,
      });
      await first.started;
      const rec = slated.records.get('slated')!;
      await first.done;
      // The publisher is gone: wait for at least 5 s of slate in the live playlist.
      await new Promise<void>((resolve) => {
        let slateSeconds = 0;
        const on = (segment: { duration: number }): void => {
          if (rec.stream.slating) slateSeconds += segment.duration;
          if (slateSeconds < 5) return;
          rec.stream.packager.off('segment', on);
          resolve();
        };
        rec.stream.packager.on('segment', on);
      });
      await publishFlv(file, {
        port: slated.relay.rtmpPort,
        user: 'u',
        stream: 'slated',
        speed: 4,
        fromMs: 10_000,
        rebase: true,
      }).done;
      await rec.stream.close();
      const url = `http://127.0.0.1:${slated.relay.hlsPort}/recordings/u/slated`;
      let recording: Listing['recordings'][0] | undefined;
      for (let i = 0; i < 600 && recording?.state !== 'ready'; i++) {
        recording = ((await (await fetch(url)).json()) as Listing).recordings[0];
        if (recording?.state !== 'ready') await new Promise((r) => setTimeout(r, 100));
      }
      assert.equal(recording?.state, 'ready');
      assert.ok(
        Math.abs(recording!.durationSeconds - FIXTURE_SECONDS) < 2.5,
        `duration ${recording!.durationSeconds} s for ${FIXTURE_SECONDS} s of media and 5+ s of slate`,
      );
    } finally {
      await slated.relay.close();
    }
  });

  it('a stream that moved to another relay continues the same recording; the MP4 runs on across both', async () => {
    // Two relays on one store; the cloud names the recording by the managed stream's start (same on both).
    const startedAt = Date.now();
    const other = await startTestRelay({
      ...s3.env('rec'),
      RECORDING: 'on',
      RECORDING_SPOOL_DIR: path.join(tmp, 'spool-b'),
      CLEAN_PROFILE: 'copy',
      RECONNECT_WINDOW_SECONDS: '1',
    });
    try {
      const decide = async () => ({ record: true, startedAt });
      relay.recording.recorder.setDecider(decide);
      other.relay.recording.recorder.setDecider(decide);
      const file = await fixturePath(FIXTURE);
      await publishFlv(file, { port: relay.rtmpPort, user: 'u', stream: 'moved', speed: 4, toMs: 10_000 })
        .done;
      await records.get('moved')!.ended;
      await publishFlv(file, {
        port: other.relay.rtmpPort,
        user: 'u',
        stream: 'moved',
        speed: 4,
        fromMs: 10_000,
        rebase: true,
      }).done;
      await other.records.get('moved')!.ended;
      // Listed the same from either relay: one recording of both parts.
      const rec = await ready('u', 'moved');
      await relay.recording.recorder.uploader.flush(30_000);
      const l = await listing('u', 'moved');
      assert.equal(l.recordings.length, 1, JSON.stringify(l));
      const full = l.recordings[0]!;
      assert.equal(full.id, `r${startedAt}`);
      assert.equal(full.state, 'ready');
      assert.ok(Math.abs(full.durationSeconds - FIXTURE_SECONDS) < 2.5, `duration ${full.durationSeconds}`);
      const playlist = await (await fetch(rec.hlsUrl)).text();
      assert.equal(
        new Set([...playlist.matchAll(/#EXT-X-MAP:URI="([0-9a-f]{16})\//g)].map((m) => m[1])).size,
        2,
      );
      assert.ok(playlist.includes('#EXT-X-DISCONTINUITY'));
      const seconds = await mp4Seconds(full.mp4Url, 'moved.mp4');
      assert.ok(Math.abs(seconds - full.durationSeconds) < 1.5, `mp4 ${seconds} vs ${full.durationSeconds}`);
    } finally {
      relay.recording.recorder.setDecider(null);
      await other.relay.close();
    }
  });

  it('the S3 server gone for 10 s mid-stream: nothing lost once it is back', async () => {
    const pub = publishFlv(await fixturePath(FIXTURE), {
      port: relay.rtmpPort,
      user: 'u',
      stream: 'three',
      speed: 1,
    });
    await pub.started;
    await records.get('three')?.ready;
    await s3.stop();
    const stoppedAt = Date.now();
    await new Promise((r) => setTimeout(r, 10_000));
    assert.ok(
      relay.recording.recorder.uploader.stats.failures > 0,
      'uploads failed while the store was down',
    );
    assert.ok(relay.recording.recorder.spool.used > 0, 'media waited in the spool');
    await s3.start();
    await pub.done;
    const rec = await ready('u', 'three');
    assert.ok(Date.now() - stoppedAt > 10_000);
    assert.equal(relay.recording.recorder.spool.dropped, 0);
    assert.ok(Math.abs(rec.durationSeconds - FIXTURE_SECONDS) < 1.5, `duration ${rec.durationSeconds}`);
    const seconds = await mp4Seconds(rec.mp4Url, 'three.mp4');
    assert.ok(Math.abs(seconds - FIXTURE_SECONDS) < 1.5, `mp4 duration ${seconds}`);
    const metrics = await (await fetch(`http://127.0.0.1:${relay.metricsPort}/metrics`)).text();
    assert.match(metrics, /rtmp_relay_recording_upload_failures_total [1-9]/);
    assert.match(metrics, /rtmp_relay_recording_dropped_segments_total 0/);
  });

  it('a store that stays away fills the bounded spool: segments dropped, counted and logged, the stream plays on', async () => {
    const lines: string[] = [];
    const log = createLogger({
      level: 'warn',
      destination: new Writable({
        write(chunk, _enc, done) {
          lines.push(String(chunk));
          done();
        },
      }),
    });
    const full = await startTestRelay(
      {
        ...s3.env('rec'),
        S3_ENDPOINT: 'http://127.0.0.1:9', // nothing listens: every upload fails
        RECORDING: 'on',
        RECORDING_SPOOL_DIR: path.join(tmp, 'spool-full'),
        RECORDING_SPOOL_MAX_MB: '0.5',
        CLEAN_PROFILE: 'copy',
      },
      log,
    );
    try {
      const pub = publishFlv(await fixturePath(FIXTURE), {
        port: full.relay.rtmpPort,
        user: 'u',
        stream: 'full',
        speed: 4,
      });
      await pub.done;
      const rec = full.records.get('full')!;
      assert.ok(rec.segments.length >= 5, `the live stream went on: ${rec.segments.length} segments`);
      const spool = full.relay.recording.recorder.spool;
      assert.ok(spool.dropped > 0, 'segments dropped');
      assert.ok(spool.used <= spool.maxBytes, `spool ${spool.used} within ${spool.maxBytes}`);
      const metrics = await (await fetch(`http://127.0.0.1:${full.relay.metricsPort}/metrics`)).text();
      assert.match(metrics, /rtmp_relay_recording_dropped_segments_total [1-9]/);
      assert.ok(
        lines.some((l) => l.includes('recording spool full')),
        'the drop is logged',
      );
    } finally {
      await full.relay.close();
    }
  });

  it('refuses names that leave the recordings tree', async () => {
    const paths = [
      '/recordings/..%2F..%2Fetc/passwd',
      '/recordings/u/..%2Fone',
      '/recordings/../u/one',
      '/recordings/u/one/..%2F..%2F..%2Fstreams%2Fone.json/index.m3u8',
      '/recordings/u/one/r1234567890123/..%2Fparts/part.json',
      '/recordings/u/one/r1234567890123/0123456789abcdef/..%2F..%2Fparts%2F0123456789abcdef.json',
      '/recordings/.u/one',
      '/recordings/u/one/r1234567890123/0123456789abcdef/seg1.m4s%00.json',
    ];
    for (const p of paths) {
      const res = await fetch(`http://127.0.0.1:${relay.hlsPort}${p}`);
      assert.ok(res.status === 404 || res.status === 400, `${p}: ${res.status}`);
      await res.arrayBuffer();
    }
  });

  it('retention deletes every object of an old recording', async () => {
    const store = new S3Store({
      bucket: s3.bucket,
      prefix: 'rec/',
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
      credentials: S3RVER_KEYS,
    });
    try {
      const before = await store.list('u/one/');
      assert.ok(before.length > 3, `objects of the first recording: ${before.length}`);
      // Ten days on, with a retention of seven: every recording so far is past it.
      const retention = new Retention({
        store,
        days: 7,
        log: silentLogger(),
        now: () => Date.now() + 10 * 86_400_000,
      });
      const deleted = await retention.sweep();
      assert.ok(deleted >= 3, `deleted ${deleted}`);
      assert.deepEqual(await store.list(''), []);
      assert.deepEqual((await listing('u', 'one')).recordings, []);
    } finally {
      store.close();
    }
  });
});
