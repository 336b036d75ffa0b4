/**
 * The source interface every ingest implements (style rule 9: the stream declares what it needs): one
 * authorized publish yielding its start (codec configuration), access units in arrival order, configuration
 * changes, and an end. `stream/` attaches to a MediaSource and never sees RTMP, SRT or WHIP.
 */
import type { EndReason, PublishInfo } from '../contracts/publish.ts';
import type { TypedEmitter } from '../shared/typed-emitter.ts';
import type { AccessUnit, SourceStart, TrackConfig } from './access-unit.ts';

export type SourceEvents = {
  /** The first frame arrived; configurations that came before it are in the start. Emitted once. */
  start: [SourceStart];
  /** One frame, in arrival order, on the publisher's clock (repair happens in the stream). */
  au: [AccessUnit];
  /** A track's configuration changed mid-stream (new SPS/PPS, new AudioSpecificConfig). */
  config: [TrackConfig];
  /** The publish is over; emitted once. */
  end: [EndReason];
};

export interface SourceCounters {
  videoFrames: number;
  audioFrames: number;
  keyframes: number;
  mediaBytes: number;
}

/**
 * A packet transport's health for one publish (SRT, WHIP's RTP): what the metrics and the control API show
 * per stream. TCP ingests (RTMP) have none: the kernel hides retransmissions.
 */
export interface TransportStats {
  /** Which transport measured it. */
  transport: 'srt' | 'whip';
  /** Null where the receiver cannot measure it (WHIP: a receive-only peer sends no sender reports to answer). */
  rttMs: number | null;
  /** The negotiated receive latency (SRT's TSBPD); WHIP: the longest a gap holds packets for a retransmission. */
  latencyMs: number;
  packetsReceived: number;
  /** Sequence gaps seen (each lost packet once, whether recovered or not). */
  packetsLost: number;
  /** Packets that arrived again (retransmitted by the caller). */
  packetsRetransmitted: number;
  /** Packets given up on (too late or never retransmitted): a hole in the TS. */
  packetsDropped: number;
  receiveBufferPackets: number;
  receiveBufferCapacity: number;
}

export interface MediaSource extends TypedEmitter<SourceEvents> {
  readonly info: PublishInfo;
  /** Set once `start` was emitted. */
  readonly started: SourceStart | null;
  readonly ended: EndReason | null;
  /** Ask the publisher for a keyframe (WHIP: PLI/FIR); a no-op where the protocol cannot. */
  requestKeyframe?(): void;
  /**
   * Ends the publish because the relay cannot use it (a codec FFmpeg cannot decode), telling the publisher
   * why where the protocol can (RTMP: NetStream.Publish.Failed with `reason`); the source then ends.
   */
  refuse?(reason: string): void;
  /** The transport's counters, read at scrape time; absent where the transport has none (RTMP over TCP). */
  transportStats?(): TransportStats;
}
