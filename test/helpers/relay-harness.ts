/**
 * Starts a real relay (RTMP server, streams with real FFmpeg, HLS origin) on free loopback ports with short
 * timers, and records what each stream's packager produced, for integration tests and benchmarks.
 */
import type { Segment } from '../../src/hls/packager.ts';
import type { Fmp4Init } from '../../src/media/fmp4.ts';
import { type RelayHandle, startRelay } from '../../src/relay/relay.ts';
import { loadConfig } from '../../src/shared/config.ts';
import { type Logger, silentLogger } from '../../src/shared/logger.ts';
import type { Stream } from '../../src/stream/stream.ts';
import { LOOPBACK_RELAY_ENV } from './ports.ts';

export interface StreamRecord {
  stream: Stream;
  inits: Fmp4Init[];
  segments: Segment[];
  /** MEDIA-SEQUENCE and DISCONTINUITY-SEQUENCE of the playlist after each segment. */
  sequences: { media: number; discontinuity: number }[];
  ready: Promise<void>;
  ended: Promise<void>;
}

export interface TestRelayOptions {
  /**
   * Keep every init and segment each stream produced in `records` (default true, what tests assert on).
   * Benchmarks that run for minutes turn it off: the records would hold all the media they ever made.
   */
  record?: boolean;
}

export async function startTestRelay(
  env: Record<string, string> = {},
  log: Logger = silentLogger(),
  options: TestRelayOptions = {},
): Promise<{ relay: RelayHandle; records: Map<string, StreamRecord>; hls: (path: string) => string }> {
  const config = loadConfig(
    {
      ...LOOPBACK_RELAY_ENV,
      RECONNECT_WINDOW_SECONDS: '2',
      HLS_END_GRACE_SECONDS: '60',
      FFMPEG_WATCHDOG_SECONDS: '10',
      FFMPEG_RESTART_BACKOFF_SECONDS: '0.2,0.5',
      ...env,
    },
    { publishAuth: 'off' },
  );
  const relay = await startRelay(config, log);
  const records = new Map<string, StreamRecord>();
  relay.streams.on('created', (stream) => {
    let ready: () => void = () => {};
    let ended: () => void = () => {};
    const record: StreamRecord = {
      stream,
      inits: [],
      segments: [],
      sequences: [],
      ready: new Promise((r) => (ready = r)),
      ended: new Promise((r) => (ended = r)),
    };
    records.set(stream.streamId, record);
    stream.once('ready', () => ready());
    stream.once('ended', () => ended());
    if (options.record === false) return;
    stream.packager.on('init', (init) => record.inits.push(init));
    stream.packager.on('segment', (segment) => {
      record.segments.push(segment);
      const text = stream.packager.playlist();
      record.sequences.push({
        media: Number(/#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1]),
        discontinuity: Number(/#EXT-X-DISCONTINUITY-SEQUENCE:(\d+)/.exec(text)?.[1]),
      });
    });
  });
  const hls = (path: string): string => `http://127.0.0.1:${relay.hlsPort}/hls/${path}`;
  return { relay, records, hls };
}

/** The init segment a media segment belongs to (init URIs end in `-init{n}.mp4`, n counting inits). */
export function initOf(record: StreamRecord, segment: Segment): Fmp4Init {
  const n = Number(/-init(\d+)\.mp4$/.exec(segment.initUri)?.[1]);
  const init = record.inits[n];
  if (!init) throw new Error(`no init ${segment.initUri}`);
  return init;
}

/** Resolves once the stream has at least `n` complete segments (awaits the packager's events, no polling). */
export function segmentsAtLeast(record: StreamRecord, n: number): Promise<void> {
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
