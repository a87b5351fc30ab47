/**
 * Deterministic pseudo-random numbers for the network simulator. Not cryptographic: the point is
 * that the same seed gives the same loss and jitter pattern on every machine, so a failing run can
 * be replayed exactly.
 */

/** A source of numbers in [0, 1). */
export type Random = () => number;

/** mulberry32: a tiny 32-bit generator with a full 2^32 period, good enough for fault injection. */
export function mulberry32(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Derives the seed of an independent stream from one user seed, so that (for example) the loss
 * decisions of the upstream direction do not shift when jitter or the other direction changes.
 * A murmur3-style finalizer over `seed` and `stream`.
 */
export function deriveSeed(seed: number, stream: number): number {
  let h = (seed >>> 0) ^ Math.imul(stream + 1, 0x9e3779b9);
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Uniform in [-1, 1). */
export function symmetric(random: Random): number {
  return random() * 2 - 1;
}
