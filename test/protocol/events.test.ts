import { describe, expect, it } from 'vitest';
import { BINARY_KINDS, EVENT_KINDS, IdSchema, JsonSchema, MAX_JSON_DEPTH, checkEventBody, isJsonWithin } from '../../src/protocol/index.js';
import type { EventBody, EventKind, Json } from '../../src/protocol/index.js';

const BIN = Uint8Array.of(1, 2, 3);
const bodyOf = (kind: EventKind, data: Json, bin?: Uint8Array): EventBody => ({ kind, data, ...(bin ? { bin } : {}) });

/** Per kind: data that passes, and data that fails (with the right bin for the kind). */
const CASES: Record<EventKind, { good: Json[]; bad: Json[] }> = {
  'text.delta': {
    good: [{ text: '' }, { text: 'hé 👋', id: 'm1' }, { text: 'x', extra: { any: [1] } }],
    bad: [{}, { text: 1 }, { text: null }, { text: 'x', id: 'i'.repeat(257) }, { text: 'x', id: 5 }, 'text', null, [{ text: 'x' }]],
  },
  'text.done': {
    good: [{}, { id: 'm1' }, { id: 'm1', text: 'full text' }, { other: true }],
    bad: [{ text: 1 }, { id: 'i'.repeat(257) }, 'done', null],
  },
  'tool.call': {
    good: [
      { id: 'c1', name: 'lookup', arguments: { q: 'x', n: [1, 2] } },
      { id: 'c1', name: 'noop', arguments: null },
      { id: 'c1', name: 'f', arguments: 'raw' },
    ],
    bad: [{ id: '', name: 'f', arguments: {} }, { id: 'c1', name: '', arguments: {} }, { id: 'c1', arguments: {} }, { name: 'f', arguments: {} }, { id: 'c1', name: 'f' }],
  },
  'tool.result': {
    good: [{ id: 'c1' }, { id: 'c1', result: { ok: true } }, { id: 'c1', result: null }, { id: 'c1', error: 'boom' }],
    bad: [{}, { id: '' }, { id: 'c1', error: 1 }, { id: 'x'.repeat(257) }, 'result'],
  },
  'audio.frame': {
    good: [{ codec: 'opus' }, { codec: 'opus', rtpTimestamp: 0, rtpSeq: 65535, durationMs: 20, late: true }, { codec: 'opus', durationMs: 2.5 }],
    bad: [
      {},
      { codec: 'pcm' },
      { codec: 'opus', rtpSeq: -1 },
      { codec: 'opus', rtpTimestamp: 1.5 },
      { codec: 'opus', durationMs: 0 },
      { codec: 'opus', durationMs: -20 },
      { codec: 'opus', late: 'yes' },
    ],
  },
  presence: {
    good: [{ state: 'online' }, { state: 's'.repeat(64), since: 5 }],
    bad: [{}, { state: '' }, { state: 's'.repeat(65) }, { state: 1 }],
  },
  control: {
    good: [{ action: 'interrupt' }, { action: 'a'.repeat(64), reason: 'barge-in' }],
    bad: [{}, { action: '' }, { action: 'a'.repeat(65) }, { action: null }],
  },
  custom: {
    good: [null, 0, -1.5, '', 'x', true, [], [1, 'a', null], { a: { b: [{}] } }],
    bad: [],
  },
};

describe('checkEventBody', () => {
  it('has cases for every kind, and only audio.frame is binary', () => {
    expect(Object.keys(CASES).sort()).toEqual([...EVENT_KINDS].sort());
    expect([...BINARY_KINDS]).toEqual(['audio.frame']);
  });

  describe.each(EVENT_KINDS)('%s', (kind) => {
    const wantsBin = BINARY_KINDS.has(kind);

    it.each(CASES[kind].good.map((d) => [JSON.stringify(d), d] as const))('accepts %s', (_s, data) => {
      expect(checkEventBody(bodyOf(kind, data, wantsBin ? BIN : undefined))).toBeUndefined();
    });

    if (CASES[kind].bad.length > 0) {
      it.each(CASES[kind].bad.map((d) => [JSON.stringify(d), d] as const))('rejects %s', (_s, data) => {
        const message = checkEventBody(bodyOf(kind, data, wantsBin ? BIN : undefined));
        expect(message).toBeTypeOf('string');
        expect(message!.startsWith(`${kind}: `)).toBe(true);
      });
    }

    it(wantsBin ? 'requires a binary payload' : 'refuses a binary payload', () => {
      const data = CASES[kind].good[0]!;
      const message = checkEventBody(bodyOf(kind, data, wantsBin ? undefined : BIN));
      expect(message).toBe(wantsBin ? `${kind} needs a binary payload` : `${kind} takes no binary payload`);
    });
  });

  it('accepts an empty binary payload for audio.frame (presence, not length, is checked)', () => {
    expect(checkEventBody({ kind: 'audio.frame', data: { codec: 'opus' }, bin: new Uint8Array(0) })).toBeUndefined();
  });
});

describe('IdSchema', () => {
  it('accepts 1–128 chars of [A-Za-z0-9._:@-]', () => {
    for (const id of ['a', 'A-z_0.9:@x', 'user@example.com', 'x'.repeat(128)]) expect(IdSchema.safeParse(id).success, id).toBe(true);
  });
  it('rejects empty, too long or other characters', () => {
    for (const id of ['', 'x'.repeat(129), 'has space', 'slash/y', 'ü', '*', 'a\nb']) expect(IdSchema.safeParse(id).success, id).toBe(false);
  });
});

describe('JsonSchema', () => {
  it('takes every JSON value and hands it back as it is', () => {
    const values: unknown[] = ['', 'x', 0, -1.5, 1e300, true, false, null, [], {}, [1, 'a', null, [{}]], { a: { b: [true] } }, Object.create(null) as object];
    for (const v of values) {
      const parsed = JsonSchema.safeParse(v);
      expect(parsed.success, JSON.stringify(v)).toBe(true);
      expect(parsed.data).toBe(v);
    }
  });

  it('refuses what JSON cannot carry', () => {
    const values: unknown[] = [undefined, NaN, Infinity, -Infinity, 1n, Symbol('s'), () => 1, new Date(0), new Map(), Uint8Array.of(1), { a: undefined }, [1, undefined], { f: () => 1 }, [, 1]]; // eslint-disable-line no-sparse-arrays
    for (const v of values) expect(JsonSchema.safeParse(v).success, String(v)).toBe(false);
  });

  it(`refuses nesting deeper than ${MAX_JSON_DEPTH}`, () => {
    const deep = (n: number): unknown => (n === 0 ? 1 : n % 2 ? [deep(n - 1)] : { k: deep(n - 1) });
    expect(isJsonWithin(deep(MAX_JSON_DEPTH))).toBe(true);
    expect(isJsonWithin(deep(MAX_JSON_DEPTH + 1))).toBe(false);
    expect(JsonSchema.safeParse(deep(MAX_JSON_DEPTH + 1)).success).toBe(false);
    expect(isJsonWithin(deep(3), 2)).toBe(false);
  });
});
