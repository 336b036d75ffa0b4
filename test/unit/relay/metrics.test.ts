import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import { test } from 'node:test';
import { buildMetricsApp, createRelayMetrics } from '../../../src/relay/metrics.ts';
import { RtmpServer } from '../../../src/rtmp/server.ts';
import { ErrorCodes } from '../../../src/shared/errors.ts';
import { silentLogger } from '../../../src/shared/logger.ts';
import { IngestStats } from '../../../src/stream/ingest-stats.ts';
import type { StreamRegistry } from '../../../src/stream/registry.ts';
import type { Stream } from '../../../src/stream/stream.ts';

/** A stand-in for the registry layer: streams with the stats fields the collectors read. */
function fakeStream(key: string, state: string) {
  const [, userId, streamId] = key.split('/');
  return {
    key,
    userId,
    streamId,
    state,
    createdAt: Date.now(),
    ingest: new IngestStats(),
    packager: {
      stats: {
        segments: 0,
        fragments: 0,
        discontinuities: 0,
        breaches: 0,
        droppedFragments: 0,
        longestSegment: 0,
        parts: 0,
        partBreaches: 0,
      },
    },
    supervisor: { stats: { starts: 0, restarts: 0, crashes: 0, stalls: 0 } },
    repair: { counts: { negative: 0, duplicate: 0, backward: 0, jumpForward: 0, wrap: 0, avSkew: 0 } },
  };
}

function fakeRegistry() {
  const emitter = new EventEmitter() as EventEmitter & { streams: ReturnType<typeof fakeStream>[] };
  emitter.streams = [];
  return emitter;
}

/** The value of one sample line, `name{labels} value`. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

test('metrics read the RTMP and stream stats at scrape time', async (t) => {
  const rtmp = new RtmpServer({ log: silentLogger() });
  const registry = fakeRegistry();
  const metrics = createRelayMetrics({ rtmp, streams: registry as unknown as StreamRegistry });
  const app = buildMetricsApp({ registry: metrics.registry, onClose: metrics.close });
  t.after(() => app.close());

  const scrape = async (): Promise<string> => {
    const res = await app.inject({ method: 'GET', url: '/metrics' });
    assert.equal(res.statusCode, 200);
    assert.match(String(res.headers['content-type']), /^text\/plain/);
    return res.body;
  };

  let text = await scrape();
  assert.equal(sample(text, 'rtmp_relay_publishes_total'), 0);
  assert.equal(sample(text, 'rtmp_relay_takeovers_total'), 0);
  assert.equal(sample(text, 'rtmp_relay_auth_refusals_total'), 0);
  assert.equal(sample(text, 'rtmp_relay_streams{state="publishing"}'), 0);
  assert.equal(sample(text, 'rtmp_relay_hls_segments_total'), 0);
  assert.equal(sample(text, 'rtmp_relay_ffmpeg_starts_total'), 0);
  assert.match(text, /# TYPE rtmp_relay_publishes_total counter/);
  assert.match(text, /# TYPE rtmp_relay_streams gauge/);
  assert.ok(sample(text, 'process_cpu_user_seconds_total') !== undefined, 'default process metrics');
  assert.ok(
    sample(text, 'process_resident_memory_bytes') !== undefined || /nodejs_heap_size_used_bytes/.test(text),
  );

  rtmp.stats.publishes += 3;
  rtmp.stats.takeovers += 1;
  rtmp.stats.authRefusals += 2;
  rtmp.countError(ErrorCodes.RTMP_UNAUTHORIZED);
  rtmp.countError(ErrorCodes.RTMP_UNAUTHORIZED);
  const a = fakeStream('live/u/a', 'publishing');
  const b = fakeStream('live/u/b', 'reconnecting');
  a.packager.stats.segments = 5;
  a.packager.stats.parts = 40;
  b.packager.stats.partBreaches = 1;
  b.packager.stats.segments = 2;
  a.supervisor.stats.starts = 2;
  a.supervisor.stats.restarts = 1;
  a.supervisor.stats.crashes = 1;
  b.supervisor.stats.starts = 1;
  a.repair.counts.duplicate = 4;
  b.repair.counts.jumpForward = 1;
  registry.streams.push(a, b);

  text = await scrape();
  assert.equal(sample(text, 'rtmp_relay_publishes_total'), 3);
  assert.equal(sample(text, 'rtmp_relay_takeovers_total'), 1);
  assert.equal(sample(text, 'rtmp_relay_auth_refusals_total'), 2);
  assert.equal(sample(text, 'rtmp_relay_rtmp_errors_total{code="RTMP_UNAUTHORIZED"}'), 2);
  assert.equal(sample(text, 'rtmp_relay_streams{state="publishing"}'), 1);
  assert.equal(sample(text, 'rtmp_relay_streams{state="reconnecting"}'), 1);
  assert.equal(sample(text, 'rtmp_relay_streams{state="ended"}'), 0);
  assert.equal(sample(text, 'rtmp_relay_hls_segments_total'), 7);
  assert.equal(sample(text, 'rtmp_relay_hls_parts_total'), 40);
  assert.equal(sample(text, 'rtmp_relay_hls_part_target_breaches_total'), 1);
  assert.equal(sample(text, 'rtmp_relay_ffmpeg_starts_total'), 3);
  assert.equal(sample(text, 'rtmp_relay_ffmpeg_restarts_total'), 1);
  assert.equal(sample(text, 'rtmp_relay_ffmpeg_crashes_total'), 1);
  assert.equal(sample(text, 'rtmp_relay_timestamp_repairs_total{kind="duplicate"}'), 4);
  assert.equal(sample(text, 'rtmp_relay_timestamp_repairs_total{kind="jump_forward"}'), 1);

  // A stream that ended and was freed keeps counting in the totals.
  a.state = 'ended';
  registry.emit('ended', a as unknown as Stream);
  registry.streams.splice(0, 1);
  text = await scrape();
  assert.equal(sample(text, 'rtmp_relay_hls_segments_total'), 7);
  assert.equal(sample(text, 'rtmp_relay_ffmpeg_starts_total'), 3);
  assert.equal(sample(text, 'rtmp_relay_streams{state="publishing"}'), 0);
  assert.equal(sample(text, 'rtmp_relay_timestamp_repairs_total{kind="duplicate"}'), 4);
});

test('metrics registry is not the global one, and closing stops following the sources', async () => {
  const rtmp = new RtmpServer({ log: silentLogger() });
  const registry = fakeRegistry();
  const one = createRelayMetrics({
    rtmp,
    streams: registry as unknown as StreamRegistry,
    defaultMetrics: false,
  });
  const two = createRelayMetrics({
    rtmp,
    streams: registry as unknown as StreamRegistry,
    defaultMetrics: false,
  });
  assert.notEqual(one.registry, two.registry);
  assert.equal(registry.listenerCount('ended'), 2);
  one.close();
  two.close();
  assert.equal(registry.listenerCount('ended'), 0);
  assert.equal(rtmp.listenerCount('end'), 0);
});

test('a live SRT publish exports its transport per stream; RTMP streams and ended ones export none', async (t) => {
  const rtmp = new RtmpServer({ log: silentLogger() });
  const registry = fakeRegistry();
  const metrics = createRelayMetrics({
    rtmp,
    streams: registry as unknown as StreamRegistry,
    defaultMetrics: false,
  });
  const app = buildMetricsApp({ registry: metrics.registry, onClose: metrics.close });
  t.after(() => app.close());
  const transport = {
    transport: 'srt' as const,
    rttMs: 25,
    latencyMs: 120,
    packetsReceived: 5000,
    packetsLost: 250,
    packetsRetransmitted: 240,
    packetsDropped: 10,
    receiveBufferPackets: 30,
    receiveBufferCapacity: 8192,
  };
  const srt = { ...fakeStream('live/u1/srt', 'publishing'), source: { transportStats: () => transport } };
  const rtmpStream = { ...fakeStream('live/u1/rtmp', 'publishing'), source: {} };
  const ended = { ...fakeStream('live/u1/old', 'ended'), source: { transportStats: () => transport } };
  registry.streams.push(srt, rtmpStream, ended);

  const scrape = async (): Promise<string> => (await app.inject({ method: 'GET', url: '/metrics' })).body;
  let text = await scrape();
  const at = (name: string, stream: string) => sample(text, `${name}{stream="${stream}"}`);
  assert.equal(at('rtmp_relay_stream_srt_rtt_seconds', 'u1/srt'), 0.025);
  assert.equal(at('rtmp_relay_stream_srt_packets_received', 'u1/srt'), 5000);
  assert.equal(at('rtmp_relay_stream_srt_packets_lost', 'u1/srt'), 250);
  assert.equal(at('rtmp_relay_stream_srt_packets_retransmitted', 'u1/srt'), 240);
  assert.equal(at('rtmp_relay_stream_srt_packets_dropped', 'u1/srt'), 10);
  assert.equal(at('rtmp_relay_stream_srt_receive_buffer_packets', 'u1/srt'), 30);
  assert.equal(at('rtmp_relay_stream_srt_receive_buffer_capacity_packets', 'u1/srt'), 8192);
  assert.match(text, /# TYPE rtmp_relay_stream_srt_rtt_seconds gauge/);
  for (const name of ['rtmp_relay_stream_srt_rtt_seconds', 'rtmp_relay_stream_srt_packets_lost']) {
    assert.equal(at(name, 'u1/rtmp'), undefined, 'RTMP has no transport series');
    assert.equal(at(name, 'u1/old'), undefined, 'an ended stream keeps no series');
  }

  // Read at scrape time; the series goes when the publish does.
  transport.packetsLost = 260;
  text = await scrape();
  assert.equal(at('rtmp_relay_stream_srt_packets_lost', 'u1/srt'), 260);
  srt.source = {} as typeof srt.source;
  text = await scrape();
  assert.equal(at('rtmp_relay_stream_srt_packets_lost', 'u1/srt'), undefined);
});
