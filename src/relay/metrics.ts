/**
 * Prometheus metrics of one relay (prom-client, its own Registry, never the global one). Collectors read the
 * existing stats at scrape time: the RTMP server's `stats`, and each stream's packager, supervisor and
 * timestamp-repair counters. Per-stream counters are summed over the streams still registered plus those
 * that ended (folded in once, at `ended`), so the totals never go back when a stream is freed.
 * A live SRT or WHIP publish adds its transport counters per stream (RTT, loss, retransmissions, drops,
 * buffer), named for the transport.
 * `buildMetricsApp` serves them at GET /metrics (fastify `build(opts)`, tested through `inject()`).
 */
import Fastify, { type FastifyInstance } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { TransportStats } from '../media/source.ts';
import type { RepairCounts } from '../media/timestamp-repair.ts';
import type { Publish } from '../rtmp/publish.ts';
import type { RtmpServer } from '../rtmp/server.ts';
import type { StreamRegistry } from '../stream/registry.ts';
import { type Stream, StreamState } from '../stream/stream.ts';
import { HLS_REQUEST_KINDS, type HlsRequestKind } from './hls-requests.ts';
import { streamTransport } from './stream-stats.ts';
import type { ViewerTracker } from './viewers.ts';

export interface RelayMetricsOptions {
  rtmp: RtmpServer;
  streams: StreamRegistry;
  /** Viewers per stream, counted at the origin. */
  viewers?: ViewerTracker;
  /** Requests the HLS origin holds now (LL-HLS). */
  heldRequests?: () => number;
  now?: () => number;
  /** Adds prom-client's default process metrics (CPU, memory, event loop); default true. */
  defaultMetrics?: boolean;
}

export interface RelayMetrics {
  registry: Registry;
  /** One HLS request answered by the origin (see `observeOrigin`). */
  observeHlsRequest(kind: HlsRequestKind, seconds: number): void;
  /** Stops following the RTMP server and the registry. */
  close(): void;
}

const REPAIR_KINDS = ['negative', 'duplicate', 'backward', 'jumpForward', 'wrap', 'avSkew'] as const;
const REPAIR_LABEL: Record<(typeof REPAIR_KINDS)[number], string> = {
  negative: 'negative',
  duplicate: 'duplicate',
  backward: 'backward',
  jumpForward: 'jump_forward',
  wrap: 'wrap',
  avSkew: 'av_skew',
};

interface StreamTotals {
  segments: number;
  parts: number;
  partBreaches: number;
  breaches: number;
  discontinuities: number;
  droppedFragments: number;
  ffmpegStarts: number;
  ffmpegRestarts: number;
  ffmpegCrashes: number;
  ffmpegStalls: number;
  repairs: RepairCounts;
}

function emptyTotals(): StreamTotals {
  return {
    segments: 0,
    parts: 0,
    partBreaches: 0,
    breaches: 0,
    discontinuities: 0,
    droppedFragments: 0,
    ffmpegStarts: 0,
    ffmpegRestarts: 0,
    ffmpegCrashes: 0,
    ffmpegStalls: 0,
    repairs: { negative: 0, duplicate: 0, backward: 0, jumpForward: 0, wrap: 0, avSkew: 0 },
  };
}

function addStream(into: StreamTotals, stream: Stream): void {
  const p = stream.packager.stats;
  const s = stream.supervisor.stats;
  into.segments += p.segments;
  into.parts += p.parts;
  into.partBreaches += p.partBreaches;
  into.breaches += p.breaches;
  into.discontinuities += p.discontinuities;
  into.droppedFragments += p.droppedFragments;
  into.ffmpegStarts += s.starts;
  into.ffmpegRestarts += s.restarts;
  into.ffmpegCrashes += s.crashes;
  into.ffmpegStalls += s.stalls;
  for (const kind of REPAIR_KINDS) into.repairs[kind] += stream.repair.counts[kind];
}

export function createRelayMetrics(options: RelayMetricsOptions): RelayMetrics {
  const { rtmp, streams } = options;
  const registry = new Registry();
  if (options.defaultMetrics !== false) collectDefaultMetrics({ register: registry });

  // Streams that ended: their counters are final, folded in once so a freed stream keeps counting.
  const retired = emptyTotals();
  const folded = new WeakSet<Stream>();
  const onEnded = (stream: Stream): void => {
    if (folded.has(stream)) return;
    folded.add(stream);
    addStream(retired, stream);
  };
  streams.on('ended', onEnded);

  // Time to first segment (from the stream's first publish) and each segment's production time.
  const firstSegment = new Histogram({
    name: 'rtmp_relay_time_to_first_segment_seconds',
    help: "From a stream's first publish to its first HLS segment (playable).",
    buckets: [0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10, 15, 30],
    registers: [registry],
  });
  const segmentProduction = new Histogram({
    name: 'rtmp_relay_hls_segment_production_seconds',
    help: "Wall-clock time from a segment's first fragment to the segment being served; about its duration when the relay keeps up.",
    buckets: [0.25, 0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10, 15],
    registers: [registry],
  });
  const hlsRequests = new Histogram({
    name: 'rtmp_relay_hls_request_duration_seconds',
    help: 'HLS origin response time, by kind (playlist_blocking waits for the part it asks for).',
    labelNames: ['kind'],
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [registry],
  });
  for (const kind of HLS_REQUEST_KINDS) hlsRequests.zero({ kind });
  const now = options.now ?? Date.now;
  const onCreated = (stream: Stream): void => {
    stream.packager.once('ready', () => firstSegment.observe((now() - stream.createdAt) / 1000));
    stream.packager.on('segment', (segment) => {
      segmentProduction.observe(Math.max(0, now() - segment.programDateTime) / 1000);
    });
  };
  streams.on('created', onCreated);

  // Publishes: live ones read at scrape time, ended ones folded in.
  const livePublishes = new Set<Publish>();
  let retiredMediaBytes = 0;
  const unpublishes = new Map<string, number>();
  const onPublish = (publish: Publish): void => {
    livePublishes.add(publish);
  };
  const onEnd = (publish: Publish, reason: { kind: string }): void => {
    if (livePublishes.delete(publish)) retiredMediaBytes += publish.stats.mediaBytes;
    unpublishes.set(reason.kind, (unpublishes.get(reason.kind) ?? 0) + 1);
  };
  rtmp.on('publish', onPublish);
  rtmp.on('end', onEnd);

  const totals = (): StreamTotals => {
    const t = emptyTotals();
    addTotals(t, retired);
    for (const stream of streams.streams) if (!folded.has(stream)) addStream(t, stream);
    return t;
  };

  const counter = (name: string, help: string, read: () => number): void => {
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  };

  new Gauge({
    name: 'rtmp_relay_streams',
    help: 'Streams registered on this relay, by state.',
    labelNames: ['state'],
    registers: [registry],
    collect() {
      this.reset();
      const byState = new Map<string, number>(Object.values(StreamState).map((s) => [s, 0]));
      for (const s of streams.streams) byState.set(s.state, (byState.get(s.state) ?? 0) + 1);
      for (const [state, n] of byState) this.set({ state }, n);
    },
  });
  // Per stream: labelled by `stream` = userId/streamId; a stream's series go when it is freed.
  const perStream = (name: string, help: string, read: (stream: Stream) => number | undefined): void => {
    new Gauge({
      name,
      help,
      labelNames: ['stream'],
      registers: [registry],
      collect() {
        this.reset();
        for (const stream of streams.streams) {
          if (stream.state === StreamState.Ended) continue;
          const value = read(stream);
          if (value !== undefined) this.set({ stream: `${stream.userId}/${stream.streamId}` }, value);
        }
      },
    });
  };
  perStream(
    'rtmp_relay_stream_ingest_fps',
    'Video frames per second the publisher sends.',
    (s) => s.ingest.snapshot().fps,
  );
  perStream(
    'rtmp_relay_stream_keyframe_interval_seconds',
    "Mean seconds between the publisher's keyframes.",
    (s) => s.ingest.snapshot().keyframeIntervalSeconds,
  );
  perStream(
    'rtmp_relay_stream_ingest_bitrate_bits_per_second',
    'Audio and video payload bitrate the publisher sends.',
    (s) => {
      const kbps = s.ingest.snapshot().bitrateKbps;
      return kbps === undefined ? undefined : kbps * 1000;
    },
  );
  perStream(
    'rtmp_relay_stream_ingest_bytes',
    'Media bytes received for the stream so far (all its publishes).',
    (s) => s.ingest.snapshot().bytes,
  );
  perStream('rtmp_relay_stream_viewers', 'Distinct HLS clients seen in the viewer window.', (s) =>
    options.viewers?.count(s.key, now()),
  );
  // SRT transport, per stream while an SRT publish is live (MediaMTX exports the same); absent for RTMP.
  // Counters of the current publish: they start again at 0 when the caller reconnects.
  const perTransport = (
    name: string,
    help: string,
    read: (t: TransportStats) => number | null,
    transport: TransportStats['transport'] = 'srt',
  ): void =>
    perStream(name, help, (s) => {
      const t = streamTransport(s);
      return t?.transport === transport ? (read(t) ?? undefined) : undefined;
    });
  perTransport('rtmp_relay_stream_srt_rtt_seconds', 'SRT round-trip time to the caller (smoothed).', (t) =>
    t.rttMs === null ? null : t.rttMs / 1000,
  );
  perTransport(
    'rtmp_relay_stream_srt_packets_received',
    'SRT data packets received in the current publish.',
    (t) => t.packetsReceived,
  );
  perTransport(
    'rtmp_relay_stream_srt_packets_lost',
    'SRT packets found missing (sequence gaps) in the current publish, recovered or not.',
    (t) => t.packetsLost,
  );
  perTransport(
    'rtmp_relay_stream_srt_packets_retransmitted',
    'SRT packets the caller sent again in the current publish.',
    (t) => t.packetsRetransmitted,
  );
  perTransport(
    'rtmp_relay_stream_srt_packets_dropped',
    'SRT packets given up (too late, never retransmitted) in the current publish: holes in the MPEG-TS.',
    (t) => t.packetsDropped,
  );
  perTransport(
    'rtmp_relay_stream_srt_receive_buffer_packets',
    'SRT packets waiting in the receive buffer (TSBPD).',
    (t) => t.receiveBufferPackets,
  );
  perTransport(
    'rtmp_relay_stream_srt_receive_buffer_capacity_packets',
    'SRT receive buffer size, in packets.',
    (t) => t.receiveBufferCapacity,
  );
  // WHIP's RTP (video and audio together), per stream while a WHIP publish is live.
  const whip = (name: string, help: string, read: (t: TransportStats) => number): void =>
    perTransport(`rtmp_relay_stream_whip_${name}`, help, read, 'whip');
  whip('packets_received', 'WHIP RTP packets received in the current publish.', (t) => t.packetsReceived);
  whip(
    'packets_lost',
    'WHIP RTP packets found missing (sequence gaps) in the current publish, recovered or not.',
    (t) => t.packetsLost,
  );
  whip(
    'packets_retransmitted',
    'WHIP RTP packets that arrived after a NACK (or reordered) in the current publish.',
    (t) => t.packetsRetransmitted,
  );
  whip(
    'packets_dropped',
    'WHIP RTP packets given up on in the current publish: a broken frame dropped, a keyframe asked for.',
    (t) => t.packetsDropped,
  );
  whip('jitter_buffer_packets', 'WHIP RTP packets held back by a gap now.', (t) => t.receiveBufferPackets);

  new Gauge({
    name: 'rtmp_relay_rtmp_connections',
    help: 'RTMP connections open.',
    registers: [registry],
    collect() {
      this.set(rtmp.stats.connectionsOpen);
    },
  });
  counter(
    'rtmp_relay_rtmp_connections_accepted_total',
    'RTMP connections accepted.',
    () => rtmp.stats.connectionsAccepted,
  );
  counter(
    'rtmp_relay_rtmp_connections_refused_total',
    'RTMP connections refused (limits).',
    () => rtmp.stats.connectionsRefused,
  );
  counter('rtmp_relay_publishes_total', 'Publishes that went live.', () => rtmp.stats.publishes);
  new Counter({
    name: 'rtmp_relay_unpublishes_total',
    help: 'Publishes that ended, by how.',
    labelNames: ['reason'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [reason, n] of unpublishes) this.inc({ reason }, n);
    },
  });
  counter(
    'rtmp_relay_takeovers_total',
    'Publishes replaced by a newer publish of the same key.',
    () => rtmp.stats.takeovers,
  );
  counter(
    'rtmp_relay_auth_refusals_total',
    'Publishes refused by authorization.',
    () => rtmp.stats.authRefusals,
  );
  new Counter({
    name: 'rtmp_relay_rtmp_errors_total',
    help: 'RTMP failures, by error code.',
    labelNames: ['code'],
    registers: [registry],
    collect() {
      this.reset();
      for (const [code, n] of rtmp.stats.errors) this.inc({ code }, n);
    },
  });
  counter(
    'rtmp_relay_ingest_media_bytes_total',
    'Audio and video payload bytes received from publishers.',
    () => {
      let bytes = retiredMediaBytes;
      for (const p of livePublishes) bytes += p.stats.mediaBytes;
      return bytes;
    },
  );
  counter('rtmp_relay_hls_segments_total', 'HLS segments completed.', () => totals().segments);
  counter('rtmp_relay_hls_parts_total', 'LL-HLS parts completed.', () => totals().parts);
  counter(
    'rtmp_relay_hls_part_target_breaches_total',
    'LL-HLS parts longer than PART-TARGET (a single frame longer than it: input under about 2 fps).',
    () => totals().partBreaches,
  );
  if (options.heldRequests) {
    const held = options.heldRequests;
    new Gauge({
      name: 'rtmp_relay_hls_held_requests',
      help: 'LL-HLS requests the origin holds (blocking playlist reloads and preload-hinted parts).',
      registers: [registry],
      collect() {
        this.set(held());
      },
    });
  }
  counter(
    'rtmp_relay_hls_target_duration_breaches_total',
    'Segments that closed past the target duration without a keyframe.',
    () => totals().breaches,
  );
  counter(
    'rtmp_relay_hls_discontinuities_total',
    'Segments that start a discontinuity.',
    () => totals().discontinuities,
  );
  counter(
    'rtmp_relay_hls_dropped_fragments_total',
    'Fragments dropped by the packager.',
    () => totals().droppedFragments,
  );
  counter('rtmp_relay_ffmpeg_starts_total', 'FFmpeg processes started.', () => totals().ffmpegStarts);
  counter(
    'rtmp_relay_ffmpeg_restarts_total',
    'FFmpeg restarts after an exit.',
    () => totals().ffmpegRestarts,
  );
  counter(
    'rtmp_relay_ffmpeg_crashes_total',
    'FFmpeg processes that exited with an error.',
    () => totals().ffmpegCrashes,
  );
  counter(
    'rtmp_relay_ffmpeg_stalls_total',
    'FFmpeg processes the watchdog found stalled.',
    () => totals().ffmpegStalls,
  );
  new Counter({
    name: 'rtmp_relay_timestamp_repairs_total',
    help: 'Tags the timestamp repair touched, by kind.',
    labelNames: ['kind'],
    registers: [registry],
    collect() {
      this.reset();
      const t = totals();
      for (const kind of REPAIR_KINDS) this.inc({ kind: REPAIR_LABEL[kind] }, t.repairs[kind]);
    },
  });

  return {
    registry,
    observeHlsRequest(kind, seconds) {
      hlsRequests.observe({ kind }, seconds);
    },
    close() {
      streams.off('ended', onEnded);
      streams.off('created', onCreated);
      rtmp.off('publish', onPublish);
      rtmp.off('end', onEnd);
    },
  };
}

function addTotals(into: StreamTotals, from: StreamTotals): void {
  into.segments += from.segments;
  into.parts += from.parts;
  into.partBreaches += from.partBreaches;
  into.breaches += from.breaches;
  into.discontinuities += from.discontinuities;
  into.droppedFragments += from.droppedFragments;
  into.ffmpegStarts += from.ffmpegStarts;
  into.ffmpegRestarts += from.ffmpegRestarts;
  into.ffmpegCrashes += from.ffmpegCrashes;
  into.ffmpegStalls += from.ffmpegStalls;
  for (const kind of REPAIR_KINDS) into.repairs[kind] += from.repairs[kind];
}

export interface MetricsAppOptions {
  registry: Registry;
  /** Called when the app closes (e.g. RelayMetrics.close). */
  onClose?: () => void;
}

export function buildMetricsApp(options: MetricsAppOptions): FastifyInstance {
  const app: FastifyInstance = Fastify();
  app.get('/metrics', { schema: {} }, async (_request, reply) => {
    const text = await options.registry.metrics();
    return reply.header('content-type', options.registry.contentType).send(text);
  });
  app.get('/health', { schema: {} }, async () => ({ status: 'ok' }));
  app.addHook('onClose', async () => options.onClose?.());
  return app;
}
