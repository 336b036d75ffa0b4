/**
 * WHIP ingest sessions (issue 18, first cut): authorizes a publish before any ICE (the same hook as RTMP and
 * SRT: `AuthorizePublish` from contracts/publish.ts), answers the offer with a WhipSession on the shared ICE
 * UDP port (owned by WhepServer: one port for every WebRTC session), hands the session to the owner as a
 * MediaSource (`onPublish`: the stream registry takes it, takeover included), and ends it on DELETE. HTTP is
 * ./whip-routes.ts.
 */
import { randomBytes } from 'node:crypto';
import { isValidStreamId, isValidUserId } from '../contracts/names.ts';
import type { AuthorizePublish } from '../contracts/publish.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { chooseWhipCodecs, type IceHost, parseOffer } from './sdp.ts';
import { WhipSession } from './whip-session.ts';

export interface WhipServerOptions {
  ice: { udpPort: number; bindAddress: string; hosts: readonly IceHost[] | null };
  authorize: AuthorizePublish;
  /** A new authorized publish, before its media: the owner attaches it to the stream. */
  onPublish: (source: WhipSession) => void;
  log: Logger;
  maxSessions?: number;
}

export class WhipServer {
  readonly #options: WhipServerOptions;
  readonly #sessions = new Map<string, { session: WhipSession; key: string }>();
  #nextId = 1;
  #closed = false;

  constructor(options: WhipServerOptions) {
    this.#options = options;
  }

  get sessionCount(): number {
    return this.#sessions.size;
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
      params: {},
      remoteAddress,
      protocol: 'whip',
    });
    if (!decision.allow) throw new RelayError(ErrorCodes.WEBRTC_UNAUTHORIZED, decision.reason);
    const choice = chooseWhipCodecs(parseOffer(sdp));
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
        params: {},
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
    });
    this.#sessions.set(sessionId, { session, key });
    session.on('end', () => this.#sessions.delete(sessionId));
    const answer = await session.open();
    this.#options.onPublish(session);
    return { sessionId, answer };
  }

  /** Whether a session exists and publishes that key (a DELETE must name its own stream). */
  has(sessionId: string, key: string): boolean {
    return this.#sessions.get(sessionId)?.key === key;
  }

  /** The publisher's DELETE: the publish ends as an unpublish (the stream's reconnect window opens). */
  remove(sessionId: string): boolean {
    const entry = this.#sessions.get(sessionId);
    if (!entry) return false;
    entry.session.close({ kind: 'unpublish' });
    return true;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const { session } of [...this.#sessions.values()]) session.close({ kind: 'server-close' });
    this.#sessions.clear();
  }
}
