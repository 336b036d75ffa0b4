/**
 * Fragmented MP4 reader (ISO/IEC 14496-12) for what FFmpeg writes to a pipe with
 * `-f mp4 -movflags +frag_keyframe+empty_moov+default_base_moof`: ftyp+moov once, then moof+mdat pairs (and an
 * mfra at the end, skipped). Pure and incremental: feed it stdout reads of any size, it calls back with the
 * init segment and each whole fragment, bytes unchanged, plus what HLS needs: codecs (RFC 6381), timing and
 * whether a fragment starts on a keyframe. Hand-written: the relay reads a dozen boxes, passes every byte
 * through untouched and must check each length against a cap and fail with a stable code; general MP4
 * libraries (mp4box.js and the like) parse far more and keep their own copies.
 *
 * Hostile-input rules (FFmpeg's output follows what a publisher sent, so it is checked like peer input): a
 * top-level box is refused on its header alone when its size is 0 (to end of stream), below its header size
 * or over `maxBoxSize`; at most one partial top-level box is held, and boxes the relay does not use are
 * skipped without being kept. Inside boxes every read is bounds-checked, sample counts are checked against the
 * bytes that must describe them before any loop, and sample data must lie inside the mdat after its moof.
 * Any violation throws RelayError FMP4_MALFORMED; the reader then refuses further input.
 */
import { ErrorCodes, RelayError, toRelayError } from '../shared/errors.ts';

export const DEFAULT_FMP4_MAX_BOX_SIZE = 64 * 1024 * 1024;

export interface Fmp4Track {
  id: number;
  kind: 'video' | 'audio' | 'other';
  timescale: number;
  /** RFC 6381 codec string, e.g. 'avc1.42c01f' (from avcC) or 'mp4a.40.2' (from esds). */
  codec: string;
  width?: number;
  height?: number;
  sampleRate?: number;
  channels?: number;
}

export interface Fmp4Init {
  /** The ftyp+moov bytes exactly (with any box FFmpeg put between them). */
  data: Buffer;
  tracks: Fmp4Track[];
}

export interface Fmp4TrackRun {
  trackId: number;
  /** tfdt, in the track timescale (continued from the previous fragment when a traf has none). */
  baseDecodeTime: number;
  sampleCount: number;
  /** Sum of sample durations, in the track timescale. */
  duration: number;
  firstSampleIsSync: boolean;
}

export interface Fmp4Fragment {
  /** The moof+mdat bytes exactly as received, with any styp/sidx/prft/emsg right before the moof. */
  data: Buffer;
  /** mfhd sequence number. */
  sequence: number;
  /** One per traf. */
  runs: Fmp4TrackRun[];
  /**
   * The video run's first sample is a sync sample. True when there is no video track; false when there is
   * one but this fragment carries none of its samples (a segment must not start there).
   */
  keyframe: boolean;
  /** baseDecodeTime / timescale of the video run if any, else of the first run. */
  startSeconds: number;
  /** Duration of the video run if any, else of the longest run. */
  durationSeconds: number;
}

export interface Fmp4Callbacks {
  init(init: Fmp4Init): void;
  fragment(fragment: Fmp4Fragment): void;
}

/** Boxes kept and sent with the next fragment (CMAF puts them right before the moof). */
const PREFIX_TYPES = new Set(['styp', 'sidx', 'prft', 'emsg']);

// tfhd flags (14496-12 §8.8.7)
const TFHD_BASE_DATA_OFFSET = 0x000001;
const TFHD_SAMPLE_DESCRIPTION_INDEX = 0x000002;
const TFHD_DEFAULT_DURATION = 0x000008;
const TFHD_DEFAULT_SIZE = 0x000010;
const TFHD_DEFAULT_FLAGS = 0x000020;
const TFHD_DEFAULT_BASE_IS_MOOF = 0x020000;
// trun flags (§8.8.8)
const TRUN_DATA_OFFSET = 0x000001;
const TRUN_FIRST_SAMPLE_FLAGS = 0x000004;
const TRUN_DURATION = 0x000100;
const TRUN_SIZE = 0x000200;
const TRUN_FLAGS = 0x000400;
const TRUN_COMPOSITION_OFFSET = 0x000800;
// sample flags (§8.8.3.1)
const SAMPLE_IS_NON_SYNC = 0x00010000;

/** A sync sample per the sample flags: it does not depend on others and is not marked non-sync. */
export function isSyncSample(flags: number): boolean {
  return ((flags >>> 24) & 0x3) !== 1 && (flags & SAMPLE_IS_NON_SYNC) === 0;
}

function malformed(message: string): never {
  throw new RelayError(ErrorCodes.FMP4_MALFORMED, message);
}

/** Bounds-checked big-endian reads over buf[pos, end); running past `end` is FMP4_MALFORMED. */
class Cursor {
  readonly #buf: Buffer;
  readonly #end: number;
  readonly #what: string;
  pos: number;

  constructor(buf: Buffer, start: number, end: number, what: string) {
    this.#buf = buf;
    this.pos = start;
    this.#end = end;
    this.#what = what;
  }

  get left(): number {
    return this.#end - this.pos;
  }

  #take(n: number): number {
    if (this.#end - this.pos < n) malformed(`${this.#what} box is truncated`);
    const at = this.pos;
    this.pos += n;
    return at;
  }

  skip(n: number): void {
    this.#take(n);
  }

  u8(): number {
    return this.#buf[this.#take(1)]!;
  }

  u16(): number {
    return this.#buf.readUInt16BE(this.#take(2));
  }

  u24(): number {
    return this.#buf.readUIntBE(this.#take(3), 3);
  }

  u32(): number {
    return this.#buf.readUInt32BE(this.#take(4));
  }

  i32(): number {
    return this.#buf.readInt32BE(this.#take(4));
  }

  /** 64-bit as a Number: exact below 2^53, refused above (no real timestamp or offset gets there). */
  u64(): number {
    const at = this.#take(8);
    const hi = this.#buf.readUInt32BE(at);
    if (hi >= 0x200000) malformed(`${this.#what} box holds a 64-bit value of 2^53 or more`);
    return hi * 2 ** 32 + this.#buf.readUInt32BE(at + 4);
  }

  /** version (8 bits) and flags (24 bits) of a FullBox. */
  fullBox(): { version: number; flags: number } {
    return { version: this.u8(), flags: this.u24() };
  }
}

interface Box {
  type: string;
  start: number;
  /** First byte after the header. */
  body: number;
  end: number;
}

/** Type bytes must be printable ASCII: anything else means the stream lost sync or is not MP4. */
function isFourCC(buf: Buffer, at: number): boolean {
  for (let i = at; i < at + 4; i++) {
    const c = buf[i]!;
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/** The boxes laid end to end in buf[start, end), each checked to fit exactly. */
function* children(buf: Buffer, start: number, end: number, parent: string): Generator<Box> {
  let at = start;
  while (at < end) {
    if (end - at < 8) malformed(`${parent} box ends with ${end - at} stray bytes`);
    const size32 = buf.readUInt32BE(at);
    if (!isFourCC(buf, at + 4)) malformed(`${parent} box holds a box with a non-text type`);
    const type = buf.toString('latin1', at + 4, at + 8);
    let size = size32;
    let header = 8;
    if (size32 === 1) {
      if (end - at < 16) malformed(`${type} box in ${parent} is truncated`);
      size = buf.readUInt32BE(at + 8) * 2 ** 32 + buf.readUInt32BE(at + 12);
      header = 16;
    } else if (size32 === 0) {
      malformed(`${type} box in ${parent} has size 0 (to end of file), allowed only at top level`);
    }
    if (type === 'uuid') header += 16;
    if (size < header || size > end - at) {
      malformed(`${type} box in ${parent} declares ${size} bytes; ${end - at} are left`);
    }
    yield { type, start: at, body: at + header, end: at + size };
    at += size;
  }
}

function findChild(buf: Buffer, parent: Box, type: string): Box | undefined {
  for (const box of children(buf, parent.body, parent.end, parent.type)) {
    if (box.type === type) return box;
  }
  return undefined;
}

const hex2 = (n: number): string => n.toString(16).padStart(2, '0');
const dec2 = (n: number): string => String(n).padStart(2, '0');

interface SampleDefaults {
  duration: number;
  size: number;
  flags: number;
}

interface TrackState {
  track: Fmp4Track;
  /** From trex: what tfhd and trun fall back to. */
  defaults: SampleDefaults;
  /** Where the next traf without a tfdt starts. */
  nextDecodeTime: number;
}

/** Reads the moov (buf holds exactly that box): the tracks, their codecs and trex defaults. */
function parseMoov(buf: Buffer, moov: Box): Map<number, TrackState> {
  const tracks = new Map<number, TrackState>();
  const trex = new Map<number, SampleDefaults>();
  let mvex = false;
  for (const box of children(buf, moov.body, moov.end, 'moov')) {
    if (box.type === 'trak') {
      const track = parseTrak(buf, box);
      if (tracks.has(track.id)) malformed(`two traks with track id ${track.id}`);
      tracks.set(track.id, { track, defaults: { duration: 0, size: 0, flags: 0 }, nextDecodeTime: 0 });
    } else if (box.type === 'mvex') {
      mvex = true;
      for (const child of children(buf, box.body, box.end, 'mvex')) {
        if (child.type !== 'trex') continue;
        const c = new Cursor(buf, child.body, child.end, 'trex');
        c.skip(4); // version and flags
        const id = c.u32();
        c.skip(4); // default sample description index: one sample entry is all FFmpeg writes
        trex.set(id, { duration: c.u32(), size: c.u32(), flags: c.u32() });
      }
    }
  }
  if (!mvex) malformed('moov has no mvex: not a fragmented MP4');
  if (tracks.size === 0) malformed('moov has no trak');
  for (const [id, state] of tracks) {
    const defaults = trex.get(id);
    if (defaults === undefined) malformed(`track ${id} has no trex`);
    state.defaults = defaults;
  }
  return tracks;
}

function parseTrak(buf: Buffer, trak: Box): Fmp4Track {
  let id: number | undefined;
  let timescale: number | undefined;
  let handler: string | undefined;
  let stsd: Box | undefined;
  for (const box of children(buf, trak.body, trak.end, 'trak')) {
    if (box.type === 'tkhd') {
      const c = new Cursor(buf, box.body, box.end, 'tkhd');
      const { version } = c.fullBox();
      c.skip(version === 1 ? 16 : 8); // creation and modification times
      id = c.u32();
    } else if (box.type === 'mdia') {
      for (const child of children(buf, box.body, box.end, 'mdia')) {
        if (child.type === 'mdhd') {
          const c = new Cursor(buf, child.body, child.end, 'mdhd');
          const { version } = c.fullBox();
          c.skip(version === 1 ? 16 : 8);
          timescale = c.u32();
        } else if (child.type === 'hdlr') {
          const c = new Cursor(buf, child.body, child.end, 'hdlr');
          c.skip(8); // version, flags, pre_defined
          const at = c.pos;
          c.skip(4);
          handler = buf.toString('latin1', at, at + 4);
        } else if (child.type === 'minf') {
          const stbl = findChild(buf, child, 'stbl');
          if (stbl) stsd = findChild(buf, stbl, 'stsd');
        }
      }
    }
  }
  if (id === undefined) malformed('trak has no tkhd');
  if (id === 0) malformed('trak has track id 0');
  if (timescale === undefined || timescale === 0) malformed(`track ${id} has no mdhd timescale`);
  if (handler === undefined) malformed(`track ${id} has no hdlr`);
  if (stsd === undefined) malformed(`track ${id} has no stsd`);
  const kind = handler === 'vide' ? 'video' : handler === 'soun' ? 'audio' : 'other';

  const c = new Cursor(buf, stsd.body, stsd.end, 'stsd');
  c.skip(4);
  if (c.u32() === 0) malformed(`track ${id} has no sample entry`);
  // The first entry describes the stream: FFmpeg writes one per track.
  const entry = children(buf, c.pos, stsd.end, 'stsd').next().value;
  if (!entry) malformed(`track ${id} has no sample entry`);
  return { id, kind, timescale, ...describeEntry(buf, entry, kind, timescale) };
}

type EntryInfo = Pick<Fmp4Track, 'codec' | 'width' | 'height' | 'sampleRate' | 'channels'>;

function describeEntry(buf: Buffer, entry: Box, kind: Fmp4Track['kind'], timescale: number): EntryInfo {
  const c = new Cursor(buf, entry.body, entry.end, entry.type);
  c.skip(8); // reserved, data_reference_index
  if (kind === 'video') {
    // VisualSampleEntry: 16 bytes pre_defined/reserved, then width and height, then 50 more bytes.
    c.skip(16);
    const width = c.u16();
    const height = c.u16();
    c.skip(50);
    return { codec: codecInfo(buf, entry, c.pos).codec, width, height };
  }
  if (kind === 'audio') {
    // AudioSampleEntry; QuickTime sound description versions 1 and 2 insert fields before the children.
    const version = c.u16();
    c.skip(6);
    let channels = c.u16();
    c.skip(6);
    let sampleRate = c.u32() >>> 16;
    if (version === 1) {
      c.skip(16);
    } else if (version === 2) {
      c.skip(4);
      const at = c.pos;
      c.skip(8);
      const rate = buf.readDoubleBE(at);
      if (!(Number.isFinite(rate) && rate >= 1 && rate < 2 ** 32))
        malformed(`${entry.type} sample rate ${rate}`);
      sampleRate = Math.round(rate);
      channels = c.u32();
      c.skip(20);
    }
    // The 16.16 field tops out at 65535 Hz; FFmpeg then writes 0 and the timescale is the rate.
    if (sampleRate === 0) sampleRate = timescale;
    // MP4 (unlike QuickTime) has FFmpeg write channelcount 2 for AAC: the AudioSpecificConfig knows better.
    const info = codecInfo(buf, entry, c.pos);
    return {
      codec: info.codec,
      sampleRate: info.sampleRate ?? sampleRate,
      channels: info.channels ?? channels,
    };
  }
  return { codec: entry.type };
}

export interface CodecInfo {
  codec: string;
  sampleRate?: number;
  channels?: number;
}

/** RFC 6381 codec string from the sample entry's configuration box; the bare type when it has none. */
function codecInfo(buf: Buffer, entry: Box, childStart: number): CodecInfo {
  const type = entry.type;
  for (const box of children(buf, childStart, entry.end, type)) {
    const c = new Cursor(buf, box.body, box.end, box.type);
    switch (box.type) {
      case 'avcC': {
        // ISO 14496-15 §5.3.3.1: profile, constraint flags and level, as hex.
        if (!/^avc[1-4]$/.test(type)) break;
        c.skip(1);
        return { codec: `${type}.${hex2(c.u8())}${hex2(c.u8())}${hex2(c.u8())}` };
      }
      case 'hvcC': {
        if (type !== 'hvc1' && type !== 'hev1') break;
        return { codec: hevcCodec(type, c) };
      }
      case 'av1C': {
        if (type !== 'av01') break;
        // AV1 codec ISO media file format binding §5: profile, level+tier, bit depth.
        c.skip(1);
        const b1 = c.u8();
        const b2 = c.u8();
        const profile = b1 >> 5;
        const high = (b2 >> 6) & 1;
        const depth = profile === 2 && high ? ((b2 >> 5) & 1 ? 12 : 10) : high ? 10 : 8;
        return { codec: `av01.${profile}.${dec2(b1 & 0x1f)}${b2 >> 7 ? 'H' : 'M'}.${dec2(depth)}` };
      }
      case 'vpcC': {
        if (type !== 'vp09') break;
        // VP codec ISO media file format binding: profile, level, bit depth, two decimal digits each.
        c.skip(4);
        const profile = c.u8();
        const level = c.u8();
        return { codec: `vp09.${dec2(profile)}.${dec2(level)}.${dec2(c.u8() >> 4)}` };
      }
      case 'esds': {
        if (type !== 'mp4a') break;
        return mp4aInfo(buf, c);
      }
      case 'dOps': {
        // Opus in ISO BMFF §4.3.2: OutputChannelCount after the version byte. MSE and HLS name it 'opus'.
        if (type !== 'Opus') break;
        c.skip(1);
        return { codec: 'opus', channels: c.u8() };
      }
    }
  }
  return { codec: type };
}

/** ISO 14496-15 Annex E: profile space+idc, reversed compatibility flags, tier+level, constraint bytes. */
function hevcCodec(type: string, c: Cursor): string {
  c.skip(1);
  const b = c.u8();
  const compat = c.u32();
  const constraints: number[] = [];
  for (let i = 0; i < 6; i++) constraints.push(c.u8());
  const level = c.u8();
  let reversed = 0;
  for (let i = 0; i < 32; i++) reversed = reversed * 2 + ((compat >>> i) & 1);
  while (constraints.length > 0 && constraints[constraints.length - 1] === 0) constraints.pop();
  const space = ['', 'A', 'B', 'C'][b >> 6]!;
  const tier = (b >> 5) & 1 ? 'H' : 'L';
  const tail = constraints.map((x) => `.${hex2(x).toUpperCase()}`).join('');
  return `${type}.${space}${b & 0x1f}.${reversed.toString(16).toUpperCase()}.${tier}${level}${tail}`;
}

/** ISO 14496-1 descriptor header: the tag must match; the size (7 bits a byte, 4 bytes at most) must fit. */
function descriptor(c: Cursor, tag: number): number {
  const found = c.u8();
  if (found !== tag) malformed(`esds: descriptor tag ${found} where ${tag} belongs`);
  let size = 0;
  for (let i = 0; ; i++) {
    if (i === 4) malformed('esds: descriptor size longer than 4 bytes');
    const b = c.u8();
    size = size * 128 + (b & 0x7f);
    if ((b & 0x80) === 0) break;
  }
  if (size > c.left) malformed(`esds: descriptor of ${size} bytes; ${c.left} are left`);
  return size;
}

/** RFC 6381 §3.3: 'mp4a.' + objectTypeIndication in hex, + '.' + audioObjectType for MPEG-4 audio (0x40). */
function mp4aInfo(buf: Buffer, c: Cursor): CodecInfo {
  c.skip(4); // version and flags
  descriptor(c, 0x03); // ES_Descriptor
  c.skip(2); // ES_ID
  const flags = c.u8();
  if (flags & 0x80) c.skip(2); // dependsOn_ES_ID
  if (flags & 0x40) c.skip(c.u8()); // URL
  if (flags & 0x20) c.skip(2); // OCR_ES_Id
  descriptor(c, 0x04); // DecoderConfigDescriptor
  const oti = c.u8();
  c.skip(12); // stream type, buffer size, bitrates
  const codec = `mp4a.${hex2(oti)}`;
  if (oti !== 0x40 || c.left === 0) return { codec };
  const size = descriptor(c, 0x05); // DecoderSpecificInfo: the AudioSpecificConfig
  if (size === 0) return { codec };
  return ascInfo(buf, c.pos, c.pos + size);
}

/** What an AudioSpecificConfig in buf[start, end) says: 'mp4a.40.' + audioObjectType, rate and channels. */
function ascInfo(buf: Buffer, start: number, end: number): CodecInfo {
  const codec = 'mp4a.40';
  const asc = new Bits(buf, start, end);
  let aot = asc.read(5);
  if (aot === 31) aot = 32 + asc.read(6);
  let sampleRate = readSamplingFrequency(asc);
  const channels = CHANNEL_CONFIGURATIONS[asc.read(4)];
  // Explicit SBR/PS signalling: the output rate follows (ISO 14496-3 §1.6.2.1).
  if (aot === 5 || aot === 29) sampleRate = readSamplingFrequency(asc);
  return {
    codec: `${codec}.${aot}`,
    ...(sampleRate ? { sampleRate } : {}),
    ...(channels ? { channels } : {}),
  };
}

/**
 * The codec string, sample rate and channels the reader reports for an AAC track whose esds carries this
 * AudioSpecificConfig (for writers that must describe their init exactly as the reader will). Throws
 * FMP4_MALFORMED when it is truncated.
 */
export function aacCodecInfo(asc: Buffer): CodecInfo {
  if (asc.length === 0) return { codec: 'mp4a.40' };
  return ascInfo(asc, 0, asc.length);
}

/** The codec string the reader reports for an hvcC record under a sample entry of `type`. */
export function hevcCodecString(record: Buffer, type: 'hvc1' | 'hev1' = 'hvc1'): string {
  return hevcCodec(type, new Cursor(record, 0, record.length, 'hvcC'));
}

/** ISO 14496-3 Table 1.16; reserved indexes give undefined (the sample entry's rate stands). */
const SAMPLING_FREQUENCIES = [
  96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350,
];
/** ISO 14496-3 Table 1.19 (with the 23003-3 additions); 0 means a program config element decides. */
const CHANNEL_CONFIGURATIONS = [0, 1, 2, 3, 4, 5, 6, 8, 0, 0, 0, 7, 8, 24, 8, 0];

function readSamplingFrequency(bits: Bits): number | undefined {
  const index = bits.read(4);
  return index === 0xf ? bits.read(24) : SAMPLING_FREQUENCIES[index];
}

/** MSB-first bit reads over buf[start, end); running past `end` is FMP4_MALFORMED. */
class Bits {
  readonly #buf: Buffer;
  readonly #start: number;
  readonly #bits: number;
  #pos = 0;

  constructor(buf: Buffer, start: number, end: number) {
    this.#buf = buf;
    this.#start = start;
    this.#bits = (end - start) * 8;
  }

  read(n: number): number {
    if (this.#pos + n > this.#bits) malformed('esds: AudioSpecificConfig is truncated');
    let value = 0;
    for (let i = 0; i < n; i++, this.#pos++) {
      const byte = this.#buf[this.#start + (this.#pos >> 3)]!;
      value = value * 2 + ((byte >> (7 - (this.#pos & 7))) & 1);
    }
    return value;
  }
}

/** Absolute stream positions [start, end) of one trun's sample data. */
interface DataRange {
  start: number;
  end: number;
}

interface ParsedMoof {
  sequence: number;
  runs: Fmp4TrackRun[];
  ranges: DataRange[];
}

/** Reads a moof (buf holds exactly that box, which starts at stream position `moofStart`). */
function parseMoof(buf: Buffer, moof: Box, moofStart: number, tracks: Map<number, TrackState>): ParsedMoof {
  let sequence: number | undefined;
  const runs: Fmp4TrackRun[] = [];
  const ranges: DataRange[] = [];
  // With neither base-data-offset nor default-base-is-moof, the first traf's data starts at the moof and
  // each later traf's where the previous traf's data ended (§8.8.7.1).
  let implicitBase = moofStart;
  for (const box of children(buf, moof.body, moof.end, 'moof')) {
    if (box.type === 'mfhd') {
      if (sequence !== undefined) malformed('moof has two mfhd');
      const c = new Cursor(buf, box.body, box.end, 'mfhd');
      c.skip(4);
      sequence = c.u32();
    } else if (box.type === 'traf') {
      const traf = parseTraf(buf, box, moofStart, implicitBase, tracks, ranges);
      runs.push(traf.run);
      implicitBase = traf.dataEnd;
    }
  }
  if (sequence === undefined) malformed('moof has no mfhd');
  if (runs.length === 0) malformed('moof has no traf');
  return { sequence, runs, ranges };
}

function parseTraf(
  buf: Buffer,
  traf: Box,
  moofStart: number,
  implicitBase: number,
  tracks: Map<number, TrackState>,
  ranges: DataRange[],
): { run: Fmp4TrackRun; dataEnd: number } {
  let tfhd: Box | undefined;
  let tfdt: Box | undefined;
  const truns: Box[] = [];
  for (const box of children(buf, traf.body, traf.end, 'traf')) {
    if (box.type === 'tfhd') {
      if (tfhd) malformed('traf has two tfhd');
      tfhd = box;
    } else if (box.type === 'tfdt') {
      if (tfdt) malformed('traf has two tfdt');
      tfdt = box;
    } else if (box.type === 'trun') {
      truns.push(box);
    }
  }
  if (tfhd === undefined) malformed('traf has no tfhd');

  const h = new Cursor(buf, tfhd.body, tfhd.end, 'tfhd');
  const { flags: hf } = h.fullBox();
  const trackId = h.u32();
  const state = tracks.get(trackId);
  if (state === undefined) malformed(`traf for track ${trackId}, which the moov does not declare`);
  // base-data-offset counts from the first byte of the stream, as it would from the start of a file.
  const base =
    hf & TFHD_BASE_DATA_OFFSET ? h.u64() : hf & TFHD_DEFAULT_BASE_IS_MOOF ? moofStart : implicitBase;
  if (hf & TFHD_SAMPLE_DESCRIPTION_INDEX) h.skip(4);
  const defaultDuration = hf & TFHD_DEFAULT_DURATION ? h.u32() : state.defaults.duration;
  const defaultSize = hf & TFHD_DEFAULT_SIZE ? h.u32() : state.defaults.size;
  const defaultFlags = hf & TFHD_DEFAULT_FLAGS ? h.u32() : state.defaults.flags;

  let baseDecodeTime = state.nextDecodeTime;
  if (tfdt) {
    const c = new Cursor(buf, tfdt.body, tfdt.end, 'tfdt');
    baseDecodeTime = c.fullBox().version === 1 ? c.u64() : c.u32();
  }

  let dataPos = base;
  let sampleCount = 0;
  let duration = 0;
  let firstSampleIsSync: boolean | undefined;
  for (const trun of truns) {
    const c = new Cursor(buf, trun.body, trun.end, 'trun');
    const { flags } = c.fullBox();
    const count = c.u32();
    // Without a data offset a run's data follows the previous run's (or starts at the base).
    if (flags & TRUN_DATA_OFFSET) dataPos = base + c.i32();
    const firstFlags = flags & TRUN_FIRST_SAMPLE_FLAGS ? c.u32() : undefined;
    const perSample =
      (flags & TRUN_DURATION ? 4 : 0) +
      (flags & TRUN_SIZE ? 4 : 0) +
      (flags & TRUN_FLAGS ? 4 : 0) +
      (flags & TRUN_COMPOSITION_OFFSET ? 4 : 0);
    // The table must be there before it is walked: a huge count in a small box stops here.
    if (count * perSample > c.left) malformed(`trun of ${count} samples in ${c.left} bytes`);
    let runDuration = count * defaultDuration;
    let runSize = count * defaultSize;
    let first = firstFlags ?? defaultFlags;
    if (perSample > 0) {
      runDuration = 0;
      runSize = 0;
      for (let i = 0; i < count; i++) {
        runDuration += flags & TRUN_DURATION ? c.u32() : defaultDuration;
        runSize += flags & TRUN_SIZE ? c.u32() : defaultSize;
        if (flags & TRUN_FLAGS) {
          const f = c.u32();
          if (i === 0 && firstFlags === undefined) first = f;
        }
        if (flags & TRUN_COMPOSITION_OFFSET) c.skip(4);
      }
    }
    if (count > 0 && firstSampleIsSync === undefined) firstSampleIsSync = isSyncSample(first);
    if (runSize > 0) ranges.push({ start: dataPos, end: dataPos + runSize });
    dataPos += runSize;
    sampleCount += count;
    duration += runDuration;
  }
  if (!Number.isSafeInteger(duration) || !Number.isSafeInteger(baseDecodeTime + duration)) {
    malformed(`track ${trackId} fragment duration ${duration} is out of range`);
  }
  if (!Number.isSafeInteger(dataPos)) malformed(`track ${trackId} sample data is out of range`);
  state.nextDecodeTime = baseDecodeTime + duration;
  return {
    run: { trackId, baseDecodeTime, sampleCount, duration, firstSampleIsSync: firstSampleIsSync ?? false },
    dataEnd: dataPos,
  };
}

type Phase = 'ftyp' | 'moov' | 'fragments' | 'mdat';

/** Pieces under this size are copied together, so a stream of tiny reads costs bytes, not Buffer objects. */
const SMALL_PIECE = 4096;
const STAGE_SIZE = 64 * 1024;

/** A kept box's bytes as they arrive: large pieces by reference, small ones copied into a staging buffer. */
class Collector {
  readonly parts: Buffer[] = [];
  #stage: Buffer | null = null;
  #staged = 0;

  /** `remaining` counts the bytes still due, this piece included: no stage is larger than the box. */
  add(piece: Buffer, remaining: number): void {
    if (piece.length >= SMALL_PIECE) {
      this.flush();
      this.parts.push(piece);
      return;
    }
    if (this.#stage === null || this.#staged + piece.length > this.#stage.length) {
      this.flush();
      this.#stage = Buffer.allocUnsafe(Math.min(STAGE_SIZE, remaining));
    }
    piece.copy(this.#stage, this.#staged);
    this.#staged += piece.length;
  }

  flush(): void {
    if (this.#stage === null) return;
    this.parts.push(this.#stage.subarray(0, this.#staged));
    this.#stage = null;
    this.#staged = 0;
  }
}

interface OpenBox {
  type: string;
  size: number;
  headerSize: number;
  /** Stream position of its first byte. */
  start: number;
  received: number;
  /** Kept boxes collect their bytes; skipped ones only count them. */
  keep: boolean;
  bytes: Collector;
}

interface PendingMoof extends ParsedMoof {
  bytes: Buffer;
}

/** One reader per FFmpeg process: it expects the init first and refuses a second one. */
export class Fmp4Reader {
  readonly maxBoxSize: number;
  #phase: Phase = 'ftyp';
  /** Stream position of the next top-level box. */
  #position = 0;
  /** A top-level box header split across pushes (16 bytes with a largesize). */
  readonly #head = Buffer.alloc(16);
  #headLen = 0;
  #box: OpenBox | null = null;
  #initParts: Buffer[] = [];
  /** Declared sizes of the init and prefix boxes so far: capped before their bodies are kept. */
  #initBytes = 0;
  #prefix: Buffer[] = [];
  #prefixBytes = 0;
  #moof: PendingMoof | null = null;
  #init: Fmp4Init | null = null;
  #tracks = new Map<number, TrackState>();
  #failed: RelayError | null = null;

  constructor(options: { maxBoxSize?: number } = {}) {
    const max = options.maxBoxSize ?? DEFAULT_FMP4_MAX_BOX_SIZE;
    if (!Number.isSafeInteger(max) || max < 16) throw new RangeError(`maxBoxSize ${max}`);
    this.maxBoxSize = max;
  }

  get init(): Fmp4Init | null {
    return this.#init;
  }

  /** Bytes held: the partial box, and the init or moof and prefix boxes waiting for what completes them. */
  get bufferedBytes(): number {
    const box = this.#box;
    let held = this.#headLen + (box?.keep ? box.received : 0) + (this.#moof?.bytes.length ?? 0);
    for (const b of this.#initParts) held += b.length;
    for (const b of this.#prefix) held += b.length;
    return held;
  }

  /**
   * Feed stdout chunks of any size; calls back in order. Throws RelayError FMP4_MALFORMED. Large pieces of a
   * chunk are kept by reference until their box completes (what is handed out is always a copy), so a
   * caller must not reuse a chunk's memory, as Node streams never do.
   */
  push(chunk: Buffer, on: Fmp4Callbacks): void {
    if (this.#failed) throw this.#failed;
    try {
      this.#consume(chunk, on);
    } catch (err) {
      // The rest of the chunk is lost, so the stream is out of step for good.
      this.#failed = toRelayError(err, ErrorCodes.FMP4_MALFORMED);
      this.#box = null;
      this.#headLen = 0;
      this.#initParts = [];
      this.#initBytes = 0;
      this.#prefix = [];
      this.#prefixBytes = 0;
      this.#moof = null;
      throw err;
    }
  }

  #consume(chunk: Buffer, on: Fmp4Callbacks): void {
    let pos = 0;
    while (pos < chunk.length) {
      const box = this.#box;
      if (box === null) {
        const large = this.#headLen >= 8 && this.#head.readUInt32BE(0) === 1;
        const take = Math.min((large ? 16 : 8) - this.#headLen, chunk.length - pos);
        chunk.copy(this.#head, this.#headLen, pos, pos + take);
        this.#headLen += take;
        pos += take;
        if (this.#headLen < 8) continue;
        if (this.#headLen < 16 && this.#head.readUInt32BE(0) === 1) continue;
        this.#open(on);
        continue;
      }
      const take = Math.min(box.size - box.received, chunk.length - pos);
      if (box.keep) box.bytes.add(chunk.subarray(pos, pos + take), box.size - box.received);
      box.received += take;
      pos += take;
      if (box.received === box.size) this.#close(on);
    }
  }

  /** Checks a complete top-level header before a byte of the body is kept. */
  #open(on: Fmp4Callbacks): void {
    const head = this.#head;
    const at = this.#position;
    const size32 = head.readUInt32BE(0);
    const headerSize = size32 === 1 ? 16 : 8;
    this.#headLen = 0;
    if (!isFourCC(head, 4)) {
      malformed(`box type 0x${head.toString('hex', 4, 8)} at byte ${at}: not MP4, or the stream lost sync`);
    }
    const type = head.toString('latin1', 4, 8);
    if (size32 === 0)
      malformed(`${type} box at byte ${at} has size 0 (to end of stream), unusable on a pipe`);
    const size = size32 === 1 ? head.readUInt32BE(8) * 2 ** 32 + head.readUInt32BE(12) : size32;
    if (size < headerSize)
      malformed(`${type} box at byte ${at} declares ${size} bytes, less than its header`);
    if (size > this.maxBoxSize) {
      malformed(`${type} box at byte ${at} declares ${size} bytes, over the ${this.maxBoxSize}-byte limit`);
    }
    const keep = this.#admit(type, size, headerSize);
    const bytes = new Collector();
    if (keep) bytes.add(head.subarray(0, headerSize), size); // copied: the header buffer is reused
    this.#box = { type, size, headerSize, start: at, received: headerSize, keep, bytes };
    if (size === headerSize) this.#close(on);
  }

  /** Applies the order FFmpeg writes boxes in; returns whether the box's bytes are kept. */
  #admit(type: string, size: number, headerSize: number): boolean {
    switch (this.#phase) {
      case 'ftyp':
        if (type !== 'ftyp') malformed(`stream starts with a ${type} box, not ftyp: not MP4`);
        return this.#addInitBytes(size);
      case 'moov':
        if (type === 'ftyp' || type === 'moof' || type === 'mdat') malformed(`${type} box before the moov`);
        return this.#addInitBytes(size);
      case 'fragments':
        if (type === 'moof') return true;
        if (type === 'mdat') malformed('mdat without a moof before it');
        if (type === 'ftyp' || type === 'moov') malformed(`a second ${type} box: the stream restarted`);
        if (!PREFIX_TYPES.has(type)) return false; // free, skip, mfra, ...: unused, never kept
        if (this.#prefixBytes + size > this.maxBoxSize) {
          malformed(`boxes before a moof exceed the ${this.maxBoxSize}-byte limit`);
        }
        this.#prefixBytes += size;
        return true;
      case 'mdat': {
        if (type !== 'mdat') malformed(`moof followed by a ${type} box, not its mdat`);
        // Known from the header alone: refuse before buffering an mdat the moof does not point into.
        const start = this.#position + headerSize;
        const end = this.#position + size;
        for (const r of this.#moof!.ranges) {
          if (r.start < start || r.end > end) {
            malformed(`sample data at bytes ${r.start}..${r.end} lies outside the mdat at ${start}..${end}`);
          }
        }
        return true;
      }
    }
  }

  #addInitBytes(size: number): boolean {
    if (this.#initBytes + size > this.maxBoxSize) {
      malformed(`init segment exceeds the ${this.maxBoxSize}-byte limit`);
    }
    this.#initBytes += size;
    return true;
  }

  #close(on: Fmp4Callbacks): void {
    const box = this.#box!;
    this.#box = null;
    this.#position += box.size;
    if (!box.keep) return;
    box.bytes.flush();
    const parts = box.bytes.parts;
    if (this.#phase === 'mdat') {
      const moof = this.#moof!;
      // One copy: the prefix, the moof and the mdat pieces straight into the fragment.
      const data = Buffer.concat([...this.#prefix, moof.bytes, ...parts]);
      this.#prefix = [];
      this.#prefixBytes = 0;
      this.#moof = null;
      this.#phase = 'fragments';
      on.fragment({ data, sequence: moof.sequence, runs: moof.runs, ...this.#summarize(moof.runs) });
      return;
    }
    const bytes = parts.length === 1 ? parts[0]! : Buffer.concat(parts, box.size);
    const whole: Box = { type: box.type, start: 0, body: box.headerSize, end: box.size };
    switch (this.#phase) {
      case 'ftyp':
        this.#initParts.push(bytes);
        this.#phase = 'moov';
        return;
      case 'moov': {
        this.#initParts.push(bytes);
        if (box.type !== 'moov') return;
        const tracks = parseMoov(bytes, whole);
        const data = Buffer.concat(this.#initParts, this.#initBytes);
        this.#initParts = [];
        this.#initBytes = 0;
        this.#tracks = tracks;
        this.#init = { data, tracks: [...tracks.values()].map((t) => t.track) };
        this.#phase = 'fragments';
        on.init(this.#init);
        return;
      }
      case 'fragments':
        if (box.type === 'moof') {
          this.#moof = { bytes, ...parseMoof(bytes, whole, box.start, this.#tracks) };
          this.#phase = 'mdat';
        } else {
          this.#prefix.push(bytes);
        }
        return;
    }
  }

  #summarize(runs: Fmp4TrackRun[]): Pick<Fmp4Fragment, 'keyframe' | 'startSeconds' | 'durationSeconds'> {
    const timescale = (run: Fmp4TrackRun): number => this.#tracks.get(run.trackId)!.track.timescale;
    const hasVideo = this.#init!.tracks.some((t) => t.kind === 'video');
    const video = runs.find((r) => this.#tracks.get(r.trackId)!.track.kind === 'video');
    const main = video ?? runs[0]!;
    let durationSeconds = 0;
    if (video) durationSeconds = video.duration / timescale(video);
    else for (const r of runs) durationSeconds = Math.max(durationSeconds, r.duration / timescale(r));
    return {
      keyframe: video ? video.firstSampleIsSync : !hasVideo,
      startSeconds: main.baseDecodeTime / timescale(main),
      durationSeconds,
    };
  }
}
