/** A real pino logger whose lines are kept in memory, so tests can assert on what was (not) logged. */
import { Writable } from 'node:stream';
import { createLogger, type Logger } from '../../src/shared/logger.ts';

export function captureLogs(level = 'debug'): {
  log: Logger;
  text: () => string;
  lines: () => Record<string, unknown>[];
} {
  const chunks: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      chunks.push(chunk.toString());
      cb();
    },
  });
  const log = createLogger({ level, destination });
  const text = (): string => chunks.join('');
  return {
    log,
    text,
    lines: () =>
      text()
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}
