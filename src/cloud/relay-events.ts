/**
 * What the cloud does with what relays say (the relay API's callbacks, in one place): the managed streams
 * hear contacts, drains, hls-ready, ends and re-streaming outputs, and answer destinations and the streams
 * to end; the fleet view (dashboard) hears heartbeats, hls-ready and deregistrations. Work that need not
 * hold the relay's call goes on in the background, its failures logged (the relay's call was answered).
 */
import type { Logger } from '../shared/logger.ts';
import type { FleetView } from './fleet-view.ts';
import type { ManagedStreams } from './managed-streams.ts';
import type { RelayEvents } from './relay-routes.ts';

export function relayEvents(streams: ManagedStreams, fleet: FleetView, log: Logger): RelayEvents {
  const background = (what: string, work: Promise<unknown>): void => {
    work.catch((err: Error) => log.warn({ err: err.message, what }, 'managed stream update failed'));
  };
  return {
    contact: (relayId) => streams.relayContact(relayId),
    heartbeat: (hb) => {
      fleet.heartbeat(hb);
      if (hb.draining) background('relay draining', streams.relayDraining(hb.relayId));
    },
    deregistered: (relayId) => {
      streams.relayGone(relayId);
      fleet.deregistered(relayId);
    },
    hlsReady: (e) => {
      fleet.hlsReady(e);
      background('hls-ready', streams.hlsReady(e.userId, e.streamId, e.relayId, e.hlsUrl, e.webrtcUrl));
    },
    destinations: (userId, streamId) => streams.destinationsOf(userId, streamId),
    restreamStatus: (e) =>
      background('restream status', streams.restreamStatus(e.userId, e.streamId, e.outputs)),
    streamsToEnd: (hb) => streams.streamsToEnd(hb),
    streamEnded: (e) => background('stream-ended', streams.relayStreamEnded(e.userId, e.streamId, e.relayId)),
  };
}
