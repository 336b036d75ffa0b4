/**
 * H.264 access units made ready for RTP (RFC 6184 packetization mode 1, which libdatachannel's
 * H264RtpPacketizer does from 4-byte length-prefixed NAL units): SPS and PPS in front of every keyframe that
 * lacks them (a viewer joining at a keyframe, or one that lost the first packets, needs them in band; FLV
 * carries them only in the sequence header), and detection of B-frames (browsers' WebRTC decoders do not
 * reorder). Pure; AVCC walking and avcC parsing are media/nal.ts's.
 */
import { h264NalType, parseAvcConfig, walkNalUnits } from '../media/nal.ts';
import { ErrorCodes, RelayError } from '../shared/errors.ts';

export const NalType = { Idr: 5, Sei: 6, Sps: 7, Pps: 8, Aud: 9, Filler: 12 } as const;

export interface AvcParameterSets {
  sps: Buffer[];
  pps: Buffer[];
  /** profile_idc of the first SPS (66 baseline, 77 main, 100 high), 0 when unknown. */
  profileIdc: number;
}

/** Reads the SPS and PPS out of an avcC record (media/nal.ts); a malformed one: WEBRTC_STREAM_NOT_READY. */
export function parseAvcC(record: Buffer): AvcParameterSets {
  try {
    const avc = parseAvcConfig(record);
    return { sps: avc.sps, pps: avc.pps, profileIdc: avc.profile };
  } catch (err) {
    throw new RelayError(ErrorCodes.WEBRTC_STREAM_NOT_READY, 'the stream has a malformed avcC record', {
      cause: err,
    });
  }
}

/** NAL unit types of a 4-byte length-prefixed access unit, up to a length that runs past the end. */
export function nalTypes(data: Buffer): number[] {
  const types: number[] = [];
  try {
    walkNalUnits(data, (d, start) => {
      types.push(h264NalType(d[start]!));
      return undefined;
    });
  } catch {
    // A truncated unit: the types before it are what there is (the packetizer sends what it can).
  }
  return types;
}

function lengthPrefixed(nals: Buffer[]): Buffer {
  const parts: Buffer[] = [];
  for (const nal of nals) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(nal.length);
    parts.push(len, nal);
  }
  return Buffer.concat(parts);
}

/**
 * The payload to packetize: a keyframe without an SPS gets the configuration's SPS and PPS in front; other
 * frames go as they are (the packetizer splits NAL units into FU-A where they exceed the MTU).
 */
export function frameForRtp(data: Buffer, keyframe: boolean, params: AvcParameterSets | null): Buffer {
  if (!keyframe || params === null) return data;
  if (nalTypes(data).includes(NalType.Sps)) return data;
  return Buffer.concat([lengthPrefixed([...params.sps, ...params.pps]), data]);
}

/**
 * Notices reordered frames: B-frames show as a presentation time below one already seen (decode order is
 * not presentation order). A constant PTS - DTS offset alone is no reordering.
 */
export class ReorderDetector {
  #maxPts = Number.NEGATIVE_INFINITY;
  #reordered = false;

  get reordered(): boolean {
    return this.#reordered;
  }

  /** Feeds one video frame in decode order; true once reordering was seen. */
  push(pts: number): boolean {
    if (pts < this.#maxPts) this.#reordered = true;
    else this.#maxPts = pts;
    return this.#reordered;
  }

  reset(): void {
    this.#maxPts = Number.NEGATIVE_INFINITY;
    this.#reordered = false;
  }
}

/** Whether frames in decode order (a GOP) have B-frames. */
export function hasReorderedFrames(frames: readonly { pts: number }[]): boolean {
  const detector = new ReorderDetector();
  return frames.some((f) => detector.push(f.pts));
}
