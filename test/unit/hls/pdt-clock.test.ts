/** The PDT clock with an injected wall clock: the window's smallest offset, fixed per run at the first date. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CLOCK_WINDOW_MS, PdtClock } from '../../../src/hls/pdt-clock.ts';

const T = Date.UTC(2026, 0, 1);

function clock(): { pdt: PdtClock; at: (ms: number) => void } {
  let now = T;
  return { pdt: new PdtClock(() => now), at: (ms) => (now = T + ms) };
}

describe('PDT clock', () => {
  // [arrivals as (wall ms after T, media end s)], media start asked, expected PDT − T.
  const cases: { name: string; arrivals: [number, number][]; start: number; expected: number }[] = [
    { name: 'no arrival: now is the start', arrivals: [], start: 3, expected: 0 },
    { name: 'one arrival', arrivals: [[1050, 1]], start: 0, expected: 50 },
    {
      name: 'the smallest offset of the window (start-up late, then steady)',
      arrivals: [
        [1400, 1],
        [2050, 2],
        [3080, 3],
      ],
      start: 0,
      expected: 50,
    },
    {
      name: 'an offset older than the window no longer counts',
      arrivals: [
        [1010, 1],
        [1100 + CLOCK_WINDOW_MS, 1 + CLOCK_WINDOW_MS / 1000],
      ],
      start: 0,
      expected: 100,
    },
  ];
  for (const c of cases) {
    it(c.name, () => {
      const { pdt, at } = clock();
      for (const [wall, end] of c.arrivals) {
        at(wall);
        pdt.arrived(end);
      }
      assert.equal(pdt.dateOf(c.start) - T, c.expected);
    });
  }

  it('fixes the offset at the first date of a run; a new run gets its own', () => {
    const { pdt, at } = clock();
    at(1100);
    pdt.arrived(1);
    assert.equal(pdt.dateOf(0) - T, 100);
    at(2010);
    pdt.arrived(2); // a smaller offset, too late for this run
    assert.equal(pdt.dateOf(2) - T, 2100, 'PDTs advance with media time within a run');
    pdt.newRun();
    at(20_000);
    pdt.arrived(0.5); // media from 0 again
    assert.equal(pdt.dateOf(0) - T, 19_500);
  });
});
