/**
 * The renditions of an ABR stream: one packager per rung of the ladder (each with its own random name
 * prefix, the stream's TARGETDURATION and LL-HLS settings), fed by the one FFmpeg that makes the ladder.
 * It answers what the origin needs (the `AbrSource` it declares): the multivariant playlist that takes the
 * stream's `index.m3u8`, each rendition's media playlist by `{rung}.m3u8`, the owner of any init, segment
 * or part name, and the rendition reports (rfc8216bis §4.4.5.4) each media playlist carries for the others.
 * The first rendition's packager is the stream's own `packager`, so what watches a stream's packager
 * (metrics, readiness, tests) sees the top rung.
 */
import { renderMultivariantPlaylist } from '../hls/multivariant.ts';
import { Packager, type PackagerOptions } from '../hls/packager.ts';
import type { RenditionReport } from '../hls/playlist.ts';
import type { Fmp4Init } from '../media/fmp4.ts';
import { LADDER_FPS, type Rung } from '../pipeline/ladder.ts';

export interface Rendition {
  rung: Rung;
  packager: Packager;
  /** `{rung}.m3u8`, relative to the multivariant playlist. */
  uri: string;
  /** RFC 6381 codecs of its latest init segment (video first). */
  codecs: string[] | null;
}

export class AbrRenditions {
  readonly renditions: readonly Rendition[];
  readonly #byUri = new Map<string, Rendition>();
  readonly #byPrefix = new Map<string, Packager>();

  /** FRAME-RATE of every rendition: LADDER_FPS, or the input's own (at most that) when the ladder keeps it. */
  readonly frameRate: number;

  /** `top` is the stream's own packager, used for the first (largest) rung. */
  constructor(rungs: readonly Rung[], top: Packager, options: PackagerOptions, frameRate = LADDER_FPS) {
    this.frameRate = frameRate;
    if (rungs.length === 0) throw new RangeError('an empty ladder');
    this.renditions = rungs.map((rung, i) => ({
      rung,
      packager: i === 0 ? top : new Packager(options),
      uri: `${rung.name}.m3u8`,
      codecs: null,
    }));
    for (const r of this.renditions) {
      this.#byUri.set(r.uri, r);
      this.#byPrefix.set(r.packager.prefix, r.packager);
    }
  }

  get packagers(): Packager[] {
    return this.renditions.map((r) => r.packager);
  }

  /** Every rendition has its first segment and its codecs: the multivariant playlist can be served. */
  get ready(): boolean {
    return this.renditions.every((r) => r.packager.ready && r.codecs !== null);
  }

  /** Calls `done` once (now, or when the last rendition becomes ready). */
  whenReady(done: () => void): void {
    if (this.ready) return done();
    let called = false;
    const check = (): void => {
      if (called || !this.ready) return;
      called = true;
      for (const r of this.renditions) r.packager.off('ready', check);
      done();
    };
    for (const r of this.renditions) r.packager.on('ready', check);
  }

  setInit(index: number, init: Fmp4Init): void {
    const r = this.renditions[index];
    if (!r) return;
    const tracks = [...init.tracks].sort((a, b) => (a.kind === 'video' ? -1 : b.kind === 'video' ? 1 : 0));
    r.codecs = tracks.map((t) => t.codec);
    r.packager.setInit(init);
  }

  /** The multivariant playlist; null until every rendition is ready. */
  multivariant(): string | null {
    if (!this.ready) return null;
    return renderMultivariantPlaylist(
      this.renditions.map((r) => ({
        uri: r.uri,
        bandwidth: r.rung.bandwidth,
        width: r.rung.width,
        height: r.rung.height,
        codecs: r.codecs ?? [],
        frameRate: this.frameRate,
      })),
    );
  }

  /** The packager behind `{rung}.m3u8`. */
  rendition(uri: string): Packager | undefined {
    return this.#byUri.get(uri)?.packager;
  }

  /** The packager that made `file` (an init, segment or part: its name starts with the packager's prefix). */
  packagerFor(file: string): Packager | undefined {
    return this.#byPrefix.get(file.slice(0, file.indexOf('-')));
  }

  /** EXT-X-RENDITION-REPORT entries for every rendition but `self`: the live edge of each. */
  reports(self: Packager): RenditionReport[] {
    const out: RenditionReport[] = [];
    for (const r of this.renditions) {
      if (r.packager === self || !r.packager.ready) continue;
      const edge = r.packager.edge;
      if (r.packager.lowLatency && edge.openParts > 0) {
        out.push({ uri: r.uri, lastMsn: edge.openMsn, lastPart: edge.openParts - 1 });
      } else if (r.packager.lowLatency) {
        const last = r.packager.segments.at(-1);
        out.push({
          uri: r.uri,
          lastMsn: edge.lastMsn,
          ...(last ? { lastPart: Math.max(0, last.parts.length - 1) } : {}),
        });
      } else {
        out.push({ uri: r.uri, lastMsn: edge.lastMsn });
      }
    }
    return out;
  }
}
