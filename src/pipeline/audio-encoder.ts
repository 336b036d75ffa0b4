/**
 * One audio-only FFmpeg that re-encodes a stream's audio for an output whose container or players cannot
 * take the source's codec, running only while that output wants it. Two directions use it:
 * AAC → Opus for WHEP viewers of an RTMP/SRT stream (../webrtc/opus-encoder.ts) and Opus → AAC for the FLV
 * outputs of a WHIP stream (./aac-encoder.ts). What differs is the spec: argv, input framing, output reader.
 *
 * Timing: FFmpeg's piped input carries no usable timestamps, so each output packet is placed by counting
 * samples: every input frame records where its samples start on the encoder's contiguous timeline and its
 * PTS on the stream's clock; an output packet at contiguous time t takes the PTS of the last frame starting
 * at or before t plus the distance. Gaps in the input (a dropped frame, a reconnect) therefore do not shift
 * the audio; smaller disagreements (integer-ms FLV stamps) are ignored so packets stay exactly one frame
 * apart. The encoder's priming packets (AAC's 1024 samples of delay) are skipped.
 *
 * Supervision (style rules 5, 7): argv array (pure, from the spec), its own process group registered with
 * the ChildReaper, killed with its group on close; an exit we did not ask for is logged with the spec's
 * error code and restarted after a pause while still wanted. stdin is bounded: frames past MAX_STDIN_BYTES
 * are dropped and counted, the stream never waits on FFmpeg.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import type { AccessUnit } from '../media/access-unit.ts';
import type { ErrorCode } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';
import type { ChildReaper } from './child-reaper.ts';

const MAX_STDIN_BYTES = 256 * 1024;
const RESTART_PAUSE_MS = 1_000;
const KILL_GRACE_MS = 1_000;
/** Anchors kept for placing output packets: far more than the encoder's delay needs. */
const MAX_ANCHORS = 512;

export interface AudioEncoderOptions {
  ffmpegPath: string;
  reaper: ChildReaper;
  log: Logger;
}

/** One FFmpeg run's framing: a fresh one per (re)start, so container state starts over with the process. */
export interface AudioEncoderRun {
  /** Bytes written before the first frame (a container's headers). */
  preamble: Buffer;
  /** One input frame as the bytes to write, and how long it lasts; null: not a frame this encoder takes. */
  frame(au: AccessUnit): { bytes: Buffer; durationMs: number } | null;
  /** FFmpeg's stdout, as encoded packets in order; throws on bytes it cannot read (the run is restarted). */
  read(chunk: Buffer): Buffer[];
}

export interface AudioEncoderSpec {
  /** For logs: 'Opus encoder', 'AAC encoder'. */
  name: string;
  errorCode: ErrorCode;
  args: readonly string[];
  /** Duration of one output packet, ms. */
  outputFrameMs: number;
  /** Output packets of encoder delay at the start of each run, skipped. */
  primingPackets: number;
  open(): AudioEncoderRun;
}

interface Anchor {
  /** Where this frame's samples start on the encoder's contiguous timeline, ms. */
  offsetMs: number;
  pts: number;
}

export class AudioEncoder {
  readonly #options: AudioEncoderOptions;
  readonly #spec: AudioEncoderSpec;
  readonly #onPacket: (packet: Buffer, timeMs: number) => void;
  readonly #log: Logger;
  /** Packet times follow the input's stamps only past this much disagreement (a gap in the input). */
  readonly #resyncMs: number;
  #child: ChildProcess | null = null;
  #run: AudioEncoderRun | null = null;
  #anchors: Anchor[] = [];
  #inputMs = 0;
  #outputPackets = 0;
  #lastTime: number | null = null;
  #restartTimer: NodeJS.Timeout | null = null;
  #closed = false;
  /** Input frames dropped because FFmpeg was behind. */
  dropped = 0;
  /** Runs that ended without being asked to (each restarted while still wanted). */
  failures = 0;

  constructor(
    options: AudioEncoderOptions,
    spec: AudioEncoderSpec,
    onPacket: (packet: Buffer, timeMs: number) => void,
  ) {
    this.#options = options;
    this.#spec = spec;
    this.#onPacket = onPacket;
    this.#log = options.log;
    this.#resyncMs = 2 * spec.outputFrameMs;
    this.#spawn();
  }

  #spawn(): void {
    const run = this.#spec.open();
    this.#run = run;
    this.#anchors = [];
    this.#inputMs = 0;
    this.#outputPackets = 0;
    this.#lastTime = null;
    const child = spawn(this.#options.ffmpegPath, [...this.#spec.args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      detached: true,
    });
    this.#child = child;
    if (child.pid !== undefined) this.#options.reaper.add(child.pid);
    child.stdin?.on('error', () => {}); // EPIPE when FFmpeg exits first: the exit handler reports it
    if (run.preamble.length > 0) child.stdin?.write(run.preamble);
    child.stdout?.on('data', (chunk: Buffer) => this.#onOutput(child, chunk));
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr = (stderr + chunk.toString()).slice(-2000);
    });
    child.on('error', (err) => {
      this.#log.warn({ code: this.#spec.errorCode, err }, `${this.#spec.name}: FFmpeg did not start`);
    });
    child.on('exit', (code, signal) => {
      if (child.pid !== undefined) this.#options.reaper.delete(child.pid);
      if (this.#child !== child) return;
      this.#child = null;
      if (this.#closed) return;
      this.failures++;
      this.#log.warn(
        { code: this.#spec.errorCode, exitCode: code, signal, stderr: stderr.trim().slice(-500) },
        `${this.#spec.name} exited; restarting`,
      );
      this.#restartTimer = setTimeout(() => {
        this.#restartTimer = null;
        if (!this.#closed) this.#spawn();
      }, RESTART_PAUSE_MS);
    });
  }

  push(au: AccessUnit): void {
    const stdin = this.#child?.stdin;
    const run = this.#run;
    if (!stdin || !run || this.#closed || au.data.length === 0) return;
    if (stdin.writableLength > MAX_STDIN_BYTES) {
      this.dropped++;
      if (this.dropped === 1 || this.dropped % 100 === 0)
        this.#log.warn({ dropped: this.dropped }, `${this.#spec.name} is behind; frames dropped`);
      return;
    }
    const frame = run.frame(au);
    if (!frame) return;
    this.#anchors.push({ offsetMs: this.#inputMs, pts: au.pts });
    if (this.#anchors.length > MAX_ANCHORS) this.#anchors.shift();
    this.#inputMs += frame.durationMs;
    stdin.write(frame.bytes);
  }

  #onOutput(child: ChildProcess, chunk: Buffer): void {
    const run = this.#run;
    if (this.#closed || this.#child !== child || !run) return;
    let packets: Buffer[];
    try {
      packets = run.read(chunk);
    } catch (err) {
      this.#log.warn({ code: this.#spec.errorCode, err }, `${this.#spec.name} output unreadable; restarting`);
      this.#kill();
      return;
    }
    const frameMs = this.#spec.outputFrameMs;
    for (const packet of packets) {
      const index = this.#outputPackets++ - this.#spec.primingPackets;
      if (index < 0) continue;
      const offset = index * frameMs;
      while (this.#anchors.length > 1 && this.#anchors[1]!.offsetMs <= offset) this.#anchors.shift();
      const anchor = this.#anchors[0];
      if (!anchor) continue;
      const placed = anchor.pts + (offset - anchor.offsetMs);
      // Integer-ms input stamps wobble by a fraction of a ms: keep packets exactly one frame apart unless the
      // input really jumped (a gap), so the output's clock stays clean.
      const next = this.#lastTime === null ? placed : this.#lastTime + frameMs;
      const time = Math.abs(placed - next) > this.#resyncMs ? placed : next;
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
