/**
 * One WHEP viewer: a libdatachannel PeerConnection on the shared ICE UDP mux, answering a non-trickle offer
 * with a send-only H.264 track (packetization mode 1, from length-prefixed NAL units) and, when the offer can
 * receive it, a send-only Opus track. Each track's RTP goes through libdatachannel's media handler chain:
 * packetizer → RTCP sender reports (lip sync: each track maps its RTP clock to wall time) → NACK responder
 * (resends from the last NACK_HISTORY packets). The session only transports: what to send and when is the
 * stream output's business (./whep-output.ts).
 *
 * Lifecycle: `open()` resolves with the answer once ICE gathering completed (the answer then carries every
 * candidate); the session closes itself when the peer connection fails or closes, when it stays disconnected
 * past a grace, or when it never connects; `close()` is idempotent and reports once through '@close'.
 */

import { randomInt } from 'node:crypto';
import {
  Audio,
  H264RtpPacketizer,
  PeerConnection,
  RtcpNackResponder,
  RtcpSrReporter,
  RtpPacketizationConfig,
  RtpPacketizer,
  type Track,
  Video,
} from 'node-datachannel';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { TypedEmitter } from '../shared/typed-emitter.ts';
import { type IceHost, type WhepCodecChoice, withHostCandidates } from './sdp.ts';

/** RTP packets kept per track for NACK retransmission (~4 s of 1 Mbit/s video at 1200-byte packets). */
export const NACK_HISTORY = 512;
/** Largest RTP payload: below a 1500-byte MTU with IP, UDP, SRTP and header extensions. */
const MAX_FRAGMENT_SIZE = 1100;
const CNAME = 'rtmp-relay';

export type WhepSessionEvents = {
  /** The video track is open: media may flow. */
  ready: [];
  /** The viewer sent a PLI or FIR (it lost a reference): a keyframe would help. */
  keyframeRequest: [];
  '@close': [reason: string];
};

export interface WhepSessionOptions {
  id: string;
  offer: string;
  choice: WhepCodecChoice;
  /** The shared ICE UDP mux port and the address it is bound on. */
  udpPort: number;
  bindAddress: string;
  /** Announced candidates (WEBRTC_HOSTS); null announces what libdatachannel gathered. */
  hosts: readonly IceHost[] | null;
  log: Logger;
  /** How long gathering may take before the offer is refused. */
  gatherTimeoutMs?: number;
  /** How long the peer has to connect after the answer. */
  connectTimeoutMs?: number;
  /** How long a disconnected peer may take to come back. */
  disconnectGraceMs?: number;
}

interface OutTrack {
  track: Track;
  config: RtpPacketizationConfig;
  /** Random RTP timestamp origin (RFC 3550 §5.1). */
  offset: number;
  clock: number;
}

const randomSsrc = (): number => randomInt(1, 0xffff_ffff);

export class WhepSession extends TypedEmitter<WhepSessionEvents> {
  readonly id: string;
  readonly hasAudio: boolean;
  readonly #options: WhepSessionOptions;
  readonly #log: Logger;
  readonly #pc: PeerConnection;
  readonly #video: OutTrack;
  readonly #audio: OutTrack | null;
  #ready = false;
  #closed = false;
  #connectTimer: NodeJS.Timeout | null = null;
  #disconnectTimer: NodeJS.Timeout | null = null;
  #framesSent = 0;

  constructor(options: WhepSessionOptions) {
    super();
    this.#options = options;
    this.id = options.id;
    this.#log = options.log;
    this.#pc = new PeerConnection(`whep-${options.id}`, {
      iceServers: [],
      enableIceUdpMux: true,
      portRangeBegin: options.udpPort,
      portRangeEnd: options.udpPort,
      bindAddress: options.bindAddress,
    });
    const msid = `relay-${options.id}`;
    const { choice } = options;

    const videoSsrc = randomSsrc();
    const video = new Video(choice.video.mid, 'SendOnly');
    video.addH264Codec(choice.video.payloadType, choice.video.fmtpLine || undefined);
    video.addSSRC(videoSsrc, CNAME, msid, `${msid}-video`);
    const videoTrack = this.#pc.addTrack(video);
    const videoConfig = new RtpPacketizationConfig(videoSsrc, CNAME, choice.video.payloadType, 90_000);
    const packetizer = new H264RtpPacketizer('Length', videoConfig, MAX_FRAGMENT_SIZE);
    packetizer.addToChain(new RtcpSrReporter(videoConfig));
    packetizer.addToChain(new RtcpNackResponder(NACK_HISTORY));
    videoTrack.setMediaHandler(packetizer);
    this.#video = { track: videoTrack, config: videoConfig, offset: randomInt(0, 0xffff_ffff), clock: 90 };

    if (choice.audio) {
      const audioSsrc = randomSsrc();
      const audio = new Audio(choice.audio.mid, 'SendOnly');
      audio.addOpusCodec(choice.audio.payloadType, choice.audio.fmtpLine || undefined);
      audio.addSSRC(audioSsrc, CNAME, msid, `${msid}-audio`);
      const audioTrack = this.#pc.addTrack(audio);
      const audioConfig = new RtpPacketizationConfig(audioSsrc, CNAME, choice.audio.payloadType, 48_000);
      const audioPacketizer = new RtpPacketizer(audioConfig);
      audioPacketizer.addToChain(new RtcpSrReporter(audioConfig));
      audioPacketizer.addToChain(new RtcpNackResponder(NACK_HISTORY));
      audioTrack.setMediaHandler(audioPacketizer);
      this.#audio = { track: audioTrack, config: audioConfig, offset: randomInt(0, 0xffff_ffff), clock: 48 };
    } else this.#audio = null;
    this.hasAudio = this.#audio !== null;

    videoTrack.onOpen(() => {
      if (this.#closed || this.#ready) return;
      this.#ready = true;
      this.safeEmit('ready');
    });
    videoTrack.onMessage((msg) => this.#onRtcp(msg));
    // A close callback on every track: node-datachannel forgets a track (and releases what holds the event
    // loop open) only once its close was reported; without one, closed tracks keep the process alive and
    // its global list keeps pointers to them after they are collected.
    videoTrack.onClosed(() => {});
    this.#audio?.track.onClosed(() => {});
    this.#pc.onStateChange((state) => this.#onState(state));
  }

  get ready(): boolean {
    return this.#ready && !this.#closed;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get framesSent(): number {
    return this.#framesSent;
  }

  /**
   * Applies the offer and resolves with the answer once gathering completed (non-trickle). Throws
   * WEBRTC_NEGOTIATION_FAILED when libdatachannel refuses the offer or gathering does not finish in time.
   */
  async open(): Promise<string> {
    const gatherTimeoutMs = this.#options.gatherTimeoutMs ?? 5_000;
    let timer: NodeJS.Timeout | undefined;
    const gathered = new Promise<void>((resolve, reject) => {
      timer = setTimeout(
        () =>
          reject(
            new RelayError(ErrorCodes.WEBRTC_NEGOTIATION_FAILED, 'ICE gathering did not complete in time'),
          ),
        gatherTimeoutMs,
      );
      this.#pc.onGatheringStateChange((state) => {
        if (state === 'complete') resolve();
      });
    });
    try {
      this.#pc.setRemoteDescription(this.#options.offer, 'offer');
      if (this.#pc.gatheringState() !== 'complete') await gathered;
    } catch (err) {
      this.close('negotiation failed');
      if (err instanceof RelayError) throw err;
      throw new RelayError(
        ErrorCodes.WEBRTC_NEGOTIATION_FAILED,
        `the offer could not be applied: ${err instanceof Error ? err.message : String(err)}`,
        { cause: err },
      );
    } finally {
      clearTimeout(timer);
    }
    const local = this.#pc.localDescription();
    if (!local || this.#closed) {
      this.close('no answer');
      throw new RelayError(ErrorCodes.WEBRTC_NEGOTIATION_FAILED, 'no answer was produced');
    }
    this.#connectTimer = setTimeout(
      () => this.close('peer never connected'),
      this.#options.connectTimeoutMs ?? 15_000,
    );
    const { hosts } = this.#options;
    return hosts === null ? local.sdp : withHostCandidates(local.sdp, hosts, this.#options.udpPort);
  }

  /** Sends one length-prefixed H.264 access unit stamped at `timeMs` (the stream's media clock). */
  sendVideo(frame: Buffer, timeMs: number): void {
    if (this.#send(this.#video, frame, timeMs)) this.#framesSent++;
  }

  /** Sends one Opus packet stamped at `timeMs` (same clock as the video). */
  sendAudio(packet: Buffer, timeMs: number): void {
    if (this.#audio) this.#send(this.#audio, packet, timeMs);
  }

  #send(out: OutTrack, payload: Buffer, timeMs: number): boolean {
    if (!this.#ready || this.#closed || !out.track.isOpen()) return false;
    out.config.timestamp = (out.offset + Math.round(timeMs * out.clock)) >>> 0;
    try {
      return out.track.sendMessageBinary(payload);
    } catch (err) {
      // The transport went away under us (DTLS closed): the session is over, not the stream.
      this.close(`send failed: ${err instanceof Error ? err.message : String(err)}`);
      return false;
    }
  }

  /** RTCP the NACK responder did not consume: a PLI (PSFB FMT 1) or FIR (FMT 4) asks for a keyframe. */
  #onRtcp(msg: Buffer): void {
    let at = 0;
    while (at + 4 <= msg.length) {
      const fmt = msg[at]! & 0x1f;
      const type = msg[at + 1]!;
      if (msg[at]! >> 6 !== 2) return;
      if (type === 206 && (fmt === 1 || fmt === 4)) {
        this.safeEmit('keyframeRequest');
        return;
      }
      at += (msg.readUInt16BE(at + 2) + 1) * 4;
    }
  }

  #onState(state: string): void {
    if (this.#closed) return;
    this.#log.debug({ session: this.id, state }, 'WHEP peer state');
    if (state === 'connected') {
      this.#clearTimer('connect');
      this.#clearTimer('disconnect');
    } else if (state === 'disconnected') {
      this.#disconnectTimer ??= setTimeout(
        () => this.close('peer disconnected'),
        this.#options.disconnectGraceMs ?? 5_000,
      );
    } else if (state === 'failed' || state === 'closed') {
      this.close(`peer ${state}`);
    }
  }

  #clearTimer(which: 'connect' | 'disconnect'): void {
    if (which === 'connect' && this.#connectTimer) {
      clearTimeout(this.#connectTimer);
      this.#connectTimer = null;
    }
    if (which === 'disconnect' && this.#disconnectTimer) {
      clearTimeout(this.#disconnectTimer);
      this.#disconnectTimer = null;
    }
  }

  close(reason = 'closed'): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#clearTimer('connect');
    this.#clearTimer('disconnect');
    try {
      // Tracks first: their callbacks hold the event loop open until the native track is closed.
      this.#video.track.close();
      this.#audio?.track.close();
      this.#pc.close();
    } catch (err) {
      // Closing an already-failed native connection may throw; the session is gone either way.
      this.#log.debug({ session: this.id, err }, 'WHEP peer close threw');
    }
    this.safeEmit('@close', reason);
    this.removeAllListeners();
  }
}
