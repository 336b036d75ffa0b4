/**
 * The generated FLV fixtures (test/fixtures/dirty.ts) are what their descriptions say, checked with
 * ffprobe and the raw tags; and the FLV publisher (test/helpers/flv-publisher.ts) delivers them to a real
 * RtmpServer over TCP: every frame, paced in real time (jumps clamped), sliced, stopped, dropped, refused.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { readFlv } from '../../src/media/flv-reader.ts';
import { FlvTagType, type MediaTag } from '../../src/media/flv-tag.ts';
import type { EndReason, Publish, PublishStart } from '../../src/rtmp/publish.ts';
import { RtmpServer } from '../../src/rtmp/server.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { DIRTY_540X960, type FlvFixtureDescription, GLASSES_854X480 } from '../fixtures/dirty.ts';
import { fixturePath, loadFixture } from '../fixtures/generate.ts';
import { FlvPublishError, publishFlv } from '../helpers/flv-publisher.ts';
import { probe, runTool } from '../helpers/process.ts';

const TOKEN = 'flv-publisher-token-7e21';

interface ProbedInfo {
  streams: {
    codec_type: string;
    codec_name: string;
    width?: number;
    height?: number;
    sample_rate?: string;
    channels?: number;
  }[];
  /** Video packets: FLV timestamp in ms and whether it is a keyframe. */
  video: { ms: number; key: boolean }[];
}

async function ffprobe(file: string): Promise<ProbedInfo> {
  const streams = JSON.parse(
    await runTool('ffprobe', [
      ...['-v', 'error', '-show_entries', 'stream=codec_type,codec_name,width,height,sample_rate,channels'],
      ...['-of', 'json', file],
    ]),
  ).streams as ProbedInfo['streams'];
  const packets = await runTool('ffprobe', [
    ...['-v', 'error', '-select_streams', 'v:0', '-show_entries', 'packet=pts,flags', '-of', 'csv=p=0', file],
  ]);
  const video = packets
    .trim()
    .split('\n')
    .map((line) => {
      const [pts, flags] = line.split(',');
      return { ms: Number(pts), key: (flags ?? '').includes('K') };
    });
  return { streams, video };
}

function assertProbesAs(info: ProbedInfo, d: FlvFixtureDescription): void {
  const video = info.streams.find((s) => s.codec_type === 'video');
  const audio = info.streams.find((s) => s.codec_type === 'audio');
  assert.equal(info.streams.length, 2, 'one video and one audio stream');
  assert.deepEqual([video?.codec_name, video?.width, video?.height], ['h264', d.width, d.height]);
  assert.deepEqual([audio?.codec_name, audio?.sample_rate, audio?.channels], ['aac', '44100', 1]);
  assert.equal(info.video.length, d.videoFrames, 'video frames');
  assert.deepEqual(
    info.video.map((p) => p.ms),
    d.videoTimestampsMs,
    'video timestamps',
  );
  assert.deepEqual(
    info.video.filter((p) => p.key).map((p) => p.ms),
    d.keyframesMs,
    'keyframe times',
  );
}

/** Media time: the jump taken back out. */
const unjump = (ms: number, d: FlvFixtureDescription): number =>
  d.jump && ms >= d.jump.atMs + d.jump.addMs ? ms - d.jump.addMs : ms;

describe('generated FLV fixtures', () => {
  it('dirty-540x960.flv: 540x960 H.264, mono AAC 44.1 kHz, 9–15 fps, irregular GOPs, one jump', async () => {
    const d = DIRTY_540X960;
    const file = await fixturePath('dirty-540x960.flv');
    const info = await ffprobe(file);
    assertProbesAs(info, d);

    // Frame rate over 1 s windows of media time: always 9–15, and it really varies.
    const perSecond = new Array<number>(d.durationMs / 1000).fill(0);
    for (const p of info.video) perSecond[Math.floor(unjump(p.ms, d) / 1000)]!++;
    assert.deepEqual(perSecond, d.framesPerSecond);
    assert.ok(
      perSecond.every((n) => n >= 9 && n <= 15),
      `frames per second ${perSecond.join(' ')}`,
    );
    assert.equal(Math.min(...perSecond), 9);
    assert.equal(Math.max(...perSecond), 15);

    // GOPs: 0.5–2 s up to 12 s, then one ~7 s GOP, then 1–2 s to the end.
    const keys = info.video.filter((p) => p.key).map((p) => unjump(p.ms, d));
    assert.deepEqual(keys, d.keyframesMediaMs);
    const gops = keys.map((k, i) => ({ at: k, length: (keys[i + 1] ?? d.durationMs) - k }));
    for (const gop of gops.filter((g) => g.at < 12_000)) {
      assert.ok(gop.length >= 500 && gop.length <= 2000, `GOP at ${gop.at} ms lasts ${gop.length} ms`);
    }
    const long = gops.filter((g) => g.length > 2000);
    assert.deepEqual(long, [{ at: 12_000, length: 7000 }]);
    for (const gop of gops.filter((g) => g.at > 12_000)) {
      assert.ok(gop.length >= 1000 && gop.length <= 2000, `GOP at ${gop.at} ms lasts ${gop.length} ms`);
    }

    // Every frame decodes.
    const decoded = await probe(file);
    assert.equal(Number(decoded.find((s) => s.codec_type === 'video')?.nb_read_frames), d.videoFrames);

    // The raw tags: one metadata tag first, and exactly one timestamp jump, at 16 s, of 5 s.
    const { header, tags } = readFlv(await loadFixture('dirty-540x960.flv'));
    assert.deepEqual(header, { hasAudio: true, hasVideo: true });
    assert.equal(tags.filter((t) => t.type === FlvTagType.Script).length, 1);
    assert.equal(tags[0]?.type, FlvTagType.Script);
    const jumps: [number, number][] = [];
    for (let i = 1; i < tags.length; i++) {
      if (tags[i]!.timestamp - tags[i - 1]!.timestamp > 1000)
        jumps.push([tags[i - 1]!.timestamp, tags[i]!.timestamp]);
    }
    assert.equal(jumps.length, 1, `jumps ${JSON.stringify(jumps)}`);
    const [from, to] = jumps[0]!;
    assert.ok(from < 16_000 && from > 15_900 && to >= 21_000 && to < 21_100, `jump ${from} → ${to}`);
    assert.deepEqual(d.jump, { atMs: 16_000, addMs: 5_000 });
  });

  it('glasses-854x480.flv: 854x480 H.264 at 15 fps less ~5 %, a keyframe every 2 s, no jump', async () => {
    const d = GLASSES_854X480;
    const info = await ffprobe(await fixturePath('glasses-854x480.flv'));
    assertProbesAs(info, d);
    assert.deepEqual(
      d.keyframesMs,
      Array.from({ length: 10 }, (_, i) => i * 2000),
    );
    const full = (d.durationMs / 1000) * d.sourceFps;
    assert.ok(d.videoFrames < full && d.videoFrames >= full * 0.94, `${d.videoFrames} of ${full} frames`);
    assert.equal(d.jump, null);
    const { tags } = readFlv(await loadFixture('glasses-854x480.flv'));
    for (let i = 1; i < tags.length; i++) {
      assert.ok(tags[i]!.timestamp - tags[i - 1]!.timestamp < 200, `gap before tag ${i}`);
    }
  });
});

interface Received {
  publish: Publish;
  start: Promise<PublishStart>;
  tags: MediaTag[];
  ended: Promise<EndReason>;
}

describe('FLV publisher', () => {
  const server = new RtmpServer({
    log: silentLogger(),
    authorize: (req) => (req.token === TOKEN ? { allow: true } : { allow: false, reason: 'bad token' }),
  });
  const received = new Map<string, Received>();
  let port = 0;
  let glasses: Buffer;
  let dirty: Buffer;

  before(async () => {
    [glasses, dirty] = await Promise.all([
      loadFixture('glasses-854x480.flv'),
      loadFixture('dirty-540x960.flv'),
    ]);
    port = await server.listen(0, '127.0.0.1');
    server.on('publish', (publish) => {
      const tags: MediaTag[] = [];
      publish.on('tag', (t) => tags.push(t));
      received.set(publish.info.streamId, {
        publish,
        tags,
        start: new Promise((resolve) => publish.once('start', resolve)),
        ended: new Promise((resolve) => publish.once('end', resolve)),
      });
    });
  });

  after(async () => {
    await server.close();
  });

  const frameTimes = (tags: MediaTag[]): number[] =>
    tags.filter((t) => t.type === FlvTagType.Video && !t.isConfig).map((t) => t.timestamp);

  it('publishes the glasses fixture at speed 4: every video frame arrives, in real time', async () => {
    const d = GLASSES_854X480;
    const t0 = performance.now();
    const pub = publishFlv(glasses, { port, user: 'glasses-user', stream: 'speed4', token: TOKEN, speed: 4 });
    await pub.done;
    const elapsed = performance.now() - t0;
    const rec = received.get('speed4');
    assert.ok(rec, 'the server saw the publish');
    assert.equal((await rec.ended).kind, 'unpublish');
    const start = await rec.start;
    assert.ok(start.metadata && start.videoConfig && start.audioConfig, 'metadata and both sequence headers');
    assert.deepEqual([start.hasVideo, start.hasAudio], [true, true]);
    assert.equal(rec.publish.stats.videoFrames, d.videoFrames);
    assert.equal(rec.publish.stats.keyframes, d.keyframesMs.length);
    assert.equal(rec.publish.stats.droppedMetadata, 0);
    assert.deepEqual(frameTimes(rec.tags), d.videoTimestampsMs);
    assert.equal(pub.sentTags, readFlv(glasses).tags.length);
    const media = d.videoTimestampsMs.at(-1)! / 4;
    // Never early; late only by what the publisher itself measured it fell behind (a loaded machine).
    const late = pub.takeMaxLateMs();
    assert.ok(
      elapsed > media - 200 && elapsed < media + 2500 + late,
      `${Math.round(elapsed)} ms for ${media} ms (the publisher ran ${Math.round(late)} ms late)`,
    );
  });

  it('publishes a slice across the jump without waiting for it, sequence headers first', async () => {
    const d = DIRTY_540X960;
    const [fromMs, toMs] = [14_000, 23_000];
    const t0 = performance.now();
    const pub = publishFlv(dirty, {
      port,
      user: 'dirty-user',
      stream: 'slice',
      token: TOKEN,
      speed: 1,
      fromMs,
      toMs,
    });
    await pub.done;
    const elapsed = performance.now() - t0;
    const rec = received.get('slice')!;
    const start = await rec.start;
    assert.ok(start.metadata && start.videoConfig && start.audioConfig);
    const expected = d.videoTimestampsMs.filter((ms) => ms >= fromMs && ms < toMs);
    assert.deepEqual(frameTimes(rec.tags), expected);
    assert.ok(rec.tags.every((t) => t.timestamp >= fromMs && t.timestamp < toMs));
    // About 2 s before the jump and 2 s after, plus at most 1 s for the jump itself, in real time: ~5 s.
    // Waiting out the 5 s jump would take ~9 s: the bound between, plus however late the publisher measured
    // itself (a loaded machine), tells them apart.
    const late = pub.takeMaxLateMs();
    assert.ok(
      elapsed > 4000 && elapsed < 7000 + late,
      `${Math.round(elapsed)} ms (the publisher ran ${Math.round(late)} ms late)`,
    );
  });

  it('rebases a slice to start at 0 like a fresh publisher', async () => {
    const pub = publishFlv(dirty, {
      ...{ port, user: 'dirty-user', stream: 'rebased', token: TOKEN },
      ...{ speed: Number.POSITIVE_INFINITY, fromMs: 12_000, toMs: 13_000, rebase: true },
    });
    await pub.done;
    const times = frameTimes(received.get('rebased')!.tags);
    assert.equal(times[0], 0);
    assert.ok(times.at(-1)! < 1000);
    assert.equal(received.get('rebased')!.tags.find((t) => t.type === FlvTagType.Video)?.keyframe, true);
  });

  it('stop() unpublishes gracefully; drop() just disconnects', async () => {
    const stopped = publishFlv(glasses, { port, user: 'glasses-user', stream: 'stopped', token: TOKEN });
    const dropped = publishFlv(glasses, { port, user: 'glasses-user', stream: 'dropped', token: TOKEN });
    await Promise.all([stopped.started, dropped.started]);
    await new Promise((resolve) => setTimeout(resolve, 700));
    await stopped.stop();
    dropped.drop();
    await Promise.all([stopped.done, dropped.done]);
    const [s, x] = [received.get('stopped')!, received.get('dropped')!];
    assert.equal((await s.ended).kind, 'unpublish');
    assert.equal((await x.ended).kind, 'disconnect');
    for (const [pub, rec] of [
      [stopped, s],
      [dropped, x],
    ] as const) {
      // Paced at speed 1: about 0.7 s of 15 fps video, nowhere near the whole file.
      const frames = rec.publish.stats.videoFrames;
      assert.ok(frames >= 5 && frames <= 20, `${frames} frames`);
      assert.ok(pub.sentTags > 3 && pub.sentTags < 100, `${pub.sentTags} tags sent`);
    }
  });

  it('rejects done when the server closes the connection mid-publish', async () => {
    const kicked = publishFlv(glasses, { port, user: 'glasses-user', stream: 'kicked', token: TOKEN });
    await kicked.started;
    await new Promise((resolve) => setTimeout(resolve, 300));
    assert.ok(server.kick('live/glasses-user/kicked'));
    await assert.rejects(kicked.done, /the server closed the connection after \d+ tags/);
    assert.equal((await received.get('kicked')!.ended).kind, 'kicked');
  });

  it('rejects done with the status when the publish is refused (Unauthorized, BadName)', async () => {
    const unauthorized = publishFlv(glasses, {
      port,
      user: 'glasses-user',
      stream: 'refused',
      token: 'wrong',
    });
    await assert.rejects(
      unauthorized.done,
      (err: unknown) =>
        err instanceof FlvPublishError &&
        err.status === 'NetStream.Publish.Unauthorized' &&
        /refused with NetStream\.Publish\.Unauthorized: .*bad token/.test(err.message) &&
        !err.message.includes('wrong'),
    );
    await assert.rejects(unauthorized.started, FlvPublishError);
    const badName = publishFlv(glasses, { port, user: 'bad..user', stream: 'x', token: TOKEN });
    await assert.rejects(
      badName.done,
      (err: unknown) => err instanceof FlvPublishError && err.status === 'NetStream.Publish.BadName',
    );
    assert.equal(unauthorized.sentTags + badName.sentTags, 0);
    assert.ok(!received.has('refused') && !received.has('x'), 'no refused publish went live');
  });
});
