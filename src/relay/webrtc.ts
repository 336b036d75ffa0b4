/**
 * The relay's WebRTC: the one ICE UDP port (WEBRTC_UDP_PORT), WHEP playback of its streams on the
 * origin (`/whep/{userPath}/{streamId}`) and WHIP ingest (`/whip/live/{userId}/{streamId}`: a publish
 * authorized by the relay's publish hook, as RTMP and SRT, becomes a source of the stream of its key). The
 * composition root (./relay.ts) starts it and closes it.
 *
 * A Stream (stream/stream.ts) is adapted to the small interface WHEP needs (webrtc/whep-source.ts): one
 * adapter per stream incarnation (WhepServer keys its per-stream output by the source object, so a lookup
 * must hand back the same one every time). Sessions end when their stream ends (the output follows the
 * stream's `ended`) and, belt and braces, when the registry reports the end: a stream that moves to another
 * relay is ended here first (kick, drain, shutdown), so the viewer's player sees the session close and asks
 * the cloud for the new URL.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { hlsUserPath } from '../contracts/names.ts';
import type { AuthorizePublish } from '../contracts/publish.ts';
import type { ChildReaper } from '../pipeline/child-reaper.ts';
import type { RelayConfig } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import type { StreamRegistry } from '../stream/registry.ts';
import { type Stream, StreamState } from '../stream/stream.ts';
import { ffmpegOpusEncoder } from '../webrtc/opus-encoder.ts';
import type { IceHost } from '../webrtc/sdp.ts';
import { buildWhepRoutes } from '../webrtc/whep-routes.ts';
import { WhepServer } from '../webrtc/whep-server.ts';
import type { WhepSourceEvents, WhepSourceStream } from '../webrtc/whep-source.ts';
import { buildWhipRoutes } from '../webrtc/whip-routes.ts';
import { WhipServer } from '../webrtc/whip-server.ts';

/** A stream as a WHEP source: its own events (same names and payloads), its configuration and GOP. */
export class StreamWhepSource implements WhepSourceStream {
  readonly #stream: Stream;

  constructor(stream: Stream) {
    this.#stream = stream;
  }

  on<K extends keyof WhepSourceEvents>(event: K, listener: (...args: WhepSourceEvents[K]) => void): this {
    this.#stream.on(event, listener);
    return this;
  }

  off<K extends keyof WhepSourceEvents>(event: K, listener: (...args: WhepSourceEvents[K]) => void): this {
    this.#stream.off(event, listener);
    return this;
  }

  tracks(): ReturnType<WhepSourceStream['tracks']> {
    const start = this.#stream.configuration;
    return { video: start?.video ?? null, audio: start?.audio ?? null };
  }

  recentGop(): ReturnType<WhepSourceStream['recentGop']> {
    return this.#stream.currentGop;
  }

  requestKeyframe(): void {
    this.#stream.source?.requestKeyframe?.();
  }

  get ended(): boolean {
    return this.#stream.state === StreamState.Ended;
  }
}

export interface RelayWebrtcOptions {
  config: RelayConfig;
  streams: StreamRegistry;
  reaper: ChildReaper;
  log: Logger;
  /**
   * Playback auth for WHEP offers (PLAYBACK_AUTH=token): resolves false to refuse with 401. Absent: none.
   * The token rides as `?token=` on the WHEP URL (architecture §3), so `request.query.token` carries it.
   */
  authorizePlayback?: (
    request: FastifyRequest,
    userPath: string,
    streamId: string,
  ) => boolean | Promise<boolean>;
  /** The relay's publish authorization (the same hook as RTMP and SRT); absent: everyone may publish. */
  authorizePublish?: AuthorizePublish;
}

export interface RelayWebrtc {
  /** The shared ICE port and announced hosts: WHIP sessions are created on the same (WhipServer `ice`). */
  readonly ice: { udpPort: number; bindAddress: string; hosts: readonly IceHost[] | null };
  readonly whep: WhepServer;
  /** WHIP ingest on the same port. */
  readonly whip: WhipServer;
  /** The bound UDP port (WEBRTC_UDP_PORT; 0 picked this one). */
  readonly udpPort: number;
  /** Registers the signalling routes on the origin (before it listens). */
  route(origin: FastifyInstance): void;
  /** Closes every session, stops the Opus encoders and frees the UDP port; idempotent. */
  close(): void;
}

/** Binds the UDP port and starts WHEP; throws WEBRTC_UDP_PORT_FAILED or CONFIG_INVALID. */
export async function startRelayWebrtc(options: RelayWebrtcOptions): Promise<RelayWebrtc> {
  const { config, streams, reaper } = options;
  const log = options.log.child({ component: 'webrtc' });
  const sources = new WeakMap<Stream, StreamWhepSource>();
  const sourceOf = (stream: Stream): StreamWhepSource => {
    let source = sources.get(stream);
    if (!source) {
      source = new StreamWhepSource(stream);
      sources.set(stream, source);
    }
    return source;
  };
  const whep = await WhepServer.start({
    udpPort: config.webrtc.udpPort,
    bindAddress: config.webrtc.udpHost,
    hosts: config.webrtc.hosts,
    maxSessions: config.webrtc.maxSessions,
    lookup: (userPath, streamId) => {
      const stream = streams.byHlsPath(userPath, streamId);
      return stream ? sourceOf(stream) : undefined;
    },
    log,
    opus: ffmpegOpusEncoder({ ffmpegPath: config.stream.ffmpegPath, reaper, log }),
  });
  const whip = new WhipServer({
    ice: whep.ice,
    authorize: options.authorizePublish ?? (() => ({ allow: true })),
    onPublish: (source) => streams.addSource(source),
    log,
    maxSessions: config.webrtc.maxSessions,
    peerTimeoutMs: config.webrtc.peerTimeoutMs,
    // Segments are cut at keyframes, and a WebRTC encoder sends one only when asked: asked at 0.8 × the
    // target, it lands between the segmenter's earliest cut (0.75 ×) and auto's GOP limit (1.1 ×).
    keyframeIntervalMs: config.hls.segmentSeconds * 800,
  });
  const onEnded = (stream: Stream): void =>
    whep.closeStream(hlsUserPath(stream.userId), stream.streamId, 'stream ended');
  streams.on('ended', onEnded);
  let closed = false;
  return {
    ice: whep.ice,
    whep,
    whip,
    udpPort: whep.udpPort,
    route(origin) {
      void origin.register(
        buildWhepRoutes({
          server: whep,
          corsOrigins: config.hls.corsOrigins,
          ...(options.authorizePlayback ? { authorize: options.authorizePlayback } : {}),
        }),
      );
      void origin.register(buildWhipRoutes({ server: whip, corsOrigins: config.hls.corsOrigins }));
    },
    close() {
      if (closed) return;
      closed = true;
      streams.off('ended', onEnded);
      whip.close();
      whep.close();
    },
  };
}
