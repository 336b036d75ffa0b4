/**
 * One WHIP publish as a MediaSource (media/source.ts): a libdatachannel PeerConnection on the shared ICE UDP
 * mux answering a non-trickle send-only offer with receive-only H.264 (and Opus) tracks. Per track, RTP goes
 * through a jitter buffer (media/rtp-jitter.ts: reorder, NACK, give up after a bounded delay), then video
 * through the H.264 depacketizer (media/rtp-h264.ts) into access units; an Opus packet is one access unit.
 * `start` is emitted at the first keyframe once SPS and PPS are known (the avcC is built from them),
 * `config` when they change, `end` once.
 *
 * RTCP is ours (media/rtp-rtcp.ts), sent on the track with no libdatachannel media handler: receiver reports
 * every second with loss and jitter (the publisher's congestion control reads them) and LSR/DLSR from its
 * sender reports (so it knows the RTT), generic NACKs for missing packets, and a keyframe request (PLI; FIR
 * when a PLI went unanswered and the offer lists `ccm fir`) when a frame was lost for good or an output asks
 * (`requestKeyframe`), and when the GOP grows past `keyframeIntervalMs` (WebRTC encoders send keyframes only
 * when asked; HLS cuts segments at keyframes), at most one per KEYFRAME_REQUEST_MS. libdatachannel's RtcpReceivingSession answers
 * each SR with a report without loss or jitter and has no NACK; with it on the track, our own RTCP could
 * not be sent on a receive-only track.
 *
 * Times: each track's RTP clock is unwrapped and placed on one millisecond clock by the arrival time of its
 * first packet (both tracks come from one capture clock in the publisher; RTCP SR alignment is a refinement
 * left to do). The peer is gone when nothing (RTP or RTCP) came for `peerTimeoutMs`, or ICE fails: the
 * publish ends as a `disconnect` (the stream's reconnect window opens).
 */
import { randomBytes } from 'node:crypto';
import { Audio, PeerConnection, type Track, Video } from 'node-datachannel';
import type { EndReason, PublishInfo } from '../contracts/publish.ts';
import type { AudioConfig, SourceStart, VideoConfig } from '../media/access-unit.ts';
import { spsPictureSize } from '../media/avc-sps.ts';
import { buildAvcConfig } from '../media/nal.ts';
import { H264Depacketizer } from '../media/rtp-h264.ts';
import { type JitterCounters, type JitterOptions, RtpJitterBuffer } from '../media/rtp-jitter.ts';
import { parseRtp, type RtpPacket } from '../media/rtp-packet.ts';
import {
  fullIntraRequest,
  genericNack,
  isRtcp,
  parseSenderReports,
  pictureLossIndication,
  receiverReport,
} from '../media/rtp-rtcp.ts';
import { RtpReceiverStats } from '../media/rtp-stats.ts';
import type { MediaSource, SourceEvents, TransportStats } from '../media/source.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { type IceHost, type WhepCodecChoice, withHostCandidates } from './sdp.ts';

const KEYFRAME_REQUEST_MS = 1_000;
const REPORT_INTERVAL_MS = 1_000;
/** How often the jitter buffers are polled while they hold a gap (NACK retries, give-ups). */
const POLL_MS = 20;
export const DEFAULT_PEER_TIMEOUT_MS = 5_000;
/** Opus needs no NACK (a lost 20 ms frame is concealed) and must not wait long. */
const AUDIO_JITTER: Partial<JitterOptions> = { maxDelayMs: 60, maxNackRetries: 0 };

export interface WhipSessionOptions {
  info: PublishInfo;
  offer: string;
  choice: WhepCodecChoice;
  udpPort: number;
  bindAddress: string;
  hosts: readonly IceHost[] | null;
  log: Logger;
  gatherTimeoutMs?: number;
  /** No RTP or RTCP from the peer for this long ends the publish as a disconnect. */
  peerTimeoutMs?: number;
  /** Video jitter buffer settings (tests shorten them). */
  jitter?: Partial<JitterOptions>;
  /**
   * The offer lists `a=rtcp-fb:PT ccm fir`: a keyframe request that a PLI did not answer is repeated as a
   * FIR (some encoders honour only one of the two).
   */
  firAllowed?: boolean;
  /**
   * Ask for a keyframe when the last one is older than this (the HLS segment target): WebRTC encoders send
   * keyframes only when asked, and segments can only be cut at keyframes. Absent: only on loss and for outputs.
   */
  keyframeIntervalMs?: number;
}

/** What the control API and metrics may show of a WHIP publish's transport. */
export interface WhipTransportCounters {
  video: JitterCounters;
  audio: JitterCounters | null;
  keyframeRequests: { pli: number; fir: number };
  framesDropped: number;
  jitterMs: number;
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

/** One receive-only track's RTP side: its source SSRC, jitter buffer, report statistics, last SR. */
class Inbound {
  ssrc: number | null = null;
  readonly jitter: RtpJitterBuffer;
  readonly stats: RtpReceiverStats;
  readonly clock = new Unwrapper();
  offset: number | null = null;
  lastSr: { middle: number; at: number } | null = null;
  constructor(
    readonly track: Track,
    readonly payloadType: number,
    clockRate: number,
    jitter: Partial<JitterOptions>,
  ) {
    this.jitter = new RtpJitterBuffer(jitter);
    this.stats = new RtpReceiverStats(clockRate);
  }
}

export class WhipSession extends TypedEmitter<SourceEvents> implements MediaSource {
  readonly info: PublishInfo;
  readonly #options: WhipSessionOptions;
  readonly #log: Logger;
  readonly #pc: PeerConnection;
  readonly #video: Inbound;
  readonly #audio: Inbound | null;
  readonly #depacketizer = new H264Depacketizer();
  /** Our SSRC as the sender of RTCP (receive-only tracks have no media SSRC of their own). */
  readonly #ssrc = randomBytes(4).readUInt32BE(0);
  #wallBase: number | null = null;
  #started: SourceStart | null = null;
  #ended: EndReason | null = null;
  #record: Buffer | null = null;
  #lastKeyframeRequest = 0;
  #keyframeRequests = 0;
  #firSequence = 0;
  /** A keyframe request is out and no keyframe came since. */
  #awaitingKeyframe = false;
  /** When the last keyframe was emitted (wall clock). */
  #lastKeyframeAt = 0;
  #lastHeard = Date.now();
  #pollTimer: NodeJS.Timeout | null = null;
  #reportTimer: NodeJS.Timeout | null = null;

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
    if (options.firAllowed) video.parseSdpLine(`a=rtcp-fb:${choice.video.payloadType} ccm fir`);
    const videoTrack = this.#pc.addTrack(video);
    this.#video = new Inbound(videoTrack, choice.video.payloadType, 90_000, options.jitter ?? {});
    videoTrack.onMessage((msg) => this.#onMessage(this.#video, msg));
    videoTrack.onClosed(() => {}); // node-datachannel forgets a track only once its close is reported
    if (choice.audio) {
      const audio = new Audio(choice.audio.mid, 'RecvOnly');
      audio.addOpusCodec(choice.audio.payloadType, choice.audio.fmtpLine || undefined);
      const audioTrack = this.#pc.addTrack(audio);
      this.#audio = new Inbound(audioTrack, choice.audio.payloadType, 48_000, AUDIO_JITTER);
      audioTrack.onMessage((msg) => this.#onMessage(this.#audio!, msg));
      audioTrack.onClosed(() => {});
    } else this.#audio = null;
    this.#pc.onStateChange((state) => {
      if (state === 'failed' || state === 'closed')
        this.close({ kind: 'disconnect', message: `peer ${state}` });
    });
    this.#reportTimer = setInterval(() => this.#tick(), REPORT_INTERVAL_MS);
    this.#reportTimer.unref();
  }

  get started(): SourceStart | null {
    return this.#started;
  }

  get ended(): EndReason | null {
    return this.#ended;
  }

  get counters(): WhipTransportCounters {
    return {
      video: { ...this.#video.jitter.counters },
      audio: this.#audio ? { ...this.#audio.jitter.counters } : null,
      keyframeRequests: this.keyframeRequests,
      framesDropped: this.#depacketizer.dropped,
      jitterMs: this.#video.stats.jitterMs,
    };
  }

  /** The RTP side's health in the shape every packet transport shares (metrics, control API): both tracks. */
  transportStats(): TransportStats {
    const tracks = this.#audio ? [this.#video, this.#audio] : [this.#video];
    const sum = (read: (t: Inbound) => number): number => tracks.reduce((n, t) => n + read(t), 0);
    return {
      transport: 'whip',
      rttMs: null,
      latencyMs: this.#video.jitter.options.maxDelayMs,
      packetsReceived: sum((t) => t.jitter.counters.received),
      packetsLost: sum((t) => t.jitter.counters.missing),
      packetsRetransmitted: sum((t) => t.jitter.counters.recovered),
      packetsDropped: sum((t) => t.jitter.counters.lost),
      receiveBufferPackets: sum((t) => t.jitter.held),
      receiveBufferCapacity: sum((t) => t.jitter.options.maxPackets),
    };
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
    // The peer timeout counts from the answer: ICE and DTLS must finish within it too.
    this.#lastHeard = Date.now();
    const { hosts } = this.#options;
    return hosts === null ? local.sdp : withHostCandidates(local.sdp, hosts, this.#options.udpPort);
  }

  /** Asks the publisher for a keyframe (PLI, or FIR when negotiated); rate-limited. */
  requestKeyframe(): void {
    const now = Date.now();
    if (this.#ended || now - this.#lastKeyframeRequest < KEYFRAME_REQUEST_MS) return;
    const media = this.#video.ssrc;
    if (media === null) return; // nothing received yet: the first keyframe is on its way anyway
    this.#lastKeyframeRequest = now;
    this.#keyframeRequests++;
    const fir = this.#awaitingKeyframe && this.#options.firAllowed === true;
    this.#awaitingKeyframe = true;
    this.#send(
      this.#video,
      fir
        ? fullIntraRequest(this.#ssrc, media, this.#firSequence++)
        : pictureLossIndication(this.#ssrc, media),
    );
  }

  /** Keyframe requests sent (PLI and FIR). */
  get keyframeRequests(): { pli: number; fir: number } {
    return { pli: this.#keyframeRequests - this.#firSequence, fir: this.#firSequence };
  }

  #send(inbound: Inbound, rtcp: Buffer): void {
    try {
      inbound.track.sendMessageBinary(rtcp);
    } catch (err) {
      // The track is not open yet or closing: RTCP is advisory, the next report or request repeats it.
      this.#log.debug({ err }, 'WHIP: RTCP not sent');
    }
  }

  #onMessage(inbound: Inbound, msg: Buffer): void {
    if (this.#ended) return;
    const now = Date.now();
    this.#lastHeard = now;
    if (isRtcp(msg)) {
      for (const sr of parseSenderReports(msg)) {
        if (sr.ssrc === inbound.ssrc) inbound.lastSr = { middle: sr.ntpMiddle, at: now };
      }
      return;
    }
    const packet = parseRtp(msg);
    if (!packet || packet.payloadType !== inbound.payloadType) return;
    if (inbound.ssrc !== packet.ssrc) {
      // A new SSRC (the publisher restarted its encoder): a new numbering and clock.
      inbound.ssrc = packet.ssrc;
      inbound.lastSr = null;
    }
    this.#wallBase ??= now;
    inbound.stats.onPacket(packet.sequence, packet.timestamp, now);
    this.#deliver(inbound, inbound.jitter.push(packet, now), now);
    this.#schedulePoll();
  }

  #deliver(inbound: Inbound, packets: RtpPacket[], now: number): void {
    if (inbound === this.#video) {
      for (const p of packets) {
        for (const frame of this.#depacketizer.push(p)) {
          const ticks = inbound.clock.push(frame.timestamp);
          inbound.offset ??= now - this.#wallBase!;
          this.#emitVideo(frame.data, frame.keyframe, inbound.offset + ticks / 90);
        }
      }
      if (packets.length === 0) return;
      const interval = this.#options.keyframeIntervalMs;
      if (
        this.#depacketizer.needsKeyframe ||
        (interval !== undefined && this.#started && now - this.#lastKeyframeAt >= interval)
      )
        this.requestKeyframe();
    } else {
      for (const p of packets) this.#emitAudio(inbound, p, now);
    }
  }

  /** Polls the jitter buffers while they hold a gap: NACKs, then releases what waited too long. */
  #schedulePoll(): void {
    if (this.#pollTimer || this.#ended) return;
    if (this.#video.jitter.held === 0 && (this.#audio?.jitter.held ?? 0) === 0) return;
    this.#pollTimer = setTimeout(() => {
      this.#pollTimer = null;
      if (this.#ended) return;
      const now = Date.now();
      for (const inbound of [this.#video, this.#audio]) {
        if (!inbound) continue;
        const { released, nack } = inbound.jitter.poll(now);
        if (nack.length > 0 && inbound.ssrc !== null) {
          const packet = genericNack(this.#ssrc, inbound.ssrc, nack);
          if (packet) this.#send(inbound, packet);
        }
        this.#deliver(inbound, released, now);
      }
      this.#schedulePoll();
    }, POLL_MS);
  }

  /** Every second: receiver reports, and the peer-silence check. */
  #tick(): void {
    if (this.#ended) return;
    const now = Date.now();
    if (now - this.#lastHeard > (this.#options.peerTimeoutMs ?? DEFAULT_PEER_TIMEOUT_MS)) {
      this.close({ kind: 'disconnect', message: 'the peer went silent' });
      return;
    }
    for (const inbound of [this.#video, this.#audio]) {
      if (!inbound || inbound.ssrc === null) continue;
      const sr = inbound.lastSr;
      const block = inbound.stats.report(
        inbound.ssrc,
        sr?.middle ?? 0,
        sr ? ((now - sr.at) * 65536) / 1000 : 0,
      );
      if (block) this.#send(inbound, receiverReport(this.#ssrc, [block]));
    }
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
      const audio: AudioConfig | null = this.#audio ? webrtcOpusConfig() : null;
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
    if (keyframe) {
      this.#awaitingKeyframe = false;
      this.#lastKeyframeAt = Date.now();
    }
    this.safeEmit('au', { track: 'video', dts: time, pts: time, keyframe, data });
  }

  #emitAudio(inbound: Inbound, packet: RtpPacket, now: number): void {
    // Audio before the first video keyframe is dropped: the stream starts at a keyframe.
    if (!this.#started || packet.payload.length === 0) return;
    const ticks = inbound.clock.push(packet.timestamp);
    inbound.offset ??= now - this.#wallBase!;
    const time = inbound.offset + ticks / 48;
    this.safeEmit('au', {
      track: 'audio',
      dts: time,
      pts: time,
      keyframe: true,
      data: Buffer.from(packet.payload),
    });
  }

  /** Ends the publish (DELETE and silence: `disconnect`, the stream waits for the publisher); idempotent. */
  close(reason: EndReason = { kind: 'disconnect' }): void {
    if (this.#ended) return;
    this.#ended = reason;
    if (this.#pollTimer) clearTimeout(this.#pollTimer);
    if (this.#reportTimer) clearInterval(this.#reportTimer);
    this.#pollTimer = null;
    this.#reportTimer = null;
    try {
      this.#video.track.close();
      this.#audio?.track.close();
      this.#pc.close();
    } catch (err) {
      // Closing an already-failed native connection may throw; the publish is over either way.
      this.#log.debug({ err }, 'WHIP peer close threw');
    }
    this.safeEmit('end', reason);
  }
}

/**
 * Opus as WebRTC sends it: 48 kHz, 20 ms frames; stereo in the decoder's configuration (Chromium's
 * `opus/48000/2`), which also decodes mono packets. No OpusHead arrives over RTP; the CMAF writer builds
 * the dOps box from these numbers.
 */
export function webrtcOpusConfig(): AudioConfig {
  return {
    kind: 'audio',
    codec: 'opus',
    config: Buffer.alloc(0),
    sampleRate: 48_000,
    channels: 2,
    frameSamples: 960,
  };
}
