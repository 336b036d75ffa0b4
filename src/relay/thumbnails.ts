/**
 * Thumbnails for every stream on the relay: one Thumbnailer per stream (made when the stream is created,
 * closed when it ends), fed the stream's keyframes and decoder configuration (as FLV, which its FFmpeg
 * decodes; a thumbnail needs no timestamps), whatever the ingest, and served by the origin at
 * `/hls/{userPath}/{streamId}/thumbnail.jpg` (a static route next to the HLS files; nothing from the request
 * becomes a path). Announced to apps as `thumbnailUrl` next to `hlsUrl`. Made on demand after the first
 * (see Thumbnailer): a stream nobody previews costs no decodes. With PLAYBACK_AUTH=token the route passes the
 * same playback-token guard as the playlists (the cloud hands out `thumbnailUrl` with the token).
 */
import type { FastifyInstance } from 'fastify';
import { isValidStreamId, STREAM_ID_PATTERN } from '../contracts/names.ts';
import type { AccessUnit, TrackConfig } from '../media/access-unit.ts';
import { flvConfigTagOf, flvTagOf } from '../media/flv-demux.ts';
import type { ChildReaper } from '../pipeline/child-reaper.ts';
import { Thumbnailer } from '../pipeline/thumbnailer.ts';
import type { Logger } from '../shared/logger.ts';
import type { PlaybackGuard } from '../shared/playback-token.ts';
import type { StreamRegistry } from '../stream/registry.ts';
import type { Stream } from '../stream/stream.ts';

export const THUMBNAIL_FILE = 'thumbnail.jpg';

export interface ThumbnailsOptions {
  streams: StreamRegistry;
  reaper: ChildReaper;
  log: Logger;
  intervalMs: number;
  width: number;
  ffmpegPath?: string;
}

export class Thumbnails {
  readonly #options: ThumbnailsOptions;
  readonly #byKey = new Map<string, Thumbnailer>();
  readonly #detach: (() => void)[] = [];

  constructor(options: ThumbnailsOptions) {
    this.#options = options;
    const { streams } = options;
    const onCreated = (stream: Stream): void => {
      const t = new Thumbnailer({
        reaper: options.reaper,
        log: options.log.child({ key: stream.key, component: 'thumbnails' }),
        intervalMs: options.intervalMs,
        width: options.width,
        ...(options.ffmpegPath ? { ffmpegPath: options.ffmpegPath } : {}),
      });
      this.#byKey.set(stream.key, t);
      const onInput = (): void => {
        const video = stream.configuration?.video ?? null;
        t.setConfig(video ? flvConfigTagOf(video, 0) : null);
      };
      const onConfig = (config: TrackConfig): void => {
        if (config.kind === 'video') t.setConfig(flvConfigTagOf(config, 0));
      };
      const onAu = (au: AccessUnit): void => {
        if (au.track !== 'video' || !au.keyframe) return;
        const tag = flvTagOf(au, stream.configuration?.video ?? null);
        if (tag) t.keyframe(tag);
      };
      stream.on('input', onInput);
      stream.on('config', onConfig);
      stream.on('au', onAu);
      stream.once('ended', () => {
        stream.off('input', onInput);
        stream.off('config', onConfig);
        stream.off('au', onAu);
        t.close();
        if (this.#byKey.get(stream.key) === t) this.#byKey.delete(stream.key);
      });
    };
    streams.on('created', onCreated);
    this.#detach.push(() => streams.off('created', onCreated));
  }

  /**
   * The stream's latest JPEG for a viewer asking now, if any: asking keeps its thumbnails coming, and one
   * older than two intervals waits for the decode it started.
   */
  async latest(stream: Stream | undefined): Promise<Buffer | undefined> {
    const t = stream ? this.#byKey.get(stream.key) : undefined;
    return (await t?.fresh(2 * this.#options.intervalMs))?.jpeg;
  }

  /** Adds GET /hls/{userPath}/{streamId}/thumbnail.jpg to the origin (before it listens), behind `guard`. */
  route(
    origin: FastifyInstance,
    lookup: (userPath: string, streamId: string) => Stream | undefined,
    guard?: PlaybackGuard,
  ): void {
    origin.get<{ Params: { userPath: string; streamId: string } }>(
      `/hls/:userPath/:streamId/${THUMBNAIL_FILE}`,
      {
        schema: {
          params: {
            type: 'object',
            required: ['userPath', 'streamId'],
            properties: {
              userPath: { type: 'string', maxLength: 128 },
              streamId: { type: 'string', pattern: STREAM_ID_PATTERN.source },
            },
          },
        },
        ...(guard?.mode === 'token' ? { onRequest: guard } : {}),
      },
      async (request, reply) => {
        const { userPath, streamId } = request.params;
        const jpeg = isValidStreamId(streamId) ? await this.latest(lookup(userPath, streamId)) : undefined;
        if (!jpeg)
          return reply.code(404).header('cache-control', 'no-store').send({ error: 'no thumbnail yet' });
        // A new one every few seconds: a CDN may keep one for a second or two.
        return reply
          .header('content-type', 'image/jpeg')
          .header(
            'cache-control',
            `public, max-age=${Math.max(1, Math.floor(this.#options.intervalMs / 2000))}`,
          )
          .send(jpeg);
      },
    );
  }

  close(): void {
    for (const undo of this.#detach.splice(0)) undo();
    for (const t of this.#byKey.values()) t.close();
    this.#byKey.clear();
  }
}
