/**
 * What every ingest (RTMP, SRT, WHIP) shares with the stream and the cloud about a publish: who publishes
 * which key, how the authorization hook is asked, and why a publish ended. The protocol servers, the stream
 * registry and the cloud's token checks import these from here and from nowhere else.
 */

export type IngestProtocol = 'rtmp' | 'srt' | 'whip';

export interface PublishAuthRequest {
  key: string;
  userId: string;
  streamId: string;
  /** The publish URL's `token` (query parameter, SRT stream id or Bearer). Never log it. */
  token: string | undefined;
  params: Record<string, string>;
  remoteAddress: string;
  /** Which ingest asks; absent means RTMP (older callers). */
  protocol?: IngestProtocol;
}

/** A refusal is `Unauthorized` unless the hook says the name itself is the problem (`badName`). */
export type AuthDecision = { allow: true } | { allow: false; reason: string; badName?: boolean };

/** Runs before any media is accepted; may refuse. The default allows everything. */
export type AuthorizePublish = (request: PublishAuthRequest) => Promise<AuthDecision> | AuthDecision;

export type EndReasonKind =
  /** A clean end from the publisher: RTMP FCUnpublish/deleteStream/closeStream, SRT shutdown, WHIP DELETE. */
  | 'unpublish'
  /** The connection closed or failed without an unpublish. */
  | 'disconnect'
  /** A newer authorized publish of the same key took over. */
  | 'takeover'
  | 'idle-timeout'
  /** A protocol violation or refused input; `code` says which. */
  | 'error'
  /** The server is closing. */
  | 'server-close'
  /** An operator or the cloud stopped it. */
  | 'kicked';

export interface EndReason {
  kind: EndReasonKind;
  /** A stable error code (shared/errors.ts) when `kind` is 'error'. */
  code?: string;
  message?: string;
}

export interface PublishInfo {
  /** Unique per publish within one server. */
  id: number;
  /** The stream key: `live/{userId}/{streamId}`. */
  key: string;
  userId: string;
  streamId: string;
  params: Record<string, string>;
  remoteAddress: string;
  /** ms since the epoch. */
  startedAt: number;
  protocol?: IngestProtocol;
}
