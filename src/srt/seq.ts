/**
 * SRT packet sequence numbers: 31-bit counters that wrap (draft-sharabayko-srt §3.1). Every comparison and
 * step goes through these functions (gosrt `circular`), never an inline `+ 1` or `<`, so the wrap at 2^31 is
 * handled in one tested place. Two numbers compare by their signed distance, valid within half the space.
 */

export const SEQ_MAX = 0x7fffffff;
const SEQ_SPACE = 0x80000000;
const HALF = 0x40000000;

/** `a + n` modulo 2^31 (n may be negative). */
export function seqAdd(a: number, n: number): number {
  return (((a + n) % SEQ_SPACE) + SEQ_SPACE) % SEQ_SPACE;
}

export function seqNext(a: number): number {
  return seqAdd(a, 1);
}

/** The signed distance `b - a` along the shortest way round (positive when b is after a). */
export function seqDiff(a: number, b: number): number {
  let d = (b - a) % SEQ_SPACE;
  if (d < -HALF) d += SEQ_SPACE;
  else if (d >= HALF) d -= SEQ_SPACE;
  return d;
}

/** a comes before b. */
export function seqLess(a: number, b: number): boolean {
  return seqDiff(a, b) > 0;
}

/** a comes before b or is b. */
export function seqLessOrEqual(a: number, b: number): boolean {
  return seqDiff(a, b) >= 0;
}
