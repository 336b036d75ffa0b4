/**
 * One WHIP publish as a MediaSource (media/source.ts): a libdatachannel PeerConnection on the shared ICE UDP
 * mux answering a non-trickle send-only offer with receive-only H.264 (and Opus) tracks. RTP arrives on the
 * tracks (RtcpReceivingSession sends receiver reports and carries our PLIs), goes through a small reorder
 * buffer, then the H.264 depacketizer (media/rtp-h264.ts) into access units; Opus packets are access units
 * as they are. `start` is emitted at the first keyframe once SPS and PPS are known (the avcC is built from
 * them), `config` when they change, `end` once.
 *
 * Times: each track's RTP clock is unwrapped and placed on one millisecond clock by the arrival time of its
 * first packet (both tracks come from one capture clock in the publisher; RTCP SR alignment is a refinement
 * left to do). Loss: a gap the reorder buffer cannot fill within REORDER_WAIT_MS drops frames until a
 * keyframe, and a PLI asks for one (at most one per KEYFRAME_REQUEST_MS). NACK generation is not done yet.
 *
 * Status: first cut (issue 18). Signalling and authorization are ./whip-server.ts and ./whip-routes.ts; the
 * reorder buffer only moves on when a packet arrives (a stalled publisher's last gap waits for the next one),
 * and the peer going silent is noticed only through the ICE state (no media timeout yet).
 */
import { Audio, PeerConnection, RtcpReceivingSession, type Track, Video } from 'node-datachannel';
import type { EndReason, PublishInfo } from '../contracts/publish.ts';
import type { AudioConfig, SourceStart, VideoConfig } from '../media/access-unit.ts';
import { spsPictureSize } from '../media/avc-sps.ts';
import { buildAvcConfig } from '../media/nal.ts';
import { H264Depacketizer } from '../media/rtp-h264.ts';
import { parseRtp, type RtpPacket, seqAfter } from '../media/rtp-packet.ts';
import type { MediaSource, SourceEvents } from '../media/source.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { type IceHost, type WhepCodecChoice, withHostCandidates } from './sdp.ts';

const REORDER_MAX_PACKETS = 128;
const REORDER_WAIT_MS = 60;
const KEYFRAME_REQUEST_MS = 1_000;

export interface WhipSessionOptions {
  info: PublishInfo;
  offer: string;
  choice: WhepCodecChoice;
  udpPort: number;
  bindAddress: string;
  hosts: readonly IceHost[] | null;
  log: Logger;
  gatherTimeoutMs?: number;
}

/** RTP timestamps unwrapped to a growing number, in the track's clock units. */
class Unwrapper {
  #last: number | null = null;
  #value = 0;
  push(ts: number): number {
    if (this.#last === null) this.#value = 0;
    else this.#value += (ts - this.#last) | 0;
    this.#last = ts;
    return this.#value;
  }
}

/** Releases packets in sequence order; waits a little for a missing one, then gives up on it. */
class ReorderBuffer {
  #next: number | null = null;
  readonly #held = new Map<number, { packet: RtpPacket; at: number }>();

  push(packet: RtpPacket, now: number): RtpPacket[] {
    if (this.#next !== null && !seqAfter(packet.sequence, (this.#next - 1) & 0xffff)) return []; // late
    if (this.#held.size < REORDER_MAX_PACKETS) this.#held.set(packet.sequence, { packet, at: now });
    this.#next ??= packet.sequence;
    return this.#drain(now);
  }

  #drain(now: number): RtpPacket[] {
    const out: RtpPacket[] = [];
    for (;;) {
      const next = this.#next!;
      const hit = this.#held.get(next);
      if (hit) {
        this.#held.delete(next);
        out.push(hit.packet);
        this.#next = (next + 1) & 0xffff;
        continue;
      }
      if (this.#held.size === 0) break;
      const oldest = Math.min(...[...this.#held.values()].map((h) => h.at));
      if (this.#held.size < REORDER_MAX_PACKETS && now - oldest < REORDER_WAIT_MS) break;
      // Give up on the missing packet: skip to the lowest held one.
      let lowest: number | null = null;
      for (const seq of this.#held.keys()) if (lowest === null || seqAfter(lowest, seq)) lowest = seq;
      this.#next = lowest;
    }
    return out;
  }
}

export class WhipSession extends TypedEmitter<SourceEvents> implements MediaSource {
  readonly info: PublishInfo;
  readonly #options: WhipSessionOptions;
  readonly #log: Logger;
  readonly #pc: PeerConnection;
  readonly #video: Track;
  readonly #audio: Track | null;
  readonly #depacketizer = new H264Depacketizer();
  readonly #reorder = new ReorderBuffer();
  readonly #videoClock = new Unwrapper();
  readonly #audioClock = new Unwrapper();
  #wallBase: number | null = null;
  #videoOffset: number | null = null;
  #audioOffset: number | null = null;
  #started: SourceStart | null = null;
  #ended: EndReason | null = null;
  #record: Buffer | null = null;
  #lastKeyframeRequest = 0;

  constructor(options: WhipSessionOptions) {
    super();
    this.#options = options;
    this.info = options.info;
    this.#log = options.log;
    this.#pc = new PeerConnection(`whip-${options.info.id}`, {
      iceServers: [],
      enableIceUdpMux: true,
      portRangeBegin: options.udpPort,
      portRangeEnd: options.udpPort,
      bindAddress: options.bindAddress,
    });
    const { choice } = options;
    const video = new Video(choice.video.mid, 'RecvOnly');
    video.addH264Codec(choice.video.payloadType, choice.video.fmtpLine || undefined);
    this.#video = this.#pc.addTrack(video);
    this.#video.setMediaHandler(new RtcpReceivingSession());
    this.#video.onMessage((msg) => this.#onVideo(msg));
    this.#video.onClosed(() => {}); // node-datachannel forgets a track only once its close is reported
    if (choice.audio) {
      const audio = new Audio(choice.audio.mid, 'RecvOnly');
      audio.addOpusCodec(choice.audio.payloadType, choice.audio.fmtpLine || undefined);
      this.#audio = this.#pc.addTrack(audio);
      this.#audio.setMediaHandler(new RtcpReceivingSession());
      this.#audio.onMessage((msg) => this.#onAudio(msg));
      this.#audio.onClosed(() => {});
    } else this.#audio = null;
    this.#pc.onStateChange((state) => {
      if (state === 'failed' || state === 'closed')
        this.close({ kind: 'disconnect', message: `peer ${state}` });
    });
  }

  get started(): SourceStart | null {
    return this.#started;
  }

  get ended(): EndReason | null {
    return this.#ended;
  }

  /** Applies the offer; resolves with the complete answer (non-trickle). */
  async open(): Promise<string> {
    let timer: NodeJS.Timeout | undefined;
    const gathered = new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () => reject(new RelayError(ErrorCodes.WEBRTC_NEGOTIATION_FAILED, 'ICE gathering did not complete')),
        this.#options.gatherTimeoutMs ?? 5_000,
      );
      this.#pc.onGatheringStateChange((s) => {
        if (s === 'complete') resolve();
      });
    });
    try {
      this.#pc.setRemoteDescription(this.#options.offer, 'offer');
      if (this.#pc.gatheringState() !== 'complete') await gathered;
    } catch (err) {
      this.close({ kind: 'error', code: ErrorCodes.WEBRTC_NEGOTIATION_FAILED });
      throw err instanceof RelayError
        ? err
        : new RelayError(ErrorCodes.WEBRTC_NEGOTIATION_FAILED, String(err), { cause: err });
    } finally {
      clearTimeout(timer);
    }
    const local = this.#pc.localDescription();
    if (!local) throw new RelayError(ErrorCodes.WEBRTC_NEGOTIATION_FAILED, 'no answer was produced');
    const { hosts } = this.#options;
    return hosts === null ? local.sdp : withHostCandidates(local.sdp, hosts, this.#options.udpPort);
  }

  requestKeyframe(): void {
    const now = Date.now();
    if (now - this.#lastKeyframeRequest < KEYFRAME_REQUEST_MS || this.#ended) return;
    this.#lastKeyframeRequest = now;
    try {
      this.#video.requestKeyframe();
    } catch (err) {
      this.#log.debug({ err }, 'WHIP: PLI not sent');
    }
  }

  #time(offset: number | null, clockTicks: number, perMs: number): number {
    return (offset ?? 0) + clockTicks / perMs;
  }

  #onVideo(msg: Buffer): void {
    if (this.#ended) return;
    const packet = parseRtp(msg);
    if (!packet || packet.payloadType !== this.#options.choice.video.payloadType) return;
    const now = Date.now();
    this.#wallBase ??= now;
    for (const p of this.#reorder.push(packet, now)) {
      for (const frame of this.#depacketizer.push(p)) {
        const ticks = this.#videoClock.push(frame.timestamp);
        this.#videoOffset ??= now - this.#wallBase;
        this.#emitVideo(frame.data, frame.keyframe, this.#time(this.#videoOffset, ticks, 90));
      }
    }
    if (this.#depacketizer.needsKeyframe) this.requestKeyframe();
  }

  #emitVideo(data: Buffer, keyframe: boolean, time: number): void {
    const { sps, pps } = this.#depacketizer;
    if (!this.#started) {
      if (!keyframe || !sps || !pps) return;
      this.#record = buildAvcConfig([sps], [pps]);
      const size = spsPictureSize(sps);
      const video: VideoConfig = {
        kind: 'video',
        codec: 'h264',
        record: this.#record,
        width: size?.width ?? 0,
        height: size?.height ?? 0,
      };
      const audio: AudioConfig | null = this.#audio
        ? {
            kind: 'audio',
            codec: 'opus',
            config: Buffer.alloc(0),
            sampleRate: 48_000,
            channels: 2,
            frameSamples: 960,
          }
        : null;
      this.#started = { video, audio, hasVideo: true, hasAudio: audio !== null, metadata: null };
      this.safeEmit('start', this.#started);
    } else if (keyframe && sps && pps) {
      const record = buildAvcConfig([sps], [pps]);
      if (!this.#record?.equals(record)) {
        this.#record = record;
        const size = spsPictureSize(sps);
        this.safeEmit('config', {
          kind: 'video',
          codec: 'h264',
          record,
          width: size?.width ?? 0,
          height: size?.height ?? 0,
        });
      }
    }
    this.safeEmit('au', { track: 'video', dts: time, pts: time, keyframe, data });
  }

  #onAudio(msg: Buffer): void {
    if (this.#ended || !this.#started || !this.#options.choice.audio) return;
    const packet = parseRtp(msg);
    if (
      !packet ||
      packet.payloadType !== this.#options.choice.audio.payloadType ||
      packet.payload.length === 0
    )
      return;
    const now = Date.now();
    this.#wallBase ??= now;
    const ticks = this.#audioClock.push(packet.timestamp);
    this.#audioOffset ??= now - this.#wallBase;
    const time = this.#time(this.#audioOffset, ticks, 48);
    this.safeEmit('au', {
      track: 'audio',
      dts: time,
      pts: time,
      keyframe: true,
      data: Buffer.from(packet.payload),
    });
  }

  /** Ends the publish (DELETE: `unpublish`); idempotent. */
  close(reason: EndReason = { kind: 'unpublish' }): void {
    if (this.#ended) return;
    this.#ended = reason;
    try {
      this.#video.close();
      this.#audio?.close();
      this.#pc.close();
    } catch (err) {
      // Closing an already-failed native connection may throw; the publish is over either way.
      this.#log.debug({ err }, 'WHIP peer close threw');
    }
    this.safeEmit('end', reason);
  }
}
