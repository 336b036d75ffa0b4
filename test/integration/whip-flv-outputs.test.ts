/**
 * A WHIP stream's FLV outputs (issue 18: "re-streams work as for RTMP"): FLV carries no Opus, so the relay
 * re-encodes the audio to AAC for them. The glasses simulator publishes WHIP (H.264 + Opus, FFmpeg's RTP
 * through node-datachannel) into a real relay:
 * - re-streamed to an RTMP receiver (the relay's own RtmpServer): the destination gets an AAC-LC sequence
 *   header and AAC frames spanning the same time as the video; FFmpeg decodes the received FLV without an
 *   error; while the publisher is gone the slate's silent Opus goes out as AAC too; the AAC encoder runs only
 *   while the stream has a destination (its FFmpeg exits when the last goes);
 * - its RTP counters are in /metrics (`rtmp_relay_stream_whip_*`) and the control API's `transport`;
 * - published with `?profile=transcode`: the HLS has an AAC track made by the transcode (fed that AAC), and
 *   its segments decode.
 */
import assert from 'node:assert/strict';
import { createWriteStream, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { FlvSink } from '../../src/media/flv-sink.ts';
import { FlvTagType, type MediaTag } from '../../src/media/flv-tag.ts';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { streamTransport } from '../../src/relay/stream-stats.ts';
import type { Publish, PublishStart } from '../../src/rtmp/publish.ts';
import { RtmpServer } from '../../src/rtmp/server.ts';
import { silentLogger } from '../../src/shared/logger.ts';
import { onceEvent } from '../../src/shared/typed-emitter.ts';
import { SimWhipPublish } from '../../src/sim/whip-publish.ts';
import { freePort } from '../helpers/ports.ts';
import { startTool } from '../helpers/process.ts';
import { initOf, type StreamRecord, segmentsAtLeast, startTestRelay } from '../helpers/relay-harness.ts';
import { eventually } from '../helpers/relay-process.ts';

const AAC = 10; // FLV SoundFormat
const USER = 'whip-flv@example.com';

/** This process's FFmpeg children that encode AAC for FLV outputs (Ogg Opus in, ADTS out). */
function aacEncoders(): number[] {
  const out: number[] = [];
  for (const pid of readFileSync(`/proc/${process.pid}/task/${process.pid}/children`, 'utf8').split(/\s+/)) {
    if (!pid) continue;
    try {
      const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
      if (argv.includes('adts') && argv.includes('ogg')) out.push(Number(pid));
    } catch {
      // gone while we looked
    }
  }
  return out;
}

describe('a WHIP stream’s FLV outputs get AAC', { timeout: 180_000 }, () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let base: string;
  const dir = mkdtempSync(path.join(tmpdir(), 'whip-flv-'));
  const publishers: SimWhipPublish[] = [];

  const publish = async (streamId: string, query = ''): Promise<SimWhipPublish> => {
    const sim = new SimWhipPublish({
      url: `${base}/whip/live/${USER}/${streamId}${query}`,
      log: silentLogger(),
      dirty: false,
    });
    publishers.push(sim);
    const flowing = onceEvent(sim, 'flowing');
    const closed = onceEvent(sim, 'closed').then(([c]) => {
      throw c.error ?? new Error('the WHIP publish closed');
    });
    await sim.start();
    await Promise.race([flowing, closed]);
    return sim;
  };

  before(async () => {
    ({ relay, records } = await startTestRelay({ RECONNECT_WINDOW_SECONDS: '10' }));
    base = `http://127.0.0.1:${relay.hlsPort}`;
  });

  after(async () => {
    for (const p of publishers) await p.close();
    await relay?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('re-streamed over RTMP: AAC audio beside the video, decodable; the encoder runs only with a destination', async () => {
    const receiver = new RtmpServer({ log: silentLogger() });
    const port = await freePort();
    await receiver.listen(port, '127.0.0.1');
    try {
      const received: { publish: Publish; start: Promise<PublishStart>; tags: MediaTag[] }[] = [];
      receiver.on('publish', (p) => {
        const entry = { publish: p, start: onceEvent(p, 'start').then(([s]) => s), tags: [] as MediaTag[] };
        p.on('tag', (t) => entry.tags.push(t));
        received.push(entry);
      });
      const sim = await publish('restreamed');
      const record = await eventually('the stream', () => records.get('restreamed'), 30_000);
      await eventually('its decision', () => record.stream.decision || undefined, 30_000);
      assert.match(record.stream.decision, /^copy: H\.264\/Opus/);
      assert.deepEqual(aacEncoders(), [], 'no AAC encoder without a destination');

      relay.restreaming.setDestinations(record.stream.key, [
        { url: `rtmp://127.0.0.1:${port}/live/dest/k1` },
      ]);
      const got = await eventually('the destination publishes', () => received[0], 30_000);
      const start = await got.start;
      assert.ok(start.audioConfig, 'an audio sequence header');
      assert.equal(start.audioConfig.data[0]! >> 4, AAC, 'AAC');
      assert.equal(start.audioConfig.data[1], 0, 'an AAC sequence header');
      assert.equal((start.audioConfig.data[2]! >> 3) & 0x1f, 2, 'AAC-LC');
      assert.equal(aacEncoders().length, 1, 'one AAC encoder for the stream');

      // Four seconds of media at the destination.
      const media = (type: number) => got.tags.filter((t) => t.type === type && !t.isConfig);
      const span = (tags: MediaTag[]) => (tags.length < 2 ? 0 : tags.at(-1)!.timestamp - tags[0]!.timestamp);
      await eventually(
        '4 s of audio and video',
        () => span(media(FlvTagType.Audio)) >= 4000 && span(media(FlvTagType.Video)) >= 4000,
        60_000,
      );
      const audio = media(FlvTagType.Audio);
      const video = media(FlvTagType.Video);
      assert.ok(
        audio.every((t) => t.data[0]! >> 4 === AAC && t.data[1] === 1),
        'every audio frame AAC raw',
      );
      // 48 kHz AAC: 46.9 frames per second; what came spans what the video spans.
      const rate = (audio.length - 1) / (span(audio) / 1000);
      assert.ok(rate > 44 && rate < 49, `${rate.toFixed(1)} AAC frames per second`);
      assert.ok(Math.abs(audio[0]!.timestamp - video[0]!.timestamp) < 500, 'audio starts with the video');

      // What the destination got decodes, audio and video, without an error.
      const file = path.join(dir, 'restreamed.flv');
      const out = createWriteStream(file);
      const sink = new FlvSink(out);
      sink.start(start);
      for (const t of got.tags) sink.write(t);
      sink.end();
      await new Promise<void>((resolve) => out.once('close', () => resolve()));
      const decode = await startTool('ffmpeg', ['-hide_banner', '-v', 'error', '-i', file, '-f', 'null', '-'])
        .done;
      assert.equal(decode.code, 0, decode.stderr);
      assert.equal(decode.stderr.trim(), '', 'no decode error');
      const probe = await startTool('ffprobe', [
        ...['-v', 'error', '-select_streams', 'a', '-show_entries', 'stream=codec_name,sample_rate'],
        ...['-of', 'csv=p=0', file],
      ]).done;
      assert.equal(probe.stdout.trim(), 'aac,48000');

      // The WHIP transport's counters are in /metrics, and in the control API's shape (streamTransport).
      const metrics = (await relay.metrics.inject({ method: 'GET', url: '/metrics' })).body;
      const line = new RegExp(
        `^rtmp_relay_stream_whip_packets_received\\{stream="${USER}/restreamed"\\} (\\d+)$`,
        'm',
      );
      assert.ok(Number(line.exec(metrics)?.[1]) > 100, 'WHIP packets received in /metrics');
      assert.doesNotMatch(metrics, /rtmp_relay_stream_srt_packets_received\{stream="[^"]*restreamed"/);
      const transport = streamTransport(record.stream);
      assert.equal(transport?.transport, 'whip');
      assert.equal(transport?.rttMs, null);
      assert.ok(transport!.packetsReceived > 100);

      // The publisher goes (DELETE): the slate's silent Opus reaches the destination as AAC too.
      const slateStarted = onceEvent(record.stream, 'slate-start');
      await sim.close();
      await slateStarted;
      const before = audio.length;
      await eventually(
        'a second of the slate’s audio',
        () => media(FlvTagType.Audio).length >= before + 47,
        30_000,
      );
      assert.ok(media(FlvTagType.Audio).every((t) => t.data[0]! >> 4 === AAC));

      // The last destination goes: so does the encoder (at the next audio frame).
      relay.restreaming.setDestinations(record.stream.key, []);
      await eventually('the AAC encoder exits', () => aacEncoders().length === 0, 30_000);
    } finally {
      await receiver.close();
    }
  });

  it('?profile=transcode: the transcode is fed AAC, and HLS carries it (an unknown profile is refused)', async () => {
    const refused = await fetch(`${base}/whip/live/${USER}/bogus?profile=fast`, {
      method: 'POST',
      headers: { 'content-type': 'application/sdp' },
      body: 'v=0\r\n',
    });
    assert.equal(refused.status, 400);
    assert.match(await refused.text(), /unknown profile "fast" \(use auto, copy, transcode, abr\)/);

    await publish('transcoded', '?profile=transcode');
    const record = await eventually('the stream', () => records.get('transcoded'), 30_000);
    await eventually('its decision', () => record.stream.decision || undefined, 30_000);
    assert.equal(record.stream.decision, 'transcode requested');
    await segmentsAtLeast(record, 2);
    const segment = record.segments[1]!;
    const init = initOf(record, segment);
    const file = path.join(dir, 'transcoded.mp4');
    writeFileSync(file, Buffer.concat([init.data, segment.data]));
    const probe = await startTool('ffprobe', [
      ...['-v', 'error', '-show_entries', 'stream=codec_type,codec_name', '-of', 'csv=p=0', file],
    ]).done;
    assert.deepEqual(probe.stdout.trim().split('\n').sort(), ['aac,audio', 'h264,video']);
    // The audio is the tone's, not silence: FFmpeg reads a level well above the noise floor.
    const level = await startTool('ffmpeg', [
      ...['-hide_banner', '-i', file, '-map', '0:a', '-af', 'volumedetect', '-f', 'null', '-'],
    ]).done;
    const mean = Number(/mean_volume: (-?[\d.]+) dB/.exec(level.stderr)?.[1]);
    assert.ok(mean > -40, `mean volume ${mean} dB`);
  });
});
