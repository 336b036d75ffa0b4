/**
 * How every cloud route declares its shapes and answers its errors (style rule 11, "a schema on every
 * route"): route schemas are zod (the wire shapes of src/contracts/ where they are contracts), compiled for
 * fastify here instead of through Ajv, so one definition both validates a request and types it. Hand-written
 * (about forty lines) rather than a type-provider package: all it takes is fastify's two compiler hooks.
 * - Requests: params, querystring and body are parsed by their schema before the handler runs; a failure is a
 *   400 with the error envelope (`{error, code, issues}`), the code chosen by the plugin (RELAY_BAD_REQUEST
 *   for the relay API, CLOUD_BAD_REQUEST elsewhere).
 * - Responses: a reply is serialized through its status's schema, and zod objects drop keys they do not
 *   declare, so a field nobody declared never reaches a client; a reply that breaks its schema is a bug
 *   (CLOUD_RESPONSE_INVALID, 500) rather than a leak.
 * - Errors: `cloudErrorHandler` answers a RelayError with the registry's status for its code
 *   (shared/errors.ts) and the envelope; anything unexpected is a 500 that names no internals.
 */
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { type ErrorCode, ErrorCodes, httpStatusOf, isRelayError, RelayError } from '../shared/errors.ts';
import type { Logger } from '../shared/logger.ts';

/** Every error the cloud answers over HTTP. `issues` names the fields a request got wrong (at most 10). */
export const ErrorEnvelope = z.object({
  error: z.string(),
  code: z.string(),
  issues: z.array(z.string()).max(10).optional(),
});
export type ErrorEnvelope = z.infer<typeof ErrorEnvelope>;

/** The answer of calls that only acknowledge. */
export const OkResponse = z.object({ ok: z.literal(true) });

/** The error statuses every route may answer (auth, validation, store away, bugs). */
export const ERROR_RESPONSES = { '4xx': ErrorEnvelope, '5xx': ErrorEnvelope } as const;

/** A request part that broke its schema (fastify turns it into the handler's error). */
export class RequestInvalid extends Error {
  readonly statusCode = 400;
  constructor(
    readonly part: string,
    readonly issues: string[],
  ) {
    super(`invalid ${part}`);
    this.name = 'RequestInvalid';
  }
}

const issuesOf = (error: z.ZodError): string[] =>
  error.issues.slice(0, 10).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`.slice(0, 200));

/** Whether a route schema part is a zod schema (every cloud route's is; the test walks them). */
export function isZodSchema(value: unknown): value is z.ZodTypeAny {
  return value instanceof z.ZodType;
}

/** Sends an error envelope with the registry's status for `code`. */
export function sendError(
  reply: FastifyReply,
  code: ErrorCode,
  error: string,
  issues?: string[],
): FastifyReply {
  return reply.code(httpStatusOf(code)).send({ error, code, ...(issues ? { issues } : {}) });
}

/** Installs the zod compilers on an app (they reach every plugin registered on it). */
export function useZodSchemas(app: FastifyInstance): void {
  app.setValidatorCompiler(({ schema, httpPart }) => {
    if (!isZodSchema(schema)) throw new Error(`route schema for ${httpPart} is not zod`);
    return (data: unknown) => {
      const parsed = schema.safeParse(data);
      return parsed.success
        ? { value: parsed.data }
        : { error: new RequestInvalid(httpPart ?? 'request', issuesOf(parsed.error)) };
    };
  });
  app.setSerializerCompiler(({ schema, url, method }) => {
    if (!isZodSchema(schema)) throw new Error(`response schema of ${method} ${url} is not zod`);
    return (data: unknown) => {
      const parsed = schema.safeParse(data);
      if (!parsed.success)
        throw new RelayError(
          ErrorCodes.CLOUD_RESPONSE_INVALID,
          `response of ${method} ${url} breaks its schema: ${issuesOf(parsed.error).join('; ')}`,
        );
      return JSON.stringify(parsed.data);
    };
  });
}

/** Fastify's own request errors, by status, as registry codes. */
const FRAMEWORK_CODES: Partial<Record<number, ErrorCode>> = {
  404: ErrorCodes.CLOUD_NOT_FOUND,
  413: ErrorCodes.CLOUD_BODY_TOO_LARGE,
  415: ErrorCodes.CLOUD_UNSUPPORTED_MEDIA_TYPE,
};

/**
 * The error handler of a cloud plugin: `badRequest` is the code a request that breaks its schema (or that
 * fastify could not parse) answers with.
 */
export function cloudErrorHandler(badRequest: ErrorCode, log?: Logger) {
  return async (err: FastifyError, request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> => {
    if (err instanceof RequestInvalid) return sendError(reply, badRequest, err.message, err.issues);
    if (isRelayError(err)) {
      // The store being unreachable (Redis down) is temporary, not a bug: try again soon.
      if (err.code === ErrorCodes.CLOUD_STORE_FAILED)
        return sendError(
          reply.header('retry-after', '1'),
          err.code,
          'the cloud store is unavailable; try again',
        );
      if (err.httpStatus < 500) return sendError(reply, err.code, err.message);
      // A server-side failure's message may name internals (hosts, Redis replies): logged, not sent.
      const where = { err: err.message, code: err.code, url: request.routeOptions.url };
      if (err.httpStatus === 500) log?.error(where, 'cloud request failed');
      else log?.warn(where, 'cloud request failed');
      return sendError(reply, err.code, err.httpStatus === 500 ? 'internal error' : 'unavailable; try again');
    }
    const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
    if (status >= 400 && status < 500) {
      // Fastify's own refusals (no JSON, a body too large, a bad content type): their status, our envelope.
      const code = FRAMEWORK_CODES[status] ?? badRequest;
      return sendError(reply, code, err.message.slice(0, 200));
    }
    log?.error({ err: err.message, url: request.routeOptions.url }, 'cloud request failed');
    return sendError(reply, ErrorCodes.CLOUD_INTERNAL, 'internal error');
  };
}
