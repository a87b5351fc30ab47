import { describe, expect, it } from 'vitest';
import { NOW_OFFSET, START_OFFSET, compareOffsets, formatOffset, isOffset, parseOffset } from '../../src/protocol/index.js';
import { seededRandom } from '../support/wait.js';

/** Deterministic PRNG (mulberry32) so failures reproduce. */
const rng = seededRandom;

describe('offsets', () => {
  it('formats seq 0 as the start offset "-1"', () => {
    expect(START_OFFSET).toBe('-1');
    expect(formatOffset(0)).toBe('-1');
    expect(parseOffset('-1')).toBe(0);
  });

  it('formats positive seqs as 16 zero-padded digits', () => {
    expect(formatOffset(1)).toBe('0000000000000001');
    expect(formatOffset(1234)).toBe('0000000000001234');
    expect(formatOffset(Number.MAX_SAFE_INTEGER)).toBe('9007199254740991');
    for (const seq of [1, 9, 10, 99, 100, 65_536, 2 ** 32, Number.MAX_SAFE_INTEGER]) expect(formatOffset(seq)).toHaveLength(16);
  });

  it('round-trips format → parse', () => {
    for (const seq of [0, 1, 2, 9, 10, 11, 999, 1000, 123_456_789, 2 ** 40, Number.MAX_SAFE_INTEGER]) {
      const offset = formatOffset(seq);
      expect(isOffset(offset)).toBe(true);
      expect(parseOffset(offset)).toBe(seq);
    }
  });

  it('refuses to format negative, fractional or unsafe seqs', () => {
    for (const bad of [-1, -2, 1.5, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER + 1]) {
      expect(() => formatOffset(bad)).toThrow(RangeError);
    }
  });

  it('formatted offsets sort lexicographically in numeric order, with "-1" first', () => {
    const seqs = [0, 1, 2, 3, 9, 10, 11, 19, 20, 99, 100, 101, 999, 1000, 1001, 10_000, 123_456, 2 ** 31, 2 ** 32 + 1, 2 ** 53 - 1];
    const rand = rng(1);
    const shuffled = [...seqs].sort(() => rand() - 0.5).map(formatOffset);
    // Plain string sort (code-unit order), as a client or a Durable Streams server would do.
    const sorted = [...shuffled].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    expect(sorted).toEqual(seqs.map(formatOffset));
    expect(sorted[0]).toBe('-1');
    for (let i = 1; i < sorted.length; i++) {
      expect(sorted[i - 1]! < sorted[i]!).toBe(true);
      expect(compareOffsets(sorted[i - 1]!, sorted[i]!)).toBeLessThan(0);
    }
  });

  it('also sorts random neighbours correctly', () => {
    const rand = rng(42);
    for (let i = 0; i < 500; i++) {
      const a = Math.floor(rand() * 1e12);
      const b = a + 1 + Math.floor(rand() * 1000);
      expect(formatOffset(a) < formatOffset(b)).toBe(true);
      expect(Math.sign(compareOffsets(formatOffset(a), formatOffset(b)))).toBe(-1);
      expect(Math.sign(compareOffsets(formatOffset(b), formatOffset(a)))).toBe(1);
      expect(compareOffsets(formatOffset(a), formatOffset(a))).toBe(0);
    }
  });

  it('rejects strings that are not offsets', () => {
    const bad = [
      '',
      'now',
      '-2',
      '-0',
      '0',
      '1',
      '000000000000001', // 15 digits
      '00000000000000001', // 17 digits
      '9999999999999999', // 16 digits but above MAX_SAFE_INTEGER
      '000000000000000a',
      ' 000000000000001',
      '0000000000000001 ',
      '+000000000000001',
      '0x00000000000001',
      '1e15000000000000',
      '０００００００００００００００１', // full-width digits
      '-1 ',
    ];
    for (const s of bad) {
      expect(parseOffset(s), JSON.stringify(s)).toBeUndefined();
      expect(isOffset(s), JSON.stringify(s)).toBe(false);
    }
    expect(isOffset(NOW_OFFSET)).toBe(false);
  });

  it('compareOffsets throws on non-offsets', () => {
    expect(() => compareOffsets('now', '-1')).toThrow(RangeError);
    expect(() => compareOffsets('-1', 'x')).toThrow(RangeError);
    expect(compareOffsets('-1', '-1')).toBe(0);
    expect(compareOffsets('-1', formatOffset(1))).toBeLessThan(0);
  });
});
