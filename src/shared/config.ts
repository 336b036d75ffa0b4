/**
 * Configuration, parsed once from the environment at the composition root and passed down. Every timer is
 * an env value (tests set them short); defaults serve production. Names follow architecture §3; the README's
 * configuration reference lists each one.
 */
import { z } from 'zod';
import { ErrorCodes, RelayError } from './errors.ts';

const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);
const seconds = (fallback: number) => z.coerce.number().positive().max(86_400).default(fallback);
const count = (fallback: number) => z.coerce.number().int().positive().default(fallback);

const EnvSchema = z.object({
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  RTMP_HOST: z.string().min(1).default('0.0.0.0'),
  RTMP_PORT: port(1935),
  RTMP_MAX_CONNECTIONS: count(1000),
  RTMP_MAX_CONNECTIONS_PER_IP: count(20),
  RTMP_HANDSHAKE_TIMEOUT_SECONDS: seconds(10),
  RTMP_IDLE_TIMEOUT_SECONDS: seconds(30),
  RTMP_AUTH_TIMEOUT_SECONDS: seconds(10),
  RTMP_MAX_MESSAGE_BYTES: count(8 * 1024 * 1024).pipe(z.number().max(0xffffff)),
  PUBLISH_AUTH: z.enum(['token', 'off']).optional(),
  RECORD_DIR: z.string().min(1).optional(),
});

export type Env = z.infer<typeof EnvSchema>;

export interface RelayConfig {
  logLevel: Env['LOG_LEVEL'];
  rtmp: {
    host: string;
    port: number;
    maxConnections: number;
    maxConnectionsPerIp: number;
    handshakeTimeoutMs: number;
    idleTimeoutMs: number;
    authTimeoutMs: number;
    maxMessageSize: number;
  };
  /** `off` only where the caller allows it (dev mode); `token` otherwise. */
  publishAuth: 'token' | 'off';
  /** Dev aid: write each publish's FLV here. */
  recordDir: string | undefined;
}

/** Parses the environment; throws CONFIG_INVALID naming every bad variable. */
export function loadConfig(
  env: NodeJS.ProcessEnv = process.env,
  defaults: { publishAuth: 'token' | 'off' } = { publishAuth: 'token' },
): RelayConfig {
  const parsed = EnvSchema.safeParse(emptyToUndefined(env));
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    throw new RelayError(ErrorCodes.CONFIG_INVALID, `invalid configuration: ${problems}`);
  }
  const e = parsed.data;
  return {
    logLevel: e.LOG_LEVEL,
    rtmp: {
      host: e.RTMP_HOST,
      port: e.RTMP_PORT,
      maxConnections: e.RTMP_MAX_CONNECTIONS,
      maxConnectionsPerIp: e.RTMP_MAX_CONNECTIONS_PER_IP,
      handshakeTimeoutMs: e.RTMP_HANDSHAKE_TIMEOUT_SECONDS * 1000,
      idleTimeoutMs: e.RTMP_IDLE_TIMEOUT_SECONDS * 1000,
      authTimeoutMs: e.RTMP_AUTH_TIMEOUT_SECONDS * 1000,
      maxMessageSize: e.RTMP_MAX_MESSAGE_BYTES,
    },
    publishAuth: e.PUBLISH_AUTH ?? defaults.publishAuth,
    recordDir: e.RECORD_DIR,
  };
}

function emptyToUndefined(env: NodeJS.ProcessEnv): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const key of Object.keys(EnvSchema.shape)) {
    const v = env[key];
    out[key] = v === undefined || v.trim() === '' ? undefined : v;
  }
  return out;
}
