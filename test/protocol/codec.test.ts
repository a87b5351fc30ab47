import { describe, expect, it } from 'vitest';
import {
  BINARY_FORMAT,
  LifelineError,
  PROTOCOL_VERSION,
  decodeClientFrame,
  decodeServerFrame,
  encodeFrame,
  encodedSize,
  formatOffset,
  MAX_JSON_DEPTH,
} from '../../src/protocol/index.js';
import type { AnyFrame, ClientFrame, ErrorCode, ServerFrame } from '../../src/protocol/index.js';

function codeOf(fn: () => unknown): ErrorCode | undefined {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(LifelineError);
    return (err as LifelineError).code;
  }
  return undefined;
}

/** A binary message by hand: format byte, header length (overridable), header bytes, payload. */
function binary(header: string | Uint8Array, payload: Uint8Array, opts: { format?: number; length?: number } = {}): Uint8Array {
  const head = typeof header === 'string' ? new TextEncoder().encode(header) : header;
  const out = new Uint8Array(5 + head.length + payload.length);
  out[0] = opts.format ?? BINARY_FORMAT;
  new DataView(out.buffer).setUint32(1, opts.length ?? head.length, false);
  out.set(head, 5);
  out.set(payload, 5 + head.length);
  return out;
}

const bytes = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 31 + 7) & 0xff);
const producer = { id: 'agent-1', epoch: 2, seq: 17 };
const from = { participant: 'alice', device: 'phone-1', role: 'user' as const };

const CLIENT_TEXT: ClientFrame[] = [
  { type: 'hello', v: PROTOCOL_VERSION },
  { type: 'hello', v: PROTOCOL_VERSION, device: 'd.1', resume: '-1', producers: ['a', 'b'], window: 64 },
  { type: 'hello', v: PROTOCOL_VERSION, resume: 'now' },
  { type: 'append', producer, kind: 'text.delta', track: 'main', data: { text: 'héllo 👋', id: 'm1' } },
  { type: 'append', producer, kind: 'custom', data: [1, 'two', null, { three: true }] },
  { type: 'ack', offset: formatOffset(42) },
  { type: 'subscribe', from: formatOffset(7) },
  { type: 'ping', id: 3, t: 123.5 },
];

const SERVER_TEXT: ServerFrame[] = [
  {
    type: 'welcome',
    v: PROTOCOL_VERSION,
    session: 's1',
    participant: 'alice',
    device: 'phone-1',
    role: 'user',
    head: formatOffset(0),
    producers: [{ id: 'p', epoch: 0, seq: -1 }],
    heartbeatMs: 15000,
    window: 256,
    maxFrameBytes: 1 << 20,
  },
  { type: 'event', event: { offset: formatOffset(5), ts: 1700000000000, from, kind: 'text.done', data: { id: 'm1' } } },
  { type: 'appended', producer, offset: formatOffset(9), duplicate: true },
  { type: 'pong', id: 3 },
  { type: 'error', code: 'SEQUENCE_GAP', message: 'gap', producer, fatal: false },
];

describe('codec: text frames', () => {
  it.each(CLIENT_TEXT.map((f) => [f.type, f] as const))('client %s round-trips as text', (_t, frame) => {
    const encoded = encodeFrame(frame);
    expect(typeof encoded).toBe('string');
    expect(decodeClientFrame(encoded)).toEqual(frame);
  });

  it.each(SERVER_TEXT.map((f) => [f.type, f] as const))('server %s round-trips as text', (_t, frame) => {
    const encoded = encodeFrame(frame);
    expect(typeof encoded).toBe('string');
    expect(decodeServerFrame(encoded)).toEqual(frame);
  });

  it('rejects malformed JSON with BAD_FRAME', () => {
    for (const raw of ['', '{', 'not json', '{"type":"ping",}', "{'type':'ping'}"]) {
      expect(codeOf(() => decodeClientFrame(raw)), raw).toBe('BAD_FRAME');
    }
  });

  it('rejects JSON without a string type with BAD_FRAME', () => {
    for (const raw of ['null', '42', '"ping"', '[]', '{}', '{"type":42}', '{"type":null}', '[{"type":"ping"}]']) {
      expect(codeOf(() => decodeClientFrame(raw)), raw).toBe('BAD_FRAME');
      expect(codeOf(() => decodeServerFrame(raw)), raw).toBe('BAD_FRAME');
    }
  });

  it(`takes event data nested ${MAX_JSON_DEPTH} deep and refuses deeper with BAD_FRAME, not a stack overflow`, () => {
    const nested = (depth: number): string => `${'['.repeat(depth)}${']'.repeat(depth)}`;
    const append = (data: string): string => `{"type":"append","producer":{"id":"p","epoch":1,"seq":0},"kind":"custom","data":${data}}`;
    const event = (data: string): string =>
      `{"type":"event","event":{"offset":"${formatOffset(1)}","ts":1,"from":{"participant":"a","device":"d","role":"agent"},"kind":"custom","data":${data}}}`;
    expect(decodeClientFrame(append(nested(MAX_JSON_DEPTH)))).toMatchObject({ type: 'append' });
    expect(decodeServerFrame(event(nested(MAX_JSON_DEPTH)))).toMatchObject({ type: 'event' });
    for (const depth of [MAX_JSON_DEPTH + 1, 100_000]) {
      const deepObject = `${'{"a":'.repeat(depth)}1${'}'.repeat(depth)}`;
      for (const data of [nested(depth), deepObject]) {
        expect(codeOf(() => decodeClientFrame(append(data)))).toBe('BAD_FRAME');
        expect(codeOf(() => decodeServerFrame(event(data)))).toBe('BAD_FRAME');
      }
    }
    expect(codeOf(() => decodeClientFrame('{"type":"append","producer":{"id":"p","epoch":1,"seq":0},"kind":"custom"}'))).toBe('BAD_FRAME');
  });

  it('hands back event data as parsed, without copying it', () => {
    const frame = decodeClientFrame('{"type":"append","producer":{"id":"p","epoch":1,"seq":0},"kind":"text.delta","data":{"text":"hi","n":[1,{"x":null}]}}');
    expect(frame).toMatchObject({ data: { text: 'hi', n: [1, { x: null }] } });
  });

  it('rejects unknown types with UNKNOWN_FRAME, including the other side’s types', () => {
    expect(codeOf(() => decodeClientFrame('{"type":"nope"}'))).toBe('UNKNOWN_FRAME');
    expect(codeOf(() => decodeClientFrame('{"type":"welcome"}'))).toBe('UNKNOWN_FRAME');
    expect(codeOf(() => decodeClientFrame('{"type":"__proto__"}'))).toBe('UNKNOWN_FRAME');
    expect(codeOf(() => decodeServerFrame('{"type":"hello","v":1}'))).toBe('UNKNOWN_FRAME');
    let thrown: unknown;
    try {
      decodeClientFrame(JSON.stringify({ type: 'x'.repeat(10_000) }));
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(LifelineError);
    expect((thrown as LifelineError).code).toBe('UNKNOWN_FRAME');
    expect((thrown as LifelineError).message.length).toBeLessThan(100);
  });

  it('rejects schema failures with BAD_FRAME', () => {
    const bad: unknown[] = [
      { type: 'hello', v: 2 },
      { type: 'hello', v: 1, device: 'has space' },
      { type: 'hello', v: 1, resume: 'later' },
      { type: 'hello', v: 1, window: 0 },
      { type: 'hello', v: 1, producers: Array.from({ length: 17 }, (_, i) => `p${i}`) },
      { type: 'append', kind: 'text.delta', data: { text: 'x' } },
      { type: 'append', producer: { id: 'p', epoch: 0, seq: -1 }, kind: 'text.delta', data: {} },
      { type: 'append', producer: { id: 'p', epoch: 0, seq: 1.5 }, kind: 'text.delta', data: {} },
      { type: 'append', producer, kind: 'video.frame', data: {} },
      { type: 'append', producer, kind: 'custom' },
      { type: 'append', producer, kind: 'custom', data: 1, track: '' },
      { type: 'append', producer, kind: 'audio.frame', data: { codec: 'opus' }, bin: { 0: 1 } },
      { type: 'ack', offset: '5' },
      { type: 'ack', offset: 'now' },
      { type: 'subscribe' },
      { type: 'ping', id: -1 },
    ];
    for (const frame of bad) expect(codeOf(() => decodeClientFrame(JSON.stringify(frame))), JSON.stringify(frame)).toBe('BAD_FRAME');
    const badServer: unknown[] = [
      { type: 'error', code: 'NOT_A_CODE', message: 'x', fatal: true },
      { type: 'appended', producer, offset: formatOffset(1) },
      { type: 'event', event: { offset: 'now', ts: 1, from, kind: 'custom', data: 1 } },
      { type: 'event', event: { offset: formatOffset(1), ts: 1, from: { ...from, role: 'admin' }, kind: 'custom', data: 1 } },
    ];
    for (const frame of badServer) expect(codeOf(() => decodeServerFrame(JSON.stringify(frame))), JSON.stringify(frame)).toBe('BAD_FRAME');
  });
});

describe('codec: binary frames', () => {
  const audioAppend: ClientFrame = { type: 'append', producer, kind: 'audio.frame', track: 'mic', data: { codec: 'opus', rtpSeq: 9 }, bin: bytes(960) };
  const audioEvent: ServerFrame = {
    type: 'event',
    event: { offset: formatOffset(12), ts: 1700000000001, from, kind: 'audio.frame', track: 'mic', data: { codec: 'opus' }, bin: bytes(300) },
  };

  it('encodes a binary append as format byte + big-endian header length + JSON header + payload', () => {
    const encoded = encodeFrame(audioAppend);
    expect(encoded).toBeInstanceOf(Uint8Array);
    const raw = encoded as Uint8Array;
    expect(raw[0]).toBe(BINARY_FORMAT);
    const headerLength = new DataView(raw.buffer, raw.byteOffset).getUint32(1, false);
    const header = JSON.parse(new TextDecoder().decode(raw.subarray(5, 5 + headerLength))) as Record<string, unknown>;
    expect(header).not.toHaveProperty('bin');
    expect(header).toMatchObject({ type: 'append', kind: 'audio.frame', producer });
    expect(raw.subarray(5 + headerLength)).toEqual(bytes(960));
    expect(encodedSize(raw)).toBe(raw.length);
  });

  it('round-trips append with bin byte-exact', () => {
    const decoded = decodeClientFrame(encodeFrame(audioAppend));
    expect(decoded).toEqual(audioAppend);
    expect(decoded.type === 'append' && decoded.bin).toEqual(bytes(960));
  });

  it('round-trips event with bin byte-exact', () => {
    const decoded = decodeServerFrame(encodeFrame(audioEvent));
    expect(decoded).toEqual(audioEvent);
  });

  it('round-trips every byte value and an empty payload', () => {
    const all = Uint8Array.from({ length: 256 }, (_, i) => i);
    for (const bin of [all, new Uint8Array(0), bytes(1 << 16)]) {
      const frame: ClientFrame = { type: 'append', producer, kind: 'audio.frame', data: { codec: 'opus' }, bin };
      const encoded = encodeFrame(frame);
      expect(encoded).toBeInstanceOf(Uint8Array);
      const decoded = decodeClientFrame(encoded);
      expect(decoded.type === 'append' && decoded.bin).toEqual(bin);
    }
  });

  it('decodes a view into a larger buffer (non-zero byteOffset)', () => {
    const encoded = encodeFrame(audioAppend) as Uint8Array;
    const big = new Uint8Array(encoded.length + 13);
    big.fill(0xee);
    big.set(encoded, 7);
    expect(decodeClientFrame(big.subarray(7, 7 + encoded.length))).toEqual(audioAppend);
  });

  it('copies the payload out of the receive buffer, also for a Node Buffer', () => {
    for (const wrap of [(u: Uint8Array) => new Uint8Array(u), (u: Uint8Array) => Buffer.from(u)]) {
      const raw = wrap(encodeFrame(audioAppend) as Uint8Array);
      const decoded = decodeClientFrame(raw);
      raw.fill(0);
      expect(decoded.type === 'append' && decoded.bin).toEqual(bytes(960));
      expect(decoded.type === 'append' && decoded.bin?.buffer).not.toBe(raw.buffer);
    }
  });

  it('rejects a bad binary header with BAD_FRAME', () => {
    const header = JSON.stringify({ type: 'append', producer, kind: 'audio.frame', data: { codec: 'opus' } });
    const cases: [string, Uint8Array][] = [
      ['empty', new Uint8Array(0)],
      ['shorter than the prefix', Uint8Array.of(BINARY_FORMAT, 0, 0, 0)],
      ['wrong format byte', binary(header, bytes(4), { format: 0x02 })],
      ['text bytes sent as binary', new TextEncoder().encode(header)],
      ['header overruns the message', binary(header, bytes(4), { length: header.length + 5 })],
      ['header length far beyond the message', binary(header, bytes(4), { length: 0xffffffff })],
      ['header is not JSON', binary('{"type":"append",', bytes(4))],
      ['header is not UTF-8', binary(Uint8Array.of(0x7b, 0xff, 0xfe, 0x7d), bytes(4))],
      ['empty header', binary('', bytes(4))],
      ['header fails the schema', binary(JSON.stringify({ type: 'append', kind: 'audio.frame', data: {} }), bytes(4))],
    ];
    for (const [name, raw] of cases) expect(codeOf(() => decodeClientFrame(raw)), name).toBe('BAD_FRAME');
  });

  it('rejects bin on a frame that takes none with BAD_FRAME', () => {
    const client = [{ type: 'hello', v: 1 }, { type: 'ack', offset: '-1' }, { type: 'ping', id: 1 }, { type: 'nope' }, null, 5, 'append'];
    for (const head of client) expect(codeOf(() => decodeClientFrame(binary(JSON.stringify(head), bytes(3)))), JSON.stringify(head)).toBe('BAD_FRAME');
    const server = [{ type: 'pong', id: 1 }, { type: 'appended', producer, offset: '-1', duplicate: false }, { type: 'event' }, { type: 'event', event: 'x' }];
    for (const head of server) expect(codeOf(() => decodeServerFrame(binary(JSON.stringify(head), bytes(3)))), JSON.stringify(head)).toBe('BAD_FRAME');
  });
});

describe('encodedSize', () => {
  it('counts UTF-8 bytes of text and the length of binary', () => {
    expect(encodedSize('abc')).toBe(3);
    expect(encodedSize('é')).toBe(2);
    expect(encodedSize('👋')).toBe(4);
    expect(encodedSize(new Uint8Array(17))).toBe(17);
    const frame: AnyFrame = { type: 'ping', id: 1 };
    const encoded = encodeFrame(frame);
    expect(encodedSize(encoded)).toBe(Buffer.byteLength(encoded as string, 'utf8'));
  });
});
