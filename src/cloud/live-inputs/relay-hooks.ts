/**
 * Live inputs hear what relays say (the relay API's callbacks) beside the managed streams and the fleet
 * view: heartbeats (connection state and stream stats), hls-ready (the DASH and WHEP URLs announced), stream
 * ends, re-stream statuses; and answer the
 * destinations of their streams and which of them to end (deleted or disabled inputs). Wraps the cloud's
 * other callbacks (`relay-events.ts`) without changing them: a live input's stream is no managed stream, so
 * the managed side answers nothing for it, and the reverse.
 */
import type { Logger } from '../../shared/logger.ts';
import type { RelayEvents } from '../relay-routes.ts';
import type { LiveInputs } from './service.ts';

export function withLiveInputs(events: RelayEvents, inputs: LiveInputs, log: Logger): RelayEvents {
  const background = (what: string, work: Promise<unknown>): void => {
    work.catch((err: Error) => log.warn({ err: err.message, what }, 'live input update failed'));
  };
  return {
    ...events,
    heartbeat: (hb) => {
      events.heartbeat?.(hb);
      background('heartbeat', inputs.heartbeat(hb));
    },
    hlsReady: (e) => {
      events.hlsReady?.(e);
      background('hls-ready', inputs.hlsReady(e));
    },
    streamEnded: (e) => {
      events.streamEnded?.(e);
      background('stream-ended', inputs.streamEnded(e));
    },
    restreamStatus: (e) => {
      events.restreamStatus?.(e);
      background('restream status', inputs.restreamStatus(e.userId, e.streamId, e.outputs));
    },
    destinations: async (userId, streamId) =>
      (await inputs.destinations(userId, streamId)) ?? (await events.destinations?.(userId, streamId)) ?? [],
    streamsToEnd: async (hb) => [
      ...((await events.streamsToEnd?.(hb)) ?? []),
      ...(await inputs.streamsToEnd(hb)),
    ],
  };
}
