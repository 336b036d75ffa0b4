/**
 * The relay's WebRTC: the one ICE UDP port (WEBRTC_UDP_PORT), WHEP playback of its streams on the
 * origin (`/whep/{userPath}/{streamId}`) and WHIP ingest (`/whip/live/{userId}/{streamId}`: a publish
 * authorized by the relay's publish hook, as RTMP and SRT, becomes a source of the stream of its key). The
 * composition root (./relay.ts) starts it and closes it.
 *
 * A Stream (stream/stream.ts) is adapted to the small interface WHEP needs (webrtc/whep-source.ts) by
 * ./whep-sources.ts: its input as sent (copy), or its FFmpeg output read back while it is transcoded (so a
 * B-frame publish plays once transcoded). One pair of adapters per stream incarnation (WhepServer keys its
 * per-stream output by the source object, so a lookup must hand back the same one every time). Sessions end when their stream ends (the output follows the
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
import type { Stream } from '../stream/stream.ts';
import { ffmpegOpusEncoder } from '../webrtc/opus-encoder.ts';
import type { IceHost } from '../webrtc/sdp.ts';
import { buildWhepRoutes } from '../webrtc/whep-routes.ts';
import { WhepServer } from '../webrtc/whep-server.ts';
import { buildWhipRoutes } from '../webrtc/whip-routes.ts';
import { WhipServer } from '../webrtc/whip-server.ts';
import { StreamWhepSource, TranscodedWhepSource } from './whep-sources.ts';

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
  // Per stream incarnation: its input, and its FFmpeg output read back (followed from the stream's start so
  // the init and the current GOP are at hand when a viewer comes).
  const sources = new WeakMap<Stream, { input: StreamWhepSource; transcoded: TranscodedWhepSource }>();
  const sourcesOf = (stream: Stream): { input: StreamWhepSource; transcoded: TranscodedWhepSource } => {
    let pair = sources.get(stream);
    if (!pair) {
      pair = { input: new StreamWhepSource(stream), transcoded: new TranscodedWhepSource(stream, log) };
      sources.set(stream, pair);
    }
    return pair;
  };
  for (const stream of streams.streams) sourcesOf(stream);
  const onCreated = (stream: Stream): void => void sourcesOf(stream);
  streams.on('created', onCreated);
  const whep = await WhepServer.start({
    udpPort: config.webrtc.udpPort,
    bindAddress: config.webrtc.udpHost,
    hosts: config.webrtc.hosts,
    maxSessions: config.webrtc.maxSessions,
    lookup: (userPath, streamId) => {
      const stream = streams.byHlsPath(userPath, streamId);
      if (!stream) return undefined;
      const { input, transcoded } = sourcesOf(stream);
      // What viewers of HLS see: FFmpeg's output while it makes it (no B-frames), else the input as sent.
      return transcoded.active ? transcoded : input;
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
      streams.off('created', onCreated);
      for (const stream of streams.streams) sources.get(stream)?.transcoded.detach();
      whep.close();
    },
  };
}
