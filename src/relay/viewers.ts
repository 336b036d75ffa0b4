/**
 * Viewers per stream, counted at the origin: a viewer is a distinct client (address + user agent) that
 * fetched any of the stream's HLS resources within the last `windowMs` (players reload the playlist about
 * every target duration, so a window of a few target durations counts each one once). The client key lives
 * only in memory, never in logs. Pure (clock injected) and bounded: at most `maxPerStream` clients per
 * stream and `maxStreams` streams are tracked; the rest are counted in `overflow`.
 */

export interface ViewerTrackerOptions {
  windowMs: number;
  maxPerStream?: number;
  maxStreams?: number;
}

export class ViewerTracker {
  readonly #windowMs: number;
  readonly #maxPerStream: number;
  readonly #maxStreams: number;
  /** stream → client → last seen (ms). Map order is insertion order, refreshed on each sighting. */
  readonly #streams = new Map<string, Map<string, number>>();
  overflow = 0;

  constructor(options: ViewerTrackerOptions) {
    this.#windowMs = options.windowMs;
    this.#maxPerStream = options.maxPerStream ?? 10_000;
    this.#maxStreams = options.maxStreams ?? 10_000;
  }

  seen(stream: string, client: string, now: number): void {
    let clients = this.#streams.get(stream);
    if (!clients) {
      if (this.#streams.size >= this.#maxStreams) this.#expireAll(now);
      if (this.#streams.size >= this.#maxStreams) {
        this.overflow++;
        return;
      }
      clients = new Map();
      this.#streams.set(stream, clients);
    }
    if (clients.has(client)) {
      clients.delete(client); // re-insert: the oldest sighting stays first
    } else if (clients.size >= this.#maxPerStream) {
      this.#expire(clients, now);
      if (clients.size >= this.#maxPerStream) {
        this.overflow++;
        return;
      }
    }
    clients.set(client, now);
  }

  count(stream: string, now: number): number {
    const clients = this.#streams.get(stream);
    if (!clients) return 0;
    this.#expire(clients, now);
    if (clients.size === 0) this.#streams.delete(stream);
    return clients.size;
  }

  /** Forget a stream (it ended and was freed). */
  forget(stream: string): void {
    this.#streams.delete(stream);
  }

  #expire(clients: Map<string, number>, now: number): void {
    for (const [client, at] of clients) {
      if (now - at <= this.#windowMs) break; // ordered by last sighting
      clients.delete(client);
    }
  }

  #expireAll(now: number): void {
    for (const [stream, clients] of this.#streams) {
      this.#expire(clients, now);
      if (clients.size === 0) this.#streams.delete(stream);
    }
  }
}
