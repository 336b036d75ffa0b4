/**
 * The DASH view of one stream: turns what its HLS packager(s) hold (inits, listed segments with their
 * wall-clock dates and fragment facts) into the MPD model (mpd.ts). No timers, no I/O: the origin asks for a
 * model on each MPD request. It keeps the few facts a dynamic MPD must never change while the stream lives:
 * - availabilityStartTime: the wall-clock date of the stream's first segment;
 * - each Period's start and presentationTimeOffset, fixed when the Period is first shown (its first segments
 *   leave the window later; the mapping from media time to the wall clock must stay).
 * A Period is an output run (segments sharing an init segment): its start is the wall-clock date (HLS's
 * PROGRAM-DATE-TIME, pdt-clock.ts) of its first segment, never before the end of the Period before it, so
 * segment availability times follow the arrival clock the way HLS's PDTs do.
 * An ended stream's MPD is static: its Periods are laid end to end from 0 over the segments still listed.
 * Low latency (MpdView.lowLatency): the segment being made is listed too, with the duration of the one
 * before, and the template says it is available once its first part is (availabilityTimeOffset).
 *
 * The segments hold audio and video in one CMAF track pair (what the HLS packager makes), so a Representation
 * carries both codecs: browsers (dash.js over MSE) play such muxed Representations from one SourceBuffer. A
 * separate audio AdaptationSet would need a demuxed copy of every segment, which the one-store rule forbids.
 */
import type { Fmp4Init, Fmp4Track } from '../media/fmp4.ts';
import { Fmp4Reader } from '../media/fmp4.ts';
import type { MpdModel, MpdPeriod, MpdRepresentation, TimelineEntry } from './mpd.ts';

/** What the presentation needs of a segment (the HLS segment store's Segment has it). */
export interface DashSegment {
  readonly msn: number;
  readonly uri: string;
  readonly duration: number;
  readonly initUri: string;
  /** Wall-clock ms of its start. */
  readonly programDateTime: number;
  readonly fragments: readonly {
    size: number;
    runs: readonly { trackId: number; baseDecodeTime: number }[];
  }[];
}

/** What the presentation needs of a packager (hls/packager.ts). */
export interface DashPackager {
  readonly segments: readonly DashSegment[];
  readonly ended: boolean;
  /** EXT-X-TARGETDURATION: no segment is longer. */
  readonly targetDuration: number;
  /** Low-latency packaging: the segment being made is listed part by part (LL-HLS parts). */
  readonly lowLatency?: boolean;
  /** PART-TARGET, seconds. */
  readonly partTarget?: number;
  /** The segment being made, once a part of it exists (packager.ts `openSegment`). */
  readonly openSegment?: { msn: number; initUri: string } | null;
  resource(name: string): { kind: string; data: Buffer } | undefined;
}

/** One Representation's source: a packager, and for ABR rungs what the ladder says of it. */
export interface DashRendition {
  id: string;
  packager: DashPackager;
  /** Peak bits per second, when known (ABR rungs); else measured from the segments. */
  bandwidth?: number;
  frameRate?: number;
}

/** What one request's MPD says beyond the stream's facts. */
export interface MpdView {
  /** URL (relative to the MPD) of an init or segment name (or the `$Number$` template), with any token. */
  url(rendition: DashRendition, name: string, kind: 'init' | 'media'): string;
  /**
   * Low-latency DASH: list the segment being made (its duration assumed the same as the one before) with
   * availabilityTimeOffset, for a player to fetch it while it is made (the routes stream it part by part).
   */
  lowLatency?: boolean;
  /** UTCTiming elements, in preference order. */
  utcTiming: readonly { scheme: string; value: string }[];
}

interface SegmentFacts {
  /** Start in the main track's timescale. */
  ticks: number;
  bytes: number;
}

interface PeriodState {
  /** Seconds from availabilityStartTime. */
  start: number;
  /** presentationTimeOffset per rendition id. */
  pto: Map<string, number>;
}

/** The init number of an init name (`…-init{n}.mp4`): the output run a segment belongs to. */
export function runOf(initUri: string): number {
  const match = /-init(\d+)\.mp4$/.exec(initUri);
  return match ? Number(match[1]) : -1;
}

const initCache = new WeakMap<Buffer, Fmp4Init | null>();

/** The tracks of an init segment (parsed once per init). */
export function initTracks(data: Buffer): Fmp4Init | null {
  const cached = initCache.get(data);
  if (cached !== undefined) return cached;
  let init: Fmp4Init | null = null;
  try {
    new Fmp4Reader().push(data, {
      init: (i) => {
        init = i;
      },
      fragment: () => {},
    });
  } catch {
    // not an init we can read: the rendition is left out of the MPD (null below), never served broken
    init = null;
  }
  initCache.set(data, init);
  return init;
}

/** The track whose time a Representation's timeline follows: video if any, else the first. */
function mainTrack(init: Fmp4Init): Fmp4Track | undefined {
  return init.tracks.find((t) => t.kind === 'video') ?? init.tracks[0];
}

const factsCache = new WeakMap<DashSegment, SegmentFacts>();

function factsOf(segment: DashSegment, track: Fmp4Track): SegmentFacts {
  const cached = factsCache.get(segment);
  if (cached) return cached;
  let ticks: number | null = null;
  let bytes = 0;
  for (const f of segment.fragments) {
    bytes += f.size;
    if (ticks === null) {
      const run = f.runs.find((r) => r.trackId === track.id);
      if (run) ticks = run.baseDecodeTime;
    }
  }
  const facts = { ticks: ticks ?? 0, bytes };
  factsCache.set(segment, facts);
  return facts;
}

interface RunView {
  rendition: DashRendition;
  init: Fmp4Init;
  track: Fmp4Track;
  initUri: string;
  segments: DashSegment[];
}

export class DashPresentation {
  readonly #renditions: readonly DashRendition[];
  #ast: number | null = null;
  readonly #periods = new Map<number, PeriodState>();

  constructor(renditions: readonly DashRendition[]) {
    if (renditions.length === 0) throw new RangeError('no rendition');
    this.#renditions = renditions;
  }

  /**
   * Changes whenever the MPD would: a segment completed or left a rendition's list, or the stream ended (the
   * routes keep the MPD made for a version).
   */
  get version(): string {
    let v = this.ended ? 'e' : 'l';
    for (const r of this.#renditions) {
      const s = r.packager.segments;
      v += `:${s[0]?.msn ?? -1}-${s.at(-1)?.msn ?? -1}-${r.packager.openSegment?.msn ?? -1}`;
    }
    return v;
  }

  /** Every rendition has a complete segment: an MPD can be made. */
  get ready(): boolean {
    return this.#renditions.every((r) => r.packager.segments.length > 0);
  }

  get ended(): boolean {
    return this.#renditions[0]!.packager.ended;
  }

  /** The runs each rendition lists now, in order; a run missing from a rendition leaves it out there. */
  #runs(): Map<number, RunView[]> {
    const runs = new Map<number, RunView[]>();
    for (const rendition of this.#renditions) {
      const byRun = new Map<number, DashSegment[]>();
      for (const s of rendition.packager.segments) {
        const run = runOf(s.initUri);
        const list = byRun.get(run) ?? [];
        byRun.set(run, list);
        list.push(s);
      }
      for (const [run, segments] of byRun) {
        const initUri = segments[0]!.initUri;
        const resource = rendition.packager.resource(initUri);
        const init = resource?.kind === 'init' ? initTracks(resource.data) : null;
        const track = init ? mainTrack(init) : undefined;
        if (!init || !track) continue;
        const views = runs.get(run) ?? [];
        runs.set(run, views);
        views.push({ rendition, init, track, initUri, segments });
      }
    }
    return new Map([...runs].sort((a, b) => a[0] - b[0]));
  }

  /** The MPD model now; null before every rendition has a segment. */
  model(view: MpdView): MpdModel | null {
    if (!this.ready) return null;
    const top = this.#renditions[0]!.packager;
    // The segment length the stream really has (TARGETDURATION is a ceiling: 6 s on a 2 s copy stream),
    // rounded up to half seconds: what the delays and update period follow.
    const longest = top.segments.reduce((max, s) => Math.max(max, s.duration), 0);
    const td = Math.min(top.targetDuration, Math.max(0.5, Math.ceil(longest * 2) / 2));
    const runs = this.#runs();
    if (runs.size === 0) return null;
    const ended = this.ended;
    const periods: MpdPeriod[] = [];
    let staticStart = 0;
    let prevEnd: number | null = null;
    let lastDate = 0;
    for (const [run, views] of runs) {
      const lead = views[0]!;
      const leadFirst = lead.segments[0]!;
      let state = ended ? undefined : this.#periods.get(run);
      if (!state) {
        if (ended) {
          state = { start: staticStart, pto: new Map() };
        } else {
          this.#ast ??= leadFirst.programDateTime;
          const start = Math.max((leadFirst.programDateTime - this.#ast) / 1000, prevEnd ?? 0);
          state = { start: Math.round(start * 1000) / 1000, pto: new Map() };
          this.#periods.set(run, state);
        }
      }
      const leadTs = lead.track.timescale;
      const leadPto = state.pto.get(lead.rendition.id) ?? factsOf(leadFirst, lead.track).ticks;
      state.pto.set(lead.rendition.id, leadPto);
      const representations: MpdRepresentation[] = [];
      for (const v of views) {
        const ts = v.track.timescale;
        let pto = state.pto.get(v.rendition.id);
        if (pto === undefined) {
          // A rung first seen now: aligned on the lead's segment of the same number, when there is one.
          const first = v.segments[0]!;
          const twin = lead.segments.find((s) => s.msn === first.msn);
          const offset = twin ? (factsOf(twin, lead.track).ticks - leadPto) / leadTs : 0;
          pto = factsOf(first, v.track).ticks - Math.round(offset * ts);
          state.pto.set(v.rendition.id, pto);
        }
        representations.push(this.#representation(v, pto, view));
      }
      periods.push({
        id: `p${run}`,
        start: state.start,
        contentType: lead.init.tracks.some((t) => t.kind === 'video') ? 'video' : 'audio',
        representations,
      });
      const leadLast = lead.segments.at(-1)!;
      const leadEnd =
        state.start +
        (factsOf(leadLast, lead.track).ticks + Math.round(leadLast.duration * leadTs) - leadPto) / leadTs;
      prevEnd = leadEnd;
      staticStart = leadEnd;
      lastDate = Math.max(lastDate, leadLast.programDateTime + leadLast.duration * 1000);
    }
    // Forget the Periods that left the window.
    for (const run of this.#periods.keys()) if (!runs.has(run)) this.#periods.delete(run);
    const listed = top.segments.reduce((sum, s) => sum + s.duration, 0);
    if (ended) {
      return {
        type: 'static',
        publishTime: Math.round(lastDate),
        minBufferTime: td,
        mediaPresentationDuration: prevEnd ?? 0,
        periods,
      };
    }
    const delay = 3 * td;
    // Low latency: a player may sit a few parts behind the segment being made (dash.js catches up to it).
    // Six parts (3 s at 0.5 s parts): four stalled dash.js on an ABR ladder on a loaded machine.
    const partTarget = top.partTarget ?? 0.5;
    const ll = view.lowLatency === true && top.lowLatency === true;
    const target = ll ? Math.max(1.5, 6 * partTarget) : delay;
    return {
      type: 'dynamic',
      availabilityStartTime: this.#ast!,
      publishTime: Math.max(this.#ast!, Math.round(lastDate)),
      minimumUpdatePeriod: Math.max(1, td / 2),
      timeShiftBufferDepth: Math.max(listed, delay + td),
      suggestedPresentationDelay: target,
      minBufferTime: ll ? Math.min(td, 1) : td,
      latency: ll
        ? { target, min: 2 * partTarget, max: Math.max(delay, 2 * target) }
        : { target: delay, min: td, max: 6 * td },
      utcTiming: view.utcTiming,
      periods,
    };
  }

  #representation(v: RunView, pto: number, view: MpdView): MpdRepresentation {
    const ts = v.track.timescale;
    const timeline: TimelineEntry[] = v.segments.map((s) => ({
      t: factsOf(s, v.track).ticks,
      d: Math.round(s.duration * ts),
    }));
    // Low latency: the segment being made, right after the last complete one of this run, is listed with the
    // duration of that one (segments end at keyframes: a steady GOP makes them equal; a wrong guess is put
    // right by the next MPD, which lists it complete). It is available once its first part is.
    // (The attributes stay on a low-latency stream's template while no part of the next segment exists
    // yet, so a player's mode does not flip between MPD updates.)
    let open: { availabilityTimeOffset: number } | null = null;
    const packager = v.rendition.packager;
    const making = packager.openSegment;
    const last = v.segments.at(-1)!;
    const lastEntry = timeline.at(-1)!;
    if (view.lowLatency && packager.lowLatency) {
      const part = packager.partTarget ?? 0.5;
      open = { availabilityTimeOffset: Math.max(0, Math.floor((last.duration - part) * 1000) / 1000) };
      if (making && making.initUri === v.initUri && making.msn === last.msn + 1) {
        timeline.push({ t: lastEntry.t + lastEntry.d, d: lastEntry.d });
      }
    }
    const video = v.init.tracks.find((t) => t.kind === 'video');
    const audio = v.init.tracks.find((t) => t.kind === 'audio');
    const codecs = [...(video ? [video.codec] : []), ...(audio ? [audio.codec] : [])];
    let bandwidth = v.rendition.bandwidth;
    if (bandwidth === undefined) {
      // Measured: the peak over the listed segments of this run (bits per second).
      bandwidth = 0;
      for (const s of v.segments) {
        if (s.duration > 0) bandwidth = Math.max(bandwidth, (factsOf(s, v.track).bytes * 8) / s.duration);
      }
    }
    const first = v.segments[0]!;
    const template = first.uri.replace(/-seg\d+\.m4s$/, () => '-seg$Number$.m4s');
    return {
      id: v.rendition.id,
      bandwidth,
      codecs,
      ...(video?.width !== undefined ? { width: video.width } : {}),
      ...(video?.height !== undefined ? { height: video.height } : {}),
      // No frameRate on a muxed Representation: with width, height, bandwidth and frameRate all known,
      // dash.js asks MediaCapabilities.decodingInfo, which refuses a content type with two codecs, and drops
      // the Representation ("No streams to play"); without it dash.js asks MSE, which plays it.
      ...(video && !audio && v.rendition.frameRate !== undefined ? { frameRate: v.rendition.frameRate } : {}),
      ...(audio?.sampleRate !== undefined ? { audioSamplingRate: audio.sampleRate } : {}),
      ...(audio?.channels !== undefined ? { audioChannels: audio.channels } : {}),
      timescale: ts,
      presentationTimeOffset: pto,
      startNumber: first.msn,
      initialization: view.url(v.rendition, v.initUri, 'init'),
      media: view.url(v.rendition, template, 'media'),
      timeline,
      ...(open ? { availabilityTimeOffset: open.availabilityTimeOffset } : {}),
    };
  }
}
