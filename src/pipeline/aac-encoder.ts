/**
 * Opus → AAC for the FLV outputs of a WHIP stream: FLV (RTMP re-streams, the transcoding FFmpeg's input)
 * carries no Opus, so without it those outputs would be silent. One audio-only FFmpeg per stream
 * (./audio-encoder.ts: supervision and timing), running only while such an output exists: Opus packets go
 * in on stdin in Ogg (../media/ogg-opus.ts), AAC-LC at 48 kHz comes out as ADTS, one frame per 1024 samples.
 * FFmpeg's AAC encoder starts with one frame of priming (1024 samples of delay, measured: the input's first
 * sample is the second frame's first): skipped, so the output lines up with the input.
 *
 * The AAC configuration is known before any frame is encoded (`aacConfigFor`): outputs announce it at once.
 */
import { type AccessUnit, type AudioConfig, isAudioConfig, type SourceStart } from '../media/access-unit.ts';
import { audioSpecificConfig, splitAdts } from '../media/adts.ts';
import { OggOpusWriter, opusPacketSamples } from '../media/ogg-opus.ts';
import { ErrorCodes } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { AudioEncoder, type AudioEncoderOptions, type AudioEncoderSpec } from './audio-encoder.ts';

const AAC_FRAME_SAMPLES = 1024;
const SAMPLE_RATE = 48_000;
/** ADTS bytes held waiting for the rest of a frame; more without a whole frame is not ADTS. */
const MAX_PENDING_BYTES = 64 * 1024;

export interface AacEncoderOptions extends AudioEncoderOptions {
  bitrateKbps?: number;
}

export interface AacEncoderHandle {
  push(au: AccessUnit): void;
  close(): void;
  /** Input frames dropped because FFmpeg was behind. */
  readonly dropped: number;
  /** FFmpeg runs that ended unasked (each restarted). */
  readonly failures: number;
}

/**
 * Makes an encoder for a stream's Opus configuration; `onFrame` gets raw AAC frames on the stream's clock;
 * `log` (the stream's) names the stream in what the encoder logs.
 */
export type AacEncoderFactory = (
  opus: AudioConfig,
  onFrame: (au: AccessUnit) => void,
  log?: Logger,
) => AacEncoderHandle;

/** The AAC configuration an Opus track becomes: AAC-LC, 48 kHz, mono or stereo as the Opus track. */
export function aacConfigFor(opus: AudioConfig): AudioConfig {
  const channels = opus.channels >= 2 ? 2 : 1;
  return {
    kind: 'audio',
    codec: 'aac',
    config: audioSpecificConfig({ objectType: 2, sampleRateIndex: 3, channelConfig: channels }),
    sampleRate: SAMPLE_RATE,
    channels,
    frameSamples: AAC_FRAME_SAMPLES,
  };
}

/** A start as FLV outputs see it: Opus audio becomes the AAC the encoder makes of it; any other is as it is. */
export function flvAudioOf(start: SourceStart): SourceStart {
  const audio = start.audio;
  return isAudioConfig(audio) && audio.codec === 'opus' ? { ...start, audio: aacConfigFor(audio) } : start;
}

/** FFmpeg's argv: Ogg Opus on stdin, ADTS AAC-LC 48 kHz on stdout, flushed per frame. */
export function aacEncoderArgs(bitrateKbps: number, channels: number): string[] {
  return [
    ...['-hide_banner', '-loglevel', 'error', '-nostdin'],
    ...['-probesize', '32', '-analyzeduration', '0', '-f', 'ogg', '-i', 'pipe:0'],
    // The fast coder: 38 % less CPU than the default two-loop search (measured), transparent for speech.
    ...['-vn', '-c:a', 'aac', '-aac_coder', 'fast', '-b:a', `${bitrateKbps}k`, '-ar', String(SAMPLE_RATE)],
    ...['-ac', String(channels >= 2 ? 2 : 1)],
    ...['-f', 'adts', '-flush_packets', '1', 'pipe:1'],
  ];
}

export function aacEncoderSpec(opus: AudioConfig, bitrateKbps: number): AudioEncoderSpec {
  const channels = opus.channels >= 2 ? 2 : 1;
  return {
    name: 'AAC encoder',
    errorCode: ErrorCodes.AAC_ENCODER_FAILED,
    args: aacEncoderArgs(bitrateKbps, channels),
    outputFrameMs: (AAC_FRAME_SAMPLES / SAMPLE_RATE) * 1000,
    primingPackets: 1,
    open: () => {
      const writer = new OggOpusWriter();
      let pending: Buffer = Buffer.alloc(0);
      return {
        preamble: writer.header(channels),
        frame: (au) => {
          const samples = opusPacketSamples(au.data);
          if (samples === 0) return null;
          return { bytes: writer.packet(au.data), durationMs: (samples / SAMPLE_RATE) * 1000 };
        },
        read: (chunk) => {
          const { frames, rest } = splitAdts(pending.length === 0 ? chunk : Buffer.concat([pending, chunk]));
          if (rest.length > MAX_PENDING_BYTES) throw new Error('AAC encoder: output is not ADTS');
          pending = Buffer.from(rest);
          return frames.map((f) => f.data);
        },
      };
    },
  };
}

/** The factory the stream (transcode input) and re-streaming take: one encoder per Opus stream while wanted. */
export function ffmpegAacEncoder(options: AacEncoderOptions): AacEncoderFactory {
  return (opus, onFrame, log) =>
    new AudioEncoder(
      { ...options, log: log ?? options.log },
      aacEncoderSpec(opus, options.bitrateKbps ?? 96),
      (packet, timeMs) => onFrame({ track: 'audio', dts: timeMs, pts: timeMs, keyframe: true, data: packet }),
    );
}
