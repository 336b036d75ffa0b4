/**
 * The Cloudflare-compatible Live Input API as a fastify plugin (issue 22): the paths Cloudflare documents
 * under its `/client/v4` base, registered both there and at the root, so a client switches to us by
 * changing the base URL (`https://api.cloudflare.com/client/v4` → `http://cloud:8080/client/v4`, or the bare
 * host). Every answer is Cloudflare's envelope `{result, success, errors, messages}`; every route has zod
 * schemas (the cloud's compilers, http-schemas.ts). Its own plugin policy:
 * - `Authorization: Bearer CLOUD_API_TOKEN`, compared in constant time, first (401, code 10000); then the
 *   path's account id must be CLOUD_ACCOUNT_ID (404, code 7003, Cloudflare's "could not route").
 * - Bodies are JSON whatever their content type: Cloudflare's own examples send `curl --data` (a form
 *   content type) with a JSON body. Malformed JSON or a body that breaks its schema is a 400 (code 10005)
 *   whose errors point at the fields (`source.pointer`).
 * - `/stream/webhook` (PUT, GET, DELETE) subscribes a URL to `live_input.connected`/`disconnected`
 *   (webhooks.ts), answering Cloudflare's `{notificationUrl, modified, secret}`.
 * - Errors carry a Cloudflare-like numeric code and our registry's HTTP status; a server-side failure names
 *   no internals.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { type ErrorCode, ErrorCodes, httpStatusOf, isRelayError } from '../../shared/errors.ts';
import type { Logger } from '../../shared/logger.ts';
import { RequestInvalid } from '../http-schemas.ts';
import {
  AccountParams,
  type CfError,
  ERROR_ANSWERS,
  envelope,
  InputParams,
  LiveInput,
  LiveInputBody,
  LiveInputList,
  Output,
  OutputCreateBody,
  OutputParams,
  OutputUpdateBody,
  Webhook,
  WebhookBody,
} from './schemas.ts';
import type { LiveInputs } from './service.ts';

export interface LiveInputRoutesOptions {
  inputs: LiveInputs;
  /** CLOUD_API_TOKEN. */
  token: string;
  /** CLOUD_ACCOUNT_ID. */
  accountId: string;
  log?: Logger;
}

/** Largest body accepted (a live input's meta is at most 8 KiB). */
const BODY_LIMIT = 64 * 1024;

/** Our registry codes as the numeric codes Cloudflare's envelope carries. */
const CF_CODES: Partial<Record<ErrorCode, number>> = {
  LIVE_INPUT_UNAUTHORIZED: 10000,
  LIVE_INPUT_ACCOUNT_NOT_FOUND: 7003,
  LIVE_INPUT_BAD_REQUEST: 10005,
  LIVE_INPUT_NOT_FOUND: 10003,
  LIVE_INPUT_OUTPUT_NOT_FOUND: 10003,
  LIVE_INPUT_WEBHOOK_NOT_FOUND: 10003,
  LIVE_INPUT_NO_ROUTE: 7000,
  LIVE_INPUT_LIMIT_REACHED: 10011,
  NO_RELAY_AVAILABLE: 10013,
  CLOUD_STORE_FAILED: 10013,
  CLOUD_BODY_TOO_LARGE: 10005,
};

/** The cloud's result of a success, in the envelope. */
const ok = <T>(result: T) => ({ result, success: true, errors: [], messages: [] });

function sendCf(reply: FastifyReply, code: ErrorCode, message: string, errors?: CfError[]): FastifyReply {
  const cf = CF_CODES[code] ?? 10000 + (httpStatusOf(code) >= 500 ? 2 : 1);
  return reply
    .code(httpStatusOf(code))
    .send({ result: null, success: false, errors: errors ?? [{ code: cf, message }], messages: [] });
}

/** Zod's issues as Cloudflare errors pointing at the fields (JSON pointer). */
function issuesToErrors(issues: string[]): CfError[] {
  return issues.map((issue) => {
    const at = issue.indexOf(': ');
    const path = at > 0 ? issue.slice(0, at) : '';
    const pointer = path && path !== '(root)' ? `/${path.split('.').join('/')}` : '';
    return {
      code: CF_CODES.LIVE_INPUT_BAD_REQUEST ?? 10005,
      message: at > 0 ? issue.slice(at + 2) : issue,
      ...(pointer ? { source: { pointer } } : {}),
    };
  });
}

const digest = (v: string): Buffer => createHash('sha256').update(v).digest();

export async function liveInputRoutes(app: FastifyInstance, options: LiveInputRoutesOptions): Promise<void> {
  const { inputs } = options;
  const expected = digest(options.token);
  const log = options.log;

  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const header = request.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (!token || !timingSafeEqual(digest(token), expected))
      return sendCf(reply, ErrorCodes.LIVE_INPUT_UNAUTHORIZED, 'Authentication error');
    // Fastify has not parsed params yet: the account id is the path segment after /accounts/.
    const path = request.url.split('?')[0] ?? '';
    const m = /\/accounts\/([^/]*)\//.exec(path);
    let account = '';
    try {
      account = decodeURIComponent(m?.[1] ?? '');
    } catch {
      account = ''; // not decodable: not ours either
    }
    if (account !== options.accountId)
      return sendCf(
        reply,
        ErrorCodes.LIVE_INPUT_ACCOUNT_NOT_FOUND,
        `Could not route to ${path.slice(0, 200)}, perhaps your object identifier is invalid?`,
      );
  });

  // JSON whatever the content type (Cloudflare's curl examples send a form type); empty means none.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'string', bodyLimit: BODY_LIMIT }, (_req, body, done) => {
    const text = String(body).trim();
    if (text === '') return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      done(new RequestInvalid('body', ['(root): malformed JSON']), undefined);
    }
  });

  app.setErrorHandler(async (err: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof RequestInvalid)
      return sendCf(reply, ErrorCodes.LIVE_INPUT_BAD_REQUEST, err.message, issuesToErrors(err.issues));
    if (isRelayError(err)) {
      if (err.httpStatus < 500) return sendCf(reply, err.code, err.message);
      const where = { err: err.message, code: err.code, url: request.routeOptions.url };
      if (err.httpStatus === 500) log?.error(where, 'live input request failed');
      else log?.warn(where, 'live input request failed');
      return sendCf(reply, err.code, err.httpStatus === 500 ? 'internal error' : 'unavailable; try again');
    }
    const status = typeof err.statusCode === 'number' ? err.statusCode : 500;
    if (status === 413) return sendCf(reply, ErrorCodes.CLOUD_BODY_TOO_LARGE, 'request body too large');
    if (status >= 400 && status < 500)
      return sendCf(reply, ErrorCodes.LIVE_INPUT_BAD_REQUEST, err.message.slice(0, 200));
    log?.error({ err: err.message, url: request.routeOptions.url }, 'live input request failed');
    return sendCf(reply, ErrorCodes.CLOUD_INTERNAL, 'internal error');
  });

  const answers = <T extends z.ZodTypeAny>(result: T) => ({ 200: envelope(result), ...ERROR_ANSWERS });
  const base = '/accounts/:account_id/stream/live_inputs';

  app.post<{ Body: LiveInputBody }>(
    base,
    { schema: { params: AccountParams, body: LiveInputBody, response: answers(LiveInput) } },
    async (request) => ok(await inputs.create(request.body)),
  );

  app.get(
    base,
    {
      schema: {
        params: AccountParams,
        querystring: z.object({ include_counts: z.enum(['true', 'false']).optional() }),
        response: answers(LiveInputList),
      },
    },
    async () => {
      const all = await inputs.list();
      const liveInputs = all.map((r) => ({
        uid: r.uid,
        created: new Date(r.created).toISOString(),
        modified: new Date(r.modified).toISOString(),
        meta: r.meta,
        enabled: r.enabled,
        ...(r.deleteRecordingAfterDays !== null
          ? { deleteRecordingAfterDays: r.deleteRecordingAfterDays }
          : {}),
      }));
      return ok({ liveInputs, range: 0, total: liveInputs.length });
    },
  );

  app.get<{ Params: z.infer<typeof InputParams> }>(
    `${base}/:uid`,
    { schema: { params: InputParams, response: answers(LiveInput) } },
    async (request) => ok(await inputs.get(request.params.uid)),
  );

  app.put<{ Params: z.infer<typeof InputParams>; Body: LiveInputBody }>(
    `${base}/:uid`,
    { schema: { params: InputParams, body: LiveInputBody, response: answers(LiveInput) } },
    async (request) => ok(await inputs.update(request.params.uid, request.body)),
  );

  app.delete<{ Params: z.infer<typeof InputParams> }>(
    `${base}/:uid`,
    { schema: { params: InputParams, response: answers(z.null()) } },
    async (request) => {
      await inputs.delete(request.params.uid);
      return ok(null);
    },
  );

  app.post<{ Params: z.infer<typeof InputParams>; Body: OutputCreateBody }>(
    `${base}/:uid/outputs`,
    { schema: { params: InputParams, body: OutputCreateBody, response: answers(Output) } },
    async (request) => ok(await inputs.addOutput(request.params.uid, request.body)),
  );

  app.get<{ Params: z.infer<typeof InputParams> }>(
    `${base}/:uid/outputs`,
    { schema: { params: InputParams, response: answers(z.array(Output)) } },
    async (request) => ok(await inputs.outputs(request.params.uid)),
  );

  app.put<{ Params: z.infer<typeof OutputParams>; Body: OutputUpdateBody }>(
    `${base}/:uid/outputs/:output_uid`,
    { schema: { params: OutputParams, body: OutputUpdateBody, response: answers(Output) } },
    async (request) =>
      ok(await inputs.updateOutput(request.params.uid, request.params.output_uid, request.body.enabled)),
  );

  app.delete<{ Params: z.infer<typeof OutputParams> }>(
    `${base}/:uid/outputs/:output_uid`,
    { schema: { params: OutputParams, response: answers(z.null()) } },
    async (request) => {
      await inputs.deleteOutput(request.params.uid, request.params.output_uid);
      return ok(null);
    },
  );

  // The account's webhook subscription (Cloudflare's `/stream/webhook`): live_input.connected/disconnected.
  const webhook = '/accounts/:account_id/stream/webhook';
  const webhookView = (w: { notificationUrl: string; modified: number; secret: string }) => ({
    notificationUrl: w.notificationUrl,
    modified: new Date(w.modified).toISOString(),
    secret: w.secret,
  });
  app.put<{ Body: WebhookBody }>(
    webhook,
    { schema: { params: AccountParams, body: WebhookBody, response: answers(Webhook) } },
    async (request) => ok(webhookView(await inputs.setWebhook(request.body.notificationUrl))),
  );
  app.get(webhook, { schema: { params: AccountParams, response: answers(Webhook) } }, async () =>
    ok(webhookView(await inputs.webhook())),
  );
  app.delete(webhook, { schema: { params: AccountParams, response: answers(z.null()) } }, async () => {
    await inputs.deleteWebhook();
    return ok(null);
  });

  // Anything else under the account: Cloudflare's "No route for that URI", in the envelope.
  app.all(
    '/accounts/*',
    { schema: { params: z.object({ '*': z.string() }), response: ERROR_ANSWERS } },
    async (_request, reply) => sendCf(reply, ErrorCodes.LIVE_INPUT_NO_ROUTE, 'No route for that URI'),
  );
}
