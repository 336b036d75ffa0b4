/**
 * The one logger (pino). Components get a child with their own bindings (`{ component: 'rtmp', conn: 12 }`),
 * passed in from the composition root, never imported as a singleton. Secrets never reach a log line:
 * URLs go through `redactUrl`, and pino's redaction covers the field names that may carry them.
 *
 * Two formats: readable lines (pino-pretty, in-process and synchronous so nothing is lost at exit) when a
 * person is watching (stdout is a terminal), one JSON object per line otherwise (log shippers, tests, the
 * relay processes the suite spawns). `LOG_FORMAT=json|pretty` overrides the guess; it is read here, with
 * `LOG_LEVEL`, because it only concerns how lines look.
 */
import { type Logger, pino } from 'pino';
import pretty from 'pino-pretty';
import { ErrorCodes, RelayError } from './errors.ts';

export type { Logger };

export type LogFormat = 'pretty' | 'json';

const REDACT_PATHS = ['token', '*.token', 'authorization', '*.authorization', 'secret', '*.secret'];

/** `LOG_FORMAT` if set (`json` or `pretty`), else pretty on a terminal and JSON anywhere else. */
export function chooseLogFormat(env: { LOG_FORMAT?: string | undefined }, isTTY: boolean): LogFormat {
  const value = env.LOG_FORMAT?.trim().toLowerCase();
  if (value === undefined || value === '') return isTTY ? 'pretty' : 'json';
  if (value === 'json' || value === 'pretty') return value;
  throw new RelayError(
    ErrorCodes.CONFIG_INVALID,
    `LOG_FORMAT must be "json" or "pretty" (got ${JSON.stringify(value.slice(0, 20))})`,
  );
}

export function createLogger(
  options: {
    level?: string;
    name?: string;
    destination?: NodeJS.WritableStream;
    /** Default: JSON into a given destination, else `chooseLogFormat` on the environment and stdout. */
    format?: LogFormat;
  } = {},
): Logger {
  const level = options.level ?? process.env.LOG_LEVEL ?? 'info';
  const base = {
    level,
    name: options.name ?? 'rtmp-relay',
    redact: { paths: REDACT_PATHS, censor: '[redacted]' },
  };
  const format =
    options.format ??
    (options.destination ? 'json' : chooseLogFormat(process.env, process.stdout.isTTY === true));
  if (format === 'pretty') {
    const colorize = !options.destination && process.stdout.isTTY === true && !process.env.NO_COLOR;
    const stream = pretty({
      colorize,
      // A person reads the time of day and the message; pid, host and the logger name are noise here.
      translateTime: 'SYS:HH:MM:ss.l',
      ignore: 'pid,hostname,name',
      singleLine: true,
      sync: true,
      ...(options.destination ? { destination: options.destination } : {}),
    });
    return pino(base, stream);
  }
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
