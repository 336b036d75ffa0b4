/**
 * AAC → Opus for WHEP viewers of an AAC stream (browsers' WebRTC plays Opus, not AAC): one audio-only FFmpeg
 * per stream, running only while a viewer that takes audio watches (./whep-output.ts decides). AAC frames
 * go in on stdin as ADTS, 20 ms Opus packets come out on stdout in Ogg (./ogg-opus.ts).
 *
 * Timing: FFmpeg's raw AAC input has no timestamps, so each output packet is placed by counting samples:
 * every input frame records where its samples start on the encoder's contiguous timeline and its PTS on the
 * stream's clock; an output packet at contiguous time t takes the PTS of the last frame starting at or before
 * t plus the distance. Gaps in the input (a dropped frame, a reconnect) therefore do not shift the audio;
 * smaller disagreements (integer-ms FLV stamps) are ignored so packets stay exactly 20 ms apart.
 *
 * Supervision (style rules 5, 7): argv array (pure, `opusEncoderArgs`), its own process group registered
 * with the ChildReaper, killed with its group on close; an exit we did not ask for is logged with
 * OPUS_ENCODER_FAILED and restarted after a pause while still wanted. stdin is bounded: frames past
 * MAX_STDIN_BYTES are dropped and counted, the stream never waits on FFmpeg.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { AccessUnit, AudioConfig } from '../media/access-unit.ts';
import type { ChildReaper } from '../pipeline/child-reaper.ts';
import { ErrorCodes } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import { OggOpusReader } from './ogg-opus.ts';
import type { OpusEncoderFactory, OpusEncoderHandle } from './whep-output.ts';

export const OPUS_FRAME_MS = 20;
const MAX_STDIN_BYTES = 256 * 1024;
const RESTART_PAUSE_MS = 1_000;
const KILL_GRACE_MS = 1_000;
/** Anchors kept for placing output packets: far more than the encoder's delay needs. */
const MAX_ANCHORS = 512;
/** Packet times follow the input's stamps only past this much disagreement (a gap in the input). */
const RESYNC_MS = 40;

export interface OpusEncoderOptions {
  ffmpegPath: string;
  reaper: ChildReaper;
  log: Logger;
  bitrateKbps?: number;
}

/** FFmpeg's argv: ADTS AAC on stdin, 48 kHz Opus in Ogg on stdout, one page per 20 ms packet. */
export function opusEncoderArgs(bitrateKbps: number, channels: number): string[] {
  return [
    ...['-hide_banner', '-loglevel', 'error', '-nostdin'],
    ...['-probesize', '32', '-analyzeduration', '0', '-fflags', '+nobuffer'],
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

interface Anchor {
  /** Where this frame's samples start on the encoder's contiguous timeline, ms. */
  offsetMs: number;
  pts: number;
}

class OpusEncoder implements OpusEncoderHandle {
  readonly #options: OpusEncoderOptions;
  readonly #config: AudioConfig;
  readonly #onPacket: (packet: Buffer, timeMs: number) => void;
  readonly #log: Logger;
  #child: ChildProcess | null = null;
  #reader = new OggOpusReader();
  #anchors: Anchor[] = [];
  #inputMs = 0;
  #outputPackets = 0;
  #lastTime: number | null = null;
  #restartTimer: NodeJS.Timeout | null = null;
  #closed = false;
  dropped = 0;

  constructor(
    options: OpusEncoderOptions,
    config: AudioConfig,
    onPacket: (packet: Buffer, timeMs: number) => void,
  ) {
    this.#options = options;
    this.#config = config;
    this.#onPacket = onPacket;
    this.#log = options.log;
    this.#spawn();
  }

  #spawn(): void {
    this.#reader = new OggOpusReader();
    this.#anchors = [];
    this.#inputMs = 0;
    this.#outputPackets = 0;
    this.#lastTime = null;
    const args = opusEncoderArgs(this.#options.bitrateKbps ?? 48, this.#config.channels);
    const child = spawn(this.#options.ffmpegPath, args, { stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    this.#child = child;
    if (child.pid !== undefined) this.#options.reaper.add(child.pid);
    child.stdin?.on('error', () => {}); // EPIPE when FFmpeg exits first: the exit handler reports it
    child.stdout?.on('data', (chunk: Buffer) => this.#onOutput(chunk));
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2000);
    });
    child.on('error', (err) => {
      this.#log.warn({ code: ErrorCodes.OPUS_ENCODER_FAILED, err }, 'Opus encoder: FFmpeg did not start');
    });
    child.on('exit', (code, signal) => {
      if (child.pid !== undefined) this.#options.reaper.delete(child.pid);
      if (this.#child !== child) return;
      this.#child = null;
      if (this.#closed) return;
      this.#log.warn(
        { code: ErrorCodes.OPUS_ENCODER_FAILED, exitCode: code, signal, stderr: stderr.trim().slice(-500) },
        'Opus encoder exited; restarting',
      );
      this.#restartTimer = setTimeout(() => {
        this.#restartTimer = null;
        if (!this.#closed) this.#spawn();
      }, RESTART_PAUSE_MS);
    });
  }

  push(au: AccessUnit): void {
    const stdin = this.#child?.stdin;
    if (!stdin || this.#closed || au.data.length === 0) return;
    if (stdin.writableLength > MAX_STDIN_BYTES) {
      this.dropped++;
      if (this.dropped === 1 || this.dropped % 100 === 0)
        this.#log.warn({ dropped: this.dropped }, 'Opus encoder is behind; AAC frames dropped');
      return;
    }
    this.#anchors.push({ offsetMs: this.#inputMs, pts: au.pts });
    if (this.#anchors.length > MAX_ANCHORS) this.#anchors.shift();
    this.#inputMs += (this.#config.frameSamples / this.#config.sampleRate) * 1000;
    stdin.write(Buffer.concat([adtsHeader(this.#config.config, au.data.length), au.data]));
  }

  #onOutput(chunk: Buffer): void {
    let packets: Buffer[];
    try {
      packets = this.#reader.push(chunk);
    } catch (err) {
      this.#log.warn(
        { code: ErrorCodes.OPUS_ENCODER_FAILED, err },
        'Opus encoder output unreadable; restarting',
      );
      this.#kill();
      return;
    }
    for (const packet of packets) {
      const offset = this.#outputPackets++ * OPUS_FRAME_MS;
      while (this.#anchors.length > 1 && this.#anchors[1]!.offsetMs <= offset) this.#anchors.shift();
      const anchor = this.#anchors[0];
      if (!anchor) continue;
      const placed = anchor.pts + (offset - anchor.offsetMs);
      // Integer-ms input stamps wobble by a fraction of a ms: keep packets exactly 20 ms apart unless the
      // input really jumped (a gap), so the player sees a clean RTP clock.
      const next = this.#lastTime === null ? placed : this.#lastTime + OPUS_FRAME_MS;
      const time = Math.abs(placed - next) > RESYNC_MS ? placed : next;
      this.#lastTime = time;
      this.#onPacket(packet, time);
    }
  }

  #kill(): void {
    const child = this.#child;
    if (!child?.pid) return;
    const pid = child.pid;
    this.#options.reaper.signal(pid, 'SIGTERM');
    const timer = setTimeout(() => this.#options.reaper.signal(pid, 'SIGKILL'), KILL_GRACE_MS);
    child.once('exit', () => clearTimeout(timer));
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#restartTimer) clearTimeout(this.#restartTimer);
    this.#restartTimer = null;
    this.#child?.stdin?.end();
    this.#kill();
  }
}

/** The factory WhepServer takes (`opus`): one encoder per AAC stream while it has audio viewers. */
export function ffmpegOpusEncoder(options: OpusEncoderOptions): OpusEncoderFactory {
  return (config, onPacket) => new OpusEncoder(options, config, onPacket);
}
