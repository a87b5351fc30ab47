import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { EVENT_KINDS, formatOffset } from '../../src/protocol/index.js';
import type { ClientFrame, TimelineEvent } from '../../src/protocol/index.js';
import { ReadPosition } from '../../src/sdk/read-position.js';

/** ReadPosition alone: what a client has read, acknowledged and asked the relay to send. */
describe('ReadPosition', () => {
  let sent: ClientFrame[];
  let link: boolean;
  let open: boolean;
  let full: boolean;
  const host = {
    send: (f: ClientFrame) => sent.push(f),
    hasLink: () => link,
    isOpen: () => open,
    isFull: () => full,
    window: () => 16,
  };
  const event = (seq: number): TimelineEvent => ({ offset: formatOffset(seq), ts: 0, from: { participant: 'p', device: 'd', role: 'agent' }, kind: 'text.delta', data: { text: `${seq}` } });

  beforeEach(() => {
    sent = [];
    link = true;
    open = true;
    full = false;
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('resumes where the app asked until the first welcome, then after the newest event delivered', () => {
    const r = new ReadPosition(host);
    expect(r.hello('now')).toEqual({ resume: 'now' });
    expect(r.hello(undefined)).toEqual({ resume: '-1' });
    r.start('now', formatOffset(7));
    expect(r.lastOffset).toBe(formatOffset(7));
    expect(r.accept(event(8))).toBe(true);
    expect(r.hello('now')).toEqual({ resume: formatOffset(8) });
  });

  it('drops duplicates, and everything between a subscribe and its answer', () => {
    const r = new ReadPosition(host);
    r.start('-1', '-1');
    r.welcomed(['subscribed']);
    expect([1, 2, 2, 1, 3].map((s) => r.accept(event(s)))).toEqual([true, true, false, false, true]);
    r.resumeFrom(formatOffset(1));
    expect(sent.at(-1)).toEqual({ type: 'subscribe', from: formatOffset(1) });
    // Sent before the relay moved the stream: 4 would otherwise pass for the moved stream's.
    expect(r.accept(event(4))).toBe(false);
    r.subscribed(formatOffset(1));
    expect([2, 3, 4].map((s) => r.accept(event(s)))).toEqual([true, true, true]);
  });

  it('takes the moved stream\'s start from the answer (resume to `now`)', () => {
    const r = new ReadPosition(host);
    r.start('-1', '-1');
    r.welcomed(['subscribed']);
    r.accept(event(2));
    r.resumeFrom('now');
    r.resumeFrom('now');
    r.subscribed(formatOffset(9));
    expect(r.accept(event(10))).toBe(false); // the second move is not answered yet
    r.subscribed(formatOffset(12));
    expect(r.lastOffset).toBe(formatOffset(12));
    expect(r.hello(undefined)).toEqual({ resume: formatOffset(12) });
    expect(r.accept(event(12))).toBe(false);
    expect(r.accept(event(13))).toBe(true);
  });

  it('with a relay that does not answer moves (welcome without the feature), waits for nothing', () => {
    const r = new ReadPosition(host);
    r.start('-1', '-1');
    r.welcomed(undefined);
    r.accept(event(5));
    r.resumeFrom(formatOffset(2));
    expect(sent.at(-1)).toEqual({ type: 'subscribe', from: formatOffset(2) });
    expect(r.accept(event(3))).toBe(true);
    // A move sent while the last relay answered, then a welcome from one that does not.
    r.welcomed(['subscribed']);
    r.resumeFrom(formatOffset(1));
    expect(r.accept(event(2))).toBe(false);
    r.hello(undefined);
    r.welcomed([]);
    expect(r.accept(event(2))).toBe(true);
  });

  it('a new link ends every unanswered move: its stream starts at the hello', () => {
    const r = new ReadPosition(host);
    r.start('-1', '-1');
    r.welcomed(['subscribed']);
    r.resumeFrom('-1');
    expect(r.accept(event(1))).toBe(false);
    expect(r.hello(undefined)).toEqual({ resume: '-1' });
    expect(r.accept(event(1))).toBe(true);
  });

  it('without a link, a move is not sent (no answer to wait for); the next hello carries it', () => {
    const r = new ReadPosition(host);
    r.start('-1', '-1');
    r.accept(event(5));
    link = false;
    r.resumeFrom(formatOffset(2));
    expect(sent).toEqual([]);
    expect(r.accept(event(3))).toBe(true);
    expect(() => r.resumeFrom('nope')).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
  });

  it('sends a new filter from the newest event delivered, at once or after the next welcome', () => {
    const r = new ReadPosition(host, { kinds: ['text.delta', 'text.delta'] });
    expect(r.kinds).toEqual(['text.delta']);
    expect(r.hello(undefined)).toEqual({ resume: '-1', kinds: ['text.delta'] });
    r.start('-1', '-1');
    r.accept(event(3));
    r.setKinds(undefined);
    expect(sent.at(-1)).toEqual({ type: 'subscribe', from: formatOffset(3), kinds: [...EVENT_KINDS] });
    open = false;
    r.setKinds(['control']);
    expect(sent).toHaveLength(1);
    open = true;
    r.welcomed(['subscribed']);
    expect(sent.at(-1)).toEqual({ type: 'subscribe', from: formatOffset(3), kinds: ['control'] });
    r.welcomed(['subscribed']);
    expect(sent).toHaveLength(2);
    // Refused here, never sent: a filter the relay would refuse leaves no move unanswered.
    for (const bad of [[], ['audio'], ['text.delta', 'nope']]) {
      expect(() => r.setKinds(bad as never)).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
      expect(() => new ReadPosition(host, { kinds: bad as never })).toThrow(expect.objectContaining({ code: 'BAD_REQUEST' }));
    }
    expect(sent).toHaveLength(2);
  });

  it('acknowledges a quarter window at once, less after the delay, nothing while the app is full', () => {
    const r = new ReadPosition(host, { ackDelayMs: 50 });
    r.start('-1', '-1');
    for (const s of [1, 2, 3]) r.accept(event(s));
    r.maybeAck();
    expect(sent).toEqual([]);
    r.accept(event(4));
    r.maybeAck();
    expect(sent).toEqual([{ type: 'ack', offset: formatOffset(4) }]);
    r.accept(event(5));
    r.maybeAck();
    vi.advanceTimersByTime(49);
    expect(sent).toHaveLength(1);
    vi.advanceTimersByTime(1);
    expect(sent.at(-1)).toEqual({ type: 'ack', offset: formatOffset(5) });
    full = true;
    for (const s of [6, 7, 8, 9, 10]) r.accept(event(s));
    r.maybeAck();
    vi.advanceTimersByTime(100);
    expect(sent).toHaveLength(2);
    // A lost link: the next one resumes after 10, which the relay then counts as acknowledged.
    r.linkLost(true);
    full = false;
    r.maybeAck();
    expect(sent).toHaveLength(2);
  });
});
