import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ACK_ID_LENGTH,
  type KeepAliveOptions,
  KeepAliveTracker,
  newAckId,
} from '../../../src/cloud/keepalive.ts';
import { ErrorCodes, RelayError } from '../../../src/shared/errors.ts';

/**
 * One scripted step at time `t` (ms): send a keep-alive (its id is remembered by index), feed an ACK of the
 * id sent at `ack` (or a literal foreign id) and expect `accepted`, or tick and expect the count.
 */
type Step =
  | { t: number; send: true }
  | { t: number; ack: number | string; accepted: boolean }
  | { t: number; tick: { missed: number; ended: boolean } };

interface Scenario {
  name: string;
  options?: Partial<KeepAliveOptions>;
  steps: Step[];
}

/** MentraOS values: a keep-alive every 15 s, 10 s for each ACK, 3 missed in a row end the stream. */
const EVERY = 15_000;
const at = (n: number, plus = 0): number => n * EVERY + plus;
const tick = (t: number, missed: number, ended = false): Step => ({ t, tick: { missed, ended } });
const send = (t: number): Step => ({ t, send: true });
const ack = (t: number, id: number | string, accepted = true): Step => ({ t, ack: id, accepted });

const SCENARIOS: Scenario[] = [
  {
    name: 'ACKs on time: nothing is missed',
    steps: [
      send(at(0)),
      ack(at(0, 300), 0),
      tick(at(0, 10_000), 0),
      send(at(1)),
      ack(at(1, 9_999), 1),
      tick(at(1, 10_000), 0),
      send(at(2)),
      ack(at(2, 50), 2),
      tick(at(3), 0),
    ],
  },
  {
    name: 'three missed in a row end the stream',
    steps: [
      send(at(0)),
      tick(at(0, 9_999), 0),
      tick(at(0, 10_000), 1),
      send(at(1)),
      tick(at(1, 10_000), 2),
      send(at(2)),
      tick(at(2, 9_000), 2),
      tick(at(2, 10_000), 3, true),
    ],
  },
  {
    name: 'each id counts once, however often tick runs',
    steps: [send(at(0)), tick(at(0, 10_000), 1), tick(at(0, 11_000), 1), tick(at(0, 14_000), 1)],
  },
  {
    name: 'a late ACK of a still-pending id counts and resets the count',
    steps: [
      send(at(0)),
      tick(at(0, 10_000), 1),
      send(at(1)),
      tick(at(1, 10_000), 2),
      ack(at(1, 12_000), 0), // the first id, 27 s late
      tick(at(1, 12_000), 0),
      send(at(2)),
      tick(at(2, 10_000), 1),
    ],
  },
  {
    name: 'any valid ACK resets the count: misses must be in a row',
    steps: [
      send(at(0)),
      tick(at(0, 10_000), 1),
      send(at(1)),
      tick(at(1, 10_000), 2),
      send(at(2)),
      ack(at(2, 100), 2),
      tick(at(2, 10_000), 0),
      send(at(3)),
      tick(at(3, 10_000), 1),
      send(at(4)),
      tick(at(4, 10_000), 2),
    ],
  },
  {
    name: 'an ACK retires its id and every older one',
    steps: [
      send(at(0)),
      send(at(1)),
      send(at(2)),
      ack(at(2, 100), 1),
      ack(at(2, 200), 0, false),
      ack(at(2, 300), 1, false),
      tick(at(2, 10_000), 1), // id 2 is still due
      ack(at(2, 11_000), 2),
      tick(at(2, 11_000), 0),
    ],
  },
  {
    name: 'unknown, foreign and empty ids are refused and reset nothing',
    steps: [
      send(at(0)),
      tick(at(0, 10_000), 1),
      ack(at(0, 11_000), 'abcdef', false),
      ack(at(0, 11_000), '', false),
      ack(at(0, 11_000), '__proto__', false),
      tick(at(0, 11_000), 1),
    ],
  },
  {
    name: 'once ended, it stays ended: a late ACK changes nothing',
    steps: [
      send(at(0)),
      send(at(1)),
      send(at(2)),
      tick(at(2, 10_000), 3, true),
      ack(at(2, 11_000), 2, false),
      tick(at(3), 3, true),
      send(at(3)),
      tick(at(4), 3, true),
    ],
  },
  {
    name: 'the window: the oldest unanswered id is dropped and counted when a newer one pushes it out',
    options: { ackTimeoutMs: 60_000, window: 2 },
    steps: [
      send(at(0)),
      send(at(1)),
      tick(at(1, 1), 0),
      send(at(2)), // id 0 leaves the window before its deadline
      tick(at(2, 1), 1),
      ack(at(2, 2), 0, false),
      ack(at(2, 3), 1),
      tick(at(2, 4), 0),
    ],
  },
  {
    name: 'an id already counted leaves the window without counting twice',
    options: { window: 1 },
    steps: [send(at(0)), tick(at(0, 10_000), 1), send(at(1)), tick(at(1, 1), 1), ack(at(1, 2), 0, false)],
  },
  {
    name: 'maxMissed 1: the first miss ends the stream',
    options: { maxMissed: 1 },
    steps: [send(at(0)), tick(at(0, 10_000), 1, true)],
  },
  {
    name: 'maxMissed 5: late ACKs are accepted from the last five ids',
    options: { maxMissed: 5 },
    steps: [
      ...[0, 1, 2, 3].flatMap((n) => [send(at(n)), tick(at(n, 10_000), n + 1)]),
      ack(at(3, 11_000), 0),
      tick(at(3, 11_000), 0),
    ],
  },
];

describe('keep-alive tracker', () => {
  for (const s of SCENARIOS) {
    it(s.name, () => {
      const tracker = new KeepAliveTracker({ ackTimeoutMs: 10_000, ...s.options });
      const ids: string[] = [];
      for (const [i, step] of s.steps.entries()) {
        const where = `step ${i} at ${step.t} ms`;
        if ('send' in step) {
          ids.push(tracker.next(step.t));
        } else if ('ack' in step) {
          const id = typeof step.ack === 'number' ? ids[step.ack] : step.ack;
          assert.ok(id !== undefined, where);
          assert.equal(tracker.ack(id, step.t), step.accepted, `${where}: ack`);
        } else {
          assert.deepEqual(tracker.tick(step.t), step.tick, `${where}: tick`);
          assert.equal(tracker.missed, step.tick.missed, where);
          assert.equal(tracker.ended, step.tick.ended, where);
        }
      }
    });
  }

  it('keeps at most `window` ids pending', () => {
    const tracker = new KeepAliveTracker({ ackTimeoutMs: 10_000 });
    for (let n = 0; n < 100; n++) tracker.next(at(n));
    assert.equal(tracker.pending.length, 3);
  });

  it('issues short, distinct, unguessable ids', () => {
    const ids = new Set<string>();
    for (let n = 0; n < 2000; n++) {
      const id = newAckId();
      assert.match(id, /^[A-Za-z0-9_-]{6}$/);
      ids.add(id);
    }
    assert.equal(ACK_ID_LENGTH, 6);
    assert.ok(ids.size >= 1999, `${2000 - ids.size} repeats in 2000 ids of 36 bits`);
    const tracker = new KeepAliveTracker({ ackTimeoutMs: 1000 });
    const pending = [tracker.next(0), tracker.next(1), tracker.next(2)];
    assert.equal(new Set(pending).size, 3);
    assert.deepEqual(tracker.pending, pending);
  });

  it('draws again when the id source repeats a pending id, and gives up on a stuck one', () => {
    const script = ['aaaaaa', 'aaaaaa', 'bbbbbb'];
    const tracker = new KeepAliveTracker({ ackTimeoutMs: 1000, newId: () => script.shift() ?? 'aaaaaa' });
    assert.equal(tracker.next(0), 'aaaaaa');
    assert.equal(tracker.next(1), 'bbbbbb');
    const stuck = new KeepAliveTracker({ ackTimeoutMs: 1000, newId: () => 'cccccc' });
    stuck.next(0);
    assert.throws(
      () => stuck.next(1),
      (e: unknown) => e instanceof RelayError && e.code === ErrorCodes.CONFIG_INVALID,
    );
  });

  const BAD_OPTIONS: [string, KeepAliveOptions][] = [
    ['ackTimeoutMs 0', { ackTimeoutMs: 0 }],
    ['ackTimeoutMs NaN', { ackTimeoutMs: Number.NaN }],
    ['maxMissed 0', { ackTimeoutMs: 1000, maxMissed: 0 }],
    ['maxMissed 2.5', { ackTimeoutMs: 1000, maxMissed: 2.5 }],
    ['window 0', { ackTimeoutMs: 1000, window: 0 }],
  ];
  for (const [name, options] of BAD_OPTIONS) {
    it(`refuses ${name}`, () => {
      assert.throws(
        () => new KeepAliveTracker(options),
        (e: unknown) => e instanceof RelayError && e.code === ErrorCodes.CONFIG_INVALID,
      );
    });
  }
});
