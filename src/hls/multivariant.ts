/**
 * The multivariant (master) playlist of an ABR stream, pure (RFC 8216 §4.4.6): one EXT-X-STREAM-INF per
 * rendition with BANDWIDTH, AVERAGE-BANDWIDTH, RESOLUTION, CODECS and FRAME-RATE, highest first (players
 * start with the first listed, so the order is a choice: we list the top first and let hls.js's estimator
 * step down), and EXT-X-INDEPENDENT-SEGMENTS since every segment starts with a keyframe. It lives at the
 * stream's `index.m3u8`, so the URL apps hold does not change when a stream is ABR.
 */

export interface VariantEntry {
  /** URI of the rendition's media playlist, relative to the multivariant playlist. */
  uri: string;
  /** Peak bits per second. */
  bandwidth: number;
  averageBandwidth?: number;
  width: number;
  height: number;
  /** RFC 6381 codecs, e.g. ['avc1.64001f', 'mp4a.40.2']. */
  codecs: string[];
  frameRate: number;
}

export function renderMultivariantPlaylist(variants: readonly VariantEntry[], version = 7): string {
  const lines = ['#EXTM3U', `#EXT-X-VERSION:${version}`, '#EXT-X-INDEPENDENT-SEGMENTS'];
  const sorted = [...variants].sort((a, b) => b.bandwidth - a.bandwidth);
  for (const v of sorted) {
    const attrs = [
      `BANDWIDTH=${Math.round(v.bandwidth)}`,
      ...(v.averageBandwidth ? [`AVERAGE-BANDWIDTH=${Math.round(v.averageBandwidth)}`] : []),
      `RESOLUTION=${v.width}x${v.height}`,
      `CODECS="${v.codecs.join(',')}"`,
      `FRAME-RATE=${v.frameRate.toFixed(3)}`,
    ];
    lines.push(`#EXT-X-STREAM-INF:${attrs.join(',')}`, v.uri);
  }
  return `${lines.join('\n')}\n`;
}
