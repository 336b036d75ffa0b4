/**
 * One stream's stats in the contract's shape (`StreamStats`): what the control API lists and what each
 * heartbeat carries to the cloud's dashboard. One function so both always say the same thing. Also the live
 * publish's transport counters (SRT), for the metrics and the control API.
 */
import type { StreamStats } from '../contracts/relay-api.ts';
import type { TransportStats } from '../media/source.ts';
import type { Stream } from '../stream/stream.ts';
import type { ViewerTracker } from './viewers.ts';

export function streamStats(stream: Stream, viewers: ViewerTracker | undefined, now: number): StreamStats {
  const ingest = stream.ingest.snapshot();
  const stats: StreamStats = {
    profile: stream.profile,
    uptimeSeconds: Math.max(0, Math.round((now - stream.createdAt) / 1000)),
    segments: stream.packager.stats.segments,
    viewers: viewers?.count(stream.key, now) ?? 0,
  };
  if (stream.pipelineProfile) stats.pipelineProfile = stream.pipelineProfile;
  if (ingest.videoCodec) stats.videoCodec = ingest.videoCodec;
  if (ingest.audioCodec) stats.audioCodec = ingest.audioCodec;
  if (ingest.width) stats.width = ingest.width;
  if (ingest.height) stats.height = ingest.height;
  if (ingest.fps !== undefined) stats.fps = ingest.fps;
  if (ingest.keyframeIntervalSeconds !== undefined) {
    stats.keyframeIntervalSeconds = ingest.keyframeIntervalSeconds;
  }
  if (ingest.bitrateKbps !== undefined) stats.bitrateKbps = ingest.bitrateKbps;
  // `info` checked too: a source without one (a test fake) says nothing of its protocol.
  const source = stream.source;
  if (source?.info && !source.ended) stats.protocol = source.info.protocol ?? 'rtmp';
  return stats;
}

/**
 * The live publish's transport counters (SRT: RTT, loss, retransmissions, drops, receive buffer), or null
 * when nothing publishes now or its transport has none (RTMP). Only the fields every transport shares, so
 * what the control API answers does not change with a transport's internals.
 */
export function streamTransport(stream: Stream): TransportStats | null {
  const t = stream.source?.transportStats?.();
  if (!t) return null;
  return {
    transport: t.transport,
    rttMs: t.rttMs,
    latencyMs: t.latencyMs,
    packetsReceived: t.packetsReceived,
    packetsLost: t.packetsLost,
    packetsRetransmitted: t.packetsRetransmitted,
    packetsDropped: t.packetsDropped,
    receiveBufferPackets: t.receiveBufferPackets,
    receiveBufferCapacity: t.receiveBufferCapacity,
  };
}
