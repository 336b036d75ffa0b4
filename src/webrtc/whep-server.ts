/**
 * The WHEP side of the relay's WebRTC: owns the shared ICE UDP port, every WHEP session (by an unguessable
 * id) and one output per watched stream. `offer()` turns an SDP offer for a stream into a session and its
 * answer, refusing with a stable code what cannot play (unknown stream, no video yet, B-frames, no H.264,
 * too many sessions); `remove()` ends a session (the WHEP DELETE). HTTP lives in ./whep-routes.ts; this
 * module knows nothing of fastify.
 *
 * Ownership (style rule 4): server → outputs → sessions. A session reports its end through '@close'; an
 * output with no session left detaches from its stream and is dropped; `close()` closes them all and frees
 * the port.
 */
import { randomBytes } from 'node:crypto';
import { lookup as dnsLookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { isVideoConfig } from '../media/access-unit.ts';
import type { WebrtcHostEntry } from '../shared/config.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { hasReorderedFrames, parseAvcC } from './h264-frames.ts';
import { IceUdpPort } from './ice-port.ts';
import { chooseWhepCodecs, type IceHost, parseOffer } from './sdp.ts';
import { type OpusEncoderFactory, type StartMode, WhepOutput } from './whep-output.ts';
import { WhepSession } from './whep-session.ts';
import type { WhepSourceStream } from './whep-source.ts';

export interface WhepServerOptions {
  /** WEBRTC_UDP_PORT; 0 picks a free one. */
  udpPort: number;
  /** Where the UDP port is bound (default 0.0.0.0). */
  bindAddress?: string;
  /** WEBRTC_HOSTS; null announces the candidates libdatachannel gathers on the host's interfaces. */
  hosts: readonly WebrtcHostEntry[] | null;
  /** The stream at a WHEP path, if one is live there. */
  lookup: (userPath: string, streamId: string) => WhepSourceStream | undefined;
  log: Logger;
  /** Most WHEP sessions at once, over every stream (default 500). */
  maxSessions?: number;
  startMode?: StartMode;
  /** AAC → Opus for AAC sources; null or absent: video only for them. */
  opus?: OpusEncoderFactory | null;
  gatherTimeoutMs?: number;
  connectTimeoutMs?: number;
  disconnectGraceMs?: number;
}

export interface WhepOffer {
  sessionId: string;
  answer: string;
}

interface SessionEntry {
  session: WhepSession;
  userPath: string;
  streamId: string;
}

/** Resolves host names to addresses once at start (a candidate must carry an IP for every browser). */
async function resolveHosts(entries: readonly WebrtcHostEntry[]): Promise<IceHost[]> {
  return Promise.all(
    entries.map(async (e) => {
      const address = isIP(e.host) ? e.host : (await dnsLookup(e.host)).address;
      return e.port === undefined ? { address } : { address, port: e.port };
    }),
  );
}

export class WhepServer {
  readonly #options: WhepServerOptions;
  readonly #log: Logger;
  readonly #ice: IceUdpPort;
  readonly #hosts: IceHost[] | null;
  readonly #sessions = new Map<string, SessionEntry>();
  readonly #outputs = new Map<WhepSourceStream, WhepOutput>();
  readonly #maxSessions: number;
  #closed = false;

  private constructor(options: WhepServerOptions, ice: IceUdpPort, hosts: IceHost[] | null) {
    this.#options = options;
    this.#log = options.log;
    this.#ice = ice;
    this.#hosts = hosts;
    this.#maxSessions = options.maxSessions ?? 500;
  }

  /** Binds the UDP port and resolves the announced hosts; throws WEBRTC_UDP_PORT_FAILED or CONFIG_INVALID. */
  static async start(options: WhepServerOptions): Promise<WhepServer> {
    let hosts: IceHost[] | null = null;
    try {
      hosts = options.hosts === null ? null : await resolveHosts(options.hosts);
    } catch (err) {
      throw new RelayError(ErrorCodes.CONFIG_INVALID, `WEBRTC_HOSTS: ${(err as Error).message}`, {
        cause: err,
      });
    }
    const ice = await IceUdpPort.open(options.udpPort, options.bindAddress ?? '0.0.0.0', options.log);
    options.log.info({ udpPort: ice.port, hosts }, 'WebRTC UDP port bound');
    return new WhepServer(options, ice, hosts);
  }

  get udpPort(): number {
    return this.#ice.port;
  }

  /** Where the shared UDP port is bound and what answers announce: WHIP sessions use the same (./whip-server.ts). */
  get ice(): { udpPort: number; bindAddress: string; hosts: readonly IceHost[] | null } {
    return { udpPort: this.#ice.port, bindAddress: this.#ice.address, hosts: this.#hosts };
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** Streams with at least one WHEP viewer. */
  get outputCount(): number {
    return this.#outputs.size;
  }

  /** Streams whose AAC → Opus encoder runs now. */
  get encoderCount(): number {
    return [...this.#outputs.values()].filter((o) => o.encoding).length;
  }

  /** STUN requests on the UDP port that matched no session (scans, stale peers). */
  get unhandledStunRequests(): number {
    return this.#ice.unhandledStunRequests;
  }

  /** Whether a session exists and belongs to that stream path (a DELETE must name its own stream). */
  has(sessionId: string, userPath: string, streamId: string): boolean {
    const entry = this.#sessions.get(sessionId);
    return entry !== undefined && entry.userPath === userPath && entry.streamId === streamId;
  }

  /**
   * A new viewer of the stream at (userPath, streamId): parses the offer, checks the stream can play over
   * WebRTC, and resolves with the session id and the complete (non-trickle) answer.
   */
  async offer(userPath: string, streamId: string, sdp: string): Promise<WhepOffer> {
    if (this.#closed) throw new RelayError(ErrorCodes.WEBRTC_CLOSED, 'the WebRTC server is closing');
    const parsed = parseOffer(sdp);
    const source = this.#options.lookup(userPath, streamId);
    if (!source || source.ended) {
      throw new RelayError(ErrorCodes.WEBRTC_STREAM_NOT_FOUND, `no live stream at ${userPath}/${streamId}`);
    }
    const { video } = source.tracks();
    if (!isVideoConfig(video)) {
      throw new RelayError(
        ErrorCodes.WEBRTC_STREAM_NOT_READY,
        video ? `the stream's video (${video.codec}) cannot play over WebRTC` : 'the stream has no video yet',
      );
    }
    if (video.codec !== 'h264') {
      throw new RelayError(
        ErrorCodes.WEBRTC_STREAM_NOT_READY,
        `the stream's video is ${video.codec}, not H.264`,
      );
    }
    const gop = source.recentGop().filter((au) => au.track === 'video');
    if (hasReorderedFrames(gop)) {
      throw new RelayError(
        ErrorCodes.WEBRTC_B_FRAMES,
        'the stream has B-frames, which WebRTC players cannot decode; it plays over WHEP once transcoded ' +
          '(publish with ?profile=transcode, or without B-frames)',
      );
    }
    const choice = chooseWhepCodecs(parsed, parseAvcC(video.record).profileIdc);
    if (this.#sessions.size >= this.#maxSessions) {
      throw new RelayError(ErrorCodes.WEBRTC_TOO_MANY_SESSIONS, `at most ${this.#maxSessions} WHEP sessions`);
    }

    const id = randomBytes(18).toString('base64url');
    const session = new WhepSession({
      id,
      offer: sdp,
      choice,
      udpPort: this.#ice.port,
      bindAddress: this.#ice.address,
      hosts: this.#hosts,
      log: this.#log,
      ...(this.#options.gatherTimeoutMs ? { gatherTimeoutMs: this.#options.gatherTimeoutMs } : {}),
      ...(this.#options.connectTimeoutMs ? { connectTimeoutMs: this.#options.connectTimeoutMs } : {}),
      ...(this.#options.disconnectGraceMs ? { disconnectGraceMs: this.#options.disconnectGraceMs } : {}),
    });
    this.#sessions.set(id, { session, userPath, streamId });
    session.on('@close', (reason) => {
      this.#sessions.delete(id);
      this.#log.info({ session: id, userPath, streamId, reason }, 'WHEP session closed');
    });
    let answer: string;
    try {
      answer = await session.open();
    } catch (err) {
      session.close('negotiation failed');
      throw err;
    }
    if (this.#closed || session.closed) {
      session.close('server closing');
      throw new RelayError(ErrorCodes.WEBRTC_CLOSED, 'the session closed during negotiation');
    }
    this.#outputFor(source).add(session);
    this.#log.info({ session: id, userPath, streamId, audio: session.hasAudio }, 'WHEP session opened');
    return { sessionId: id, answer };
  }

  #outputFor(source: WhepSourceStream): WhepOutput {
    const existing = this.#outputs.get(source);
    if (existing && !existing.closed) return existing;
    const output = new WhepOutput({
      source,
      log: this.#log,
      ...(this.#options.startMode ? { startMode: this.#options.startMode } : {}),
      opus: this.#options.opus ?? null,
    });
    output.on('@empty', () => {
      if (this.#outputs.get(source) === output) this.#outputs.delete(source);
    });
    this.#outputs.set(source, output);
    return output;
  }

  /** Ends a session (WHEP DELETE); false when there is none with that id. */
  remove(sessionId: string): boolean {
    const entry = this.#sessions.get(sessionId);
    if (!entry) return false;
    entry.session.close('deleted by the viewer');
    return true;
  }

  /** Closes every session of one stream (it moved to another relay, or an operator stopped it). */
  closeStream(userPath: string, streamId: string, reason: string): void {
    for (const entry of [...this.#sessions.values()]) {
      if (entry.userPath === userPath && entry.streamId === streamId) entry.session.close(reason);
    }
  }

  /** Closes every session and output and frees the UDP port; idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const output of [...this.#outputs.values()]) output.close('server closing');
    for (const entry of [...this.#sessions.values()]) entry.session.close('server closing');
    this.#outputs.clear();
    this.#sessions.clear();
    this.#ice.close();
  }
}
