/**
 * Recording, composed: the store RECORDING_URL names, the spool, the uploader, the recorder and retention,
 * made and closed together (the relay's composition root holds one). `storeFromConfig` is shared with the
 * cloud, which reads the same store for its listing.
 */
import type { RelayConfig } from '../shared/config.ts';
import type { Logger } from '../shared/logger.ts';
import { DirStore } from './dir-store.ts';
import { Recorder, type RecorderOptions } from './recorder.ts';
import { Retention } from './retention.ts';
import { S3Store } from './s3-store.ts';
import { Spool } from './spool.ts';
import { parseS3Url, type RecordingStore } from './store.ts';
import { Uploader } from './uploader.ts';

export function storeFromConfig(recording: RelayConfig['recording']): RecordingStore {
  const s3 = parseS3Url(recording.url);
  if (!s3) return new DirStore(recording.url);
  return new S3Store({
    ...s3,
    endpoint: recording.s3.endpoint,
    region: recording.s3.region,
    forcePathStyle: recording.s3.forcePathStyle,
  });
}

export interface Recording {
  store: RecordingStore;
  recorder: Recorder;
  retention: Retention | null;
  /** Stops recording (parts closed as they stand), lets uploads run up to `flushMs`, closes the store. */
  close(flushMs?: number): Promise<void>;
}

export function createRecording(
  config: RelayConfig,
  log: Logger,
  hooks: Pick<RecorderOptions, 'thumbnail' | 'skipSegment' | 'initIsSlate'> & { store?: RecordingStore } = {},
): Recording {
  const store = hooks.store ?? storeFromConfig(config.recording);
  const spool = new Spool(config.recording.spoolDir, config.recording.spoolMaxBytes);
  const uploader = new Uploader({ store, spool, log });
  const recorder = new Recorder({
    spool,
    uploader,
    relayId: config.relay.id,
    log,
    recordAll: config.recording.on,
    ...(hooks.thumbnail ? { thumbnail: hooks.thumbnail } : {}),
    ...(hooks.skipSegment ? { skipSegment: hooks.skipSegment } : {}),
    ...(hooks.initIsSlate ? { initIsSlate: hooks.initIsSlate } : {}),
  });
  recorder.recoverSpool();
  const retention =
    config.recording.retentionDays > 0
      ? new Retention({ store, days: config.recording.retentionDays, log })
      : null;
  retention?.start();
  let closed = false;
  return {
    store,
    recorder,
    retention,
    async close(flushMs = 5000) {
      if (closed) return;
      closed = true;
      retention?.close();
      await recorder.close();
      // What is not up by then stays in the spool for the next start.
      await uploader.flush(flushMs);
      uploader.close();
      store.close();
    },
  };
}
