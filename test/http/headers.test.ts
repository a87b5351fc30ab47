import { describe, expect, it } from 'vitest';
import { LifelineError } from '../../src/protocol/index.js';
import { httpOffset, mediaType, parseCount, parseHttpOffset, parseProducer, parseTimestamp } from '../../src/transport/http/headers.js';
import { bodyToEvents, modeOf, sseData, truncateEvent } from '../../src/transport/http/stream-format.js';

function code(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    return err instanceof LifelineError ? err.code : 'not a LifelineError';
  }
  return undefined;
}

describe('Durable Streams header parsing', () => {
  it('offsets: the timeline offsets, 0000000000000000 for the start, the reference server form as an alias', () => {
    expect(httpOffset(0)).toBe('0000000000000000');
    expect(httpOffset(42)).toBe('0000000000000042');
    expect(parseHttpOffset('-1')).toBe(0);
    expect(parseHttpOffset('0000000000000000')).toBe(0);
    expect(parseHttpOffset('0000000000000042')).toBe(42);
    expect(parseHttpOffset('0000000000000042_0000000000000000')).toBe(42);
    for (const bad of ['', '42', '0,1', '0 1', '../x', '0000000000000042_0000000000000001', '9999999999999999', 'now', '-2'])
      expect(code(() => parseHttpOffset(bad)), bad).toBe('BAD_REQUEST');
  });

  it('counts and timestamps are strict', () => {
    expect(parseCount('0', 'x')).toBe(0);
    expect(parseCount('3600', 'x')).toBe(3600);
    for (const bad of ['', '-1', '+60', '060', '60.5', '1e3', 'abc', ' 1']) expect(code(() => parseCount(bad, 'x')), bad).toBe('BAD_REQUEST');
    expect(parseTimestamp('2030-01-01T00:00:00Z', 'x')).toBe(Date.UTC(2030, 0, 1));
    expect(parseTimestamp('2030-01-01T01:00:00+01:00', 'x')).toBe(Date.UTC(2030, 0, 1));
    expect(code(() => parseTimestamp('not-a-timestamp', 'x'))).toBe('BAD_REQUEST');
    expect(code(() => parseTimestamp('2030-01-01', 'x'))).toBe('BAD_REQUEST');
  });

  it('producers: all three headers or none', () => {
    expect(parseProducer({})).toBeUndefined();
    expect(parseProducer({ 'producer-id': 'p', 'producer-epoch': '1', 'producer-seq': '0' })).toEqual({ id: 'p', epoch: 1, seq: 0 });
    expect(code(() => parseProducer({ 'producer-id': 'p' }))).toBe('BAD_REQUEST');
    expect(code(() => parseProducer({ 'producer-id': '', 'producer-epoch': '0', 'producer-seq': '0' }))).toBe('BAD_REQUEST');
    expect(code(() => parseProducer({ 'producer-id': 'p', 'producer-epoch': '0xyz', 'producer-seq': '0' }))).toBe('BAD_REQUEST');
  });

  it('content types decide the mode', () => {
    expect(mediaType('Application/JSON; charset=utf-8')).toBe('application/json');
    expect(mediaType('nonsense')).toBeUndefined();
    expect(modeOf('application/json; charset=utf-8')).toBe('json');
    expect(modeOf('text/plain')).toBe('bytes');
    expect(modeOf(null)).toBe('events');
  });
});

describe('Durable Streams bodies and events', () => {
  const ts = 1;
  const from = { participant: 'a', device: 'http', role: 'user' as const };

  it('JSON bodies: an array is flattened one level into one event; [] appends nothing', () => {
    expect(bodyToEvents('json', Buffer.from('[{"a":1},[2]]'))).toEqual([{ kind: 'custom', track: 'http', data: [{ a: 1 }, [2]] }]);
    expect(bodyToEvents('json', Buffer.from('42'))).toEqual([{ kind: 'custom', track: 'http', data: [42] }]);
    expect(code(() => bodyToEvents('json', Buffer.from('[]')))).toBe('BAD_REQUEST');
    expect(bodyToEvents('json', Buffer.from('[]'), true)).toEqual([]);
    expect(code(() => bodyToEvents('json', Buffer.from('{bad')))).toBe('BAD_REQUEST');
    // Nesting is bounded (MAX_JSON_DEPTH, 64, counting the array the messages are stored in).
    const nested = (n: number): Buffer => Buffer.from(`${'['.repeat(n)}${']'.repeat(n)}`);
    expect(bodyToEvents('json', nested(64))).toHaveLength(1);
    expect(code(() => bodyToEvents('json', nested(65)))).toBe('BAD_REQUEST');
    expect(code(() => bodyToEvents('json', nested(100_000)))).toBe('BAD_REQUEST');
    expect(code(() => bodyToEvents('events', Buffer.from(`{"kind":"custom","data":${nested(100_000).toString()}}`)))).toBe('BAD_REQUEST');
  });

  it('event bodies are validated like WebSocket appends; bin travels as base64', () => {
    const [e] = bodyToEvents('events', Buffer.from(JSON.stringify({ kind: 'audio.frame', data: { codec: 'opus' }, bin: Buffer.from([1, 2]).toString('base64') })));
    expect(e?.bin && [...e.bin]).toEqual([1, 2]);
    expect(code(() => bodyToEvents('events', Buffer.from('{"kind":"audio.frame","data":{"codec":"opus"}}')))).toBe('BAD_REQUEST');
    expect(code(() => bodyToEvents('events', Buffer.from('{"kind":"nope","data":1}')))).toBe('BAD_REQUEST');
  });

  it('a fork inside an append keeps the first bytes or messages', () => {
    const bytes = { offset: '0000000000000001', ts, from, kind: 'custom' as const, track: 'http', data: null, bin: new Uint8Array([1, 2, 3]) };
    expect([...(truncateEvent('bytes', bytes, 2).bin ?? [])]).toEqual([1, 2]);
    expect(code(() => truncateEvent('bytes', bytes, 4))).toBe('BAD_REQUEST');
    const json = { offset: '0000000000000001', ts, from, kind: 'custom' as const, track: 'http', data: [1, 2, 3] };
    expect(truncateEvent('json', json, 1).data).toEqual([1]);
    expect(code(() => truncateEvent('json', json, 4))).toBe('BAD_REQUEST');
  });

  it('SSE data: every line gets its own prefix, whatever the line ending', () => {
    expect(sseData('a\r\n\r\nevent: control\rb\nc')).toBe('data:a\ndata:\ndata:event: control\ndata:b\ndata:c');
  });
});
