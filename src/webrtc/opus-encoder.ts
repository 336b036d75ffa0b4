/**
 * AAC → Opus for WHEP viewers of an AAC stream (browsers' WebRTC plays Opus, not AAC): one audio-only FFmpeg
 * per stream (../pipeline/audio-encoder.ts: supervision and timing), running only while a viewer that takes
 * audio watches (./whep-output.ts decides). AAC frames go in on stdin as ADTS, 20 ms Opus packets come out
 * on stdout in Ogg (../media/ogg-opus.ts). Packets are placed on the stream's clock by counting samples.
 */
import type { AudioConfig } from '../media/access-unit.ts';
import { OggOpusReader } from '../media/ogg-opus.ts';
import { AudioEncoder, type AudioEncoderOptions, type AudioEncoderSpec } from '../pipeline/audio-encoder.ts';
import { ErrorCodes } from '../shared/errors.ts';
import type { OpusEncoderFactory } from './whep-output.ts';

export const OPUS_FRAME_MS = 20;

export interface OpusEncoderOptions extends AudioEncoderOptions {
  bitrateKbps?: number;
}

/** FFmpeg's argv: ADTS AAC on stdin, 48 kHz Opus in Ogg on stdout, one page per 20 ms packet. */
export function opusEncoderArgs(bitrateKbps: number, channels: number): string[] {
  return [
    ...['-hide_banner', '-loglevel', 'error', '-nostdin'],
    // No -fflags +nobuffer: it drops the first packet, and every packet would be placed one frame early.
    ...['-probesize', '32', '-analyzeduration', '0'],
    ...['-f', 'aac', '-i', 'pipe:0'],
    ...[
      '-vn',
      '-c:a',
      'libopus',
      '-b:a',
      `${bitrateKbps}k`,
      '-ar',
      '48000',
      '-ac',
      String(channels >= 2 ? 2 : 1),
    ],
    ...['-application', 'lowdelay', '-frame_duration', String(OPUS_FRAME_MS)],
    ...['-f', 'ogg', '-page_duration', String(OPUS_FRAME_MS * 1000), '-flush_packets', '1', 'pipe:1'],
  ];
}

/** An ADTS header (ISO/IEC 14496-3 §1.A.2) for one raw AAC frame of the given AudioSpecificConfig. */
export function adtsHeader(asc: Buffer, payloadLength: number): Buffer {
  const objectType = asc[0]! >> 3;
  const rateIndex = ((asc[0]! & 0x07) << 1) | (asc[1]! >> 7);
  const channels = (asc[1]! >> 3) & 0x0f;
  const length = payloadLength + 7;
  return Buffer.from([
    0xff,
    0xf1,
    ((Math.max(1, objectType) - 1) << 6) | (rateIndex << 2) | (channels >> 2),
    ((channels & 3) << 6) | (length >> 11),
    (length >> 3) & 0xff,
    ((length & 7) << 5) | 0x1f,
    0xfc,
  ]);
}

/** The factory WhepServer takes (`opus`): one encoder per AAC stream while it has audio viewers. */
export function ffmpegOpusEncoder(options: OpusEncoderOptions): OpusEncoderFactory {
  return (config, onPacket) =>
    new AudioEncoder(options, opusEncoderSpec(config, options.bitrateKbps ?? 48), onPacket);
}

/** ADTS in (each frame with its header), Ogg Opus out; libopus adds no packets of its own delay to skip. */
export function opusEncoderSpec(config: AudioConfig, bitrateKbps: number): AudioEncoderSpec {
  const durationMs = (config.frameSamples / config.sampleRate) * 1000;
  return {
    name: 'Opus encoder',
    errorCode: ErrorCodes.OPUS_ENCODER_FAILED,
    args: opusEncoderArgs(bitrateKbps, config.channels),
    outputFrameMs: OPUS_FRAME_MS,
    primingPackets: 0,
    open: () => {
      const reader = new OggOpusReader();
      return {
        preamble: Buffer.alloc(0),
        frame: (au) => ({
          bytes: Buffer.concat([adtsHeader(config.config, au.data.length), au.data]),
          durationMs,
        }),
        read: (chunk) => reader.push(chunk),
      };
    },
  };
}
