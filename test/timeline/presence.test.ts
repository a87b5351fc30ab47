import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Origin, PresenceChange } from '../../src/protocol/index.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { PresenceTracker, Timeline } from '../../src/timeline/index.js';

const phone: Origin = { participant: 'alice', device: 'phone', role: 'user' };
const laptop: Origin = { participant: 'alice', device: 'laptop', role: 'user' };

describe('PresenceTracker', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  async function setup(graceMs = 1000): Promise<{ tracker: PresenceTracker; changes: PresenceChange[]; timeline: Timeline }> {
    const timeline = new Timeline(new MemoryStore());
    await timeline.createSession({ id: 's' });
    const changes: PresenceChange[] = [];
    const tracker = new PresenceTracker(timeline, { graceMs, recordEvents: true, onChange: (_s, c) => changes.push(c) });
    return { tracker, changes, timeline };
  }

  const states = (changes: PresenceChange[]): string[] => changes.map((c) => `${c.device}:${c.previous}>${c.state}${c.online ? '+' : '-'}`);

  it('follows a device: connected, silent, alive, lost, gone after the grace period', async () => {
    vi.useFakeTimers();
    const { tracker, changes } = await setup();
    const c1 = {};
    tracker.attach('s', phone, c1);
    tracker.silent('s', phone, c1);
    tracker.alive('s', phone, c1);
    tracker.detach('s', phone, c1, false);
    expect(states(changes)).toEqual(['phone:new>connected+', 'phone:connected>reconnecting-', 'phone:reconnecting>connected+', 'phone:connected>reconnecting-']);
    vi.advanceTimersByTime(999);
    expect(changes).toHaveLength(4);
    vi.advanceTimersByTime(1);
    expect(states(changes).at(-1)).toBe('phone:reconnecting>gone-');
    expect(tracker.view('s')).toEqual([]);
  });

  it('a device back within the grace period returns to connected with no gone in between', async () => {
    vi.useFakeTimers();
    const { tracker, changes } = await setup();
    const c1 = {};
    const c2 = {};
    tracker.attach('s', phone, c1);
    tracker.detach('s', phone, c1, false);
    vi.advanceTimersByTime(500);
    tracker.attach('s', phone, c2);
    vi.advanceTimersByTime(5000);
    expect(states(changes)).toEqual(['phone:new>connected+', 'phone:connected>reconnecting-', 'phone:reconnecting>connected+']);
  });

  it('a goodbye is gone at once; the participant stays online while another device is connected', async () => {
    const { tracker, changes } = await setup();
    const a = {};
    const b = {};
    tracker.attach('s', phone, a);
    tracker.attach('s', laptop, b);
    tracker.detach('s', phone, a, true);
    expect(states(changes)).toEqual(['phone:new>connected+', 'laptop:new>connected+', 'phone:connected>gone+']);
    expect(tracker.view('s')).toEqual([{ participant: 'alice', role: 'user', online: true, devices: [{ device: 'laptop', state: 'connected' }] }]);
    tracker.detach('s', laptop, b, true);
    expect(changes.at(-1)?.online).toBe(false);
    tracker.close();
  });

  it('two connections of one device: connected while either is live', async () => {
    const { tracker, changes } = await setup();
    const a = {};
    const b = {};
    tracker.attach('s', phone, a);
    tracker.attach('s', phone, b);
    tracker.silent('s', phone, a);
    tracker.detach('s', phone, a, false);
    expect(states(changes)).toEqual(['phone:new>connected+']);
    tracker.close();
  });

  it('writes every change into the timeline, in order, from the relay', async () => {
    const { tracker, timeline } = await setup();
    const a = {};
    tracker.attach('s', phone, a);
    tracker.detach('s', phone, a, true);
    await new Promise((resolve) => setTimeout(resolve, 20));
    const reader = await timeline.reader('s', 0);
    const events = await reader.next(10);
    reader.close();
    expect(events.map((e) => [e.kind, e.from.role, (e.data as { state: string }).state])).toEqual([
      ['presence', 'system', 'connected'],
      ['presence', 'system', 'gone'],
    ]);
    tracker.close();
    await timeline.close();
  });

  it('leaves no timer behind after close()', async () => {
    vi.useFakeTimers();
    const timeline = new Timeline(new MemoryStore());
    await timeline.createSession({ id: 's' });
    // Without events, so the only timer is the tracker's own grace timer.
    const tracker = new PresenceTracker(timeline, { graceMs: 1000, recordEvents: false });
    const a = {};
    tracker.attach('s', phone, a);
    tracker.detach('s', phone, a, false);
    expect(vi.getTimerCount()).toBe(1);
    tracker.close();
    expect(vi.getTimerCount()).toBe(0);
  });
});
