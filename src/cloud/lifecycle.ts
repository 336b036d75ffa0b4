/**
 * The managed-stream lifecycle in the cloud, as a pure state machine (no timers, no I/O): a phase enum, an
 * explicit transition table, and `transition(state, event)`, which returns the next state and the effects
 * to carry out as data (tell the apps, start or stop the glasses, release or place a relay). An event that
 * does not apply (the stream ended, it names a relay that no longer serves the stream, or the table has no
 * entry for it) is refused with a typed result and changes nothing; callers log it and drop it.
 *
 * Rules kept from shared/reference/mentra-protocol.md: apps see `active` only with a playable hlsUrl; glasses
 * `streaming`/`active` without HLS stays `initializing` (apps see `preparing`); glasses `reconnecting` is
 * reported as itself and `timeout` ends with `error`; every end tells every app and stops the glasses.
 * Apps are told only when what they see changes (status, hlsUrl, message), so repeated glasses statuses
 * do not flood them; `state.reported` is also what a viewer who joins now is told.
 */
import {
  type AppStreamStatus,
  type GlassesStreamStatus,
  GlassesStreamStatus as GlassesStreamStatusSchema,
} from '../contracts/mentra.ts';

export const STREAM_PHASES = [
  'initializing',
  'active',
  'reconnecting',
  'stopping',
  'stopped',
  'error',
] as const;
/**
 * `initializing`: the glasses were told to start, no HLS yet. `active`: a playable hlsUrl is known.
 * `reconnecting`: the glasses are reconnecting, or the relay was lost (and maybe re-placed) and the new one
 * has no HLS yet. `stopping`: the glasses were told to stop. `stopped`, `error`: ended, nothing follows.
 */
export type StreamPhase = (typeof STREAM_PHASES)[number];
export const END_PHASES: ReadonlySet<StreamPhase> = new Set<StreamPhase>(['stopped', 'error']);

/** What the apps see: the body of a `managed_stream_status` (the caller adds type, streamId, dashUrl). */
export interface AppView {
  status: AppStreamStatus;
  /** Only with `active`. */
  hlsUrl?: string;
  message?: string;
}

export interface LifecycleState {
  readonly phase: StreamPhase;
  /** The relay that serves (or is reserved for) the stream; null after it was lost or released. */
  readonly relayId: string | null;
  /** The playable HLS URL on that relay; null until it says hls-ready. */
  readonly hlsUrl: string | null;
  /** What the apps were last told. */
  readonly reported: AppView;
}

/** The glasses' statuses, from the contract (one list for the wire and the table). */
const GLASSES_STATUSES = GlassesStreamStatusSchema.options;

export type LifecycleEvent =
  /** `rtmp_stream_status` from the glasses. */
  | {
      type: 'glasses_status';
      status: GlassesStreamStatus;
      errorDetails?: string | undefined;
      attempt?: number | undefined;
      maxAttempts?: number | undefined;
    }
  /**
   * The relay serving the stream has HLS at this URL, and the URL answers (the cloud checked it after the
   * relay's `hls-ready`, or after `verify_hls`).
   */
  | { type: 'hls_ready'; relayId: string; hlsUrl: string }
  /** The relay serving the stream is gone (heartbeats expired, deregistered, draining). */
  | { type: 'relay_lost'; relayId: string }
  /** A new relay was chosen after `place_relay`. */
  | { type: 'replaced'; relayId: string }
  /** The glasses missed MAX_MISSED_ACKS keep-alives in a row. */
  | { type: 'keepalive_missed_limit' }
  | { type: 'last_viewer_left' }
  /** Stopped by the cloud itself (operator, duration limit, session end). */
  | { type: 'stop_requested'; message?: string | undefined }
  /**
   * The relay ended the stream (`stream-ended`: publisher gone past the reconnect window, or kicked); with
   * `error`, it refused the publish (an input it cannot use, issue 15): the stream ends in error.
   */
  | { type: 'relay_stream_ended'; relayId: string; error?: string | undefined }
  /** The timer of the current phase ran out (start, reconnect, stop confirmation, or no relay to place). */
  | { type: 'timeout' };

/** Table keys: the event type, and for glasses statuses the status too (`glasses_status:streaming`). */
export type EventKey =
  | Exclude<LifecycleEvent['type'], 'glasses_status'>
  | `glasses_status:${(typeof GLASSES_STATUSES)[number]}`;

export const EVENT_KEYS: readonly EventKey[] = [
  ...GLASSES_STATUSES.map((s) => `glasses_status:${s}` as const),
  'hls_ready',
  'relay_lost',
  'replaced',
  'keepalive_missed_limit',
  'last_viewer_left',
  'stop_requested',
  'relay_stream_ended',
  'timeout',
];

export function eventKey(event: LifecycleEvent): EventKey {
  return event.type === 'glasses_status' ? `glasses_status:${event.status}` : event.type;
}

export type Effect =
  /** Send `managed_stream_status` to every viewer. */
  | ({ kind: 'notify_apps' } & AppView)
  /** Send `start_rtmp_stream` with this relay's publish URL (and a fresh publish token). */
  | { kind: 'start_glasses'; relayId: string }
  /** Send `stop_rtmp_stream`. */
  | { kind: 'stop_glasses' }
  /** Free the stream's reservation on this relay. */
  | { kind: 'release_relay'; relayId: string }
  /** Choose a new relay; answer with `replaced`, or `timeout` when none can be had. */
  | { kind: 'place_relay' }
  /** Check that the URL answers with a playlist; answer with `hls_ready` for it once it does. */
  | { kind: 'verify_hls'; relayId: string; hlsUrl: string };

export interface Refusal {
  from: StreamPhase;
  event: EventKey;
  reason: string;
}

export type TransitionResult =
  | { ok: true; state: LifecycleState; effects: Effect[] }
  | { ok: false; state: LifecycleState; refusal: Refusal };

/** A new stream on `relayId`: the glasses are told to start and the first app hears `initializing`. */
export function begin(relayId: string): { state: LifecycleState; effects: Effect[] } {
  const reported: AppView = { status: 'initializing' };
  return {
    state: { phase: 'initializing', relayId, hlsUrl: null, reported },
    effects: [
      { kind: 'start_glasses', relayId },
      { kind: 'notify_apps', ...reported },
    ],
  };
}

// ------------------------------------------------------------------------------------------------ rules

/** What a rule decides: the next phase, what the apps should now see, and the other effects. */
interface Step {
  to: StreamPhase;
  /** Omitted: the apps' view is unchanged. */
  view?: AppView;
  effects?: Effect[];
  relayId?: string | null;
  hlsUrl?: string | null;
}

interface Rule {
  /** Every phase this rule may lead to (the table; the tests check it against what `run` does). */
  readonly to: readonly StreamPhase[];
  /** A Step, or a refusal reason. */
  readonly run: (state: LifecycleState, event: LifecycleEvent) => Step | string;
}

const rule = (to: readonly StreamPhase[], run: Rule['run']): Rule => ({ to, run });

const MAX_MESSAGE = 200;
const clip = (text: string): string =>
  text.length > MAX_MESSAGE ? `${text.slice(0, MAX_MESSAGE - 1)}…` : text;

/** Playable: an absolute http(s) URL (the relay contract allows nothing else; checked again here). */
function isPlayableUrl(url: string): boolean {
  if (!/^https?:\/\//i.test(url) || url.length > 2048) return false;
  try {
    new URL(url);
    return true;
  } catch {
    return false; // not a URL: refused, the caller logs the refusal
  }
}

/** The end of the stream: every app told, the glasses stopped (unless already told to), the relay freed. */
function end(state: LifecycleState, status: 'stopped' | 'error', message: string): Step {
  const effects: Effect[] = [];
  if (state.phase !== 'stopping') effects.push({ kind: 'stop_glasses' });
  if (state.relayId !== null) effects.push({ kind: 'release_relay', relayId: state.relayId });
  return { to: status, view: { status, message: clip(message) }, effects, relayId: null, hlsUrl: null };
}

/** Refuses an event from a relay that does not serve the stream now (late news from a lost relay). */
function fromServingRelay(state: LifecycleState, relayId: string): string | null {
  if (state.relayId === null) return 'no relay serves this stream now';
  return state.relayId === relayId ? null : `relay ${relayId} does not serve this stream`;
}

const stayIn = (phase: StreamPhase): Rule => rule([phase], () => ({ to: phase }));

const toStopping = (message: string): Rule =>
  rule(['stopping'], (_s, e) => ({
    to: 'stopping',
    view: {
      status: 'stopping',
      message: e.type === 'stop_requested' && e.message ? clip(e.message) : message,
    },
    effects: [{ kind: 'stop_glasses' }],
  }));

const toEnd = (status: 'stopped' | 'error', message: string): Rule =>
  rule([status], (s) => end(s, status, message));

const glassesError = rule(['error'], (s, e) =>
  end(
    s,
    'error',
    e.type === 'glasses_status' && e.errorDetails ? `glasses error: ${e.errorDetails}` : 'glasses error',
  ),
);

const glassesReconnecting = rule(['reconnecting'], (_s, e) => {
  const attempt =
    e.type === 'glasses_status' && e.attempt !== undefined
      ? ` (attempt ${e.attempt}${e.maxAttempts !== undefined ? `/${e.maxAttempts}` : ''})`
      : '';
  return { to: 'reconnecting', view: { status: 'reconnecting', message: `glasses reconnecting${attempt}` } };
});

/** Glasses back to connecting while the stream was playing: they are reconnecting. */
const glassesRestarting = rule(['reconnecting'], () => ({
  to: 'reconnecting',
  view: { status: 'reconnecting', message: 'glasses reconnecting' },
}));

const reportInitializing = rule(['initializing'], () => ({
  to: 'initializing',
  view: { status: 'initializing' },
}));

/** Glasses streaming, HLS not ready yet: still initializing; apps see `preparing`. */
const reportPreparing = rule(['initializing'], () => ({
  to: 'initializing',
  view: { status: 'preparing', message: 'glasses streaming; preparing HLS' },
}));

/**
 * Glasses streaming again. The URL the relay announced before may not answer yet (a relay restarted under
 * the same id has no playlist until the first segment), so the stream stays `reconnecting` and the cloud
 * checks the URL (`verify_hls`); a URL that answers comes back as `hls_ready` and makes it `active`.
 */
const glassesBack = rule(['reconnecting'], (s) =>
  s.hlsUrl !== null && s.relayId !== null
    ? { to: 'reconnecting', effects: [{ kind: 'verify_hls', relayId: s.relayId, hlsUrl: s.hlsUrl }] }
    : { to: 'reconnecting' },
);

const hlsReady = rule(['active'], (s, e) => {
  if (e.type !== 'hls_ready') return 'not an hls_ready event';
  const stale = fromServingRelay(s, e.relayId);
  if (stale) return stale;
  if (!isPlayableUrl(e.hlsUrl)) return 'hlsUrl is not a playable http(s) URL';
  return { to: 'active', view: { status: 'active', hlsUrl: e.hlsUrl }, hlsUrl: e.hlsUrl };
});

const relayLost = rule(['reconnecting'], (s, e) => {
  if (e.type !== 'relay_lost') return 'not a relay_lost event';
  const stale = fromServingRelay(s, e.relayId);
  if (stale) return stale;
  return {
    to: 'reconnecting',
    view: { status: 'reconnecting', message: 'relay lost; moving the stream' },
    effects: [{ kind: 'release_relay', relayId: e.relayId }, { kind: 'place_relay' }],
    relayId: null,
    hlsUrl: null,
  };
});

const replaced = rule(['reconnecting'], (s, e) => {
  if (e.type !== 'replaced') return 'not a replaced event';
  if (s.relayId !== null) return `relay ${s.relayId} still serves this stream`;
  return { to: 'reconnecting', effects: [{ kind: 'start_glasses', relayId: e.relayId }], relayId: e.relayId };
});

const relayEnded = (status: 'stopped', message: string): Rule =>
  rule([status], (s, e) => {
    if (e.type !== 'relay_stream_ended' && e.type !== 'relay_lost') return 'not a relay event';
    return fromServingRelay(s, e.relayId) ?? end(s, status, message);
  });

/** stream-ended from the serving relay: stopped, or in error when the relay refused the publish. */
const relayStreamEnded = (message: string): Rule =>
  rule(['stopped', 'error'], (s, e) => {
    if (e.type !== 'relay_stream_ended') return 'not a relay_stream_ended event';
    const stale = fromServingRelay(s, e.relayId);
    if (stale) return stale;
    return e.error ? end(s, 'error', `the relay refused the stream: ${e.error}`) : end(s, 'stopped', message);
  });

/** Statuses that mean the glasses are ending the stream themselves; the same in every live phase. */
const glassesEnding = {
  'glasses_status:stopping': toStopping('glasses stopping'),
  'glasses_status:stopped': toEnd('stopped', 'glasses stopped'),
  'glasses_status:error': glassesError,
  'glasses_status:timeout': toEnd('error', 'glasses timed out'),
} as const;

/** Cloud-side ends; the same in every live phase but `stopping`. */
const cloudEnding = {
  keepalive_missed_limit: toEnd('stopped', 'glasses stopped answering keep-alives'),
  last_viewer_left: toStopping('last viewer left'),
  stop_requested: toStopping('stop requested'),
  relay_stream_ended: relayStreamEnded('the stream ended on the relay'),
} as const;

/** The transition table: phase → event → rule. No entry: the event is refused in that phase. */
const RULES: Readonly<Record<StreamPhase, Readonly<Partial<Record<EventKey, Rule>>>>> = {
  initializing: {
    'glasses_status:initializing': reportInitializing,
    'glasses_status:connecting': reportInitializing,
    'glasses_status:streaming': reportPreparing,
    'glasses_status:active': reportPreparing,
    'glasses_status:reconnected': reportPreparing,
    'glasses_status:reconnecting': glassesReconnecting,
    ...glassesEnding,
    hls_ready: hlsReady,
    relay_lost: relayLost,
    ...cloudEnding,
    timeout: toEnd('error', 'no video from the glasses in time'),
  },
  active: {
    'glasses_status:initializing': glassesRestarting,
    'glasses_status:connecting': glassesRestarting,
    'glasses_status:streaming': stayIn('active'),
    'glasses_status:active': stayIn('active'),
    'glasses_status:reconnected': stayIn('active'),
    'glasses_status:reconnecting': glassesReconnecting,
    ...glassesEnding,
    hls_ready: hlsReady,
    relay_lost: relayLost,
    ...cloudEnding,
  },
  reconnecting: {
    'glasses_status:initializing': stayIn('reconnecting'),
    'glasses_status:connecting': stayIn('reconnecting'),
    'glasses_status:streaming': glassesBack,
    'glasses_status:active': glassesBack,
    'glasses_status:reconnected': glassesBack,
    'glasses_status:reconnecting': glassesReconnecting,
    ...glassesEnding,
    hls_ready: hlsReady,
    relay_lost: relayLost,
    replaced,
    ...cloudEnding,
    timeout: toEnd('error', 'the stream did not come back in time'),
  },
  stopping: {
    'glasses_status:initializing': stayIn('stopping'),
    'glasses_status:connecting': stayIn('stopping'),
    'glasses_status:streaming': stayIn('stopping'),
    'glasses_status:active': stayIn('stopping'),
    'glasses_status:reconnected': stayIn('stopping'),
    'glasses_status:reconnecting': stayIn('stopping'),
    'glasses_status:stopping': stayIn('stopping'),
    'glasses_status:stopped': toEnd('stopped', 'glasses stopped'),
    'glasses_status:error': glassesError,
    'glasses_status:timeout': toEnd('error', 'glasses timed out'),
    relay_lost: relayEnded('stopped', 'relay lost while stopping'),
    keepalive_missed_limit: toEnd('stopped', 'glasses gone while stopping'),
    last_viewer_left: stayIn('stopping'),
    stop_requested: stayIn('stopping'),
    relay_stream_ended: relayStreamEnded('the stream ended on the relay'),
    timeout: toEnd('stopped', 'glasses did not confirm the stop'),
  },
  stopped: {},
  error: {},
};

/** The table as data: phase → event → the phases it may lead to. */
export const TRANSITION_TABLE: Readonly<
  Record<StreamPhase, Readonly<Partial<Record<EventKey, readonly StreamPhase[]>>>>
> = Object.fromEntries(
  STREAM_PHASES.map((phase) => [
    phase,
    Object.fromEntries(Object.entries(RULES[phase]).map(([key, r]) => [key, r.to])),
  ]),
) as Record<StreamPhase, Partial<Record<EventKey, readonly StreamPhase[]>>>;

function sameView(a: AppView, b: AppView): boolean {
  return a.status === b.status && a.hlsUrl === b.hlsUrl && a.message === b.message;
}

/** Applies `event` to `state`; pure. A refusal returns the same state and says why. */
export function transition(state: LifecycleState, event: LifecycleEvent): TransitionResult {
  const key = eventKey(event);
  const refuse = (reason: string): TransitionResult => ({
    ok: false,
    state,
    refusal: { from: state.phase, event: key, reason },
  });
  if (END_PHASES.has(state.phase)) return refuse(`the stream has ended (${state.phase})`);
  const r = RULES[state.phase][key];
  if (!r) return refuse(`${key} does not apply while ${state.phase}`);
  const step = r.run(state, event);
  if (typeof step === 'string') return refuse(step);
  const hlsUrl = step.hlsUrl !== undefined ? step.hlsUrl : state.hlsUrl;
  const relayId = step.relayId !== undefined ? step.relayId : state.relayId;
  const view = step.view ?? state.reported;
  if ((step.to === 'active') !== (view.status === 'active') || (step.to === 'active' && !hlsUrl)) {
    return refuse('active needs a playable hlsUrl'); // unreachable by the table; kept as the guard
  }
  const effects: Effect[] = sameView(view, state.reported) ? [] : [{ kind: 'notify_apps', ...view }];
  effects.push(...(step.effects ?? []));
  return { ok: true, state: { phase: step.to, relayId, hlsUrl, reported: view }, effects };
}
