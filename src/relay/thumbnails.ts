/**
 * Thumbnails for every stream on the relay: one Thumbnailer per stream (made when the stream is created,
 * closed when it ends), fed the publisher's keyframes and decoder configuration straight from the RTMP
 * publishes (a thumbnail needs no timestamps, so repair does not matter), and served by the origin at
 * `/hls/{userPath}/{streamId}/thumbnail.jpg` (a static route next to the HLS files; nothing from the request
 * becomes a path). Announced to apps as `thumbnailUrl` next to `hlsUrl`. Made on demand after the first
 * (see Thumbnailer): a stream nobody previews costs no decodes.
 */
import type { FastifyInstance } from 'fastify';
import { isValidStreamId, STREAM_ID_PATTERN } from '../contracts/names.ts';
import { FlvTagType } from '../media/flv-tag.ts';
import type { ChildReaper } from '../pipeline/child-reaper.ts';
import { Thumbnailer } from '../pipeline/thumbnailer.ts';
import type { Publish } from '../rtmp/publish.ts';
import type { RtmpServer } from '../rtmp/server.ts';
import type { Logger } from '../shared/logger.ts';
import type { StreamRegistry } from '../stream/registry.ts';
import type { Stream } from '../stream/stream.ts';

export const THUMBNAIL_FILE = 'thumbnail.jpg';

export interface ThumbnailsOptions {
  rtmp: RtmpServer;
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
    const { rtmp, streams } = options;
    const onCreated = (stream: Stream): void => {
      const t = new Thumbnailer({
        reaper: options.reaper,
        log: options.log.child({ key: stream.key, component: 'thumbnails' }),
        intervalMs: options.intervalMs,
        width: options.width,
        ...(options.ffmpegPath ? { ffmpegPath: options.ffmpegPath } : {}),
      });
      this.#byKey.set(stream.key, t);
      stream.once('ended', () => {
        t.close();
        if (this.#byKey.get(stream.key) === t) this.#byKey.delete(stream.key);
      });
    };
    streams.on('created', onCreated);
    this.#detach.push(() => streams.off('created', onCreated));
    const onPublish = (publish: Publish): void => {
      const key = publish.info.key;
      publish.on('start', (start) => this.#byKey.get(key)?.setConfig(start.videoConfig));
      publish.on('tag', (tag) => {
        if (tag.type === FlvTagType.Video && tag.keyframe && !tag.isConfig)
          this.#byKey.get(key)?.keyframe(tag);
        else if (tag.type === FlvTagType.Video && tag.isConfig) this.#byKey.get(key)?.setConfig(tag);
      });
    };
    rtmp.on('publish', onPublish);
    this.#detach.push(() => rtmp.off('publish', onPublish));
  }

  /**
   * The stream's latest JPEG for a viewer asking now, if any: asking keeps its thumbnails coming, and one
   * older than two intervals waits for the decode it started.
   */
  async latest(stream: Stream | undefined): Promise<Buffer | undefined> {
    const t = stream ? this.#byKey.get(stream.key) : undefined;
    return (await t?.fresh(2 * this.#options.intervalMs))?.jpeg;
  }

  /** Adds GET /hls/{userPath}/{streamId}/thumbnail.jpg to the origin (before it listens). */
  route(origin: FastifyInstance, lookup: (userPath: string, streamId: string) => Stream | undefined): void {
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
