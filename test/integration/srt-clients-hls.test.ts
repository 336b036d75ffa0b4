/**
 * Each real SRT client becomes HLS (issue 19): srt-live-transmit and GStreamer's srtsink publish encrypted
 * MPEG-TS to the relay's SRT port, and the playlist the origin serves lists segments that ffprobe decodes
 * (init + media segment fetched over HTTP, as a player would). FFmpeg's publish playing in hls.js is
 * srt-hls.test.ts; the player side is the same for every ingest, so ffprobe suffices here.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { srtStreamPassphrase } from '../../src/contracts/srt.ts';
import type { RelayHandle } from '../../src/relay/relay.ts';
import { probe } from '../helpers/process.ts';
import { type StreamRecord, startTestRelay } from '../helpers/relay-harness.ts';
import { type SrtCaller, startCaller, type TsReference, tsReference } from '../helpers/srt-publish.ts';

const SECRET = 'srt-passphrase-secret-for-tests-0123456789';
const TOKEN = 'control-token-for-srt-tests';

function recordOf(records: Map<string, StreamRecord>, streamId: string): Promise<StreamRecord> {
  return new Promise((resolve) => {
    const check = (): void => {
      const rec = records.get(streamId);
      if (rec) resolve(rec);
      else setImmediate(check);
    };
    check();
  });
}

function segmentsAtLeast(record: StreamRecord, n: number): Promise<void> {
  if (record.segments.length >= n) return Promise.resolve();
  return new Promise((resolve) => {
    const on = (): void => {
      if (record.segments.length < n) return;
      record.stream.packager.off('segment', on);
      resolve();
    };
    record.stream.packager.on('segment', on);
  });
}

async function get(url: string): Promise<Buffer> {
  const res = await fetch(url);
  assert.equal(res.status, 200, `GET ${url}`);
  return Buffer.from(await res.arrayBuffer());
}

describe('each SRT client becomes HLS', () => {
  let relay: RelayHandle;
  let records: Map<string, StreamRecord>;
  let hls: (p: string) => string;
  let ts: TsReference;
  const dir = mkdtempSync(path.join(tmpdir(), 'srt-clients-hls-'));

  before(async () => {
    ({ relay, records, hls } = await startTestRelay({
      SRT_PASSPHRASE_SECRET: SECRET,
      CONTROL_API_TOKEN: TOKEN,
    }));
    ts = await tsReference(dir, 8);
  });

  after(async () => {
    await relay?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const [caller, streamId] of [
    ['srt-live-transmit', 'slt1'],
    ['srtsink', 'gst1'],
  ] as [SrtCaller, string][]) {
    it(`${caller}: encrypted publish → a playlist whose segments ffprobe decodes`, {
      timeout: 120_000,
    }, async () => {
      const key = `live/glasses@user.com/${streamId}`;
      const run = startCaller(caller, {
        file: ts.file,
        port: relay.srtPort,
        streamId: `publish:${key}`,
        passphrase: srtStreamPassphrase(SECRET, key),
      });
      try {
        const rec = await Promise.race([
          recordOf(records, streamId),
          run.done.then((code) => {
            throw new Error(`${caller} exited (${code}) before the relay saw the stream`);
          }),
        ]);
        assert.equal(rec.stream.source?.info.protocol, 'srt');
        await segmentsAtLeast(rec, 2);

        const playlistUrl = hls(`glasses-user.com/${streamId}/index.m3u8`);
        const playlist = (await get(playlistUrl)).toString('utf8');
        const map = /#EXT-X-MAP:URI="([^"]+)"/.exec(playlist)?.[1];
        assert.ok(map, `an init segment in\n${playlist}`);
        const segments = playlist.split('\n').filter((l) => l.length > 0 && !l.startsWith('#'));
        assert.ok(segments.length >= 2, `segments in\n${playlist}`);
        const init = await get(new URL(map, playlistUrl).href);
        const media = await get(new URL(segments[0]!, playlistUrl).href);
        const file = path.join(dir, `${streamId}.mp4`);
        writeFileSync(file, Buffer.concat([init, media]));

        const streams = await probe(file);
        const video = streams.find((s) => s.codec_type === 'video');
        const audio = streams.find((s) => s.codec_type === 'audio');
        assert.equal(video?.codec_name, 'h264');
        assert.equal(audio?.codec_name, 'aac');
        assert.ok(Number(video?.nb_read_frames) >= 10, `${video?.nb_read_frames} video frames decoded`);
        assert.ok(Number(audio?.nb_read_frames) >= 10, `${audio?.nb_read_frames} audio frames decoded`);
        // The live publish's SRT counters, in the metrics and in the control API's stream summary.
        const metrics = (await get(`http://127.0.0.1:${relay.metricsPort}/metrics`)).toString('utf8');
        const series = (name: string): number =>
          Number(
            new RegExp(`^${name}\\{stream="glasses@user.com/${streamId}"\\} (\\S+)$`, 'm').exec(metrics)?.[1],
          );
        assert.ok(series('rtmp_relay_stream_srt_packets_received') > 100, 'packets received exported');
        assert.ok(series('rtmp_relay_stream_srt_rtt_seconds') >= 0, 'RTT exported');
        assert.ok(series('rtmp_relay_stream_srt_receive_buffer_capacity_packets') > 0, 'buffer exported');
        const res = await fetch(`http://127.0.0.1:${relay.apiPort}/api/streams`, {
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        const listed = (await res.json()) as {
          streams: { streamId: string; transport: { transport: string; packetsReceived: number } | null }[];
        };
        const transport = listed.streams.find((x) => x.streamId === streamId)?.transport;
        assert.equal(transport?.transport, 'srt');
        assert.ok((transport?.packetsReceived ?? 0) > 100);
      } finally {
        run.kill();
        await run.done.catch(() => null); // a tool that failed to start already failed the test above
      }
    });
  }
});
