/**
 * The app-side client for managed streams (the MentraOS SDK surface on an app's camera module):
 * `startManagedStream` resolves once a playable `hlsUrl` exists (never waits for a `dashUrl`), and fails
 * after 30 s with a clear error; statuses arrive over server-sent events from the cloud.
 */
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
}

export interface ManagedStreamUrls {
  streamId: string;
  hlsUrl: string;
  dashUrl: string;
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
      ? { streamId: s.streamId, hlsUrl: s.hlsUrl, dashUrl: s.dashUrl ?? '' }
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

  /** Follows the stream's server-sent events until they end or close() is called. */
  #follow(streamId: string): void {
    this.#events?.abort();
    const abort = new AbortController();
    this.#events = abort;
    void (async () => {
      try {
        const res = await fetch(new URL(`/api/managed-streams/${streamId}/events`, this.#o.cloudUrl), {
          headers: this.#headers(),
          signal: abort.signal,
        });
        if (!res.body) return;
        const decoder = new TextDecoder();
        let buffer = '';
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
            const parsed = StatusSchema.safeParse(JSON.parse(data || 'null'));
            if (parsed.success) this.#accept(parsed.data);
          }
        }
      } catch (err) {
        if ((err as Error).name !== 'AbortError')
          this.#accept({ type: 'managed_stream_status', status: 'error', message: (err as Error).message });
      }
    })();
  }
}
