import { describe, expect, it } from 'vitest';
import { SocketCork } from '../../src/protocol/socket-cork.js';

function recorder(): { log: string[]; socket: { cork(): void; uncork(): void } } {
  const log: string[] = [];
  return { log, socket: { cork: () => log.push('cork'), uncork: () => log.push('uncork') } };
}

describe('SocketCork', () => {
  it('holds the writes of one callback and of every promise callback after it, then lets them go once', async () => {
    const { log, socket } = recorder();
    const cork = new SocketCork(socket, process.nextTick);
    const write = (what: string): void => {
      cork.hold();
      log.push(what);
    };
    write('a');
    void Promise.resolve()
      .then(() => write('b'))
      .then(() => write('c'));
    queueMicrotask(() => write('d'));
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(log).toEqual(['cork', 'a', 'b', 'd', 'c', 'uncork']);
  });

  it('lets go before the event loop takes the next I/O, and holds again for the next task', async () => {
    const { log, socket } = recorder();
    const cork = new SocketCork(socket, process.nextTick);
    cork.hold();
    log.push('first');
    // setImmediate runs after this task: the writes must have left by then.
    await new Promise<void>((resolve) => setImmediate(resolve));
    log.push('next task');
    cork.hold();
    cork.hold();
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(log).toEqual(['cork', 'first', 'uncork', 'next task', 'cork', 'uncork']);
  });
});
