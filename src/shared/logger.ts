/**
 * The one logger (pino). Components get a child with their own bindings (`{ component: 'rtmp', conn: 12 }`),
 * passed in from the composition root, never imported as a singleton. Secrets never reach a log line:
 * URLs go through `redactUrl`, and pino's redaction covers the field names that may carry them.
 */
import { type Logger, pino } from 'pino';

export type { Logger };

const REDACT_PATHS = ['token', '*.token', 'authorization', '*.authorization', 'secret', '*.secret'];

export function createLogger(
  options: { level?: string; name?: string; destination?: NodeJS.WritableStream } = {},
): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? 'info';
  const base = {
    level,
    name: options.name ?? 'rtmp-relay',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  return options.destination ? pino(base, options.destination) : pino(base);
}

/** A logger that drops everything: for unit tests and benchmarks. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}

const SECRET_PARAM = /([?&](?:token|key|secret|auth|signature|sig|password)=)[^&#\s]*/gi;

/** Replaces the values of secret-bearing query parameters, so a URL or a publish name can be logged. */
export function redactUrl(value: string): string {
  return value.replace(SECRET_PARAM, '$1[redacted]');
}
