/**
 * Whether a playlist URL answers (issue 16, honest statuses): the cloud says `active` only after the URL it
 * hands out returns a playlist with media in it, so an app never gets a URL that 404s. The relay's own
 * hls-ready would be early after a relay restart under the same id (the cloud still holds the old URL when
 * the glasses come back) and the media path that sends it is not the cloud's; checking from the cloud covers
 * both and costs one request on the relay's network. A probe retries until its deadline or its abort.
 */

export type HlsProbe = (url: string, signal: AbortSignal) => Promise<boolean>;

export interface HlsProbeOptions {
  /** Give up after this long (default 20 s: a first segment is due within a few seconds). */
  deadlineMs?: number;
  /** Pause between tries (default 250 ms). */
  intervalMs?: number;
  /** One request's timeout (default 3 s). */
  requestTimeoutMs?: number;
}

/** A playlist with media: segments, parts, or renditions (a multivariant playlist). */
export function hasMedia(body: string): boolean {
  return (
    body.startsWith('#EXTM3U') &&
    (body.includes('#EXTINF') || body.includes('#EXT-X-PART:') || body.includes('#EXT-X-STREAM-INF'))
  );
}

export function createHlsProbe(options: HlsProbeOptions = {}): HlsProbe {
  const deadlineMs = options.deadlineMs ?? 20_000;
  const intervalMs = options.intervalMs ?? 250;
  const requestTimeoutMs = options.requestTimeoutMs ?? 3000;
  return async (url, signal) => {
    const deadline = performance.now() + deadlineMs;
    while (!signal.aborted && performance.now() < deadline) {
      try {
        const res = await fetch(url, {
          signal: AbortSignal.any([signal, AbortSignal.timeout(requestTimeoutMs)]),
          redirect: 'follow',
        });
        const body = await res.text();
        if (res.ok && hasMedia(body)) return true;
      } catch {
        // refused, reset or timed out: the relay is not serving it yet; tried again below
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(done, intervalMs);
        function done(): void {
          clearTimeout(timer);
          signal.removeEventListener('abort', done);
          resolve();
        }
        signal.addEventListener('abort', done, { once: true });
      });
    }
    return false;
  };
}
