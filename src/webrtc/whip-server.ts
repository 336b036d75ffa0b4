/**
 * WHIP ingest sessions (issue 18): authorizes a publish before any ICE (the same hook as RTMP and SRT:
 * `AuthorizePublish` from contracts/publish.ts), answers the offer with a WhipSession on the shared ICE UDP
 * port (one port for every WebRTC session), and hands the session to the owner as a MediaSource
 * (`onPublish`: the stream registry attaches it to the stream of its key).
 *
 * Takeover as RTMP does it: a new authorized publish of a key ends the key's previous WHIP session
 * (`takeover`) once the new answer exists (the glasses retry while the old peer may still be half there).
 * A DELETE, or the peer going silent for `peerTimeoutMs`, ends a session as a `disconnect`: the publisher is
 * gone and the stream's reconnect window opens; the stream is not over. HTTP is ./whip-routes.ts.
 */
import { randomBytes } from 'node:crypto';
import { isValidStreamId, isValidUserId } from '../contracts/names.ts';
import type { AuthorizePublish } from '../contracts/publish.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { chooseWhipCodecs, type IceHost, parseOffer } from './sdp.ts';
import { WhipSession, type WhipSessionOptions } from './whip-session.ts';

export interface WhipServerOptions {
  ice: { udpPort: number; bindAddress: string; hosts: readonly IceHost[] | null };
  authorize: AuthorizePublish;
  /** A new authorized publish, before its media: the owner attaches it to the stream. */
  onPublish: (source: WhipSession) => void;
  log: Logger;
  maxSessions?: number;
  /** No RTP or RTCP from a peer for this long ends its publish (WEBRTC_PEER_TIMEOUT_SECONDS). */
  peerTimeoutMs?: number;
  /** Ask a publisher for a keyframe when its GOP grows past this (the HLS segment target). */
  keyframeIntervalMs?: number;
  /** Video jitter buffer settings (tests). */
  jitter?: WhipSessionOptions['jitter'];
}

export interface WhipServerCounters {
  published: number;
  refused: number;
  takeovers: number;
  deleted: number;
}

export class WhipServer {
  readonly #options: WhipServerOptions;
  readonly #sessions = new Map<string, { session: WhipSession; key: string }>();
  /** The live session of each key (the newest authorized). */
  readonly #live = new Map<string, WhipSession>();
  readonly counters: WhipServerCounters = { published: 0, refused: 0, takeovers: 0, deleted: 0 };
  #nextId = 1;
  #closed = false;

  constructor(options: WhipServerOptions) {
    this.#options = options;
  }

  get sessionCount(): number {
    return this.#sessions.size;
  }

  /** The live WHIP publishes (one per key). */
  get sessions(): WhipSession[] {
    return [...this.#live.values()];
  }

  /**
   * An offer to publish `live/{userId}/{streamId}`: names checked, then the token (401 before any ICE),
   * then the offer; resolves with the session id and the complete answer.
   */
  async publish(
    userId: string,
    streamId: string,
    token: string | undefined,
    sdp: string,
    remoteAddress: string,
    params: Record<string, string> = {},
  ): Promise<{ sessionId: string; answer: string }> {
    if (this.#closed) throw new RelayError(ErrorCodes.WEBRTC_CLOSED, 'the WebRTC server is closing');
    if (!isValidUserId(userId) || !isValidStreamId(streamId)) {
      throw new RelayError(ErrorCodes.WEBRTC_STREAM_NOT_FOUND, 'not a valid publish path');
    }
    const key = `live/${userId}/${streamId}`;
    const decision = await this.#options.authorize({
      key,
      userId,
      streamId,
      token,
      params,
      remoteAddress,
      protocol: 'whip',
    });
    if (!decision.allow) {
      this.counters.refused++;
      // The name or its parameters broke a rule (a 400, the rule said), or the token was refused (401).
      const code = decision.badName ? ErrorCodes.WEBRTC_PUBLISH_REFUSED : ErrorCodes.WEBRTC_UNAUTHORIZED;
      throw new RelayError(code, decision.reason);
    }
    if (this.#closed) throw new RelayError(ErrorCodes.WEBRTC_CLOSED, 'the WebRTC server is closing');
    const offer = parseOffer(sdp);
    const choice = chooseWhipCodecs(offer);
    const feedback =
      offer.media
        .find((m) => m.mid === choice.video.mid)
        ?.codecs.find((c) => c.payloadType === choice.video.payloadType)?.feedback ?? [];
    if (this.#sessions.size >= (this.#options.maxSessions ?? 200)) {
      throw new RelayError(ErrorCodes.WEBRTC_TOO_MANY_SESSIONS, 'too many WHIP sessions');
    }
    const sessionId = randomBytes(18).toString('base64url');
    const { ice } = this.#options;
    const session = new WhipSession({
      info: {
        id: this.#nextId++,
        key,
        userId,
        streamId,
        params,
        remoteAddress,
        startedAt: Date.now(),
        protocol: 'whip',
      },
      offer: sdp,
      choice,
      udpPort: ice.udpPort,
      bindAddress: ice.bindAddress,
      hosts: ice.hosts,
      log: this.#options.log,
      firAllowed: feedback.includes('ccm fir'),
      ...(this.#options.peerTimeoutMs !== undefined ? { peerTimeoutMs: this.#options.peerTimeoutMs } : {}),
      ...(this.#options.jitter ? { jitter: this.#options.jitter } : {}),
      ...(this.#options.keyframeIntervalMs !== undefined
        ? { keyframeIntervalMs: this.#options.keyframeIntervalMs }
        : {}),
    });
    this.#sessions.set(sessionId, { session, key });
    session.once('end', () => {
      this.#sessions.delete(sessionId);
      if (this.#live.get(key) === session) this.#live.delete(key);
    });
    const answer = await session.open();
    if (this.#closed || session.ended) {
      session.close({ kind: 'server-close' });
      throw new RelayError(ErrorCodes.WEBRTC_CLOSED, 'the WebRTC server is closing');
    }
    const previous = this.#live.get(key);
    this.#live.set(key, session);
    if (previous) {
      this.counters.takeovers++;
      this.#options.log.info({ key }, 'WHIP publish taken over by a newer one');
      previous.close({ kind: 'takeover' });
    }
    this.counters.published++;
    this.#options.onPublish(session);
    return { sessionId, answer };
  }

  /** Whether a session exists and publishes that key (a DELETE must name its own stream). */
  has(sessionId: string, key: string): boolean {
    return this.#sessions.get(sessionId)?.key === key;
  }

  /**
   * The publisher's DELETE: the glasses send one before each retry, so it means "publisher gone" (a
   * `disconnect`: the stream's reconnect window opens), never "stream over".
   */
  remove(sessionId: string): boolean {
    const entry = this.#sessions.get(sessionId);
    if (!entry) return false;
    this.counters.deleted++;
    entry.session.close({ kind: 'disconnect', message: 'the publisher sent DELETE' });
    return true;
  }

  /** Ends the live publish of a key (operator kick); false when there is none. */
  kick(key: string): boolean {
    const session = this.#live.get(key);
    if (!session) return false;
    session.close({ kind: 'kicked' });
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const { session } of [...this.#sessions.values()]) session.close({ kind: 'server-close' });
    this.#sessions.clear();
    this.#live.clear();
  }
}
