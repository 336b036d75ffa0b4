/**
 * Copy only what players decode (issue 15), with a real relay and real FFmpeg in the default profile
 * (auto): an H.264 High 4:4:4 10-bit publish is transcoded (its SPS says so) into High 8-bit 4:2:0 that
 * decodes; a codec FFmpeg makes nothing of (MPEG-4 Part 2 in FLV) is refused after one retry with
 * NetStream.Publish.Failed and the reason, the stream ends with its failure said, and FFmpeg is not
 * restarted again.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { streamStats } from '../../src/relay/stream-stats.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { FlvPublishError, publishFlv } from '../helpers/flv-publisher.ts';
import { probe } from '../helpers/process.ts';
import { initOf, type StreamRecord, startTestRelay } from '../helpers/relay-harness.ts';

describe('players get what they decode', () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  const dir = mkdtempSync(path.join(tmpdir(), 'players-codecs-'));

  before(async () => {
    // A short watchdog: an FFmpeg fed an input it makes nothing of is killed after 2 s (10 s elsewhere).
    ({ relay, records } = await startTestRelay({ FFMPEG_WATCHDOG_SECONDS: '2' }));
  });

  after(async () => {
    await relay?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('transcodes H.264 High 4:4:4 10-bit into 8-bit 4:2:0 that decodes', async () => {
    const pub = publishFlv(await fixturePath('yuv444p10-320x240.flv'), {
      port: relay.rtmpPort,
      user: 'glasses@user.com',
      stream: 'hi444',
      speed: 2,
    });
    await pub.done;
    const rec = records.get('hi444')!;
    await rec.ended;
    assert.equal(rec.stream.pipelineProfile, 'transcode');
    assert.match(
      rec.stream.decision,
      /transcode: H\.264 profile 244 4:4:4 10-bit is not what players decode/,
    );
    assert.ok(rec.segments.length >= 1, 'segments made');
    const seg = rec.segments[0]!;
    const file = path.join(dir, 'hi444.mp4');
    writeFileSync(file, Buffer.concat([initOf(rec, seg).data, seg.data]));
    const video = (await probe(file)).find((s) => s.codec_type === 'video');
    assert.equal(video?.codec_name, 'h264');
    // The seed's encode (Constrained Baseline), 8-bit 4:2:0: what every player decodes.
    assert.match(video?.profile ?? '', /^(Constrained Baseline|Baseline|Main|High)$/);
    assert.ok(Number(video?.nb_read_frames) > 0);
  });

  it('refuses a codec FFmpeg cannot decode after one retry, with NetStream.Publish.Failed and the reason', async () => {
    const pub = publishFlv(await fixturePath('mpeg4-320x240.flv'), {
      port: relay.rtmpPort,
      user: 'glasses@user.com',
      stream: 'mpeg4',
    });
    let refusal: FlvPublishError | undefined;
    await assert.rejects(pub.done, (e: unknown) => {
      refusal = e as FlvPublishError;
      return e instanceof FlvPublishError && e.status === 'NetStream.Publish.Failed';
    });
    assert.match(refusal!.message, /ffmpeg made nothing of this input, twice/);
    const rec = records.get('mpeg4')!;
    await rec.ended;
    assert.equal(rec.stream.state, 'ended');
    assert.match(rec.stream.failure ?? '', /made nothing of this input/);
    assert.equal(rec.stream.supervisor.stats.starts, 2, 'the first try and one retry, no more');
    assert.equal(rec.segments.length, 0);
    // What the heartbeat carries to the cloud's dashboard (red with the reason), and what stream-ended
    // tells the cloud (the managed stream ends in error for the apps: test/unit/cloud).
    assert.match(streamStats(rec.stream, undefined, Date.now()).failure ?? '', /made nothing of this input/);
  });
});
