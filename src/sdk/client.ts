/**
 * The app-side client for managed streams (the MentraOS SDK surface on an app's camera module):
 * `startManagedStream` resolves once a playable `hlsUrl` exists (never waits for a `dashUrl`; a `webrtcUrl`
 * for WHEP comes in the same `active` when the relay serves it), and fails
 * after 30 s with a clear error; statuses arrive over server-sent events from the cloud. A dropped event
 * stream is followed again (with backoff) until the stream ends: a network fault is not a status of the
 * stream, so apps never hear one as `error`; the cloud's first status on the new connection is passed on only
 * when it differs from the last one heard. A cloud that no longer knows the stream answers 404: that ends it
 * with `error`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type ManagedStreamStatus, ManagedStreamStatus as StatusSchema } from '../contracts/mentra.ts';

export interface ManagedStreamClientOptions {
  /** http(s)://host:port of the cloud. */
  cloudUrl: string;
  userId: string;
  packageName: string;
  /** Bearer token for the user (not needed in dev mode). */
  token?: string;
  /** How long startManagedStream waits for a playable URL (default 30 s). */
  startTimeoutMs?: number;
  /** Pauses before following a dropped event stream again: first and most (default 500 ms, 5 s). */
  reconnectMs?: { first: number; max: number };
}

export interface ManagedStreamUrls {
  streamId: string;
  hlsUrl: string;
  dashUrl: string;
  /**
   * WHEP playback (sub-second: POST an SDP offer, draft-ietf-wish-whep) on the relay serving the stream,
   * when it serves WHEP; it changes when the stream moves (a new `active` carries the new one).
   */
  webrtcUrl?: string;
}

export class ManagedStreamTimeoutError extends Error {
  constructor(seconds: number, last: string | undefined) {
    super(`no playable stream after ${seconds} s (last status: ${last ?? 'none'})`);
    this.name = 'ManagedStreamTimeoutError';
  }
}

export class ManagedStreamClient {
  readonly #o: ManagedStreamClientOptions;
  readonly #handlers = new Set<(status: ManagedStreamStatus) => void>();
  #last: ManagedStreamStatus | undefined;
  #events: AbortController | null = null;

  constructor(options: ManagedStreamClientOptions) {
    this.#o = options;
  }

  onManagedStreamStatus(handler: (status: ManagedStreamStatus) => void): () => void {
    this.#handlers.add(handler);
    return () => this.#handlers.delete(handler);
  }

  isManagedStreamActive(): boolean {
    return this.#last?.status === 'active' && Boolean(this.#last.hlsUrl);
  }

  getManagedStreamUrls(): ManagedStreamUrls | undefined {
    const s = this.#last;
    return s?.status === 'active' && s.hlsUrl && s.streamId
      ? {
          streamId: s.streamId,
          hlsUrl: s.hlsUrl,
          dashUrl: s.dashUrl ?? '',
          ...(s.webrtcUrl ? { webrtcUrl: s.webrtcUrl } : {}),
        }
      : undefined;
  }

  /** The stream this client knows of, as the cloud sees it now; null when there is none. */
  async checkExistingStream(): Promise<ManagedStreamStatus | null> {
    const id = this.#last?.streamId;
    if (!id) return null;
    const res = await fetch(new URL(`/api/managed-streams/${id}`, this.#o.cloudUrl), {
      headers: this.#headers(),
    });
    if (res.status === 404) return null;
    return this.#accept(StatusSchema.parse(await res.json()));
  }

  /** Asks for the user's managed stream; resolves with its URLs once HLS plays. */
  async startManagedStream(options: Record<string, unknown> = {}): Promise<ManagedStreamUrls> {
    const res = await fetch(new URL('/api/managed-streams', this.#o.cloudUrl), {
      method: 'POST',
      headers: { ...this.#headers(), 'content-type': 'application/json' },
      body: JSON.stringify({ ...options, userId: this.#o.userId, packageName: this.#o.packageName }),
    });
    const body = (await res.json()) as { error?: string; code?: string };
    if (!res.ok)
      throw new Error(
        `managed stream refused (${res.status}${body.code ? ` ${body.code}` : ''}): ${body.error}`,
      );
    const first = this.#accept(StatusSchema.parse(body));
    const streamId = first.streamId!;
    const timeoutMs = this.#o.startTimeoutMs ?? 30_000;
    return new Promise<ManagedStreamUrls>((resolve, reject) => {
      const timer = setTimeout(() => {
        off();
        reject(new ManagedStreamTimeoutError(timeoutMs / 1000, this.#last?.status));
      }, timeoutMs);
      const check = (): boolean => {
        const urls = this.getManagedStreamUrls();
        if (urls) {
          clearTimeout(timer);
          off();
          resolve(urls);
          return true;
        }
        const s = this.#last;
        if (s?.status === 'stopped' || s?.status === 'error') {
          clearTimeout(timer);
          off();
          reject(new Error(`managed stream ${s.status}${s.message ? `: ${s.message}` : ''}`));
          return true;
        }
        return false;
      };
      const off = this.onManagedStreamStatus(() => void check());
      // Follow the stream unless it has ended, also when it is active already (an app joining a live
      // stream): statuses keep coming after this resolves (reconnecting, a new URL, the end).
      if (!check() || this.isManagedStreamActive()) this.#follow(streamId);
    });
  }

  /** Leaves the stream; the cloud stops the glasses when the last viewer leaves. */
  async stopManagedStream(): Promise<void> {
    const id = this.#last?.streamId;
    this.#events?.abort();
    this.#events = null;
    if (!id) return;
    await fetch(
      new URL(
        `/api/managed-streams/${id}/viewers/${encodeURIComponent(this.#o.packageName)}`,
        this.#o.cloudUrl,
      ),
      {
        method: 'DELETE',
        headers: this.#headers(),
      },
    );
  }

  /** Stops following statuses (the stream goes on for other viewers). */
  close(): void {
    this.#events?.abort();
    this.#events = null;
  }

  #headers(): Record<string, string> {
    return this.#o.token ? { authorization: `Bearer ${this.#o.token}` } : {};
  }

  #accept(status: ManagedStreamStatus): ManagedStreamStatus {
    this.#last = status;
    for (const h of this.#handlers) h(status);
    return status;
  }

  /** Follows the stream's server-sent events until it ends or close() is called; a dropped one is reopened. */
  #follow(streamId: string): void {
    this.#events?.abort();
    const abort = new AbortController();
    this.#events = abort;
    const { first, max } = this.#o.reconnectMs ?? { first: 500, max: 5000 };
    void (async () => {
      let pause = 0;
      for (let again = false; !abort.signal.aborted; again = true) {
        if (again) {
          pause = Math.min(max, pause ? pause * 2 : first);
          try {
            await sleep(pause, undefined, { signal: abort.signal });
          } catch {
            return; // aborted: close() or a new follow
          }
        }
        try {
          if (await this.#readEvents(streamId, abort.signal, again)) return;
          pause = 0; // it was connected: the next drop starts the backoff again
        } catch {
          // Aborted (close() or a new follow), or the cloud is unreachable or the connection broke: the
          // loop ends in the first case and tries again in the others; the stream itself is not affected.
        }
      }
    })();
  }

  /**
   * One connection to the event stream; true when following is over (the stream ended, or the cloud does
   * not know it), false when the connection ended before the stream did. Throws on network errors.
   */
  async #readEvents(streamId: string, signal: AbortSignal, again: boolean): Promise<boolean> {
    const res = await fetch(new URL(`/api/managed-streams/${streamId}/events`, this.#o.cloudUrl), {
      headers: this.#headers(),
      signal,
    });
    if (res.status === 404) {
      await res.body?.cancel();
      this.#accept({
        type: 'managed_stream_status',
        status: 'error',
        streamId,
        message: 'the cloud no longer knows this stream',
      });
      return true;
    }
    if (!res.ok || !res.body) {
      await res.body?.cancel();
      throw new Error(`the event stream answered ${res.status}`);
    }
    const decoder = new TextDecoder();
    let buffer = '';
    let firstEvent = true;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const event = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = event
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('\n');
        let json: unknown;
        try {
          json = JSON.parse(data || 'null');
        } catch {
          continue; // not a status (a comment or a broken event): skipped
        }
        const parsed = StatusSchema.safeParse(json);
        if (!parsed.success) continue;
        const status = parsed.data;
        // A new connection starts with the current status: already heard unless something changed.
        const repeat = again && firstEvent && sameStatus(status, this.#last);
        firstEvent = false;
        if (!repeat) this.#accept(status);
        if (status.status === 'stopped' || status.status === 'error') return true;
      }
    }
    return false;
  }
}

function sameStatus(a: ManagedStreamStatus, b: ManagedStreamStatus | undefined): boolean {
  return (
    b !== undefined &&
    a.status === b.status &&
    a.streamId === b.streamId &&
    a.hlsUrl === b.hlsUrl &&
    a.message === b.message
  );
}
