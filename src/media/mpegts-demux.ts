/**
 * MPEG-TS demultiplexer (ISO/IEC 13818-1): 188-byte packets in (any chunking, as SRT delivers them), track
 * configurations and access units out. PAT → PMT → the first H.264 (stream type 0x1B) and the first ADTS AAC
 * (0x0F) elementary stream; PES packets reassembled across TS packets; H.264 Annex B turned into AVCC access
 * units with an avcC built from the SPS/PPS by media/nal.ts (which stay in band too), ADTS split into raw AAC frames with an
 * AudioSpecificConfig from the header. PTS/DTS (90 kHz, 33 bits) become ms, unwrapped across the 2^33 wrap.
 *
 * Pure: `push(bytes)` returns what it found; nothing here knows SRT. Hand-written: the TS layer is small and
 * every length in it (adaptation field, section, PES header, PES size) is checked before use and capped, so
 * a hostile stream costs at most MAX_PES_BYTES per track and yields counted errors, never a throw.
 */
import type { AccessUnit, AudioConfig, TrackConfig, VideoConfig } from './access-unit.ts';
import { audioSpecificConfig, splitAdts } from './adts.ts';
import { spsPictureSize } from './avc-sps.ts';
import { annexBNalUnits, buildAvcConfig, H264Nal, h264NalType } from './nal.ts';

export const TS_PACKET = 188;
const SYNC = 0x47;
/** The most one PES may hold: a 4 MiB video frame is far beyond any glasses' bitrate. */
export const MAX_PES_BYTES = 4 * 1024 * 1024;

export const StreamType = { H264: 0x1b, AacAdts: 0x0f, Hevc: 0x24 } as const;

export type DemuxOutput = { type: 'config'; config: TrackConfig } | { type: 'au'; au: AccessUnit };

export interface DemuxStats {
  packets: number;
  /** Bytes skipped to find the next sync byte. */
  syncLossBytes: number;
  continuityErrors: number;
  /** Packets with transport_error_indicator set, skipped. */
  transportErrors: number;
  /** PES packets dropped: broken by a continuity error, oversized, or unreadable. */
  droppedPes: number;
  /** Elementary streams the PMT lists that are neither H.264 nor AAC. */
  ignoredStreams: number;
  /** Video frames before the first SPS/PPS, or without any picture NAL. */
  droppedVideoFrames: number;
  /** Audio bytes that were not whole ADTS frames. */
  droppedAudioBytes: number;
  /** SPS/PPS that could not make an avcC record. */
  badParameterSets: number;
}

interface PesState {
  kind: 'video' | 'audio';
  pid: number;
  cc: number;
  chunks: Buffer[];
  bytes: number;
  /** PES_packet_length (0: unbounded, ends at the next unit start). */
  expected: number;
  broken: boolean;
  started: boolean;
}

const PTS_WRAP = 2 ** 33;

/** 90 kHz ticks from a 5-byte PTS/DTS field. */
function readTimestamp(b: Buffer, o: number): number {
  return (
    ((b[o]! >> 1) & 0x07) * 2 ** 30 + ((b.readUInt16BE(o + 1) >> 1) << 15) + (b.readUInt16BE(o + 3) >> 1)
  );
}

export class MpegTsDemuxer {
  readonly stats: DemuxStats = {
    packets: 0,
    syncLossBytes: 0,
    continuityErrors: 0,
    transportErrors: 0,
    droppedPes: 0,
    ignoredStreams: 0,
    droppedVideoFrames: 0,
    droppedAudioBytes: 0,
    badParameterSets: 0,
  };
  /** Bytes of a TS packet cut off at the end of the last push (< 188). */
  #carry: Buffer = Buffer.alloc(0);
  #pmtPid = -1;
  #pmtVersion = -1;
  #video: PesState | null = null;
  #audio: PesState | null = null;
  #sps: Buffer | null = null;
  #pps: Buffer | null = null;
  #videoConfig: VideoConfig | null = null;
  #audioConfig: AudioConfig | null = null;
  /** The last unwrapped 90 kHz time, shared by both tracks so they stay on one timeline. */
  #lastTicks: number | null = null;
  #out: DemuxOutput[] = [];

  /** Whether the PMT declared a track of each kind (known once the PMT arrived). */
  get tracks(): { video: boolean; audio: boolean; known: boolean } {
    return { video: this.#video !== null, audio: this.#audio !== null, known: this.#pmtVersion >= 0 };
  }

  get videoConfig(): VideoConfig | null {
    return this.#videoConfig;
  }

  get audioConfig(): AudioConfig | null {
    return this.#audioConfig;
  }

  /** Feeds bytes; returns the configurations and access units they completed, in order. */
  push(chunk: Buffer): DemuxOutput[] {
    let data = this.#carry.length > 0 ? Buffer.concat([this.#carry, chunk]) : chunk;
    let pos = 0;
    while (pos + TS_PACKET <= data.length) {
      if (data[pos] !== SYNC) {
        // Lost sync: skip to the next 0x47 that is followed by another one a packet later (or is the last).
        let next = pos + 1;
        while (
          next < data.length &&
          !(data[next] === SYNC && (next + TS_PACKET >= data.length || data[next + TS_PACKET] === SYNC))
        )
          next++;
        this.stats.syncLossBytes += next - pos;
        pos = next;
        continue;
      }
      this.#packet(data.subarray(pos, pos + TS_PACKET));
      pos += TS_PACKET;
    }
    data = data.subarray(pos);
    this.#carry = data.length > 0 ? Buffer.from(data) : Buffer.alloc(0);
    const out = this.#out;
    this.#out = [];
    return out;
  }

  /** Completes the PES packets in progress (the stream ended). */
  flush(): DemuxOutput[] {
    if (this.#video) this.#finishPes(this.#video);
    if (this.#audio) this.#finishPes(this.#audio);
    const out = this.#out;
    this.#out = [];
    return out;
  }

  #packet(p: Buffer): void {
    this.stats.packets++;
    const b1 = p[1]!;
    if (b1 & 0x80) {
      this.stats.transportErrors++;
      return;
    }
    const pusi = (b1 & 0x40) !== 0;
    const pid = ((b1 & 0x1f) << 8) | p[2]!;
    const afc = (p[3]! >> 4) & 3;
    const cc = p[3]! & 0x0f;
    let pos = 4;
    let discontinuity = false;
    if (afc & 2) {
      const afLength = p[4]!;
      if (afLength > 183) return; // impossible length: the packet is unreadable
      if (afLength > 0) discontinuity = (p[5]! & 0x80) !== 0;
      pos = 5 + afLength;
    }
    if (!(afc & 1) || pos >= TS_PACKET) return; // no payload: CC does not advance
    const payload = p.subarray(pos);
    if (pid === 0) {
      if (pusi) this.#pat(payload);
      return;
    }
    if (pid === this.#pmtPid) {
      if (pusi) this.#pmt(payload);
      return;
    }
    const pes = this.#video?.pid === pid ? this.#video : this.#audio?.pid === pid ? this.#audio : null;
    if (!pes) return;
    if (pes.cc >= 0 && !discontinuity) {
      if (cc === pes.cc) return; // a duplicate packet (allowed once by the standard): ignore it
      if (cc !== ((pes.cc + 1) & 0x0f)) {
        this.stats.continuityErrors++;
        pes.broken = true;
      }
    }
    pes.cc = cc;
    if (pusi) {
      this.#finishPes(pes);
      pes.started = true;
      pes.broken = false;
    } else if (!pes.started) return; // joined mid-PES: wait for the next unit start
    if (pes.broken) return;
    if (pes.bytes + payload.length > MAX_PES_BYTES) {
      pes.broken = true;
      return;
    }
    pes.chunks.push(payload);
    pes.bytes += payload.length;
    if (pusi && pes.bytes >= 6) pes.expected = payload.readUInt16BE(4);
    if (pes.expected > 0 && pes.bytes >= pes.expected + 6) this.#finishPes(pes);
  }

  /** The payload of a PSI packet with a unit start: the section after the pointer field, or null. */
  #section(payload: Buffer, tableId: number): Buffer | null {
    const pointer = payload[0]!;
    const start = 1 + pointer;
    if (start + 3 > payload.length || payload[start] !== tableId) return null;
    const length = ((payload[start + 1]! & 0x0f) << 8) | payload[start + 2]!;
    // Sections longer than one packet are not used by any sender we take (one program, two streams).
    if (start + 3 + length > payload.length || length < 9) return null;
    return payload.subarray(start, start + 3 + length - 4); // CRC dropped (UDP/SRT already checks)
  }

  #pat(payload: Buffer): void {
    const s = this.#section(payload, 0x00);
    if (!s) return;
    for (let i = 8; i + 4 <= s.length; i += 4) {
      const program = s.readUInt16BE(i);
      const pid = s.readUInt16BE(i + 2) & 0x1fff;
      if (program !== 0) {
        if (pid !== this.#pmtPid) {
          this.#pmtPid = pid;
          this.#pmtVersion = -1;
        }
        return;
      }
    }
  }

  #pmt(payload: Buffer): void {
    const s = this.#section(payload, 0x02);
    if (!s) return;
    const version = (s[5]! >> 1) & 0x1f;
    if (version === this.#pmtVersion) return;
    this.#pmtVersion = version;
    const programInfoLength = s.readUInt16BE(10) & 0x0fff;
    let i = 12 + programInfoLength;
    let video: number | null = null;
    let audio: number | null = null;
    while (i + 5 <= s.length) {
      const type = s[i]!;
      const pid = s.readUInt16BE(i + 1) & 0x1fff;
      const esInfoLength = s.readUInt16BE(i + 3) & 0x0fff;
      i += 5 + esInfoLength;
      if (type === StreamType.H264 && video === null) video = pid;
      else if (type === StreamType.AacAdts && audio === null) audio = pid;
      else this.stats.ignoredStreams++;
    }
    const track = (kind: 'video' | 'audio', pid: number | null, old: PesState | null): PesState | null => {
      if (pid === null) return null;
      if (old?.pid === pid) return old;
      return { kind, pid, cc: -1, chunks: [], bytes: 0, expected: 0, broken: false, started: false };
    };
    this.#video = track('video', video, this.#video);
    this.#audio = track('audio', audio, this.#audio);
  }

  #finishPes(pes: PesState): void {
    const chunks = pes.chunks;
    const bytes = pes.bytes;
    pes.chunks = [];
    pes.bytes = 0;
    pes.expected = 0;
    if (bytes === 0) return;
    if (pes.broken) {
      this.stats.droppedPes++;
      return;
    }
    const data = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, bytes);
    // PES header: 00 00 01, stream id, length (2), flags (2), header data length, PTS/DTS …
    if (data.length < 9 || data[0] !== 0 || data[1] !== 0 || data[2] !== 1) {
      this.stats.droppedPes++;
      return;
    }
    const ptsDts = data[7]! >> 6;
    const headerEnd = 9 + data[8]!;
    if (headerEnd > data.length || ptsDts === 1 || ptsDts === 0) {
      this.stats.droppedPes++;
      return;
    }
    const pts = this.#unwrap(readTimestamp(data, 9));
    const dts = ptsDts === 3 && headerEnd >= 19 ? this.#unwrap(readTimestamp(data, 14)) : pts;
    let body = data.subarray(headerEnd);
    if (pes.expected > 0 && body.length > pes.expected) body = body.subarray(0, pes.expected); // stuffing
    if (pes.kind === 'video') this.#videoPes(body, dts / 90, pts / 90);
    else this.#audioPes(body, pts / 90);
  }

  /** 33-bit ticks onto one unbounded timeline: the candidate nearest the last time seen. */
  #unwrap(ticks: number): number {
    if (this.#lastTicks === null) {
      this.#lastTicks = ticks;
      return ticks;
    }
    const base = this.#lastTicks - (this.#lastTicks % PTS_WRAP);
    let t = base + ticks;
    if (t - this.#lastTicks > PTS_WRAP / 2) t -= PTS_WRAP;
    else if (this.#lastTicks - t > PTS_WRAP / 2) t += PTS_WRAP;
    this.#lastTicks = t;
    return t;
  }

  #videoPes(body: Buffer, dts: number, pts: number): void {
    const nals = annexBNalUnits(body);
    const kept: Buffer[] = [];
    let keyframe = false;
    let picture = false;
    let sps: Buffer | null = null;
    let pps: Buffer | null = null;
    for (const nal of nals) {
      const type = h264NalType(nal[0]!);
      if (type === H264Nal.AUD) continue; // access unit delimiter: AVCC streams carry none
      if (type === H264Nal.SPS) sps = nal;
      else if (type === H264Nal.PPS) pps ??= nal;
      else if (type === H264Nal.IDR) keyframe = true;
      if (type >= 1 && type <= H264Nal.IDR) picture = true;
      kept.push(nal);
    }
    if (sps && pps && (!this.#sps?.equals(sps) || !this.#pps?.equals(pps))) {
      let record: Buffer | null = null;
      try {
        record = buildAvcConfig([sps], [pps]);
      } catch {
        this.stats.badParameterSets++; // an SPS too short or too long for a record: keep the old one
      }
      if (record) {
        this.#sps = Buffer.from(sps);
        this.#pps = Buffer.from(pps);
        const size = spsPictureSize(this.#sps) ?? { width: 0, height: 0 };
        this.#videoConfig = { kind: 'video', codec: 'h264', record, width: size.width, height: size.height };
        this.#out.push({ type: 'config', config: this.#videoConfig });
      }
    }
    if (!picture || !this.#videoConfig) {
      this.stats.droppedVideoFrames++;
      return;
    }
    let length = 0;
    for (const nal of kept) length += 4 + nal.length;
    const out = Buffer.allocUnsafe(length);
    let o = 0;
    for (const nal of kept) {
      out.writeUInt32BE(nal.length, o);
      nal.copy(out, o + 4);
      o += 4 + nal.length;
    }
    this.#out.push({ type: 'au', au: { track: 'video', dts, pts, keyframe, data: out } });
  }

  #audioPes(body: Buffer, pts: number): void {
    const { frames, rest } = splitAdts(body);
    this.stats.droppedAudioBytes += rest.length;
    let t = pts;
    for (const frame of frames) {
      const h = frame.header;
      const config = audioSpecificConfig(h);
      if (!this.#audioConfig?.config.equals(config)) {
        this.#audioConfig = {
          kind: 'audio',
          codec: 'aac',
          config,
          sampleRate: h.sampleRate,
          channels: h.channelConfig,
          frameSamples: 1024,
        };
        this.#out.push({ type: 'config', config: this.#audioConfig });
      }
      this.#out.push({
        type: 'au',
        // A view into the PES (a fresh buffer of its own): no copy per frame.
        au: { track: 'audio', dts: t, pts: t, keyframe: true, data: frame.data },
      });
      t += (1024 * h.blocks * 1000) / h.sampleRate;
    }
  }
}
