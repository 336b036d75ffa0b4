import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type AppView,
  begin,
  type Effect,
  END_PHASES,
  EVENT_KEYS,
  type EventKey,
  eventKey,
  type LifecycleEvent,
  type LifecycleState,
  STREAM_PHASES,
  type StreamPhase,
  TRANSITION_TABLE,
  type TransitionResult,
  transition,
} from '../../../src/cloud/lifecycle.ts';
import type { GlassesStreamStatus } from '../../../src/contracts/mentra.ts';

const URL1 = 'http://relay-1.example:8888/hls/jean-luc-x.com/abc123/index.m3u8';
const URL2 = 'https://cdn.example/hls/jean-luc-x.com/abc123/index.m3u8';

// ---------------------------------------------------------------------------------------------- shorthands
const g = (
  status: GlassesStreamStatus,
  extra: Partial<Extract<LifecycleEvent, { type: 'glasses_status' }>> = {},
) => ({ type: 'glasses_status', status, ...extra }) as LifecycleEvent;
const hls = (relayId: string, hlsUrl: string): LifecycleEvent => ({ type: 'hls_ready', relayId, hlsUrl });
const lost = (relayId: string): LifecycleEvent => ({ type: 'relay_lost', relayId });
const replaced = (relayId: string): LifecycleEvent => ({ type: 'replaced', relayId });
const ended = (relayId: string): LifecycleEvent => ({ type: 'relay_stream_ended', relayId });
/** The relay refused the publish (issue 15: a codec FFmpeg cannot decode). */
const refused = (relayId: string): LifecycleEvent => ({
  type: 'relay_stream_ended',
  relayId,
  error: 'FFmpeg decodes nothing of it',
});
const REFUSED = 'the relay refused the stream: FFmpeg decodes nothing of it';
const ev = (
  type: 'keepalive_missed_limit' | 'last_viewer_left' | 'stop_requested' | 'timeout',
): LifecycleEvent => ({ type }) as LifecycleEvent;

const N = (status: AppView['status'], extra: Omit<AppView, 'status'> = {}): Effect => ({
  kind: 'notify_apps',
  status,
  ...extra,
});
const STOP: Effect = { kind: 'stop_glasses' };
const PLACE: Effect = { kind: 'place_relay' };
const REL = (relayId = 'relay-1'): Effect => ({ kind: 'release_relay', relayId });
const START = (relayId: string): Effect => ({ kind: 'start_glasses', relayId });

function must(result: TransitionResult): LifecycleState {
  assert.ok(result.ok, `refused: ${result.ok ? '' : result.refusal.reason}`);
  return result.state;
}
function walk(...events: LifecycleEvent[]): LifecycleState {
  return events.reduce((s, e) => must(transition(s, e)), begin('relay-1').state);
}

/** Named starting points, each reached through the machine itself. */
const S = {
  init: walk(),
  preparing: walk(g('streaming')),
  active: walk(hls('relay-1', URL1)),
  /** Glasses reconnecting to the same relay; the URL is kept. */
  reconG: walk(hls('relay-1', URL1), g('reconnecting', { attempt: 1, maxAttempts: 10 })),
  /** Glasses reconnecting before HLS was ever ready. */
  reconEarly: walk(g('reconnecting')),
  /** Relay lost, no replacement yet. */
  lost: walk(hls('relay-1', URL1), lost('relay-1')),
  /** Relay lost and re-placed on relay-2, no HLS there yet. */
  moved: walk(hls('relay-1', URL1), lost('relay-1'), replaced('relay-2')),
  stopping: walk(hls('relay-1', URL1), ev('stop_requested')),
  /** Stopping with no relay held (lost, then stopped before a replacement). */
  stoppingNoRelay: walk(hls('relay-1', URL1), lost('relay-1'), ev('stop_requested')),
  stopped: walk(hls('relay-1', URL1), ev('stop_requested'), g('stopped')),
  error: walk(hls('relay-1', URL1), g('error')),
} satisfies Record<string, LifecycleState>;
type From = keyof typeof S;

interface Row {
  from: From;
  event: LifecycleEvent;
  to: StreamPhase;
  effects: Effect[];
  /** Fields of the next state to check too. */
  state?: Partial<LifecycleState>;
}

/** The ends the glasses announce and the cloud decides: the same in every live phase but `stopping`. */
function endingRows(from: From, relay: string | null): Row[] {
  const rel = relay === null ? [] : [REL(relay)];
  const endState = { relayId: null, hlsUrl: null };
  return [
    {
      from,
      event: g('stopping'),
      to: 'stopping',
      effects: [N('stopping', { message: 'glasses stopping' }), STOP],
    },
    {
      from,
      event: g('stopped'),
      to: 'stopped',
      effects: [N('stopped', { message: 'glasses stopped' }), STOP, ...rel],
      state: endState,
    },
    {
      from,
      event: g('error', { errorDetails: 'camera busy' }),
      to: 'error',
      effects: [N('error', { message: 'glasses error: camera busy' }), STOP, ...rel],
      state: endState,
    },
    {
      from,
      event: g('error'),
      to: 'error',
      effects: [N('error', { message: 'glasses error' }), STOP, ...rel],
    },
    {
      from,
      event: g('timeout'),
      to: 'error',
      effects: [N('error', { message: 'glasses timed out' }), STOP, ...rel],
    },
    {
      from,
      event: ev('keepalive_missed_limit'),
      to: 'stopped',
      effects: [N('stopped', { message: 'glasses stopped answering keep-alives' }), STOP, ...rel],
    },
    {
      from,
      event: ev('last_viewer_left'),
      to: 'stopping',
      effects: [N('stopping', { message: 'last viewer left' }), STOP],
    },
    {
      from,
      event: ev('stop_requested'),
      to: 'stopping',
      effects: [N('stopping', { message: 'stop requested' }), STOP],
    },
    {
      from,
      event: { type: 'stop_requested', message: 'duration limit reached' },
      to: 'stopping',
      effects: [N('stopping', { message: 'duration limit reached' }), STOP],
    },
    ...(relay === null
      ? []
      : [
          {
            from,
            event: ended(relay),
            to: 'stopped' as const,
            effects: [N('stopped', { message: 'the stream ended on the relay' }), STOP, REL(relay)],
            state: endState,
          },
          {
            from,
            event: refused(relay),
            to: 'error' as const,
            effects: [N('error', { message: REFUSED }), STOP, REL(relay)],
            state: endState,
          },
        ]),
  ];
}

const relayLostRow = (from: From): Row => ({
  from,
  event: lost('relay-1'),
  to: 'reconnecting',
  effects: [N('reconnecting', { message: 'relay lost; moving the stream' }), REL(), PLACE],
  state: { relayId: null, hlsUrl: null },
});

const PREPARING = N('preparing', { message: 'glasses streaming; preparing HLS' });
const ACTIVE1 = N('active', { hlsUrl: URL1 });
/** Glasses back: the known URL is checked before anyone hears `active`. */
const VERIFY1 = { kind: 'verify_hls' as const, relayId: 'relay-1', hlsUrl: URL1 };

/** Every legal transition with its effects. */
const LEGAL: Row[] = [
  // initializing
  { from: 'init', event: g('initializing'), to: 'initializing', effects: [] },
  { from: 'init', event: g('connecting'), to: 'initializing', effects: [] },
  { from: 'init', event: g('streaming'), to: 'initializing', effects: [PREPARING] },
  { from: 'init', event: g('active'), to: 'initializing', effects: [PREPARING] },
  { from: 'init', event: g('reconnected'), to: 'initializing', effects: [PREPARING] },
  { from: 'preparing', event: g('streaming'), to: 'initializing', effects: [] },
  { from: 'preparing', event: g('connecting'), to: 'initializing', effects: [N('initializing')] },
  {
    from: 'init',
    event: g('reconnecting', { attempt: 2, maxAttempts: 10 }),
    to: 'reconnecting',
    effects: [N('reconnecting', { message: 'glasses reconnecting (attempt 2/10)' })],
  },
  ...endingRows('init', 'relay-1'),
  { from: 'init', event: hls('relay-1', URL1), to: 'active', effects: [ACTIVE1], state: { hlsUrl: URL1 } },
  { from: 'preparing', event: hls('relay-1', URL1), to: 'active', effects: [ACTIVE1] },
  relayLostRow('init'),
  {
    from: 'init',
    event: ev('timeout'),
    to: 'error',
    effects: [N('error', { message: 'no video from the glasses in time' }), STOP, REL()],
  },
  // active
  {
    from: 'active',
    event: g('initializing'),
    to: 'reconnecting',
    effects: [N('reconnecting', { message: 'glasses reconnecting' })],
    state: { hlsUrl: URL1, relayId: 'relay-1' },
  },
  {
    from: 'active',
    event: g('connecting'),
    to: 'reconnecting',
    effects: [N('reconnecting', { message: 'glasses reconnecting' })],
  },
  { from: 'active', event: g('streaming'), to: 'active', effects: [] },
  { from: 'active', event: g('active'), to: 'active', effects: [] },
  { from: 'active', event: g('reconnected'), to: 'active', effects: [] },
  {
    from: 'active',
    event: g('reconnecting', { attempt: 1, maxAttempts: 10 }),
    to: 'reconnecting',
    effects: [N('reconnecting', { message: 'glasses reconnecting (attempt 1/10)' })],
    state: { hlsUrl: URL1 },
  },
  {
    from: 'active',
    event: g('reconnecting'),
    to: 'reconnecting',
    effects: [N('reconnecting', { message: 'glasses reconnecting' })],
  },
  ...endingRows('active', 'relay-1'),
  { from: 'active', event: hls('relay-1', URL1), to: 'active', effects: [] },
  {
    from: 'active',
    event: hls('relay-1', URL2),
    to: 'active',
    effects: [N('active', { hlsUrl: URL2 })],
    state: { hlsUrl: URL2 },
  },
  relayLostRow('active'),
  // reconnecting: glasses reconnecting to the same relay
  { from: 'reconG', event: g('initializing'), to: 'reconnecting', effects: [] },
  { from: 'reconG', event: g('connecting'), to: 'reconnecting', effects: [] },
  { from: 'reconG', event: g('streaming'), to: 'reconnecting', effects: [VERIFY1] },
  { from: 'reconG', event: g('active'), to: 'reconnecting', effects: [VERIFY1] },
  { from: 'reconG', event: g('reconnected'), to: 'reconnecting', effects: [VERIFY1] },
  {
    from: 'reconG',
    event: g('reconnecting', { attempt: 2, maxAttempts: 10 }),
    to: 'reconnecting',
    effects: [N('reconnecting', { message: 'glasses reconnecting (attempt 2/10)' })],
  },
  {
    from: 'reconG',
    event: g('reconnecting', { attempt: 1, maxAttempts: 10 }),
    to: 'reconnecting',
    effects: [],
  },
  ...endingRows('reconG', 'relay-1'),
  { from: 'reconG', event: hls('relay-1', URL1), to: 'active', effects: [ACTIVE1] },
  relayLostRow('reconG'),
  {
    from: 'reconG',
    event: ev('timeout'),
    to: 'error',
    effects: [N('error', { message: 'the stream did not come back in time' }), STOP, REL()],
  },
  // reconnecting: glasses reconnecting, HLS never ready
  { from: 'reconEarly', event: g('streaming'), to: 'reconnecting', effects: [] },
  { from: 'reconEarly', event: hls('relay-1', URL1), to: 'active', effects: [ACTIVE1] },
  // reconnecting: relay lost, no replacement yet
  { from: 'lost', event: g('streaming'), to: 'reconnecting', effects: [] },
  { from: 'lost', event: g('reconnected'), to: 'reconnecting', effects: [] },
  {
    from: 'lost',
    event: replaced('relay-2'),
    to: 'reconnecting',
    effects: [START('relay-2')],
    state: { relayId: 'relay-2' },
  },
  ...endingRows('lost', null),
  {
    from: 'lost',
    event: ev('timeout'),
    to: 'error',
    effects: [N('error', { message: 'the stream did not come back in time' }), STOP],
  },
  // reconnecting: re-placed on relay-2, no HLS there yet
  { from: 'moved', event: g('streaming'), to: 'reconnecting', effects: [] },
  { from: 'moved', event: g('active'), to: 'reconnecting', effects: [] },
  {
    from: 'moved',
    event: hls('relay-2', URL2),
    to: 'active',
    effects: [N('active', { hlsUrl: URL2 })],
    state: { relayId: 'relay-2', hlsUrl: URL2 },
  },
  {
    from: 'moved',
    event: lost('relay-2'),
    to: 'reconnecting',
    effects: [REL('relay-2'), PLACE],
    state: { relayId: null },
  },
  ...endingRows('moved', 'relay-2'),
  // stopping
  ...(
    ['initializing', 'connecting', 'streaming', 'active', 'reconnected', 'reconnecting', 'stopping'] as const
  ).map((status): Row => ({ from: 'stopping', event: g(status), to: 'stopping', effects: [] })),
  {
    from: 'stopping',
    event: g('stopped'),
    to: 'stopped',
    effects: [N('stopped', { message: 'glasses stopped' }), REL()],
    state: { relayId: null, hlsUrl: null },
  },
  {
    from: 'stopping',
    event: g('error', { errorDetails: 'x'.repeat(500) }),
    to: 'error',
    effects: [
      N('error', { message: `glasses error: ${'x'.repeat(199 - 'glasses error: '.length)}…` }),
      REL(),
    ],
  },
  {
    from: 'stopping',
    event: g('timeout'),
    to: 'error',
    effects: [N('error', { message: 'glasses timed out' }), REL()],
  },
  {
    from: 'stopping',
    event: lost('relay-1'),
    to: 'stopped',
    effects: [N('stopped', { message: 'relay lost while stopping' }), REL()],
  },
  {
    from: 'stopping',
    event: ev('keepalive_missed_limit'),
    to: 'stopped',
    effects: [N('stopped', { message: 'glasses gone while stopping' }), REL()],
  },
  { from: 'stopping', event: ev('last_viewer_left'), to: 'stopping', effects: [] },
  { from: 'stopping', event: ev('stop_requested'), to: 'stopping', effects: [] },
  {
    from: 'stopping',
    event: ended('relay-1'),
    to: 'stopped',
    effects: [N('stopped', { message: 'the stream ended on the relay' }), REL()],
  },
  {
    from: 'stopping',
    event: refused('relay-1'),
    to: 'error',
    effects: [N('error', { message: REFUSED }), REL()],
  },
  {
    from: 'stopping',
    event: ev('timeout'),
    to: 'stopped',
    effects: [N('stopped', { message: 'glasses did not confirm the stop' }), REL()],
  },
  {
    from: 'stoppingNoRelay',
    event: ev('timeout'),
    to: 'stopped',
    effects: [N('stopped', { message: 'glasses did not confirm the stop' })],
  },
];

const describeEvent = (e: LifecycleEvent): string => {
  const { type, ...rest } = e;
  const key = eventKey(e);
  const args = Object.entries(rest).filter(([k]) => !(type === 'glasses_status' && k === 'status'));
  return args.length ? `${key} ${JSON.stringify(Object.fromEntries(args)).slice(0, 60)}` : key;
};

describe('managed-stream lifecycle: legal transitions', () => {
  it('begins initializing: the glasses are started and the first app hears initializing', () => {
    const { state, effects } = begin('relay-1');
    assert.deepEqual(state, {
      phase: 'initializing',
      relayId: 'relay-1',
      hlsUrl: null,
      reported: { status: 'initializing' },
    });
    assert.deepEqual(effects, [START('relay-1'), N('initializing')]);
  });

  for (const row of LEGAL) {
    it(`${row.from} + ${describeEvent(row.event)} → ${row.to}`, () => {
      const result = transition(S[row.from], row.event);
      assert.ok(result.ok, result.ok ? '' : result.refusal.reason);
      assert.equal(result.state.phase, row.to);
      assert.deepEqual(result.effects, row.effects);
      for (const [k, v] of Object.entries(row.state ?? {})) {
        assert.deepEqual(result.state[k as keyof LifecycleState], v, k);
      }
    });
  }

  it('the rows cover every entry of the table, and every destination it declares', () => {
    const seen = new Map<string, Set<StreamPhase>>();
    for (const row of LEGAL) {
      const key = `${S[row.from].phase} ${eventKey(row.event)}`;
      const set = seen.get(key) ?? new Set();
      set.add(row.to);
      seen.set(key, set);
    }
    for (const phase of STREAM_PHASES) {
      for (const [key, to] of Object.entries(TRANSITION_TABLE[phase])) {
        assert.deepEqual(
          [...(seen.get(`${phase} ${key}`) ?? [])].sort(),
          [...(to ?? [])].sort(),
          `${phase} + ${key}`,
        );
      }
    }
    for (const key of seen.keys()) {
      const [phase, event] = key.split(' ') as [StreamPhase, EventKey];
      assert.ok(TRANSITION_TABLE[phase][event], `${key} is exercised but not in the table`);
    }
  });
});

describe('managed-stream lifecycle: refusals', () => {
  it('refuses every event the table does not list, changing nothing', () => {
    const anyState: Record<StreamPhase, LifecycleState> = {
      initializing: S.init,
      active: S.active,
      reconnecting: S.reconG,
      stopping: S.stopping,
      stopped: S.stopped,
      error: S.error,
    };
    const events: Record<EventKey, LifecycleEvent> = Object.fromEntries(
      EVENT_KEYS.map((key) => {
        if (key.startsWith('glasses_status:')) return [key, g(key.split(':')[1] as GlassesStreamStatus)];
        if (key === 'hls_ready') return [key, hls('relay-1', URL1)];
        if (key === 'relay_lost') return [key, lost('relay-1')];
        if (key === 'replaced') return [key, replaced('relay-2')];
        if (key === 'relay_stream_ended') return [key, ended('relay-1')];
        return [key, { type: key } as LifecycleEvent];
      }),
    ) as Record<EventKey, LifecycleEvent>;
    let refused = 0;
    for (const phase of STREAM_PHASES) {
      for (const key of EVENT_KEYS) {
        if (TRANSITION_TABLE[phase][key]) continue;
        const state = anyState[phase];
        const result = transition(state, events[key]);
        assert.equal(result.ok, false, `${phase} + ${key}`);
        assert.equal(result.state, state);
        if (!result.ok) {
          assert.equal(result.refusal.from, phase);
          assert.equal(result.refusal.event, key);
          assert.match(
            result.refusal.reason,
            END_PHASES.has(phase) ? /^the stream has ended/ : /does not apply while/,
          );
        }
        refused++;
      }
    }
    assert.equal(
      refused,
      2 * EVENT_KEYS.length +
        1 /* active: timeout */ +
        2 /* stopping: hls_ready, replaced */ +
        2 /* initializing, active: replaced */,
    );
  });

  const REFUSED: { name: string; from: From; event: LifecycleEvent; reason: RegExp }[] = [
    {
      name: 'HLS from a relay that does not serve the stream',
      from: 'active',
      event: hls('relay-9', URL2),
      reason: /relay relay-9 does not serve/,
    },
    {
      name: 'late HLS from the lost relay',
      from: 'lost',
      event: hls('relay-1', URL1),
      reason: /no relay serves this stream now/,
    },
    {
      name: 'late HLS from the old relay after the move',
      from: 'moved',
      event: hls('relay-1', URL1),
      reason: /relay relay-1 does not serve/,
    },
    {
      name: 'a javascript: URL',
      from: 'init',
      event: hls('relay-1', 'javascript:alert(1)'),
      reason: /not a playable/,
    },
    { name: 'an empty URL', from: 'init', event: hls('relay-1', ''), reason: /not a playable/ },
    { name: 'a URL with no host', from: 'init', event: hls('relay-1', 'http://'), reason: /not a playable/ },
    {
      name: 'relay_lost for another relay',
      from: 'active',
      event: lost('relay-9'),
      reason: /does not serve/,
    },
    { name: 'relay_lost twice', from: 'lost', event: lost('relay-1'), reason: /no relay serves/ },
    {
      name: 'relay_lost for another relay while stopping',
      from: 'stopping',
      event: lost('relay-9'),
      reason: /does not serve/,
    },
    {
      name: 'replaced while a relay serves',
      from: 'reconG',
      event: replaced('relay-2'),
      reason: /relay relay-1 still serves/,
    },
    {
      name: 'replaced twice',
      from: 'moved',
      event: replaced('relay-3'),
      reason: /relay relay-2 still serves/,
    },
    {
      name: 'stream-ended from the old relay after the move',
      from: 'moved',
      event: ended('relay-1'),
      reason: /does not serve/,
    },
    { name: 'stream-ended with no relay', from: 'lost', event: ended('relay-1'), reason: /no relay serves/ },
    {
      name: 'a timeout while active',
      from: 'active',
      event: ev('timeout'),
      reason: /does not apply while active/,
    },
    {
      name: 'anything after stopped',
      from: 'stopped',
      event: ev('stop_requested'),
      reason: /has ended \(stopped\)/,
    },
    { name: 'anything after error', from: 'error', event: g('streaming'), reason: /has ended \(error\)/ },
  ];
  for (const c of REFUSED) {
    it(`refuses ${c.name}`, () => {
      const result = transition(S[c.from], c.event);
      assert.equal(result.ok, false);
      assert.equal(result.state, S[c.from]);
      if (!result.ok) assert.match(result.refusal.reason, c.reason);
    });
  }

  for (const from of ['init', 'active', 'reconG', 'stopping'] as const) {
    it(`refuses an unknown glasses status while ${S[from].phase} (never reported as active)`, () => {
      const result = transition(S[from], { type: 'glasses_status', status: 'bogus' as GlassesStreamStatus });
      assert.equal(result.ok, false);
    });
  }
});

// ----------------------------------------------------------------------------- the table and its invariants

/** A finite alphabet of concrete events, enough to reach every entry of the table. */
const ALPHABET: LifecycleEvent[] = [
  ...(
    [
      'initializing',
      'connecting',
      'streaming',
      'active',
      'reconnected',
      'stopping',
      'stopped',
      'timeout',
    ] as const
  ).map((s) => g(s)),
  g('reconnecting', { attempt: 1, maxAttempts: 10 }),
  g('reconnecting', { attempt: 2, maxAttempts: 10 }),
  g('error', { errorDetails: 'camera busy' }),
  hls('relay-1', URL1),
  hls('relay-1', URL2),
  hls('relay-2', URL2),
  lost('relay-1'),
  lost('relay-2'),
  replaced('relay-2'),
  ended('relay-1'),
  ended('relay-2'),
  refused('relay-1'),
  ev('keepalive_missed_limit'),
  ev('last_viewer_left'),
  ev('stop_requested'),
  ev('timeout'),
];

interface Edge {
  from: LifecycleState;
  event: LifecycleEvent;
  result: Extract<TransitionResult, { ok: true }>;
}

/** Every state reachable from `begin`, and every legal edge between them. */
function explore(): { states: LifecycleState[]; edges: Edge[] } {
  const start = begin('relay-1').state;
  const seen = new Map<string, LifecycleState>([[JSON.stringify(start), start]]);
  const queue = [start];
  const edges: Edge[] = [];
  for (let s = queue.shift(); s; s = queue.shift()) {
    for (const event of ALPHABET) {
      const result = transition(s, event);
      if (!result.ok) continue;
      edges.push({ from: s, event, result });
      const key = JSON.stringify(result.state);
      if (!seen.has(key)) {
        seen.set(key, result.state);
        queue.push(result.state);
      }
    }
  }
  return { states: [...seen.values()], edges };
}

describe('managed-stream lifecycle: the table', () => {
  it('names only known phases and events; the end phases have no way out', () => {
    for (const phase of STREAM_PHASES) {
      for (const [key, to] of Object.entries(TRANSITION_TABLE[phase])) {
        assert.ok(EVENT_KEYS.includes(key as EventKey), key);
        for (const t of to ?? []) assert.ok(STREAM_PHASES.includes(t), t);
      }
    }
    for (const phase of END_PHASES) assert.deepEqual(TRANSITION_TABLE[phase], {});
  });

  it('handles every glasses status in every live phase (none falls through to active by default)', () => {
    for (const phase of STREAM_PHASES.filter((p) => !END_PHASES.has(p))) {
      for (const key of EVENT_KEYS.filter((k) => k.startsWith('glasses_status:'))) {
        assert.ok(TRANSITION_TABLE[phase][key], `${phase} + ${key}`);
      }
    }
  });

  it('has no unreachable phase, and every phase can reach an end', () => {
    const reach = (from: StreamPhase): Set<StreamPhase> => {
      const seen = new Set<StreamPhase>([from]);
      const queue = [from];
      for (let p = queue.shift(); p; p = queue.shift()) {
        for (const to of Object.values(TRANSITION_TABLE[p])) {
          for (const t of to ?? []) {
            if (!seen.has(t)) {
              seen.add(t);
              queue.push(t);
            }
          }
        }
      }
      return seen;
    };
    assert.deepEqual([...reach('initializing')].sort(), [...STREAM_PHASES].sort());
    for (const phase of STREAM_PHASES) {
      assert.ok(
        [...reach(phase)].some((p) => END_PHASES.has(p)),
        `${phase} cannot end`,
      );
    }
  });

  const { states, edges } = explore();

  it('the machine itself reaches every phase and every table entry from begin()', () => {
    assert.deepEqual([...new Set(states.map((s) => s.phase))].sort(), [...STREAM_PHASES].sort());
    const used = new Set(edges.map((e) => `${e.from.phase} ${eventKey(e.event)} ${e.result.state.phase}`));
    for (const phase of STREAM_PHASES) {
      for (const [key, to] of Object.entries(TRANSITION_TABLE[phase])) {
        for (const t of to ?? [])
          assert.ok(used.has(`${phase} ${key} ${t}`), `${phase} + ${key} → ${t} is unreachable`);
      }
    }
    for (const e of edges) {
      assert.ok(
        TRANSITION_TABLE[e.from.phase][eventKey(e.event)]?.includes(e.result.state.phase),
        `${e.from.phase} + ${eventKey(e.event)} → ${e.result.state.phase} is not in the table`,
      );
    }
  });

  it(`keeps the reference's rules on every reachable edge (${edges.length} edges, ${states.length} states)`, () => {
    for (const { from, event, result } of edges) {
      const { state, effects } = result;
      const where = `${JSON.stringify(from)} + ${describeEvent(event)}`;
      const notes = effects.filter((e) => e.kind === 'notify_apps');
      // active only with a playable hlsUrl, and only active carries one
      if (state.phase === 'active') {
        assert.match(state.hlsUrl ?? '', /^https?:\/\/./, where);
        assert.ok(state.relayId !== null, where);
        assert.deepEqual(state.reported, { status: 'active', hlsUrl: state.hlsUrl }, where);
      }
      for (const n of notes) {
        assert.equal(n.status === 'active', n.hlsUrl !== undefined, where);
        assert.ok(!('dashUrl' in n), where);
      }
      assert.ok(notes.length <= 1, where);
      // the apps are told exactly when what they see changes
      assert.equal(
        notes.length === 1,
        JSON.stringify(state.reported) !== JSON.stringify(from.reported),
        where,
      );
      // glasses statuses that are not "streaming" never make a stream active
      if (event.type === 'glasses_status' && !['streaming', 'active', 'reconnected'].includes(event.status)) {
        assert.ok(state.phase !== 'active' || from.phase === 'active', where);
        assert.ok(!notes.some((n) => n.status === 'active'), where);
      }
      if (event.type === 'glasses_status' && event.status === 'timeout')
        assert.equal(state.phase, 'error', where);
      if (event.type === 'glasses_status' && event.status === 'reconnecting' && from.phase !== 'stopping') {
        assert.equal(state.reported.status, 'reconnecting', where);
      }
      // glasses streaming without HLS: initializing, and the apps see initializing or preparing
      if (
        from.phase === 'initializing' &&
        event.type === 'glasses_status' &&
        ['streaming', 'active'].includes(event.status)
      ) {
        assert.equal(state.phase, 'initializing', where);
        assert.equal(state.reported.status, 'preparing', where);
      }
      // every end tells every app, stops the glasses (now, or already on the way into stopping), frees the relay
      if (END_PHASES.has(state.phase)) {
        assert.deepEqual(
          notes.map((n) => n.status),
          [state.phase],
          where,
        );
        assert.equal(
          effects.some((e) => e.kind === 'stop_glasses'),
          from.phase !== 'stopping',
          where,
        );
        assert.equal(
          effects.some((e) => e.kind === 'release_relay'),
          from.relayId !== null,
          where,
        );
        assert.deepEqual([state.relayId, state.hlsUrl], [null, null], where);
      }
      if (state.phase === 'stopping' && from.phase !== 'stopping') {
        assert.ok(
          effects.some((e) => e.kind === 'stop_glasses'),
          where,
        );
        assert.equal(notes[0]?.status, 'stopping', where);
      }
      // a relay is released at most once, and only the one that was held
      for (const e of effects) if (e.kind === 'release_relay') assert.equal(e.relayId, from.relayId, where);
      // the glasses are only (re)started on a new relay
      for (const e of effects) if (e.kind === 'start_glasses') assert.equal(from.relayId, null, where);
    }
  });
});

describe('managed-stream lifecycle: walks', () => {
  const run = (events: LifecycleEvent[]): { phases: StreamPhase[]; effects: Effect[] } => {
    const start = begin('relay-1');
    let state = start.state;
    const phases: StreamPhase[] = [state.phase];
    const effects = [...start.effects];
    for (const e of events) {
      const result = transition(state, e);
      assert.ok(result.ok, result.ok ? '' : result.refusal.reason);
      state = result.state;
      phases.push(state.phase);
      effects.push(...result.effects);
    }
    return { phases, effects };
  };

  it('start, preparing, active, repeated statuses, stop by the last viewer', () => {
    const { phases, effects } = run([
      g('connecting'),
      g('streaming'),
      g('streaming'),
      hls('relay-1', URL1),
      g('streaming'),
      g('active'),
      ev('last_viewer_left'),
      g('stopping'),
      g('stopped'),
    ]);
    assert.deepEqual(phases, [
      ...['initializing', 'initializing', 'initializing', 'initializing', 'active', 'active', 'active'],
      ...['stopping', 'stopping', 'stopped'],
    ]);
    assert.deepEqual(effects, [
      START('relay-1'),
      N('initializing'),
      PREPARING,
      ACTIVE1,
      N('stopping', { message: 'last viewer left' }),
      STOP,
      N('stopped', { message: 'glasses stopped' }),
      REL(),
    ]);
  });

  it('glasses reconnect to the same relay: the URL is checked, and active again once it answers', () => {
    const { effects } = run([
      hls('relay-1', URL1),
      g('reconnecting', { attempt: 1, maxAttempts: 10 }),
      g('reconnecting', { attempt: 2, maxAttempts: 10 }),
      g('reconnected'),
      hls('relay-1', URL1),
    ]);
    assert.deepEqual(effects.slice(2), [
      ACTIVE1,
      N('reconnecting', { message: 'glasses reconnecting (attempt 1/10)' }),
      N('reconnecting', { message: 'glasses reconnecting (attempt 2/10)' }),
      VERIFY1,
      ACTIVE1,
    ]);
  });

  it('the relay dies: released, re-placed, the glasses restarted there, active again with the new URL', () => {
    const { phases, effects } = run([
      hls('relay-1', URL1),
      lost('relay-1'),
      g('reconnecting', { attempt: 1, maxAttempts: 10 }),
      replaced('relay-2'),
      g('streaming'),
      hls('relay-2', URL2),
    ]);
    assert.deepEqual(phases, [
      'initializing',
      'active',
      'reconnecting',
      'reconnecting',
      'reconnecting',
      'reconnecting',
      'active',
    ]);
    assert.deepEqual(effects.slice(2), [
      ACTIVE1,
      N('reconnecting', { message: 'relay lost; moving the stream' }),
      REL('relay-1'),
      PLACE,
      N('reconnecting', { message: 'glasses reconnecting (attempt 1/10)' }),
      START('relay-2'),
      N('active', { hlsUrl: URL2 }),
    ]);
  });

  it('missed keep-alives end the stream: every app told, the glasses stopped, the relay freed', () => {
    const { effects } = run([hls('relay-1', URL1), ev('keepalive_missed_limit')]);
    assert.deepEqual(effects.slice(3), [
      N('stopped', { message: 'glasses stopped answering keep-alives' }),
      STOP,
      REL(),
    ]);
  });
});
