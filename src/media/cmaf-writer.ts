/**
 * CMAF (fragmented MP4, ISO/IEC 23000-19 over 14496-12) writer: access units in, an init segment and small
 * fragments out, for the copy path with no FFmpeg process. Pure: no I/O, no timers; one instance per
 * stream and configuration (a configuration change means flush() and a new writer with a new init).
 *
 * Hand-written because no package fits: mediabunny ends a fragment only where every track can start on a
 * keyframe (GOP-long fragments, too coarse for LL-HLS parts), mux.js writes trun v0 without
 * default-base-is-moof and assumes 90 kHz everywhere (not CMAF). What it writes follows the mature writers
 * (hls.js mp4-generator, mediacommon's fmp4): tfhd default-base-is-moof, tfdt version 1, video trun version 1
 * with signed composition offsets, 90 kHz video and sample-rate audio timescales, no edit lists.
 *
 * Tracks: ids from 1 in the order video, audio, so an audio-only or video-only init has one track, id 1
 * (CMAF's single-track habit; the packager reads ids from `init.tracks`, never assumes them).
 *
 * Fragmenting (the packager groups fragments into LL-HLS parts, so they are small):
 * - With video, a video sample is held until the next video access unit gives its duration; then one
 *   fragment carries it and every queued audio sample whose DTS is before that next video DTS. A fragment is
 *   one frame plus its audio, so a keyframe always starts one. Audio before the first frame waits for it;
 *   audio held past `maxAudioHoldMs` (video stalled) goes out alone, in a fragment with no video run.
 * - Audio-only: a fragment whenever the queue holds `audioFragmentMs` of samples.
 * - Video decode times are ticks(dts) = round(dts_ms × 90), raised to one tick past the previous sample's
 *   when a source repeats or reverses a DTS (an MP4 decode timeline only goes forward; counted), and to 0
 *   below 0 (tfdt is unsigned). Audio decode times below 0 become 0 likewise.
 * - Audio decode time runs on by frameSamples per sample while the access unit's own DTS stays within one
 *   frame of it; past that (a real gap or overlap) it resyncs to the DTS (counted) and the samples from
 *   there on go in a new traf of the same track with its own tfdt (14496-12 allows several trafs per track
 *   in one moof; a trun cannot jump in time), so every audio sample lasts exactly frameSamples.
 *
 * Hot path: each fragment is one Buffer sized first, headers written in place and each payload copied once.
 * What push() returns equals what Fmp4Reader reports for the same bytes (tests prove it), built directly.
 */
import { ErrorCodes, RelayError } from '../shared/errors.ts';
import type { AccessUnit, AudioConfig, VideoConfig } from './access-unit.ts';
import {
  aacCodecInfo,
  type Fmp4Fragment,
  type Fmp4Init,
  type Fmp4Track,
  type Fmp4TrackRun,
  hevcCodecString,
} from './fmp4.ts';
import { ascii, BoxCursor, box, fourcc, fullBox, UNITY_MATRIX, u8, u16, u32, zeros } from './mp4-boxes.ts';
import { avcCodecString, parseAvcConfig } from './nal.ts';

export const VIDEO_TIMESCALE = 90_000;
/** Opus always decodes at 48 kHz (RFC 7845 §4): its MP4 timescale and frame sizes are in those units. */
export const OPUS_TIMESCALE = 48_000;
export const DEFAULT_AUDIO_FRAGMENT_MS = 100;
export const DEFAULT_MAX_AUDIO_HOLD_MS = 2000;
/** The last video sample's duration when no frame interval is known yet: 1/30 s. */
export const UNKNOWN_FRAME_TICKS = 3000;

/** 90 kHz ticks of a millisecond time (the brief's and FFmpeg's rounding). */
export function videoTicks(ms: number): number {
  return Math.round(ms * 90);
}

export interface CmafConfigs {
  video?: VideoConfig | null;
  audio?: AudioConfig | null;
}

function invalidConfig(message: string): never {
  throw new RelayError(ErrorCodes.CMAF_CONFIG_INVALID, `CMAF: ${message}`);
}

// ---- Init segment ----

/**
 * ftyp: ISO 14496-12 6th edition (tfdt v1, signed composition offsets). CMAF's structural brand 'cmfc' only
 * on a single-track init: a CMAF track file holds one track (ISO 23000-19 §7.2), and a muxed audio+video
 * file, though built the same way, is not one.
 */
const FTYP_CMAF = box('ftyp', ascii('iso6'), u32(0), ascii('iso6'), ascii('cmfc'), ascii('mp41'));
const FTYP_MUXED = box('ftyp', ascii('iso6'), u32(0), ascii('iso6'), ascii('mp41'));

interface TrackPlan {
  track: Fmp4Track;
  entry: Buffer;
}

function planVideo(id: number, config: VideoConfig): TrackPlan {
  const width = Math.max(0, Math.min(0xffff, Math.round(config.width)));
  const height = Math.max(0, Math.min(0xffff, Math.round(config.height)));
  let type: 'avc1' | 'hvc1';
  let codec: string;
  if (config.codec === 'h264') {
    type = 'avc1';
    codec = avcCodecString(parseAvcConfig(config.record), type);
  } else {
    type = 'hvc1';
    // HEVCDecoderConfigurationRecord: 23 bytes before its arrays (ISO 14496-15 §8.3.3.1).
    if (config.record.length < 23 || config.record[0] !== 1) invalidConfig('hvcC record is not version 1');
    codec = hevcCodecString(config.record, type);
  }
  const entry = box(
    type,
    zeros(6), // reserved
    u16(1), // data_reference_index
    zeros(16), // pre_defined, reserved, pre_defined[3]
    u16(width),
    u16(height),
    u32(0x00480000), // 72 dpi
    u32(0x00480000),
    u32(0), // reserved
    u16(1), // frame_count
    zeros(32), // compressorname
    u16(0x0018), // depth
    u16(0xffff), // pre_defined = -1
    box(type === 'avc1' ? 'avcC' : 'hvcC', config.record),
  );
  return { track: { id, kind: 'video', timescale: VIDEO_TIMESCALE, codec, width, height }, entry };
}

/** An ISO 14496-1 descriptor: tag, size in 7-bit groups, body. */
function descriptor(tag: number, ...body: Buffer[]): Buffer {
  let size = 0;
  for (const b of body) size += b.length;
  const sizeBytes: number[] = [size & 0x7f];
  for (let rest = size >> 7; rest > 0; rest >>= 7) sizeBytes.unshift(0x80 | (rest & 0x7f));
  return Buffer.concat([u8(tag), Buffer.from(sizeBytes), ...body]);
}

/** AudioSampleEntry fields up to its child boxes (version 0). */
function audioEntryHead(channels: number, sampleRate: number): Buffer[] {
  return [
    zeros(6),
    u16(1), // data_reference_index
    zeros(8), // version, revision, vendor
    u16(channels),
    u16(16), // samplesize
    zeros(4), // pre_defined, reserved
    u32(sampleRate < 0x10000 ? sampleRate * 0x10000 : 0), // 16.16; 0 past 65535 Hz (the timescale tells)
  ];
}

function planAudio(id: number, config: AudioConfig): TrackPlan {
  if (!Number.isInteger(config.frameSamples) || config.frameSamples < 1) {
    invalidConfig(`frameSamples ${config.frameSamples}`);
  }
  const channels = Math.max(0, Math.min(0xffff, config.channels));
  if (config.codec === 'aac') {
    const rate = config.sampleRate;
    if (!Number.isInteger(rate) || rate < 1 || rate > 0xffffffff) invalidConfig(`AAC sample rate ${rate}`);
    if (config.config.length === 0) invalidConfig('AAC without an AudioSpecificConfig');
    let info: ReturnType<typeof aacCodecInfo>;
    try {
      info = aacCodecInfo(config.config);
    } catch (err) {
      throw new RelayError(ErrorCodes.CMAF_CONFIG_INVALID, 'CMAF: AudioSpecificConfig is truncated', {
        cause: err,
      });
    }
    const esds = fullBox(
      'esds',
      0,
      0,
      descriptor(
        0x03, // ES_Descriptor
        u16(0), // ES_ID
        u8(0), // no dependsOn, URL or OCR
        descriptor(
          0x04, // DecoderConfigDescriptor
          u8(0x40), // objectTypeIndication: MPEG-4 Audio
          u8(0x15), // streamType 5 (audio) << 2 | reserved 1
          zeros(11), // bufferSizeDB, maxBitrate, avgBitrate: unknown live
          descriptor(0x05, config.config), // DecoderSpecificInfo
        ),
        descriptor(0x06, u8(0x02)), // SLConfigDescriptor, predefined MP4
      ),
    );
    const entry = box('mp4a', ...audioEntryHead(channels, rate), esds);
    return {
      track: {
        id,
        kind: 'audio',
        timescale: rate,
        codec: info.codec,
        // Past 65535 Hz the entry says 0 and a reader takes the timescale: the same rate either way.
        sampleRate: info.sampleRate ?? rate,
        channels: info.channels ?? channels,
      },
      entry,
    };
  }
  const dops = opusSpecificBox(config);
  const entry = box('Opus', ...audioEntryHead(dops.channels, OPUS_TIMESCALE), dops.box);
  return {
    track: {
      id,
      kind: 'audio',
      timescale: OPUS_TIMESCALE,
      codec: 'opus',
      sampleRate: OPUS_TIMESCALE,
      channels: dops.channels,
    },
    entry,
  };
}

/**
 * dOps (Opus in ISO BMFF §4.3.2) from an OpusHead (RFC 7845 §5.1, little-endian) or, when the source has
 * none (WebRTC), from the configuration: no pre-skip, no gain, mapping family 0 (mono or stereo).
 */
function opusSpecificBox(config: AudioConfig): { box: Buffer; channels: number } {
  const head = config.config;
  if (head.length === 0) {
    if (config.channels < 1 || config.channels > 2) {
      invalidConfig(`Opus with ${config.channels} channels needs an OpusHead`);
    }
    const body = Buffer.alloc(11);
    body[1] = config.channels;
    body.writeUInt32BE(Math.max(0, Math.min(0xffffffff, config.sampleRate)) >>> 0, 4);
    return { box: box('dOps', body), channels: config.channels };
  }
  if (head.length < 19 || head.toString('latin1', 0, 8) !== 'OpusHead')
    invalidConfig('OpusHead is malformed');
  const channels = head[9]!;
  const family = head[18]!;
  const mappingSize = family === 0 ? 0 : 2 + channels;
  if (channels === 0 || head.length < 19 + mappingSize)
    invalidConfig('OpusHead channel mapping is truncated');
  const body = Buffer.alloc(11 + mappingSize);
  body[0] = 0; // version
  body[1] = channels;
  body.writeUInt16BE(head.readUInt16LE(10), 2); // pre-skip
  body.writeUInt32BE(head.readUInt32LE(12), 4); // input sample rate
  body.writeInt16BE(head.readInt16LE(16), 8); // output gain
  body[10] = family;
  head.copy(body, 11, 19, 19 + mappingSize); // stream count, coupled count, channel mapping
  return { box: box('dOps', body), channels };
}

function trak(plan: TrackPlan): Buffer {
  const { track } = plan;
  const video = track.kind === 'video';
  const tkhd = fullBox(
    'tkhd',
    0,
    0x000003, // enabled, in movie
    zeros(8), // creation, modification
    u32(track.id),
    zeros(4), // reserved
    zeros(4), // duration: unknown (live)
    zeros(8), // reserved
    zeros(4), // layer, alternate_group
    u16(video ? 0 : 0x0100), // volume
    zeros(2),
    UNITY_MATRIX,
    u32((track.width ?? 0) * 0x10000),
    u32((track.height ?? 0) * 0x10000),
  );
  const mdhd = fullBox('mdhd', 0, 0, zeros(8), u32(track.timescale), zeros(4), u16(0x55c4), zeros(2)); // 'und'
  const hdlr = fullBox(
    'hdlr',
    0,
    0,
    zeros(4),
    ascii(video ? 'vide' : 'soun'),
    zeros(12),
    ascii(video ? 'VideoHandler\0' : 'SoundHandler\0'),
  );
  const header = video ? fullBox('vmhd', 0, 1, zeros(8)) : fullBox('smhd', 0, 0, zeros(4));
  const dinf = box('dinf', fullBox('dref', 0, 0, u32(1), fullBox('url ', 0, 1)));
  const stbl = box(
    'stbl',
    fullBox('stsd', 0, 0, u32(1), plan.entry),
    fullBox('stts', 0, 0, u32(0)),
    fullBox('stsc', 0, 0, u32(0)),
    fullBox('stsz', 0, 0, u32(0), u32(0)),
    fullBox('stco', 0, 0, u32(0)),
  );
  return box('trak', tkhd, box('mdia', mdhd, hdlr, box('minf', header, dinf, stbl)));
}

function plan(configs: CmafConfigs): TrackPlan[] {
  const plans: TrackPlan[] = [];
  if (configs.video) plans.push(planVideo(plans.length + 1, configs.video));
  if (configs.audio) plans.push(planAudio(plans.length + 1, configs.audio));
  if (plans.length === 0) invalidConfig('no track to write');
  return plans;
}

function initFrom(plans: TrackPlan[]): Fmp4Init {
  const mvhd = fullBox(
    'mvhd',
    0,
    0,
    zeros(8), // creation, modification
    u32(1000), // timescale
    zeros(4), // duration
    u32(0x00010000), // rate 1.0
    u16(0x0100), // volume 1.0
    zeros(10),
    UNITY_MATRIX,
    zeros(24), // pre_defined
    u32(plans.length + 1), // next_track_ID
  );
  const trex = plans.map((p) => fullBox('trex', 0, 0, u32(p.track.id), u32(1), zeros(12)));
  const moov = box('moov', mvhd, ...plans.map(trak), box('mvex', ...trex));
  const ftyp = plans.length === 1 ? FTYP_CMAF : FTYP_MUXED;
  return { data: Buffer.concat([ftyp, moov]), tracks: plans.map((p) => p.track) };
}

/**
 * The init segment (ftyp + moov) for these tracks, with `tracks` exactly as Fmp4Reader describes it. Throws
 * CMAF_CONFIG_INVALID (no track, a bad hvcC, AudioSpecificConfig or OpusHead) or AVC_CONFIG_MALFORMED.
 */
export function cmafInit(configs: CmafConfigs): Fmp4Init {
  return initFrom(plan(configs));
}

// ---- Fragments ----

const MOOF = fourcc('moof');
const MFHD = fourcc('mfhd');
const TRAF = fourcc('traf');
const TFHD = fourcc('tfhd');
const TFDT = fourcc('tfdt');
const TRUN = fourcc('trun');
const MDAT = fourcc('mdat');

const TFHD_DEFAULT_BASE_IS_MOOF = 0x020000;
const TFDT_V1 = 0x01000000;
/** Version 1; data offset, per-sample duration, size, flags and composition offset. */
const VIDEO_TRUN = 0x01000f01;
/** Version 0; data offset, per-sample duration and size (audio samples take trex's flags: sync). */
const AUDIO_TRUN = 0x00000301;
/** sample_depends_on = 2 (an I picture). */
const SYNC_FLAGS = 0x02000000;
/** sample_depends_on = 1, sample_is_non_sync_sample. */
const NON_SYNC_FLAGS = 0x01010000;

/** The most silence a flush adds to audio that ended before the video (ms): see flush(). */
export const MAX_PAD_MS = 1000;

const MFHD_SIZE = 16;
const TRAF_FIXED = 8 + 16 + 20 + 20; // traf header, tfhd, tfdt, trun without its sample table
const VIDEO_ENTRY = 16;
const AUDIO_ENTRY = 8;
const MAX_U32 = 0xffffffff;
const MIN_I32 = -0x80000000;
const MAX_I32 = 0x7fffffff;

export interface CmafWriterOptions {
  video: VideoConfig | null;
  audio: AudioConfig | null;
  /** Audio-only streams: a fragment per this much audio. */
  audioFragmentMs?: number;
  /** With video: audio waiting longer than this for the next frame goes out in an audio-only fragment. */
  maxAudioHoldMs?: number;
}

export interface CmafWriterStats {
  fragments: number;
  samples: number;
  /** Fragment bytes written. */
  bytes: number;
  /** Audio decode time moved to an access unit's DTS (a gap or overlap of more than one frame). */
  audioResyncs: number;
  /** Video DTS that did not move forward and were raised one tick past the previous sample. */
  videoDtsRaised: number;
  /** Fragments of audio alone sent because video had stalled past maxAudioHoldMs. */
  audioHoldOverflows: number;
  /** Silent audio frames added at a flush so the audio reaches the video's end (see flush()). */
  audioPadded: number;
}

interface HeldVideo {
  data: Buffer;
  keyframe: boolean;
  /** Decode time, 90 kHz. */
  decode: number;
  /** Composition offset, 90 kHz. */
  offset: number;
  /** DTS in ms, as the access unit gave it. */
  dts: number;
}

interface QueuedAudio {
  data: Buffer;
  dts: number;
  /** Decode time, audio timescale. */
  time: number;
  /** Its time is not the previous sample's + frameSamples: it starts a new run. */
  jump: boolean;
}

export class CmafWriter {
  readonly init: Fmp4Init;
  readonly stats: CmafWriterStats = {
    fragments: 0,
    samples: 0,
    bytes: 0,
    audioResyncs: 0,
    videoDtsRaised: 0,
    audioHoldOverflows: 0,
    audioPadded: 0,
  };
  readonly #videoId: number;
  readonly #audioId: number;
  readonly #audioScale: number;
  readonly #frameSamples: number;
  /** Audio-only: emit when this many samples are queued. */
  readonly #audioFragmentSamples: number;
  /** With video: emit audio alone past this many queued samples. */
  readonly #audioHoldSamples: number;
  #sequence = 0;
  #held: HeldVideo | null = null;
  /** Decode time of the last video sample taken, 90 kHz; -1 before the first. */
  #lastVideoDecode = -1;
  #lastVideoDuration: number | null = null;
  #audio: QueuedAudio[] = [];
  /** Where the next audio sample's decode time runs on to; null before the first. */
  #nextAudioTime: number | null = null;

  constructor(options: CmafWriterOptions) {
    const plans = plan(options);
    this.init = initFrom(plans);
    this.#videoId = options.video ? 1 : 0;
    this.#audioId = options.audio ? plans.length : 0;
    const audioTrack = options.audio ? plans[plans.length - 1]!.track : null;
    this.#audioScale = audioTrack?.timescale ?? 1;
    this.#frameSamples = options.audio?.frameSamples ?? 1;
    const fragmentMs = options.audioFragmentMs ?? DEFAULT_AUDIO_FRAGMENT_MS;
    const holdMs = options.maxAudioHoldMs ?? DEFAULT_MAX_AUDIO_HOLD_MS;
    if (!(fragmentMs > 0) || !(holdMs > 0))
      throw new RangeError(`audioFragmentMs ${fragmentMs}, maxAudioHoldMs ${holdMs}`);
    const samplesFor = (ms: number): number =>
      Math.max(1, Math.ceil((ms * this.#audioScale) / 1000 / this.#frameSamples));
    this.#audioFragmentSamples = samplesFor(fragmentMs);
    this.#audioHoldSamples = samplesFor(holdMs);
  }

  /**
   * Takes one access unit; returns the fragments it completed (at most one: a video frame completes the
   * frame before it, an audio frame may complete an audio-only fragment). Throws CMAF_INPUT_INVALID for a track the writer was not configured with or a timestamp
   * that is not a finite number.
   */
  push(au: AccessUnit): Fmp4Fragment[] {
    if (!Number.isFinite(au.dts) || !Number.isFinite(au.pts)) {
      throw new RelayError(ErrorCodes.CMAF_INPUT_INVALID, `CMAF: ${au.track} DTS ${au.dts} / PTS ${au.pts}`);
    }
    if (au.track === 'video') {
      if (this.#videoId === 0)
        throw new RelayError(ErrorCodes.CMAF_INPUT_INVALID, 'CMAF: video without a video track');
      return this.#pushVideo(au);
    }
    if (this.#audioId === 0)
      throw new RelayError(ErrorCodes.CMAF_INPUT_INVALID, 'CMAF: audio without an audio track');
    return this.#pushAudio(au);
  }

  /**
   * Emits everything held (end of publish, or before a configuration change). With `padAudio` (one silent
   * frame of the audio track's format), audio that ends before the last video frame does goes on in silence
   * up to that frame's end (whole frames, never past it; not when it stopped over MAX_PAD_MS before: that
   * gap is the publisher's): what comes next on the timeline (a slate) starts where the video ends, and a
   * player's buffered audio must reach it (a hole in it stalls hls.js for seconds).
   */
  flush(padAudio?: Buffer | null): Fmp4Fragment[] {
    const out: Fmp4Fragment[] = [];
    const held = this.#held;
    if (held && padAudio) this.#padAudio(held, padAudio);
    if (held) {
      this.#held = null;
      out.push(this.#fragment(held, this.#lastVideoDuration ?? UNKNOWN_FRAME_TICKS, this.#audio.length));
    } else if (this.#audio.length > 0) {
      out.push(this.#fragment(null, 0, this.#audio.length));
    }
    return out;
  }

  #padAudio(held: HeldVideo, silence: Buffer): void {
    let time = this.#nextAudioTime;
    if (this.#audioId === 0 || time === null) return;
    const fs = this.#frameSamples;
    const videoEnd = Math.floor(
      ((held.decode + (this.#lastVideoDuration ?? UNKNOWN_FRAME_TICKS)) * this.#audioScale) / VIDEO_TIMESCALE,
    );
    if (videoEnd - time > (MAX_PAD_MS * this.#audioScale) / 1000) return;
    for (; time + fs <= videoEnd; time += fs) {
      this.#audio.push({ data: silence, dts: (time * 1000) / this.#audioScale, time, jump: false });
      this.stats.audioPadded++;
    }
    this.#nextAudioTime = time;
  }

  #pushVideo(au: AccessUnit): Fmp4Fragment[] {
    let decode = videoTicks(au.dts);
    if (decode <= this.#lastVideoDecode) {
      decode = this.#lastVideoDecode + 1;
      this.stats.videoDtsRaised++;
    }
    this.#lastVideoDecode = decode;
    const offset = Math.max(MIN_I32, Math.min(MAX_I32, videoTicks(au.pts) - decode));
    const next: HeldVideo = { data: au.data, keyframe: au.keyframe, decode, offset, dts: au.dts };
    const held = this.#held;
    this.#held = next;
    if (held === null) return [];
    const duration = Math.min(MAX_U32, decode - held.decode);
    this.#lastVideoDuration = duration;
    // The audio that plays before the next frame goes with this one (a prefix: audio stays in order).
    let count = 0;
    while (count < this.#audio.length && this.#audio[count]!.dts < au.dts) count++;
    return [this.#fragment(held, duration, count)];
  }

  #pushAudio(au: AccessUnit): Fmp4Fragment[] {
    const own = Math.max(0, Math.round((au.dts * this.#audioScale) / 1000));
    const expected = this.#nextAudioTime;
    let time = own;
    let jump = true;
    if (expected !== null) {
      if (Math.abs(own - expected) <= this.#frameSamples) {
        time = expected;
        jump = false;
      } else {
        this.stats.audioResyncs++;
      }
    }
    this.#nextAudioTime = time + this.#frameSamples;
    this.#audio.push({ data: au.data, dts: au.dts, time, jump });
    if (this.#videoId === 0) {
      return this.#audio.length >= this.#audioFragmentSamples
        ? [this.#fragment(null, 0, this.#audio.length)]
        : [];
    }
    if (this.#audio.length > this.#audioHoldSamples) {
      this.stats.audioHoldOverflows++;
      return [this.#fragment(null, 0, this.#audio.length)];
    }
    return [];
  }

  /** One moof+mdat: the video sample (if any) and the first `audioCount` queued audio samples. */
  #fragment(video: HeldVideo | null, videoDuration: number, audioCount: number): Fmp4Fragment {
    const audio = this.#audio.splice(0, audioCount);
    const fs = this.#frameSamples;
    // Audio runs: a new one wherever the decode time jumped.
    const runStarts: number[] = [];
    for (let i = 0; i < audio.length; i++) if (i === 0 || audio[i]!.jump) runStarts.push(i);

    let moofSize = 8 + MFHD_SIZE + runStarts.length * TRAF_FIXED + audio.length * AUDIO_ENTRY;
    let mdatSize = 8;
    if (video) {
      moofSize += TRAF_FIXED + VIDEO_ENTRY;
      mdatSize += video.data.length;
    }
    for (const a of audio) mdatSize += a.data.length;
    const w = new BoxCursor(moofSize + mdatSize);
    const sequence = ++this.#sequence;
    const runs: Fmp4TrackRun[] = [];

    w.head(moofSize, MOOF);
    w.head(MFHD_SIZE, MFHD);
    w.u32(0);
    w.u32(sequence);
    let dataOffset = moofSize + 8;
    if (video) {
      this.#trafHead(w, TRAF_FIXED + VIDEO_ENTRY, this.#videoId, video.decode);
      w.head(20 + VIDEO_ENTRY, TRUN);
      w.u32(VIDEO_TRUN);
      w.u32(1);
      w.i32(dataOffset);
      w.u32(videoDuration);
      w.u32(video.data.length);
      w.u32(video.keyframe ? SYNC_FLAGS : NON_SYNC_FLAGS);
      w.i32(video.offset);
      dataOffset += video.data.length;
      runs.push({
        trackId: this.#videoId,
        baseDecodeTime: video.decode,
        sampleCount: 1,
        duration: videoDuration,
        firstSampleIsSync: video.keyframe,
      });
    }
    for (let r = 0; r < runStarts.length; r++) {
      const start = runStarts[r]!;
      const end = r + 1 < runStarts.length ? runStarts[r + 1]! : audio.length;
      const count = end - start;
      const base = audio[start]!.time;
      this.#trafHead(w, TRAF_FIXED + count * AUDIO_ENTRY, this.#audioId, base);
      w.head(20 + count * AUDIO_ENTRY, TRUN);
      w.u32(AUDIO_TRUN);
      w.u32(count);
      w.i32(dataOffset);
      for (let i = start; i < end; i++) {
        const size = audio[i]!.data.length;
        w.u32(fs);
        w.u32(size);
        dataOffset += size;
      }
      runs.push({
        trackId: this.#audioId,
        baseDecodeTime: base,
        sampleCount: count,
        duration: count * fs,
        firstSampleIsSync: true,
      });
    }
    w.head(mdatSize, MDAT);
    if (video) w.bytes(video.data);
    for (const a of audio) w.bytes(a.data);
    // The Buffer came from allocUnsafe: a size computed wrong would leave old memory in a fragment.
    if (w.pos !== w.buf.length) throw new Error(`CMAF writer bug: wrote ${w.pos} of ${w.buf.length} bytes`);

    const sampleCount = (video ? 1 : 0) + audio.length;
    this.stats.fragments++;
    this.stats.samples += sampleCount;
    this.stats.bytes += w.buf.length;
    // What Fmp4Reader derives: the video run decides; without one, the first run starts and the longest lasts.
    let startSeconds: number;
    let durationSeconds = 0;
    if (video) {
      startSeconds = video.decode / VIDEO_TIMESCALE;
      durationSeconds = videoDuration / VIDEO_TIMESCALE;
    } else {
      startSeconds = runs[0]!.baseDecodeTime / this.#audioScale;
      for (const run of runs) durationSeconds = Math.max(durationSeconds, run.duration / this.#audioScale);
    }
    return {
      data: w.buf,
      sequence,
      runs,
      keyframe: video ? video.keyframe : this.#videoId === 0,
      startSeconds,
      durationSeconds,
    };
  }

  /** traf header, tfhd (default-base-is-moof) and tfdt (version 1). */
  #trafHead(w: BoxCursor, trafSize: number, trackId: number, decode: number): void {
    w.head(trafSize, TRAF);
    w.head(16, TFHD);
    w.u32(TFHD_DEFAULT_BASE_IS_MOOF);
    w.u32(trackId);
    w.head(20, TFDT);
    w.u32(TFDT_V1);
    w.u64(decode);
  }
}
