/**
 * Real publishers on loopback: ffmpeg, GStreamer rtmp2sink and GStreamer rtmpsink (librtmp, what the
 * glasses use), each publishing about 5 s of 540x960 14 fps H.264 + AAC 44.1 kHz at the same time. The FLV
 * the relay writes for each must probe as H.264 + AAC with the expected number of video frames (±2).
 */
import assert from 'node:assert/strict';
import { createWriteStream, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FlvSink } from '../../src/media/flv-sink.ts';
import type { EndReason, Publish } from '../../src/rtmp/publish.ts';
import { RtmpServer } from '../../src/rtmp/server.ts';
import { captureLogs } from '../helpers/log-capture.ts';
import { probe, startTool } from '../helpers/process.ts';
import { type PublisherKind, publisherArgv } from '../helpers/publishers.ts';

const SECONDS = 5;
const FPS = 14;
const TOKEN = 'client-token-93ab';

interface Recorded {
  publish: Publish;
  file: string;
  ended: Promise<EndReason>;
  finished: Promise<void>;
  maxTimestamp: number;
}

describe('real RTMP publishers', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'rtmp-clients-'));
  const logs = captureLogs();
  const tokens: string[] = [];
  const server = new RtmpServer({
    log: logs.log,
    authorize: (req) => {
      tokens.push(req.token ?? '');
      return req.token === TOKEN ? { allow: true } : { allow: false, reason: 'bad token' };
    },
  });
  const recorded = new Map<string, Recorded>();
  let port = 0;

  before(async () => {
    port = await server.listen(0, '127.0.0.1');
    server.on('publish', (publish) => {
      const file = path.join(dir, `${publish.info.streamId}.flv`);
      const out = createWriteStream(file);
      const sink = new FlvSink(out);
      publish.on('start', (s) => sink.start(s));
      publish.on('tag', (t) => {
        sink.write(t);
        const rec = recorded.get(publish.info.streamId);
        if (rec) rec.maxTimestamp = Math.max(rec.maxTimestamp, t.timestamp);
      });
      const finished = new Promise<void>((resolve) => out.once('close', () => resolve()));
      const ended = new Promise<EndReason>((resolve) =>
        publish.once('end', (r) => {
          sink.end();
          resolve(r);
        }),
      );
      recorded.set(publish.info.streamId, { publish, file, ended, finished, maxTimestamp: 0 });
    });
  });

  after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
    assert.ok(!logs.text().includes(TOKEN), 'the token reached the log');
  });

  it('ffmpeg, rtmp2sink and rtmpsink publish at once and each FLV probes as H.264 + AAC', async () => {
    const kinds: PublisherKind[] = ['ffmpeg', 'rtmp2sink', 'rtmpsink'];
    const runs = kinds.map((kind) => {
      const { command, args } = publisherArgv(kind, {
        url: `rtmp://127.0.0.1:${port}/live/user1/${kind}?token=${TOKEN}`,
        seconds: SECONDS,
        fps: FPS,
      });
      return { kind, run: startTool(command, args, { timeoutMs: 60_000 }) };
    });
    for (const { kind, run } of runs) {
      const result = await run.done;
      assert.equal(result.code, 0, `${kind} failed: ${result.stderr.slice(-1500)}`);
    }
    for (const kind of kinds) {
      const rec = recorded.get(kind);
      assert.ok(rec, `${kind} never published`);
      assert.equal((await rec.ended).kind, 'unpublish', `${kind} ended by unpublishing`);
      await rec.finished;
      const streams = await probe(rec.file);
      const video = streams.find((s) => s.codec_type === 'video');
      const audio = streams.find((s) => s.codec_type === 'audio');
      assert.equal(
        streams.length,
        2,
        `${kind}: exactly one video and one audio stream (no stray data stream)`,
      );
      assert.equal(video?.codec_name, 'h264', kind);
      assert.equal(video?.width, 540);
      assert.equal(video?.height, 960);
      assert.equal(audio?.codec_name, 'aac', kind);
      assert.equal(audio?.sample_rate, '44100');
      const frames = Number(video?.nb_read_frames);
      assert.ok(
        Math.abs(frames - SECONDS * FPS) <= 2,
        `${kind}: ${frames} video frames, expected ${SECONDS * FPS} ± 2`,
      );
    }
    assert.deepEqual(tokens.sort(), [TOKEN, TOKEN, TOKEN]);
    // GStreamer re-sends metadata; only the first went into the FLV.
    assert.ok(recorded.get('rtmp2sink')!.publish.stats.droppedMetadata > 0);
  });

  it('reads extended timestamps from ffmpeg (-output_ts_offset 20000 s)', async () => {
    const { command, args } = publisherArgv('ffmpeg', {
      url: `rtmp://127.0.0.1:${port}/live/user1/extended?token=${TOKEN}`,
      seconds: 2,
      fps: FPS,
      live: false,
    });
    args.splice(args.indexOf('-f', args.indexOf('aac')), 0, '-output_ts_offset', '20000');
    const result = await startTool(command, args, { timeoutMs: 60_000 }).done;
    assert.equal(result.code, 0, result.stderr.slice(-1500));
    const rec = recorded.get('extended')!;
    await rec.ended;
    await rec.finished;
    assert.ok(rec.publish.stats.videoFrames >= 26, `frames ${rec.publish.stats.videoFrames}`);
    assert.ok(
      rec.maxTimestamp > 20_000_000 && rec.maxTimestamp > 0xffffff,
      `timestamps reach ${rec.maxTimestamp}`,
    );
    const streams = await probe(rec.file);
    const frames = Number(streams.find((s) => s.codec_type === 'video')?.nb_read_frames);
    assert.ok(Math.abs(frames - 2 * FPS) <= 2, `${frames} frames`);
  });

  it('refuses a real client with the wrong token before it sends media', async () => {
    const { command, args } = publisherArgv('ffmpeg', {
      url: `rtmp://127.0.0.1:${port}/live/user1/wrongtoken?token=nope`,
      seconds: 1,
      live: false,
    });
    const result = await startTool(command, args, { timeoutMs: 60_000 }).done;
    assert.notEqual(result.code, 0, 'ffmpeg must fail to publish');
    assert.equal(recorded.has('wrongtoken'), false);
  });
});
