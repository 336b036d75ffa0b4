/**
 * hls.js's own playlist handling, in Node, without a browser: its M3U8 parser and the playlist controller's
 * `playlistLoaded`, which merges each reload into the playlist before it (delta updates filled in from the
 * old playlist, and the media-sequence and discontinuity checks whose failure a browser player reports as a
 * fatal `levelParsingError`). Taken from the hls.js ESM build players get (the package's `import` export),
 * so a test here breaks where hls.js in Chromium would; no browser, so it runs in milliseconds.
 */
import type Hls from 'hls.js';
import {
  BasePlaylistController,
  HlsUrlParameters,
  type LevelDetails,
  type LevelLoadedData,
  M3U8Parser,
  PlaylistLevelType,
} from 'hls.js';

// hls.js reads `self.performance` (a browser global); Node's globalThis has the same performance clock.
(globalThis as { self?: unknown }).self ??= globalThis;

const quiet = (): void => {};
const logger = { trace: quiet, debug: quiet, log: quiet, info: quiet, warn: quiet, error: quiet };

/** One hls.js level playlist loader, fed the texts an origin answered, in order. */
export class HlsJsPlaylists extends BasePlaylistController {
  /** What hls.js would have reported (ERROR events), as `details: reason`. */
  readonly errors: string[] = [];
  #previous: LevelDetails | undefined;
  readonly #url: string;

  constructor(options: { lowLatencyMode: boolean; url?: string }) {
    const errors: string[] = [];
    const hls = {
      logger,
      config: {
        lowLatencyMode: options.lowLatencyMode,
        timelineOffset: 0,
        liveMaxUnchangedPlaylistRefresh: Number.POSITIVE_INFINITY,
        ignorePlaylistParsingErrors: false,
      },
      mainForwardBufferInfo: null,
      trigger: (_event: string, data: { details: string; reason?: string; error?: Error }) => {
        errors.push(`${data.details}: ${data.reason ?? data.error?.message ?? ''}`);
      },
    };
    super(hls as unknown as Hls, '[test]');
    this.errors = errors;
    this.#url = options.url ?? 'http://origin.test/hls/u/s/index.m3u8';
  }

  /** The playlist as hls.js holds it after the last load that merged. */
  get details(): LevelDetails | undefined {
    return this.#previous;
  }

  /**
   * Loads one answer, as hls.js does on LEVEL_LOADED: parse, then merge into the playlist before. `skip`
   * says the request asked for a delta update (`_HLS_skip=YES`). Returns the errors this load added.
   */
  load(text: string, skip = false): string[] {
    const before = this.errors.length;
    const details = M3U8Parser.parseLevelPlaylist(text, this.#url, 0, PlaylistLevelType.MAIN, 0, null);
    if (details.playlistParsingError) this.errors.push(`parse: ${details.playlistParsingError.message}`);
    const data = {
      details,
      id: 0,
      level: 0,
      levelInfo: { id: 0, details: this.#previous },
      networkDetails: null,
      stats: { loading: { start: 0, first: 0, end: 0 } },
      deliveryDirectives: skip ? new HlsUrlParameters(details.endSN + 1, undefined, 'YES' as never) : null,
    } as unknown as LevelLoadedData;
    this.playlistLoaded(0, data, this.#previous);
    const added = this.errors.slice(before);
    // hls.js keeps the old playlist when a load fails (the level's details are set on success only).
    if (added.length === 0) this.#previous = details;
    return added;
  }
}
