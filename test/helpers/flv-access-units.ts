/**
 * A test fixture's FLV tags as the media core's access units and track configurations (legacy AVC and AAC
 * tags only), so outputs can be tested from real encoder output before src/media/flv-demux.ts lands on
 * main. Times: DTS is the tag timestamp, PTS adds the AVC composition time.
 */
import { readFileSync } from 'node:fs';
import type { AccessUnit, AudioConfig, VideoConfig } from '../../src/media/access-unit.ts';
import { avcSequenceHeaderSize } from '../../src/media/avc-sps.ts';
import { readFlv } from '../../src/media/flv-reader.ts';
import { FlvTagType } from '../../src/media/flv-tag.ts';

export interface FlvMedia {
  video: VideoConfig | null;
  audio: AudioConfig | null;
  /** Decode order, both tracks. */
  units: AccessUnit[];
}

const AAC_RATES = [96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350];

export function flvAccessUnits(bytes: Buffer): FlvMedia {
  const { tags } = readFlv(bytes);
  let video: VideoConfig | null = null;
  let audio: AudioConfig | null = null;
  const units: AccessUnit[] = [];
  for (const tag of tags) {
    const d = tag.data;
    if (tag.type === FlvTagType.Video && (d[0]! & 0x0f) === 7 && d.length > 5) {
      if (d[1] === 0) {
        const size = avcSequenceHeaderSize(d);
        video = {
          kind: 'video',
          codec: 'h264',
          record: Buffer.from(d.subarray(5)),
          width: size?.width ?? 0,
          height: size?.height ?? 0,
        };
      } else if (d[1] === 1) {
        const cts = d.readIntBE(2, 3);
        units.push({
          track: 'video',
          dts: tag.timestamp,
          pts: tag.timestamp + cts,
          keyframe: d[0]! >> 4 === 1,
          data: d.subarray(5),
        });
      }
    } else if (tag.type === FlvTagType.Audio && d[0]! >> 4 === 10 && d.length > 2) {
      if (d[1] === 0) {
        const asc = Buffer.from(d.subarray(2));
        const rateIndex = ((asc[0]! & 0x07) << 1) | (asc[1]! >> 7);
        audio = {
          kind: 'audio',
          codec: 'aac',
          config: asc,
          sampleRate: AAC_RATES[rateIndex] ?? 44100,
          channels: (asc[1]! >> 3) & 0x0f,
          frameSamples: 1024,
        };
      } else {
        units.push({
          track: 'audio',
          dts: tag.timestamp,
          pts: tag.timestamp,
          keyframe: true,
          data: d.subarray(2),
        });
      }
    }
  }
  return { video, audio, units };
}

export function readFlvAccessUnits(file: string): FlvMedia {
  return flvAccessUnits(readFileSync(file));
}
