/**
 * Runs `fn` after the current task, before timers (a MessageChannel message): the browser's
 * counterpart of Node's setImmediate, used to coalesce the frames sent in one turn.
 */
const channel = typeof MessageChannel === 'function' ? new MessageChannel() : undefined;
const queue: (() => void)[] = [];
if (channel) {
  channel.port1.onmessage = () => {
    const batch = queue.splice(0, queue.length);
    for (const fn of batch) fn();
  };
}

export function nextTurn(fn: () => void): void {
  if (!channel) {
    setTimeout(fn, 0);
    return;
  }
  queue.push(fn);
  if (queue.length === 1) channel.port2.postMessage(0);
}
