/**
 * A real S3-compatible server for the recording tests: s3rver (npm) in this process, on a free loopback
 * port, over a temporary directory, with one bucket. `stop()` and `start()` take it away and bring it back on
 * the same port and data (a store outage); `close()` ends it and removes its directory.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import S3rver from 's3rver';

export interface TestS3 {
  /** http://127.0.0.1:PORT */
  endpoint: string;
  bucket: string;
  /** RECORDING_URL, S3_* and AWS_* for a relay using this server under `prefix`. */
  env(prefix?: string): Record<string, string>;
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

/** s3rver accepts these (its default account). */
export const S3RVER_KEYS = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export async function startS3(bucket = 'recordings'): Promise<TestS3> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'rtmp-relay-s3-'));
  const make = (port: number): S3rver =>
    new S3rver({
      port,
      address: '127.0.0.1',
      silent: true,
      directory: dir,
      configureBuckets: [{ name: bucket, configs: [] }],
    });
  let server: S3rver | null = make(0);
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    const s = server;
    server = null;
    await s?.close();
  };
  return {
    endpoint,
    bucket,
    env: (prefix = 'rec') => ({
      RECORDING_URL: `s3://${bucket}/${prefix}`,
      S3_ENDPOINT: endpoint,
      S3_REGION: 'us-east-1',
      S3_FORCE_PATH_STYLE: 'on',
      AWS_ACCESS_KEY_ID: S3RVER_KEYS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: S3RVER_KEYS.secretAccessKey,
    }),
    stop,
    async start() {
      if (server) return;
      server = make(port);
      await server.run();
    },
    async close() {
      await stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
