/**
 * The recorder's Prometheus metrics, read at scrape time from its counters: spool use and bound, segments
 * dropped because the spool was full (the metric that says a store outage outlasted the spool), uploads and
 * their failures, what waits for the store.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import type { Recorder } from './recorder.ts';

export function registerRecordingMetrics(registry: Registry, recorder: Recorder): void {
  const { spool, uploader } = recorder;
  const gauge = (name: string, help: string, read: () => number): void => {
    new Gauge({
      name,
      help,
      registers: [registry],
      collect() {
        this.set(read());
      },
    });
  };
  const counter = (name: string, help: string, read: () => number): void => {
    let last = 0;
    new Counter({
      name,
      help,
      registers: [registry],
      collect() {
        const now = read();
        if (now > last) this.inc(now - last);
        last = now;
      },
    });
  };
  gauge('rtmp_relay_recording_streams', 'Streams being recorded now', () => recorder.active);
  gauge('rtmp_relay_recording_spool_bytes', 'Recorded media waiting in the spool', () => spool.used);
  gauge(
    'rtmp_relay_recording_spool_max_bytes',
    'The spool bound (RECORDING_SPOOL_MAX_MB)',
    () => spool.maxBytes,
  );
  gauge(
    'rtmp_relay_recording_pending_segments',
    'Recorded objects waiting for the store',
    () => uploader.pending.segments,
  );
  counter(
    'rtmp_relay_recording_dropped_segments_total',
    'Recorded segments dropped: the spool was full (store unreachable too long) or could not be written',
    () => spool.dropped,
  );
  counter(
    'rtmp_relay_recording_upload_failures_total',
    'Failed uploads to the recording store (retried)',
    () => uploader.stats.failures,
  );
  counter(
    'rtmp_relay_recording_uploaded_bytes_total',
    'Bytes uploaded to the recording store',
    () => uploader.stats.uploadedBytes,
  );
}
