import { describe, expect, it } from 'vitest';
import { MESSAGE_BATCH, MessageBatcher, isMessageBatch, unpackMessages } from '../../src/werift/message-batch.js';

function batcher(maxBytes: number): { b: MessageBatcher; out: (string | Uint8Array)[]; turn: () => void } {
  const out: (string | Uint8Array)[] = [];
  let pending: (() => void) | undefined;
  const b = new MessageBatcher(maxBytes, (m) => out.push(m), (fn) => (pending = fn));
  return { b, out, turn: () => pending?.() };
}

describe('message batches (werift data channels)', () => {
  it('packs the text and binary messages of one turn into one container, in order, and unpacks them', () => {
    const { b, out, turn } = batcher(16 * 1024);
    const bin = new Uint8Array([1, 0, 0, 0, 2, 123, 125, 9, 9]);
    b.send('{"type":"pong","id":1}');
    b.send(bin);
    b.send('{"type":"ack","offset":"0000000000000007"}');
    expect(out).toHaveLength(0);
    turn();
    expect(out).toHaveLength(1);
    expect(isMessageBatch(out[0]!)).toBe(true);
    expect(unpackMessages(out[0] as Uint8Array)).toEqual(['{"type":"pong","id":1}', bin, '{"type":"ack","offset":"0000000000000007"}']);
  });

  it('sends a lone message as it is, and one larger than the limit alone after flushing', () => {
    const { b, out, turn } = batcher(64);
    b.send('{"a":1}');
    turn();
    expect(out).toEqual(['{"a":1}']);
    const big = new Uint8Array(100).fill(7);
    b.send('{"b":2}');
    b.send(big);
    expect(out.slice(1)).toEqual(['{"b":2}', big]);
    for (let i = 0; i < 10; i++) b.send(`{"i":${i}}`);
    turn();
    const rest = out.slice(3).flatMap((m) => (isMessageBatch(m) ? unpackMessages(m) : [m]));
    expect(rest).toEqual(Array.from({ length: 10 }, (_, i) => `{"i":${i}}`));
    expect(out.slice(3).every((m) => (typeof m === 'string' ? m.length : m.length) <= 64)).toBe(true);
  });

  it('refuses containers that do not parse', () => {
    expect(() => unpackMessages(new Uint8Array([MESSAGE_BATCH, 0, 0, 0]))).toThrow(/truncated/);
    expect(() => unpackMessages(new Uint8Array([MESSAGE_BATCH, 1, 0, 0, 0, 9, 1]))).toThrow(/overruns/);
    expect(() => unpackMessages(new Uint8Array([MESSAGE_BATCH, 7, 0, 0, 0, 0]))).toThrow(/unknown/);
    expect(() => unpackMessages(new Uint8Array([MESSAGE_BATCH, 0, 0, 0, 0, 1, 0xff]))).toThrow();
  });
});
