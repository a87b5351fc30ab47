import { describe, expect, it, vi } from 'vitest';
import { Emitter } from '../../src/sdk/emitter.js';

interface Events {
  a: (n: number) => void;
  b: (s: string, t: boolean) => void;
}

describe('Emitter', () => {
  it('calls listeners of that name with the arguments, in subscription order', () => {
    const e = new Emitter<Events>();
    const calls: string[] = [];
    e.on('a', (n) => calls.push(`1:${n}`));
    e.on('a', (n) => calls.push(`2:${n}`));
    e.on('b', (s, t) => calls.push(`b:${s}:${t}`));
    e.emit('a', 7);
    e.emit('b', 'x', true);
    expect(calls).toEqual(['1:7', '2:7', 'b:x:true']);
  });

  it('on returns its unsubscribe; listenerCount follows', () => {
    const e = new Emitter<Events>();
    const l = vi.fn();
    const off = e.on('a', l);
    const offB = e.on('b', () => {});
    expect(e.listenerCount('a')).toBe(1);
    expect(e.listenerCount()).toBe(2);
    off();
    expect(e.listenerCount('a')).toBe(0);
    e.emit('a', 1);
    expect(l).not.toHaveBeenCalled();
    offB();
    expect(e.listenerCount()).toBe(0);
  });

  it('an unsubscribe only ever removes its own listener, however often or late it is called', () => {
    const e = new Emitter<Events>();
    const offOld = e.on('a', () => {});
    offOld();
    const kept = vi.fn();
    e.on('a', kept);
    offOld(); // a second call must not touch the listener added since
    expect(e.listenerCount('a')).toBe(1);
    e.emit('a', 1);
    expect(kept).toHaveBeenCalledWith(1);

    const offBeforeClear = e.on('b', () => {});
    e.clear();
    const after = vi.fn();
    e.on('b', after);
    offBeforeClear(); // from before clear(): must not remove a listener added after
    expect(e.listenerCount('b')).toBe(1);
    e.emit('b', 's', false);
    expect(after).toHaveBeenCalledTimes(1);
  });

  it('a listener that unsubscribes (or subscribes) while emitting does not disturb that emit', () => {
    const e = new Emitter<Events>();
    const calls: string[] = [];
    const off1 = e.on('a', () => {
      calls.push('1');
      off1();
      e.on('a', () => calls.push('late'));
    });
    e.on('a', () => calls.push('2'));
    e.emit('a', 0);
    expect(calls).toEqual(['1', '2']);
    e.emit('a', 0);
    expect(calls).toEqual(['1', '2', '2', 'late']);
  });

  it('clear removes every listener', () => {
    const e = new Emitter<Events>();
    const l = vi.fn();
    e.on('a', l);
    e.on('b', l);
    e.clear();
    expect(e.listenerCount()).toBe(0);
    e.emit('a', 1);
    expect(l).not.toHaveBeenCalled();
  });
});
