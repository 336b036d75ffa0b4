/**
 * A strict structural check of the MPDs the relay writes, in place of the DASH MPD schema (ISO/IEC 23009-1
 * DASH-MPD.xsd cannot be had offline here, and no XML schema validator is installed): well-formed XML of
 * elements and attributes only, the elements our MPDs use in the schema's order, every attribute the schema
 * or the live profile requires (and those the relay promises: availabilityStartTime, publishTime,
 * minimumUpdatePeriod, timeShiftBufferDepth, suggestedPresentationDelay, UTCTiming on a dynamic MPD;
 * mediaPresentationDuration on a static one), typed values (xs:duration, xs:dateTime, unsigned integers),
 * unique ids, Periods in order, and SegmentTimelines that start with `t` and never go back. Throws an Error
 * naming the first problem; returns what tests assert on.
 */

export interface XmlNode {
  name: string;
  attrs: Record<string, string>;
  children: XmlNode[];
}

/** Parses the flat XML an MPD is (no text content, no comments, no CDATA); throws on anything malformed. */
export function parseXml(text: string): XmlNode {
  let at = 0;
  const decl = /^<\?xml version="1\.0" encoding="UTF-8"\?>\s*/.exec(text);
  if (!decl) throw new Error('no XML declaration');
  at = decl[0].length;
  const stack: XmlNode[] = [];
  let root: XmlNode | null = null;
  const tag = /<(\/?)([A-Za-z][\w.-]*)((?:\s+[A-Za-z_:][\w.:-]*="[^"<]*")*)\s*(\/?)>/y;
  const attr = /\s+([A-Za-z_:][\w.:-]*)="([^"<]*)"/g;
  while (at < text.length) {
    const ws = /\s*/y;
    ws.lastIndex = at;
    ws.exec(text);
    at = ws.lastIndex;
    if (at >= text.length) break;
    tag.lastIndex = at;
    const m = tag.exec(text);
    if (!m) throw new Error(`malformed XML at ${at}: ${JSON.stringify(text.slice(at, at + 40))}`);
    at = tag.lastIndex;
    const [, closing, name, attrText, selfClosing] = m;
    if (closing) {
      const open = stack.pop();
      if (!open || open.name !== name) throw new Error(`</${name}> closes ${open?.name ?? 'nothing'}`);
      continue;
    }
    const node: XmlNode = { name: name!, attrs: {}, children: [] };
    for (const a of attrText!.matchAll(attr)) {
      if (a[1]! in node.attrs) throw new Error(`${name}: attribute ${a[1]} twice`);
      if (/&(?!amp;|quot;|lt;|gt;|apos;)/.test(a[2]!)) throw new Error(`${name}@${a[1]}: bare &`);
      node.attrs[a[1]!] = a[2]!
        .replace(/&quot;/g, '"')
        .replace(/&lt;/g, '<')
        .replace(/&gt;/g, '>')
        .replace(/&amp;/g, '&');
    }
    const parent = stack.at(-1);
    if (parent) parent.children.push(node);
    else if (root) throw new Error('two root elements');
    else root = node;
    if (!selfClosing) stack.push(node);
  }
  if (stack.length > 0) throw new Error(`<${stack.at(-1)!.name}> not closed`);
  if (!root) throw new Error('no root element');
  return root;
}

const DURATION = /^P(?:\d+Y)?(?:\d+M)?(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?$/;
const DATE_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})$/;
const UINT = /^\d+$/;

/** Seconds of an xs:duration of the PT…H…M…S form. */
export function durationSeconds(value: string): number {
  const m = /^PT(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?$/.exec(value);
  if (!m || !DURATION.test(value)) throw new Error(`not an xs:duration we write: ${value}`);
  return Number(m[1] ?? 0) * 3600 + Number(m[2] ?? 0) * 60 + Number(m[3] ?? 0);
}

export interface CheckedSegment {
  number: number;
  /** Start and duration in the timescale. */
  t: number;
  d: number;
}

export interface CheckedRepresentation {
  id: string;
  bandwidth: number;
  codecs: string[];
  width?: number;
  height?: number;
  timescale: number;
  presentationTimeOffset: number;
  initialization: string;
  media: string;
  segments: CheckedSegment[];
}

export interface CheckedPeriod {
  id: string;
  start: number;
  contentType: string;
  representations: CheckedRepresentation[];
}

export interface CheckedMpd {
  type: 'dynamic' | 'static';
  availabilityStartTime?: number;
  publishTime: number;
  minimumUpdatePeriod?: number;
  timeShiftBufferDepth?: number;
  suggestedPresentationDelay?: number;
  mediaPresentationDuration?: number;
  latencyTarget?: number;
  utcTiming: { scheme: string; value: string }[];
  periods: CheckedPeriod[];
}

function need(node: XmlNode, name: string, where: string): string {
  const v = node.attrs[name];
  if (v === undefined || v === '') throw new Error(`${where}: ${node.name}@${name} is required`);
  return v;
}

function uint(node: XmlNode, name: string, where: string, optional = false): number | undefined {
  const v = node.attrs[name];
  if (v === undefined && optional) return undefined;
  if (v === undefined || !UINT.test(v))
    throw new Error(`${where}: ${node.name}@${name}="${v}" is not an unsigned integer`);
  return Number(v);
}

function only(node: XmlNode, allowed: readonly string[], where: string): void {
  // Children must come in the schema's order (xs:sequence): their positions in `allowed` never go back.
  let last = -1;
  for (const c of node.children) {
    const i = allowed.indexOf(c.name);
    if (i < 0) throw new Error(`${where}: unexpected <${c.name}> in <${node.name}>`);
    if (i < last) throw new Error(`${where}: <${c.name}> out of the schema's order in <${node.name}>`);
    last = i;
  }
}

/** The strict check; returns the MPD's facts. */
export function checkMpd(text: string): CheckedMpd {
  const mpd = parseXml(text);
  if (mpd.name !== 'MPD') throw new Error(`root is <${mpd.name}>`);
  if (mpd.attrs.xmlns !== 'urn:mpeg:dash:schema:mpd:2011')
    throw new Error('MPD@xmlns is not the DASH namespace');
  const profiles = need(mpd, 'profiles', 'MPD').split(',');
  if (!profiles.includes('urn:mpeg:dash:profile:isoff-live:2011'))
    throw new Error('not the isoff-live profile');
  const type = need(mpd, 'type', 'MPD');
  if (type !== 'dynamic' && type !== 'static') throw new Error(`MPD@type ${type}`);
  durationSeconds(need(mpd, 'minBufferTime', 'MPD'));
  only(mpd, ['ServiceDescription', 'Period', 'UTCTiming'], 'MPD');
  const date = (name: string): number => {
    const v = need(mpd, name, 'MPD');
    if (!DATE_TIME.test(v)) throw new Error(`MPD@${name}="${v}" is not an xs:dateTime`);
    return Date.parse(v);
  };
  const out: CheckedMpd = { type, publishTime: date('publishTime'), utcTiming: [], periods: [] };
  if (type === 'dynamic') {
    out.availabilityStartTime = date('availabilityStartTime');
    if (out.publishTime < out.availabilityStartTime)
      throw new Error('publishTime before availabilityStartTime');
    out.minimumUpdatePeriod = durationSeconds(need(mpd, 'minimumUpdatePeriod', 'MPD'));
    out.timeShiftBufferDepth = durationSeconds(need(mpd, 'timeShiftBufferDepth', 'MPD'));
    out.suggestedPresentationDelay = durationSeconds(need(mpd, 'suggestedPresentationDelay', 'MPD'));
    if ('mediaPresentationDuration' in mpd.attrs)
      throw new Error('a dynamic MPD with mediaPresentationDuration');
    const utc = mpd.children.filter((c) => c.name === 'UTCTiming');
    if (utc.length === 0) throw new Error('a dynamic MPD without UTCTiming');
    for (const u of utc) {
      const scheme = need(u, 'schemeIdUri', 'UTCTiming');
      if (!/^urn:mpeg:dash:utc:(http-iso|http-xsdate|direct):2014$/.test(scheme))
        throw new Error(`UTCTiming ${scheme}`);
      out.utcTiming.push({ scheme, value: need(u, 'value', 'UTCTiming') });
    }
    const sd = mpd.children.filter((c) => c.name === 'ServiceDescription');
    for (const s of sd) {
      only(s, ['Latency', 'PlaybackRate'], 'ServiceDescription');
      const latency = s.children.find((c) => c.name === 'Latency');
      if (latency) {
        uint(latency, 'referenceId', 'Latency');
        out.latencyTarget = uint(latency, 'target', 'Latency')! / 1000;
        const min = uint(latency, 'min', 'Latency', true);
        const max = uint(latency, 'max', 'Latency', true);
        if (
          min !== undefined &&
          max !== undefined &&
          !(min <= out.latencyTarget * 1000 && out.latencyTarget * 1000 <= max)
        )
          throw new Error('Latency target outside min..max');
      }
    }
  } else {
    out.mediaPresentationDuration = durationSeconds(need(mpd, 'mediaPresentationDuration', 'MPD'));
    for (const a of ['minimumUpdatePeriod', 'timeShiftBufferDepth']) {
      if (a in mpd.attrs) throw new Error(`a static MPD with ${a}`);
    }
  }
  const periods = mpd.children.filter((c) => c.name === 'Period');
  if (periods.length === 0) throw new Error('no Period');
  const periodIds = new Set<string>();
  let lastStart = -1;
  for (const p of periods) {
    const id = need(p, 'id', 'Period');
    if (periodIds.has(id)) throw new Error(`Period id ${id} twice`);
    periodIds.add(id);
    const start = durationSeconds(need(p, 'start', `Period ${id}`));
    if (start < lastStart) throw new Error(`Period ${id} starts before the one before it`);
    lastStart = start;
    only(p, ['AdaptationSet'], `Period ${id}`);
    const sets = p.children;
    if (sets.length !== 1) throw new Error(`Period ${id}: ${sets.length} AdaptationSets`);
    const set = sets[0]!;
    const mime = need(set, 'mimeType', `Period ${id}`);
    const contentType = need(set, 'contentType', `Period ${id}`);
    if (`${contentType}/mp4` !== mime) throw new Error(`AdaptationSet ${contentType} with ${mime}`);
    if (set.attrs.startWithSAP !== '1' || set.attrs.segmentAlignment !== 'true')
      throw new Error('AdaptationSet without startWithSAP=1 segmentAlignment=true');
    only(set, ['Representation'], `Period ${id}`);
    if (set.children.length === 0) throw new Error(`Period ${id}: no Representation`);
    const repIds = new Set<string>();
    const representations: CheckedRepresentation[] = [];
    for (const r of set.children) {
      const rid = need(r, 'id', `Period ${id}`);
      if (repIds.has(rid)) throw new Error(`Representation ${rid} twice`);
      repIds.add(rid);
      const where = `Period ${id} Representation ${rid}`;
      const bandwidth = uint(r, 'bandwidth', where)!;
      if (bandwidth <= 0) throw new Error(`${where}: bandwidth 0`);
      const codecs = need(r, 'codecs', where).split(',');
      if (!codecs.every((c) => /^(avc1|avc3|hvc1|hev1)\.[0-9A-Za-z.]+$|^mp4a\.40\.\d+$|^opus$/.test(c)))
        throw new Error(`${where}: codecs ${codecs}`);
      const width = uint(r, 'width', where, contentType !== 'video');
      const height = uint(r, 'height', where, contentType !== 'video');
      only(r, ['AudioChannelConfiguration', 'SegmentTemplate'], where);
      const templates = r.children.filter((c) => c.name === 'SegmentTemplate');
      if (templates.length !== 1) throw new Error(`${where}: ${templates.length} SegmentTemplates`);
      const st = templates[0]!;
      const timescale = uint(st, 'timescale', where)!;
      if (timescale <= 0) throw new Error(`${where}: timescale 0`);
      const pto = uint(st, 'presentationTimeOffset', where)!;
      const startNumber = uint(st, 'startNumber', where)!;
      const initialization = need(st, 'initialization', where);
      const media = need(st, 'media', where);
      if (!media.includes('$Number$') || /\$(?!Number\$)[A-Za-z]*\$/.test(media.replace('$Number$', '')))
        throw new Error(`${where}: media template ${media}`);
      if (initialization.includes('$')) throw new Error(`${where}: initialization ${initialization}`);
      only(st, ['SegmentTimeline'], where);
      const timeline = st.children[0];
      if (!timeline || st.children.length !== 1) throw new Error(`${where}: no SegmentTimeline`);
      only(timeline, ['S'], where);
      const segments: CheckedSegment[] = [];
      let next: number | null = null;
      for (const s of timeline.children) {
        const d = uint(s, 'd', where)!;
        if (d <= 0) throw new Error(`${where}: S@d 0`);
        const t: number = uint(s, 't', where, next !== null) ?? (next as number);
        if (next !== null && t < next) throw new Error(`${where}: S@t ${t} goes back (before ${next})`);
        const r = uint(s, 'r', where, true) ?? 0;
        for (let k = 0; k <= r; k++) {
          segments.push({ number: startNumber + segments.length, t: t + k * d, d });
        }
        next = t + (r + 1) * d;
      }
      if (segments.length === 0) throw new Error(`${where}: an empty SegmentTimeline`);
      if (!('t' in timeline.children[0]!.attrs)) throw new Error(`${where}: the first S has no t`);
      representations.push({
        id: rid,
        bandwidth,
        codecs,
        ...(width !== undefined ? { width } : {}),
        ...(height !== undefined ? { height } : {}),
        timescale,
        presentationTimeOffset: pto,
        initialization,
        media,
        segments,
      });
    }
    out.periods.push({ id, start, contentType, representations });
  }
  return out;
}
