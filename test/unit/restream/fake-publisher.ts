/** A PublisherLike for pusher and manager tests: records what is sent; the test decides when it starts or fails. */
import type { MediaTag } from '../../../src/media/flv-tag.ts';
import type { PublisherLike } from '../../../src/restream/pusher.ts';
import type { RtmpPublisherEvents, RtmpPublisherOptions } from '../../../src/rtmp/client.ts';
import type { RtmpUrl } from '../../../src/rtmp/client-url.ts';
import { type ErrorCode, RelayError } from '../../../src/shared/errors.ts';
import { TypedEmitter } from '../../../src/shared/typed-emitter.ts';

export interface Sent {
  type: number;
  timestamp: number;
  config: boolean;
  keyframe: boolean;
  data: Buffer;
}

export class FakePublisher extends TypedEmitter<RtmpPublisherEvents> implements PublisherLike {
  writableLength = 0;
  readonly sent: Sent[] = [];
  startedCalls = 0;
  ended: 'closed' | 'destroyed' | 'failed' | null = null;

  constructor(readonly options: RtmpPublisherOptions) {
    super();
  }

  /** The pusher always hands over a parsed URL. */
  get url(): RtmpUrl {
    return this.options.url as RtmpUrl;
  }

  start(): void {
    this.startedCalls++;
  }

  send(tag: MediaTag, timestamp = tag.timestamp): number {
    if (this.ended) return 0;
    this.sent.push({
      type: tag.type,
      timestamp,
      config: tag.isConfig,
      keyframe: tag.keyframe,
      data: tag.data,
    });
    return tag.data.length + 12;
  }

  close(): void {
    if (this.ended) return;
    this.ended = 'closed';
    this.safeEmit('closed', { reason: 'closed', wasPublishing: true });
  }

  destroy(): void {
    if (this.ended) return;
    this.ended = 'destroyed';
    this.safeEmit('closed', { reason: 'destroyed', wasPublishing: true });
  }

  /** The server said NetStream.Publish.Start. */
  accept(): void {
    this.safeEmit('started', { streamId: 1, elapsedMs: 1 });
  }

  /** The connection failed with `code`. */
  fail(code: ErrorCode, message = 'failed'): void {
    if (this.ended) return;
    this.ended = 'failed';
    this.safeEmit('closed', { reason: 'failed', error: new RelayError(code, message), wasPublishing: false });
  }

  /** What was sent, as [type, timestamp] pairs (config tags marked with "c"). */
  timeline(): string[] {
    return this.sent.map(
      (s) => `${s.type === 9 ? 'v' : s.type === 8 ? 'a' : 'm'}${s.config ? 'c' : ''}@${s.timestamp}`,
    );
  }
}

/** A factory that keeps every publisher it made. */
export function fakeFactory(): { made: FakePublisher[]; create: (o: RtmpPublisherOptions) => FakePublisher } {
  const made: FakePublisher[] = [];
  return {
    made,
    create: (o) => {
      const p = new FakePublisher(o);
      made.push(p);
      return p;
    },
  };
}
