/**
 * Publishes the tags of an FLV file (or a tag array) to `rtmp://127.0.0.1:PORT/live/{user}/{stream}` over
 * real TCP, paced in real time by the tags' timestamps, the way a live publisher would: handshake, connect,
 * createStream, publish, then (after NetStream.Publish.Start) `@setDataFrame` metadata and the media.
 * Built on TestClient (./rtmp-test-client.ts), so it speaks through the relay's own pure layers.
 *
 * Pacing: a tag is sent when the wall clock since the first tag reaches its media time / speed. Media time
 * advances by the timestamp deltas, each clamped to `maxGapMs`, so a jump forward in the file costs at
 * most that much waiting; a small step back (audio/video interleaving) is sent at once; a big step back
 * (a timestamp reset) starts counting again from there.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { type FlvFile, readFlv } from '../../src/media/flv-reader.ts';
import { FlvTagType, type MediaTag } from '../../src/media/flv-tag.ts';
import { encodeAmf0 } from '../../src/rtmp/amf0.ts';
import { MessageType } from '../../src/rtmp/messages.ts';
import { redactUrl } from '../../src/shared/logger.ts';
import { TestClient } from './rtmp-test-client.ts';

export interface FlvPublishOptions {
  port: number;
  /** Default `user1`. */
  user?: string;
  /** Default `stream1`. */
  stream?: string;
  /** Sent as `?token=…` on the publish name; none when omitted. */
  token?: string;
  /** Media seconds per wall-clock second (default 1); `Infinity` sends as fast as the socket takes it. */
  speed?: number;
  /**
   * Publish only tags with fromMs ≤ timestamp < toMs (file timestamps). The metadata and the last sequence
   * headers before the slice are sent first regardless, at the slice's first timestamp; the slice may start
   * mid-GOP (no keyframe is looked for).
   */
  fromMs?: number;
  toMs?: number;
  /** Shift the slice's timestamps so its first tag is at 0 (a fresh publisher's clock). Default false. */
  rebase?: boolean;
  /** Most wall-clock waiting one timestamp step may cause, in media ms (default 1000). */
  maxGapMs?: number;
  /** Chunk size announced with Set Chunk Size before connect (default 4096, what ffmpeg uses). */
  chunkSize?: number;
  /** How long to wait for NetStream.Publish.Start (default 15 s). */
  startTimeoutMs?: number;
  /**
   * Awaited after the last tag is sent and before FCUnpublish (not after stop() or drop()): a test holds the
   * publish open until the relay caught up, so its end does not depend on how fast this machine is.
   */
  beforeUnpublish?: () => Promise<void>;
}

export interface FlvPublisher {
  /** The URL published to (the token in it). */
  readonly url: string;
  /**
   * Resolves when the publish is over: every tag sent then unpublished and closed, or stop(), or drop().
   * Rejects with an FlvPublishError when the publish is refused (Unauthorized, BadName), times out, or the
   * server closes the connection first.
   */
  readonly done: Promise<void>;
  /** Resolves at NetStream.Publish.Start (rejects like `done` when it never comes). */
  readonly started: Promise<void>;
  /** Graceful: FCUnpublish + deleteStream, then a TCP close. Resolves when the socket is closed. */
  stop(): Promise<void>;
  /** Abrupt: socket.destroy() with no unpublish (`reset: true` sends a TCP RST instead of a FIN). */
  drop(options?: { reset?: boolean }): void;
  /** Tags sent so far: metadata, sequence headers and frames. */
  readonly sentTags: number;
  /**
   * The worst lateness (ms) of a paced send against its schedule since the last call, then starts over:
   * how far a loaded load generator fell behind real time.
   */
  takeMaxLateMs(): number;
}

export class FlvPublishError extends Error {
  /** The onStatus code when the server answered the publish with one (e.g. NetStream.Publish.BadName). */
  readonly status: string | undefined;

  constructor(message: string, status?: string) {
    super(message);
    this.name = 'FlvPublishError';
    this.status = status;
  }
}

const CSID = { control: 2, command: 3, audio: 4, data: 5, video: 6, publish: 8 } as const;
const SET_DATA_FRAME = encodeAmf0('@setDataFrame');

export type FlvSource = Buffer | string | FlvFile | readonly MediaTag[];

function tagsOf(source: FlvSource): readonly MediaTag[] {
  if (typeof source === 'string') return readFlv(readFileSync(source)).tags;
  if (Buffer.isBuffer(source)) return readFlv(source).tags;
  if ('tags' in source) return source.tags;
  return source;
}

/** What goes on the wire, in order: metadata, the sequence headers the slice needs, the slice. */
export function publishPlan(tags: readonly MediaTag[], options: FlvPublishOptions): MediaTag[] {
  const from = options.fromMs ?? Number.NEGATIVE_INFINITY;
  const to = options.toMs ?? Number.POSITIVE_INFINITY;
  const metadata = tags.find((t) => t.type === FlvTagType.Script);
  let videoConfig: MediaTag | undefined;
  let audioConfig: MediaTag | undefined;
  const slice: MediaTag[] = [];
  for (const tag of tags) {
    if (tag === metadata) continue;
    if (tag.timestamp >= from && tag.timestamp < to) slice.push(tag);
    else if (tag.timestamp < from && tag.isConfig) {
      if (tag.type === FlvTagType.Video) videoConfig = tag;
      else if (tag.type === FlvTagType.Audio) audioConfig = tag;
    }
  }
  const start = slice[0]?.timestamp ?? 0;
  const base = options.rebase ? start : 0;
  const at = (tag: MediaTag, timestamp: number): MediaTag => ({
    ...tag,
    timestamp: Math.max(0, timestamp - base),
  });
  const plan: MediaTag[] = [];
  if (metadata) plan.push(at(metadata, start)); // with the slice's first tag: no pause before it
  for (const config of [videoConfig, audioConfig]) if (config) plan.push(at(config, start));
  for (const tag of slice) plan.push(at(tag, tag.timestamp));
  return plan;
}

export function publishFlv(source: FlvSource, options: FlvPublishOptions): FlvPublisher {
  const user = options.user ?? 'user1';
  const stream = options.stream ?? 'stream1';
  const app = `live/${user}`;
  const name = options.token === undefined ? stream : `${stream}?token=${encodeURIComponent(options.token)}`;
  const url = `rtmp://127.0.0.1:${options.port}/${app}/${name}`;
  const shown = redactUrl(url); // what error messages carry
  const speed = options.speed ?? 1;
  const maxGap = options.maxGapMs ?? 1000;
  if (!(speed > 0)) throw new RangeError(`speed ${speed}`);
  const plan = publishPlan(tagsOf(source), options);

  let client: TestClient | null = null;
  let ending: 'stop' | 'drop' | null = null;
  let sentTags = 0;
  let maxLateMs = 0;
  let streamId = 1;
  /** Latched by stop(), drop() or the socket's close: whatever the run waits for ends at once. */
  let interrupted = false;
  /** The one wait in progress (the run waits for one thing at a time); settles it as interrupted. */
  let waiter: (() => void) | null = null;
  const wake = (): void => {
    interrupted = true;
    const w = waiter;
    waiter = null;
    w?.();
  };
  let markStarted: () => void = () => {};
  let failStart: (err: unknown) => void = () => {};
  const started = new Promise<void>((resolve, reject) => {
    markStarted = resolve;
    failStart = reject;
  });
  started.catch(() => {}); // `done` reports the same failure

  const closed = (): boolean => client === null || client.socket.destroyed;
  const send = (tag: MediaTag): boolean => {
    const c = client!;
    const type =
      tag.type === FlvTagType.Script
        ? MessageType.DataAmf0
        : tag.type === FlvTagType.Video
          ? MessageType.Video
          : MessageType.Audio;
    const csid =
      tag.type === FlvTagType.Script ? CSID.data : tag.type === FlvTagType.Video ? CSID.video : CSID.audio;
    const payload = tag.type === FlvTagType.Script ? Buffer.concat([SET_DATA_FRAME, tag.data]) : tag.data;
    const ok = c.socket.write(c.writer.write({ csid, type, streamId, timestamp: tag.timestamp, payload }));
    sentTags++;
    return ok;
  };
  /**
   * Waits for `p` unless interrupted first; true when `p` won. No reaction is left on a long-lived promise
   * per wait: a publisher sends tens of tags a second for hours in the soak.
   */
  const until = (p: Promise<unknown>): Promise<boolean> =>
    new Promise<boolean>((resolve) => {
      if (interrupted) {
        p.catch(() => {});
        resolve(false);
        return;
      }
      let settled = false;
      const finish = (won: boolean): void => {
        if (settled) return;
        settled = true;
        if (waiter === onWake) waiter = null;
        resolve(won && ending === null);
      };
      const onWake = (): void => finish(false);
      waiter = onWake;
      p.then(
        () => finish(true),
        () => finish(false),
      );
    });
  const sleep = (ms: number): Promise<boolean> => {
    let timer: NodeJS.Timeout | undefined;
    return until(new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)))).finally(() =>
      clearTimeout(timer),
    );
  };
  const closedByPeer = (): FlvPublishError => {
    // A server that ends a live publish on purpose says why first (NetStream.Publish.Failed and a reason).
    const said = client
      ?.commands()
      .filter((m) => m.name === 'onStatus')
      .map((m) => m.args[1] as { level?: unknown; code?: unknown; description?: unknown } | null)
      .filter((info) => info?.level === 'error')
      .pop();
    if (typeof said?.code === 'string') {
      return new FlvPublishError(`${shown}: ${said.code}: ${String(said.description)}`, said.code);
    }
    return new FlvPublishError(`${shown}: the server closed the connection after ${sentTags} tags`);
  };

  async function handshakeAndPublish(): Promise<void> {
    const c = await TestClient.open(options.port);
    client = c;
    c.socket.setNoDelay(true);
    c.socket.once('close', () => wake());
    if (ending) {
      c.close(); // stopped or dropped while connecting: nothing was published
      return;
    }
    const chunkSize = options.chunkSize ?? 4096;
    const size = Buffer.alloc(4);
    size.writeUInt32BE(chunkSize);
    c.write({ csid: CSID.control, type: MessageType.SetChunkSize, streamId: 0, timestamp: 0, payload: size });
    c.writer.setChunkSize(chunkSize);
    c.command('connect', 1, [{ app, tcUrl: `rtmp://127.0.0.1:${options.port}/${app}`, type: 'nonprivate' }]);
    c.command('releaseStream', 2, [null, stream]);
    c.command('FCPublish', 3, [null, stream]);
    c.command('createStream', 4, [null]);
    const created = await c.waitFor(() => c.result(4));
    const id = created.args[1];
    if (typeof id === 'number' && Number.isInteger(id) && id > 0) streamId = id;
    c.command('publish', 5, [null, name, 'live'], streamId, CSID.publish);
    let timer: NodeJS.Timeout | undefined;
    const status = await Promise.race([
      c.waitFor(() => c.status()),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new FlvPublishError(`${shown}: no answer to publish in ${options.startTimeoutMs ?? 15_000} ms`),
            ),
          options.startTimeoutMs ?? 15_000,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    const code = typeof status.code === 'string' ? status.code : String(status.code);
    if (code !== 'NetStream.Publish.Start') {
      const description = typeof status.description === 'string' ? `: ${status.description}` : '';
      throw new FlvPublishError(`${shown}: publish refused with ${code}${description}`, code);
    }
  }

  async function sendPaced(): Promise<void> {
    const startedAt = performance.now();
    let mediaMs = 0;
    let last: number | undefined;
    for (const tag of plan) {
      if (last === undefined) last = tag.timestamp;
      const step = tag.timestamp - last;
      if (step > 0) {
        mediaMs += Math.min(step, maxGap);
        last = tag.timestamp;
      } else if (step < -maxGap) {
        last = tag.timestamp; // a reset: count on from the new timestamps
      }
      const wait = startedAt + mediaMs / speed - performance.now();
      if (wait > 0 && Number.isFinite(speed) && !(await sleep(wait))) return;
      if (ending || closed()) return;
      if (Number.isFinite(speed))
        maxLateMs = Math.max(maxLateMs, performance.now() - startedAt - mediaMs / speed);
      if (!send(tag) && !(await until(once(client!.socket, 'drain')))) return;
    }
  }

  /** FCUnpublish + deleteStream, then end the TCP connection and wait for it to close. */
  async function unpublish(): Promise<void> {
    const c = client;
    if (!c || c.socket.destroyed) return;
    c.command('FCUnpublish', 6, [null, stream]);
    c.command('deleteStream', 7, [null, streamId]);
    c.socket.end();
    const timer = setTimeout(() => c.socket.destroy(), 2000);
    await c.closed;
    clearTimeout(timer);
  }

  async function run(): Promise<void> {
    try {
      await handshakeAndPublish();
    } catch (err) {
      client?.close();
      if (ending) {
        failStart(
          new FlvPublishError(`${shown}: ${ending === 'stop' ? 'stopped' : 'dropped'} while connecting`),
        );
        return;
      }
      const error =
        err instanceof FlvPublishError
          ? err
          : new FlvPublishError(
              `${shown}: publish did not start: ${err instanceof Error ? err.message : err}`,
            );
      failStart(error);
      throw error;
    }
    if (closed()) {
      failStart(new FlvPublishError(`${shown}: closed before the publish started`));
      if (ending) return;
      throw closedByPeer();
    }
    markStarted();
    try {
      if (!ending) await sendPaced();
      if (!ending && !closed() && options.beforeUnpublish) await options.beforeUnpublish();
      if (closed()) {
        if (ending) return; // dropped, or the server closed after stop()
        throw closedByPeer();
      }
      await unpublish();
    } catch (err) {
      // A reset (ECONNRESET, EPIPE) surfaces as the socket's error: the server closed the connection.
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ECONNRESET' || code === 'EPIPE') {
        if (ending) return;
        throw closedByPeer();
      }
      throw err;
    }
  }

  const done = run();
  let stopping: Promise<void> | null = null;
  return {
    url,
    done,
    started,
    get sentTags() {
      return sentTags;
    },
    takeMaxLateMs() {
      const late = maxLateMs;
      maxLateMs = 0;
      return late;
    },
    stop() {
      if (!ending) ending = 'stop';
      wake();
      stopping ??= done.catch(() => {}).then(() => client?.closed);
      return stopping;
    },
    drop(dropOptions = {}) {
      if (!ending) ending = 'drop';
      const socket = client?.socket;
      if (socket && !socket.destroyed) {
        if (dropOptions.reset) socket.resetAndDestroy();
        else socket.destroy();
      }
      wake();
    },
  };
}
