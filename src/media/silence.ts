/**
 * Silent audio frames in the codecs the relay writes, made without an encoder: where a track must go on
 * but its publisher sent nothing (a re-stamped clock that needs more audio than was sent, the audio a
 * publisher's last fragment lacks before a slate, the slate itself for Opus). A player whose buffered audio
 * has a hole stalls at it (hls.js: ~4 s before it seeks over one wider than its maxBufferHole).
 */
import type { AudioConfig } from './access-unit.ts';
import { AAC_LC, aacObjectType } from './adts.ts';

/** Samples in the Opus frame below: 20 ms at 48 kHz. */
const SILENT_OPUS_SAMPLES = 960;

/**
 * A raw AAC-LC frame of silence (1024 samples; a single or a pair channel element with no spectral data),
 * for 1 or 2 channels; null for other layouts (they get gaps). The bytes hls.js inserts for the same reason.
 */
export function silentAacFrame(channels: number): Buffer | null {
  if (channels === 1) return Buffer.from([0x00, 0xc8, 0x00, 0x80, 0x23, 0x80]);
  if (channels === 2) return Buffer.from([0x21, 0x00, 0x49, 0x90, 0x02, 0x19, 0x00, 0x23, 0x80]);
  return null;
}

/** 20 ms of silence in Opus: TOC config 31 (CELT fullband 20 ms), one frame, mono or stereo; 2 payload bytes. */
export function silentOpusFrame(channels: number): Buffer {
  return Buffer.from([channels >= 2 ? 0xfc : 0xf8, 0xff, 0xfe]);
}

/**
 * One frame of silence lasting exactly `audio.frameSamples` (what a writer stamps each frame with), or null:
 * AAC-LC mono or stereo, and Opus in 20 ms frames; anything else has no silence the relay can make.
 */
export function silentFrameFor(audio: AudioConfig): Buffer | null {
  if (audio.codec === 'aac') {
    const lc = aacObjectType(audio.config) === AAC_LC;
    return lc && audio.frameSamples === 1024 ? silentAacFrame(audio.channels) : null;
  }
  if (audio.codec === 'opus') {
    return audio.frameSamples === SILENT_OPUS_SAMPLES ? silentOpusFrame(audio.channels) : null;
  }
  return null;
}
