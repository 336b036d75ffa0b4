/**
 * The recording store in S3 or an S3-compatible server (`RECORDING_URL=s3://BUCKET/PREFIX`, `S3_ENDPOINT`,
 * `S3_REGION`, `S3_FORCE_PATH_STYLE`; credentials from the SDK's usual chain: `AWS_ACCESS_KEY_ID` and
 * `AWS_SECRET_ACCESS_KEY`, or an instance role). Uploads go through @aws-sdk/lib-storage (multipart past
 * 5 MiB); each call has a time limit, so a store that hangs fails the call and the uploader retries it.
 */

import type { Readable } from 'node:stream';
import {
  DeleteObjectsCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  NoSuchKey,
  S3Client,
  type S3ClientConfig,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import type { RecordingStore, S3Location, StoredObject } from './store.ts';

export interface S3StoreOptions extends S3Location {
  endpoint?: string | undefined;
  region: string;
  forcePathStyle: boolean;
  /** Explicit credentials (tests); else the SDK's default chain (env, profile, role). */
  credentials?: { accessKeyId: string; secretAccessKey: string } | undefined;
  /** Per-call time limit (default 30 s). */
  timeoutMs?: number;
}

/** DeleteObjects takes at most 1000 keys per call. */
const DELETE_BATCH = 1000;

export class S3Store implements RecordingStore {
  readonly description: string;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;
  readonly #timeoutMs: number;

  constructor(options: S3StoreOptions) {
    const config: S3ClientConfig = {
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      // The uploader retries on its own schedule (with the spool); the SDK's own retries stay short.
      maxAttempts: 2,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
    };
    // The SDK warns once per process that versions published after January 2027 need Node 22; the version
    // the lockfile pins runs on Node 20, so that notice is not for an operator of this relay.
    process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
    this.#client = new S3Client(config);
    this.#bucket = options.bucket;
    this.#prefix = options.prefix;
    this.#timeoutMs = options.timeoutMs ?? 30_000;
    this.description = `s3://${options.bucket}/${options.prefix}${options.endpoint ? ` at ${options.endpoint}` : ''}`;
  }

  #signal(): AbortSignal {
    return AbortSignal.timeout(this.#timeoutMs);
  }

  async put(key: string, body: Buffer, contentType?: string): Promise<void> {
    const upload = new Upload({
      client: this.#client,
      params: {
        Bucket: this.#bucket,
        Key: this.#prefix + key,
        Body: body,
        ...(contentType ? { ContentType: contentType } : {}),
      },
      queueSize: 2,
    });
    const timer = setTimeout(() => void upload.abort(), this.#timeoutMs);
    try {
      await upload.done();
    } finally {
      clearTimeout(timer);
    }
  }

  async get(key: string): Promise<Buffer | null> {
    const body = await this.#getBody(key);
    return body ? Buffer.from(await body.transformToByteArray()) : null;
  }

  async getStream(key: string): Promise<Readable | null> {
    // Media for a download may take longer than one call's limit: no abort once the body flows.
    try {
      const res = await this.#client.send(
        new GetObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }),
      );
      return (res.Body as Readable | undefined) ?? null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async #getBody(key: string) {
    try {
      const res = await this.#client.send(
        new GetObjectCommand({ Bucket: this.#bucket, Key: this.#prefix + key }),
        { abortSignal: this.#signal() },
      );
      return res.Body ?? null;
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  }

  async list(prefix: string): Promise<StoredObject[]> {
    const out: StoredObject[] = [];
    let token: string | undefined;
    do {
      const res = await this.#client.send(
        new ListObjectsV2Command({
          Bucket: this.#bucket,
          Prefix: this.#prefix + prefix,
          ...(token ? { ContinuationToken: token } : {}),
        }),
        { abortSignal: this.#signal() },
      );
      for (const o of res.Contents ?? []) {
        if (!o.Key) continue;
        out.push({
          key: o.Key.slice(this.#prefix.length),
          size: o.Size ?? 0,
          modifiedAt: o.LastModified?.getTime() ?? 0,
        });
      }
      token = res.IsTruncated ? res.NextContinuationToken : undefined;
    } while (token);
    return out.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  }

  async delete(keys: readonly string[]): Promise<void> {
    for (let i = 0; i < keys.length; i += DELETE_BATCH) {
      const batch = keys.slice(i, i + DELETE_BATCH);
      const res = await this.#client.send(
        new DeleteObjectsCommand({
          Bucket: this.#bucket,
          Delete: { Objects: batch.map((k) => ({ Key: this.#prefix + k })), Quiet: true },
        }),
        { abortSignal: this.#signal() },
      );
      if (res.Errors && res.Errors.length > 0)
        throw new Error(`S3 refused to delete ${res.Errors.length} objects (${res.Errors[0]?.Code ?? '?'})`);
    }
  }

  close(): void {
    this.#client.destroy();
  }
}

function isMissing(err: unknown): boolean {
  if (err instanceof NoSuchKey) return true;
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  return e?.name === 'NoSuchKey' || e?.name === 'NotFound' || e?.$metadata?.httpStatusCode === 404;
}
