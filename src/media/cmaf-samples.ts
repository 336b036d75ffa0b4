/**
 * CMAF (fMP4) back to access units: the codec configurations of an init segment (avcC, AudioSpecificConfig,
 * timescales, trex defaults) and the samples of one fragment (moof + mdat), with their decode and
 * composition times on the fragment's own clock. WHEP reads a transcoded stream this way: FFmpeg's output
 * has no B-frames, its input may (issue 17). Fmp4Reader (./fmp4.ts) frames the bytes and checks them; this
 * module only walks boxes of an init or fragment that reader already accepted, and still bounds every length
 * it reads against the buffer (a malformed one throws FMP4_MALFORMED, never reads past the end).
 *
 * Hand-written for the same reason as the reader: a handful of boxes on the hot path, no dependency.
 */
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { AudioConfig, VideoConfig } from './access-unit.ts';
import { isSyncSample } from './fmp4.ts';

export interface CmafTrackInfo {
  trackId: number;
  timescale: number;
  /** trex defaults (used when a tfhd carries none). */
  defaults: { duration: number; size: number; flags: number };
}

export interface CmafConfigs {
  video: (CmafTrackInfo & { config: VideoConfig }) | null;
  audio: (CmafTrackInfo & { config: AudioConfig }) | null;
}

export interface CmafSample {
  track: 'video' | 'audio';
  /** Decode and presentation time, seconds on the fragment's clock (tfdt / timescale). */
  dts: number;
  pts: number;
  keyframe: boolean;
  /** A view into the fragment's bytes (no copy). */
  data: Buffer;
}

interface Box {
  type: string;
  /** Body start and box end, absolute offsets in the buffer. */
  body: number;
  end: number;
}

const malformed = (what: string): never => {
  throw new RelayError(ErrorCodes.FMP4_MALFORMED, `CMAF samples: ${what}`);
};

/** The boxes between `start` and `end`. */
function* boxes(buf: Buffer, start: number, end: number): Generator<Box> {
  let at = start;
  while (at + 8 <= end) {
    let size = buf.readUInt32BE(at);
    const type = buf.toString('latin1', at + 4, at + 8);
    let header = 8;
    if (size === 1) {
      if (at + 16 > end) malformed(`${type}: truncated largesize`);
      size = Number(buf.readBigUInt64BE(at + 8));
      header = 16;
    } else if (size === 0) {
      size = end - at;
    }
    if (size < header || at + size > end) malformed(`${type}: size ${size} past its parent`);
    yield { type, body: at + header, end: at + size };
    at += size;
  }
}

const child = (buf: Buffer, parent: Box, type: string): Box | undefined => {
  for (const b of boxes(buf, parent.body, parent.end)) if (b.type === type) return b;
  return undefined;
};

/** Reads fields of one box body, bounded by the box. */
class Reader {
  #at: number;
  constructor(
    readonly buf: Buffer,
    readonly box: Box,
  ) {
    this.#at = box.body;
  }
  get at(): number {
    return this.#at;
  }
  #need(n: number): number {
    const at = this.#at;
    if (at + n > this.box.end) malformed(`${this.box.type}: truncated`);
    this.#at += n;
    return at;
  }
  skip(n: number): void {
    this.#need(n);
  }
  u8(): number {
    return this.buf.readUInt8(this.#need(1));
  }
  u16(): number {
    return this.buf.readUInt16BE(this.#need(2));
  }
  u32(): number {
    return this.buf.readUInt32BE(this.#need(4));
  }
  i32(): number {
    return this.buf.readInt32BE(this.#need(4));
  }
  u64(): number {
    return Number(this.buf.readBigUInt64BE(this.#need(8)));
  }
  /** version (8 bits) and flags (24 bits) of a full box. */
  full(): { version: number; flags: number } {
    const v = this.u32();
    return { version: v >>> 24, flags: v & 0xffffff };
  }
}

/** An MPEG-4 descriptor length (ISO/IEC 14496-1 §8.3.3): up to four 7-bit groups. */
function descriptorLength(r: Reader): number {
  let length = 0;
  for (let i = 0; i < 4; i++) {
    const b = r.u8();
    length = (length << 7) | (b & 0x7f);
    if ((b & 0x80) === 0) break;
  }
  return length;
}

/** The AudioSpecificConfig in an esds: ES_Descriptor → DecoderConfigDescriptor → DecoderSpecificInfo. */
function ascOf(buf: Buffer, esds: Box): Buffer | null {
  const r = new Reader(buf, esds);
  r.full();
  while (r.at < esds.end) {
    const tag = r.u8();
    const length = descriptorLength(r);
    if (tag === 0x03) {
      r.skip(2); // ES_ID
      const flags = r.u8();
      if (flags & 0x80) r.skip(2); // dependsOn_ES_ID
      if (flags & 0x40) r.skip(r.u8()); // URL
      if (flags & 0x20) r.skip(2); // OCR_ES_Id
    } else if (tag === 0x04) {
      r.skip(13); // objectTypeIndication, streamType, bufferSizeDB, maxBitrate, avgBitrate
    } else if (tag === 0x05) {
      const start = r.at;
      r.skip(length);
      return Buffer.from(buf.subarray(start, start + length));
    } else {
      r.skip(length);
    }
  }
  return null;
}

/** The tracks of an init segment (ftyp + moov) WHEP can use: H.264 video and AAC audio. */
export function readCmafInit(init: Buffer): CmafConfigs {
  const top = { type: 'file', body: 0, end: init.length };
  const moov = child(init, top, 'moov') ?? malformed('no moov');
  const trex = new Map<number, CmafTrackInfo['defaults']>();
  const mvex = child(init, moov, 'mvex');
  if (mvex) {
    for (const b of boxes(init, mvex.body, mvex.end)) {
      if (b.type !== 'trex') continue;
      const r = new Reader(init, b);
      r.full();
      const id = r.u32();
      r.skip(4); // default_sample_description_index
      trex.set(id, { duration: r.u32(), size: r.u32(), flags: r.u32() });
    }
  }
  const out: CmafConfigs = { video: null, audio: null };
  for (const trak of boxes(init, moov.body, moov.end)) {
    if (trak.type !== 'trak') continue;
    const tkhd = child(init, trak, 'tkhd') ?? malformed('trak without tkhd');
    const t = new Reader(init, tkhd);
    t.skip(t.full().version === 1 ? 16 : 8);
    const trackId = t.u32();
    const mdia = child(init, trak, 'mdia') ?? malformed('trak without mdia');
    const mdhd = child(init, mdia, 'mdhd') ?? malformed('mdia without mdhd');
    const m = new Reader(init, mdhd);
    m.skip(m.full().version === 1 ? 16 : 8);
    const timescale = m.u32();
    if (timescale === 0) malformed('timescale 0');
    const stbl =
      child(init, child(init, mdia, 'minf') ?? malformed('no minf'), 'stbl') ?? malformed('no stbl');
    const stsd = child(init, stbl, 'stsd') ?? malformed('no stsd');
    const entries = { type: 'stsd', body: stsd.body + 8, end: stsd.end }; // full box + entry_count
    const defaults = trex.get(trackId) ?? { duration: 0, size: 0, flags: 0 };
    for (const entry of boxes(init, entries.body, entries.end)) {
      if ((entry.type === 'avc1' || entry.type === 'avc3') && !out.video) {
        const v = new Reader(init, entry);
        v.skip(24); // SampleEntry (8), pre_defined + reserved (16)
        const width = v.u16();
        const height = v.u16();
        const avcC = child(init, { type: entry.type, body: entry.body + 78, end: entry.end }, 'avcC');
        if (!avcC) malformed(`${entry.type} without avcC`);
        const record = Buffer.from(init.subarray(avcC!.body, avcC!.end));
        out.video = {
          trackId,
          timescale,
          defaults,
          config: { kind: 'video', codec: 'h264', record, width, height },
        };
      } else if (entry.type === 'mp4a' && !out.audio) {
        const a = new Reader(init, entry);
        a.skip(16); // SampleEntry (8), reserved (8)
        const channels = a.u16();
        a.skip(6); // samplesize, pre_defined, reserved
        const sampleRate = a.u32() >>> 16;
        const esds = child(init, { type: 'mp4a', body: entry.body + 28, end: entry.end }, 'esds');
        const asc = esds ? ascOf(init, esds) : null;
        if (!asc || asc.length < 2) malformed('mp4a without an AudioSpecificConfig');
        out.audio = {
          trackId,
          timescale,
          defaults,
          config: {
            kind: 'audio',
            codec: 'aac',
            config: asc!,
            sampleRate: sampleRate || timescale,
            channels: channels || 1,
            frameSamples: 1024,
          },
        };
      }
    }
  }
  return out;
}

// tfhd flags (ISO/IEC 14496-12 §8.8.7) and trun flags (§8.8.8)
const TFHD_BASE_DATA_OFFSET = 0x000001;
const TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002;
const TFHD_DEFAULT_DURATION = 0x000008;
const TFHD_DEFAULT_SIZE = 0x000010;
const TFHD_DEFAULT_FLAGS = 0x000020;
const TFHD_DEFAULT_BASE_IS_MOOF = 0x020000;
const TRUN_DATA_OFFSET = 0x000001;
const TRUN_FIRST_SAMPLE_FLAGS = 0x000004;
const TRUN_DURATION = 0x000100;
const TRUN_SIZE = 0x000200;
const TRUN_FLAGS = 0x000400;
const TRUN_COMPOSITION_OFFSET = 0x000800;

/**
 * The video and audio samples of one fragment (any styp/prft before the moof is skipped), in the order the
 * runs list them. Tracks the init did not describe are left out. A base-data-offset (absolute in a file) is
 * taken as counted from the moof, which is what it means in a stream that starts at the init.
 */
export function readCmafSamples(configs: CmafConfigs, fragment: Buffer): CmafSample[] {
  const top = { type: 'fragment', body: 0, end: fragment.length };
  let moof: Box | undefined;
  for (const b of boxes(fragment, top.body, top.end)) {
    if (b.type === 'moof') {
      moof = b;
      break;
    }
  }
  if (!moof) return malformed('no moof');
  const moofStart = moof.body - 8;
  const tracks = new Map<number, { kind: 'video' | 'audio'; info: CmafTrackInfo }>();
  if (configs.video) tracks.set(configs.video.trackId, { kind: 'video', info: configs.video });
  if (configs.audio) tracks.set(configs.audio.trackId, { kind: 'audio', info: configs.audio });
  const out: CmafSample[] = [];
  let implicitBase = moofStart;
  for (const traf of boxes(fragment, moof.body, moof.end)) {
    if (traf.type !== 'traf') continue;
    const tfhd = child(fragment, traf, 'tfhd') ?? malformed('traf without tfhd');
    const h = new Reader(fragment, tfhd);
    const hf = h.full().flags;
    const trackId = h.u32();
    const track = tracks.get(trackId);
    const defaults = track?.info.defaults ?? { duration: 0, size: 0, flags: 0 };
    let base = implicitBase;
    if (hf & TFHD_BASE_DATA_OFFSET) base = moofStart + h.u64();
    else if (hf & TFHD_DEFAULT_BASE_IS_MOOF) base = moofStart;
    if (hf & TFHD_SAMPLE_DESCRIPTION_INDEX) h.skip(4);
    const defaultDuration = hf & TFHD_DEFAULT_DURATION ? h.u32() : defaults.duration;
    const defaultSize = hf & TFHD_DEFAULT_SIZE ? h.u32() : defaults.size;
    const defaultFlags = hf & TFHD_DEFAULT_FLAGS ? h.u32() : defaults.flags;
    const tfdt = child(fragment, traf, 'tfdt');
    let decodeTime = 0;
    if (tfdt) {
      const d = new Reader(fragment, tfdt);
      decodeTime = d.full().version === 1 ? d.u64() : d.u32();
    }
    let dataPos = base;
    for (const trun of boxes(fragment, traf.body, traf.end)) {
      if (trun.type !== 'trun') continue;
      const r = new Reader(fragment, trun);
      const { version, flags } = r.full();
      const count = r.u32();
      if (flags & TRUN_DATA_OFFSET) dataPos = base + r.i32();
      const firstFlags = flags & TRUN_FIRST_SAMPLE_FLAGS ? r.u32() : undefined;
      for (let i = 0; i < count; i++) {
        const duration = flags & TRUN_DURATION ? r.u32() : defaultDuration;
        const size = flags & TRUN_SIZE ? r.u32() : defaultSize;
        let sampleFlags = flags & TRUN_FLAGS ? r.u32() : defaultFlags;
        if (i === 0 && firstFlags !== undefined) sampleFlags = firstFlags;
        const cto = flags & TRUN_COMPOSITION_OFFSET ? (version === 0 ? r.u32() : r.i32()) : 0;
        if (dataPos < 0 || dataPos + size > fragment.length)
          malformed(`sample ${i} of track ${trackId} past the mdat`);
        if (track) {
          const ts = track.info.timescale;
          out.push({
            track: track.kind,
            dts: decodeTime / ts,
            pts: (decodeTime + cto) / ts,
            keyframe: track.kind === 'audio' || isSyncSample(sampleFlags),
            data: fragment.subarray(dataPos, dataPos + size),
          });
        }
        dataPos += size;
        decodeTime += duration;
      }
    }
    implicitBase = dataPos;
  }
  return out;
}
