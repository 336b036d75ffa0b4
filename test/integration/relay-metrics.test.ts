/**
 * The relay's operator surfaces against a real publish: Prometheus metrics scraped over HTTP and parsed with
 * a Prometheus text-format parser (the key series move when a stream is published and watched), and the
 * control API's per-stream stats (codec, size, fps, keyframe interval, bitrate, viewers).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import parsePrometheus, { type PrometheusFamily } from 'parse-prometheus-text-format';
import { onceEvent } from '../../src/shared/typed-emitter.ts';
import { GLASSES_854X480 } from '../fixtures/dirty.ts';
import { fixturePath } from '../fixtures/generate.ts';
import { type FlvPublisher, publishFlv } from '../helpers/flv-publisher.ts';
import { type StreamRecord, startTestRelay } from '../helpers/relay-harness.ts';

const TOKEN = 'metrics-test-control-token';

interface Scrape {
  text: string;
  families: PrometheusFamily[];
}

describe('relay metrics and control API stats with a real publish', () => {
  let relay: Awaited<ReturnType<typeof startTestRelay>>['relay'];
  let records: Map<string, StreamRecord>;
  let hls: (p: string) => string;
  let pub: FlvPublisher;
  let before0: Scrape;

  const scrape = async (): Promise<Scrape> => {
    const res = await fetch(`http://127.0.0.1:${relay.metricsPort}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
    const text = await res.text();
    return { text, families: parsePrometheus(text) };
  };
  const family = (families: PrometheusFamily[], name: string): PrometheusFamily => {
    const f = families.find((x) => x.name === name);
    assert.ok(f, `metric ${name} is exported`);
    return f;
  };
  /** The value of a counter or gauge sample whose labels include `labels`. */
  const value = (scraped: Scrape, name: string, labels: Record<string, string> = {}): number => {
    const f = family(scraped.families, name);
    const s = f.metrics.find((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v));
    assert.ok(s, `${name} ${JSON.stringify(labels)} has a sample`);
    return Number(s.value);
  };
  /**
   * A histogram's `_count`. The parser checks the family is a histogram; the count is read from the text,
   * because this parser merges labelled histogram series (it expects `le` last, prom-client writes it first).
   */
  const histogramCount = (scraped: Scrape, name: string, label = ''): number => {
    assert.equal(family(scraped.families, name).type, 'HISTOGRAM');
    const line = scraped.text
      .split('\n')
      .find((l) => l.startsWith(`${name}_count${label ? `{${label}}` : ''} `));
    return line ? Number(line.split(' ').at(-1)) : 0;
  };

  before(async () => {
    ({ relay, records, hls } = await startTestRelay({ CONTROL_API_TOKEN: TOKEN }));
    before0 = await scrape();
    pub = publishFlv(await fixturePath('glasses-854x480.flv'), {
      port: relay.rtmpPort,
      user: 'metrics@user.com',
      stream: 'm1',
      toMs: 12_000,
    });
    await pub.started;
    await records.get('m1')!.ready;
  });

  after(async () => {
    await pub?.stop().catch(() => {});
    await relay.close();
  });

  it('exports every series at zero before anything happens', () => {
    assert.equal(value(before0, 'rtmp_relay_publishes_total'), 0);
    assert.equal(value(before0, 'rtmp_relay_streams', { state: 'publishing' }), 0);
    assert.equal(value(before0, 'rtmp_relay_ingest_media_bytes_total'), 0);
    assert.equal(histogramCount(before0, 'rtmp_relay_time_to_first_segment_seconds'), 0);
    assert.equal(histogramCount(before0, 'rtmp_relay_hls_request_duration_seconds', 'kind="playlist"'), 0);
    assert.equal(family(before0.families, 'rtmp_relay_stream_viewers').metrics.length, 0);
    assert.ok(value(before0, 'process_resident_memory_bytes') > 0);
    assert.ok(family(before0.families, 'process_cpu_seconds_total'));
  });

  it('moves the key series when a stream is published and watched', async () => {
    const path = 'metrics-user.com/m1';
    // Two viewers (distinct user agents); one fetches twice.
    for (const ua of ['viewer-a', 'viewer-b', 'viewer-a']) {
      const playlist = await fetch(hls(`${path}/index.m3u8`), { headers: { 'user-agent': ua } });
      assert.equal(playlist.status, 200);
      const text = await playlist.text();
      const init = /#EXT-X-MAP:URI="([^"]+)"/.exec(text)?.[1];
      const segment = text.split('\n').find((l) => /-seg\d+\.m4s$/.test(l));
      assert.ok(init && segment, text);
      for (const file of [init, segment]) {
        const res = await fetch(hls(`${path}/${file}`), { headers: { 'user-agent': ua } });
        assert.equal(res.status, 200);
        await res.arrayBuffer();
      }
    }
    // A request for nothing counts as latency but not as a viewer.
    assert.equal((await fetch(hls('nobody/none/index.m3u8'))).status, 404);
    // Two keyframes in (the interval is known); each segment starts at one.
    const live = records.get('m1')!.stream;
    while (live.ingest.snapshot().keyframeIntervalSeconds === undefined)
      await onceEvent(live.packager, 'segment');

    const m = await scrape();
    const stream = { stream: 'metrics@user.com/m1' };
    assert.equal(value(m, 'rtmp_relay_publishes_total'), 1);
    assert.equal(value(m, 'rtmp_relay_streams', { state: 'publishing' }), 1);
    assert.ok(value(m, 'rtmp_relay_ingest_media_bytes_total') > 100_000);
    assert.ok(value(m, 'rtmp_relay_hls_segments_total') >= 1);
    assert.ok(value(m, 'rtmp_relay_hls_parts_total') >= 2, 'LL-HLS parts');
    assert.equal(value(m, 'rtmp_relay_hls_part_target_breaches_total'), 0);
    assert.ok(value(m, 'rtmp_relay_hls_held_requests') >= 0);
    // auto copies this H.264/AAC stream in-process: no FFmpeg at all.
    assert.equal(value(m, 'rtmp_relay_ffmpeg_starts_total'), 0);
    // 15 fps with one frame in 20 dropped, a keyframe every 2 s, about 1 Mbit/s.
    const fps = value(m, 'rtmp_relay_stream_ingest_fps', stream);
    assert.ok(fps > 13 && fps < 15.5, `fps ${fps}`);
    assert.equal(value(m, 'rtmp_relay_stream_keyframe_interval_seconds', stream), 2);
    const bps = value(m, 'rtmp_relay_stream_ingest_bitrate_bits_per_second', stream);
    assert.ok(bps > 300_000 && bps < 3_000_000, `bitrate ${bps}`);
    assert.equal(value(m, 'rtmp_relay_stream_viewers', stream), 2);
    assert.equal(histogramCount(m, 'rtmp_relay_time_to_first_segment_seconds'), 1);
    assert.ok(histogramCount(m, 'rtmp_relay_hls_segment_production_seconds') >= 1);
    assert.equal(histogramCount(m, 'rtmp_relay_hls_request_duration_seconds', 'kind="playlist"'), 4);
    assert.equal(histogramCount(m, 'rtmp_relay_hls_request_duration_seconds', 'kind="init"'), 3);
    assert.equal(histogramCount(m, 'rtmp_relay_hls_request_duration_seconds', 'kind="segment"'), 3);
  });

  it('lists the stream with its ingest stats and viewers on the control API', async () => {
    const res = await fetch(`http://127.0.0.1:${relay.apiPort}/api/streams`, {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(res.status, 200);
    const { streams } = (await res.json()) as { streams: { key: string; ingest: Record<string, unknown> }[] };
    const s = streams.find((x) => x.key === 'live/metrics@user.com/m1');
    assert.ok(s, JSON.stringify(streams));
    assert.equal(s.ingest.videoCodec, 'h264');
    assert.equal(s.ingest.audioCodec, 'aac');
    assert.equal(s.ingest.width, GLASSES_854X480.width);
    assert.equal(s.ingest.height, GLASSES_854X480.height);
    assert.equal(s.ingest.keyframeIntervalSeconds, 2);
    assert.equal(s.ingest.viewers, 2);
    assert.ok(Number(s.ingest.bitrateKbps) > 300);
  });
});
