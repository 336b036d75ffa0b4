/**
 * Who may speak for a stream (issue 16, security): a relay's stream-started, stream-ended and hls-ready are
 * accepted only from the relay that holds the stream now (the managed stream's relay, else the store's
 * assignment; a stream nobody holds, a direct publish, is the reporting relay's), and an hls-ready only with
 * URLs under that relay's registered HLS base (or the CDN base in front) and on that stream's own path. So
 * a relay secret alone can no longer point a user's stream at any URL, and a late or foreign stream-ended
 * releases nothing. A recording-ready may come from any relay that held the stream, with URLs under its own
 * base on the stream's path. Pure decisions over three lookups; the relay routes ask before changing anything.
 */
import { hlsPath, storeKey } from '../contracts/keys.ts';
import { isUnderBase } from '../contracts/urls.ts';
import type { GuardRefusal, StreamEventGuard } from './relay-routes.ts';

export interface RelayGuardOptions {
  /**
   * The relay a managed stream is on now: `undefined` when the stream is no managed stream (here), `null`
   * while it has none (being moved).
   */
  managedRelayOf(userId: string, streamId: string): Promise<string | null | undefined>;
  /** The store's assignment of the stream (live report or reservation), or null. */
  assignedRelayOf(key: string): Promise<string | null>;
  /** The relay's registered HLS base (live or from the static list), or null when unknown. */
  hlsBaseOf(relayId: string): Promise<string | null>;
  /** HLS_PUBLIC_BASE_URL: a CDN base also accepted in announced URLs. */
  publicBase?: string | undefined;
}

const notHolder = (relayId: string): GuardRefusal => ({
  code: 'RELAY_NOT_HOLDER',
  reason: `relay ${relayId} does not hold this stream`,
});

export function createRelayGuard(options: RelayGuardOptions): StreamEventGuard {
  return async ({ kind, relayId, userId, streamId, urls }) => {
    // A recording's part may finish uploading after its stream moved on: any relay may report one, but
    // only with URLs under its own base on that stream's path (checked below).
    if (kind !== 'recording-ready') {
      const managed = await options.managedRelayOf(userId, streamId);
      if (managed !== undefined) {
        if (managed !== relayId) return notHolder(relayId);
      } else {
        const assigned = await options.assignedRelayOf(storeKey(userId, streamId));
        if (assigned !== null && assigned !== relayId) return notHolder(relayId);
      }
    }
    if (urls.length === 0) return null;
    const base = await options.hlsBaseOf(relayId);
    if (base === null) return { code: 'RELAY_URL_REFUSED', reason: `relay ${relayId} is not registered` };
    const own = hlsPath(userId, streamId);
    for (const url of urls) {
      const under =
        isUnderBase(url, base) || (options.publicBase ? isUnderBase(url, options.publicBase) : false);
      const path = under ? new URL(url).pathname : '';
      if (!under || !(path.includes(`/${own}/`) || path.endsWith(`/${own}`)))
        return { code: 'RELAY_URL_REFUSED', reason: "URL is not under the relay's base for this stream" };
    }
    return null;
  };
}
