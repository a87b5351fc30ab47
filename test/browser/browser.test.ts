/**
 * The browser client, the demo page and the inspector in real headless Chromium (playwright-core,
 * Debian's /usr/bin/chromium) against an in-process relay on 127.0.0.1 whose WebRTC side offers
 * only 127.0.0.1 candidates, with the example echo agent as its worker.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseOffset } from '../../src/protocol/index.js';
import { LifelineSession } from '../../src/sdk/index.js';
import type { TimelineEvent } from '../../src/sdk/index.js';
import { PcmDecoder } from '../../src/sdk/audio/opus.js';
import { AudioReceiver } from '../../src/sdk/audio/receiver.js';
import { webrtcTransport } from '../../src/sdk/node-webrtc.js';
import { REPO_ROOT } from '../support/relay-process.js';
import { waitFor } from '../support/wait.js';
import { buildBrowserBundle, launchChromium, startDemoRelay } from './chromium.js';
import type { Chromium, DemoRelay } from './chromium.js';

interface PageChange {
  state: string;
  mode?: string;
  downMs?: number;
  reason?: string;
}

let relay: DemoRelay;
let browser: Chromium;
const pages: Page[] = [];
/** Heal times seen by the pages, printed at the end (figures, not assertions). */
const heals: { test: string; state: string; downMs: number }[] = [];

async function openDemo(hash = ''): Promise<Page> {
  const page = await browser.tab();
  pages.push(page);
  await page.goto(`${relay.url}/${hash}`);
  await page.waitForFunction(() => {
    const d = (window as unknown as { demo?: { ready: boolean; error?: string } }).demo;
    return d?.ready === true || d?.error !== undefined;
  }, null, { timeout: 20_000 });
  const error = await page.evaluate(() => (window as unknown as { demo: { error?: string } }).demo.error);
  expect(error).toBeUndefined();
  return page;
}

function tokens(n: number): string {
  return Array.from({ length: n }, (_, i) => `t${i + 1} `).join('');
}

async function say(page: Page, text: string): Promise<void> {
  await page.fill('#text', text);
  await page.click('#composer button[type=submit]');
}

/** Waits until the page shows the finished reply to `/stream n`. */
async function replyDone(page: Page, n: number): Promise<string> {
  const handle = await page.waitForFunction(
    (last) => {
      for (const b of Array.from(document.querySelectorAll('.msg.agent'))) {
        const text = b.querySelector('.body')?.textContent ?? '';
        if (!b.classList.contains('streaming') && text.endsWith(last)) return text;
      }
      return false;
    },
    `t${n} `,
    { timeout: 60_000 },
  );
  return (await handle.jsonValue()) as string;
}

async function replyLength(page: Page): Promise<number> {
  return page.evaluate(() => {
    const bodies = Array.from(document.querySelectorAll('.msg.agent .body'));
    return (bodies[bodies.length - 1]?.textContent ?? '').length;
  });
}

async function shown(page: Page): Promise<string[]> {
  return page.evaluate(() => [...(window as unknown as { demo: { shown: string[] } }).demo.shown]);
}

async function changes(page: Page): Promise<PageChange[]> {
  return page.evaluate(() => (window as unknown as { demo: { changes: PageChange[] } }).demo.changes.map((c) => ({ ...c })));
}

async function sessionOf(page: Page): Promise<{ id: string; participant: string; token: string }> {
  return page.evaluate(() => {
    const c = (window as unknown as { demo: { client: { session: { id: string }; participant: string } } }).demo.client;
    return { id: c.session.id, participant: c.participant, token: new URLSearchParams(location.hash.slice(1)).get('token') ?? '' };
  });
}

const seq = (offset: string): number => parseOffset(offset)!;

/**
 * The page showed exactly the relay's events up to its newest one: every offset once, in order,
 * none missing. `audio`: whether audio frames count (a reload re-shows kept events, which leave
 * audio out).
 */
async function expectExactlyTheTimeline(page: Page, sessionId: string, audio = true): Promise<void> {
  const seen = await shown(page);
  expect(seen.length).toBeGreaterThan(0);
  const last = seq(seen[seen.length - 1]!);
  const all = (await relay.events(sessionId)).filter((e) => seq(e.offset) <= last);
  const want = (audio ? all : all.filter((e) => e.kind !== 'audio.frame')).map((e) => e.offset);
  const got = audio ? seen : seen.filter((o) => all[seq(o) - 1]?.kind !== 'audio.frame');
  expect(new Set(got).size).toBe(got.length);
  expect(got).toEqual(want);
}

beforeAll(async () => {
  buildBrowserBundle();
  relay = await startDemoRelay();
  browser = await launchChromium();
});

// Each test's tabs are closed after it: open tabs keep streaming their microphones.
afterEach(async () => {
  for (const p of pages.splice(0)) await p.close().catch(() => undefined);
});

afterAll(async () => {
  for (const p of pages.splice(0)) await p.close().catch(() => undefined);
  await browser?.close();
  await relay?.close();
  if (heals.length > 0) process.stderr.write(`browser heals: ${JSON.stringify(heals)}\n`);
});

describe('browser client in headless Chromium', () => {
  it('connects over WebRTC with 127.0.0.1 candidates only and receives a token stream', async () => {
    const page = await openDemo();
    const info = await page.evaluate(() => {
      const c = (window as unknown as { demo: { client: { session: { transport: string }; peerConnection?: RTCPeerConnection } } }).demo.client;
      const remote = c.peerConnection?.remoteDescription?.sdp ?? '';
      return { transport: c.session.transport, candidates: remote.split('\r\n').filter((l) => l.startsWith('a=candidate:')) };
    });
    expect(info.transport).toBe('webrtc');
    expect(info.candidates.length).toBeGreaterThan(0);
    for (const c of info.candidates) expect(c.split(' ')[4]).toBe('127.0.0.1');
    await say(page, '/stream 120');
    expect(await replyDone(page, 120)).toBe(tokens(120));
    // The fake tool call and its result are shown too.
    await page.waitForSelector('.tool .res:not(:empty)');
    const { id } = await sessionOf(page);
    await expectExactlyTheTimeline(page, id);
    expect(browser.errors).toEqual([]);
  });

  it('falls back to WebSocket where WebRTC is not used, with the same stream', async () => {
    const page = await openDemo('#transport=ws&mic=0');
    // A fresh demo session (the fragment carries no token): the page asks for one, then connects.
    expect(await page.evaluate(() => (window as unknown as { demo: { client: { session: { transport: string } } } }).demo.client.session.transport)).toBe('ws');
    await say(page, '/stream 80');
    expect(await replyDone(page, 80)).toBe(tokens(80));
    await page.click('#drop'); // on WebSocket: a reconnect that resumes from the offset
    await page.waitForFunction(() => (window as unknown as { demo: { changes: { state: string }[] } }).demo.changes.some((c) => c.state === 'resumed'), null, { timeout: 15_000 });
    await say(page, '/stream 30');
    expect(await replyDone(page, 30)).toBe(tokens(30));
    const { id } = await sessionOf(page);
    await expectExactlyTheTimeline(page, id);
  });

  it('an ICE restart started by the page loses and repeats nothing', async () => {
    const page = await openDemo();
    await say(page, '/stream 400');
    await page.waitForFunction(() => ((document.querySelector('.msg.agent .body')?.textContent ?? '').match(/t\d+ /g)?.length ?? 0) >= 30, null, { timeout: 20_000 });
    await page.click('#restart');
    await page.waitForFunction(() => (window as unknown as { demo: { changes: { state: string }[] } }).demo.changes.some((c) => c.state === 'restarted'), null, { timeout: 10_000 });
    expect(await replyLength(page)).toBeLessThan(tokens(400).length); // the restart happened mid-stream
    expect(await replyDone(page, 400)).toBe(tokens(400));
    const { id, participant } = await sessionOf(page);
    const peer = [...relay.relay.rtc.peers.values()].find((p) => p.sessionId === id && p.claims.participant === participant);
    await waitFor(() => peer!.restarts >= 1, { timeoutMs: 10_000, message: 'the relay answered the ICE restart' });
    const cs = await changes(page);
    expect(cs.find((c) => c.state === 'reconnecting')?.mode).toBe('restart');
    for (const c of cs) if (c.state === 'restarted') heals.push({ test: 'page restart', state: c.state, downMs: c.downMs! });
    await expectExactlyTheTimeline(page, id);
  });

  it('an ICE restart started by the relay loses and repeats nothing', async () => {
    const page = await openDemo();
    const { id, participant } = await sessionOf(page);
    await say(page, '/stream 400');
    await page.waitForFunction(() => ((document.querySelector('.msg.agent .body')?.textContent ?? '').match(/t\d+ /g)?.length ?? 0) >= 30, null, { timeout: 20_000 });
    const peer = [...relay.relay.rtc.peers.values()].find((p) => p.sessionId === id && p.claims.participant === participant);
    expect(peer).toBeDefined();
    const before = peer!.restarts;
    // The client takes the relay's request unless a restart of its own is under way (a loaded
    // machine can miss heartbeats): ask again until the page reports one started at our request.
    const asked = async (): Promise<boolean> => (await changes(page)).some((c) => c.state === 'reconnecting' && (c.reason ?? '').includes('relay asked'));
    for (let i = 0; i < 5 && !(await asked()); i++) {
      peer!.requestRestart('test: relay path changed');
      await waitFor(asked, { timeoutMs: 2000 }).catch(() => undefined);
    }
    expect(await asked()).toBe(true);
    await page.waitForFunction(() => (window as unknown as { demo: { changes: { state: string }[] } }).demo.changes.some((c) => c.state === 'restarted'), null, { timeout: 10_000 });
    // The restart really ran: the page's new offer reached the relay (PATCH) and was answered.
    await waitFor(() => peer!.restarts > before, { timeoutMs: 10_000, message: 'the relay answered the ICE restart' });
    const progress = setInterval(() => {
      void replyLength(page).then(
        (n) => process.stderr.write(`relay-restart test: reply ${n} chars, ice ${peer!.pc.iceTransports[0]?.state}, dc ${peer!.dc.readyState}, restarts ${peer!.restarts}\n`),
        () => undefined,
      );
    }, 2000);
    try {
      expect(await replyDone(page, 400)).toBe(tokens(400));
    } finally {
      clearInterval(progress);
    }
    const cs = await changes(page);
    for (const c of cs) if (c.state === 'restarted') heals.push({ test: 'relay restart', state: c.state, downMs: c.downMs! });
    await expectExactlyTheTimeline(page, id);
  });

  it('"drop network" heals with a new connection that resumes from the offset', async () => {
    const page = await openDemo();
    const { id } = await sessionOf(page);
    await say(page, '/stream 400');
    await page.waitForFunction(() => ((document.querySelector('.msg.agent .body')?.textContent ?? '').match(/t\d+ /g)?.length ?? 0) >= 30, null, { timeout: 20_000 });
    await page.click('#drop');
    await page.waitForFunction(() => (window as unknown as { demo: { changes: { state: string }[] } }).demo.changes.some((c) => c.state === 'resumed'), null, { timeout: 15_000 });
    expect(await replyDone(page, 400)).toBe(tokens(400));
    for (const c of await changes(page)) if (c.state === 'resumed') heals.push({ test: 'drop network', state: c.state, downMs: c.downMs! });
    await expectExactlyTheTimeline(page, id);
  });

  it('a reload resumes from the stored offset: no token missing, none shown twice', async () => {
    const page = await openDemo();
    const { id } = await sessionOf(page);
    const deviceBefore = await page.evaluate(() => (window as unknown as { demo: { client: { session: { device: string } } } }).demo.client.session.device);
    await say(page, '/stream 400');
    await page.waitForFunction(() => ((document.querySelector('.msg.agent .body')?.textContent ?? '').match(/t\d+ /g)?.length ?? 0) >= 60, null, { timeout: 20_000 });
    await page.reload();
    await page.waitForFunction(() => (window as unknown as { demo?: { ready: boolean } }).demo?.ready === true, null, { timeout: 20_000 });
    const after = await page.evaluate(() => {
      const d = (window as unknown as { demo: { client: { session: { device: string }; history: unknown[] }; shown: string[] } }).demo;
      return { device: d.client.session.device, kept: d.client.history.length, shownAtStart: d.shown.length };
    });
    expect(after.device).toBe(deviceBefore); // the same tab is the same device
    expect(after.kept).toBeGreaterThan(60);
    expect(await replyDone(page, 400)).toBe(tokens(400));
    // Exactly one agent reply bubble, whole: no token missing, none twice.
    expect(await page.locator('.msg.agent').count()).toBe(1);
    await expectExactlyTheTimeline(page, id, false);
  });

  it('a message sent just before a reload is sent again after it, once', async () => {
    const page = await openDemo();
    const { id } = await sessionOf(page);
    const text = 'kept across the reload';
    // Appends do not leave the tab from here on: the message stays unacknowledged, as when the
    // reload comes before the network has carried it.
    await page.evaluate(() => {
      for (const proto of [RTCDataChannel.prototype, WebSocket.prototype] as { send(data: unknown): void }[]) {
        const send = proto.send;
        proto.send = function (this: unknown, data: unknown) {
          if (typeof data === 'string' && data.includes('"type":"append"')) return;
          send.call(this, data);
        };
      }
    });
    await say(page, text);
    await page.waitForFunction(
      (t) => Object.keys(sessionStorage).some((k) => k.startsWith('lifeline:') && (sessionStorage.getItem(k) ?? '').includes(t)),
      text,
      { timeout: 10_000 },
    );
    expect((await relay.events(id)).some((e) => (e.data as { text?: string }).text === text)).toBe(false);
    await page.reload();
    await page.waitForFunction(() => (window as unknown as { demo?: { ready: boolean } }).demo?.ready === true, null, { timeout: 20_000 });
    const mine = async (): Promise<TimelineEvent[]> => (await relay.events(id)).filter((e) => e.kind === 'text.done' && (e.data as { text?: string }).text === text);
    await waitFor(async () => (await mine()).length > 0, { timeoutMs: 20_000, message: 'the message after the reload' });
    // The echo agent answers it, and the relay has it once.
    await page.waitForFunction((t) => Array.from(document.querySelectorAll('.msg.agent .body')).some((b) => (b.textContent ?? '').includes(t)), text, { timeout: 20_000 });
    expect(await mine()).toHaveLength(1);
    await expectExactlyTheTimeline(page, id, false);
  });

  it('two tabs of one user show the full, identical timeline', async () => {
    const a = await openDemo();
    const { id, token } = await sessionOf(a);
    await say(a, 'hello from tab one');
    await a.waitForFunction(() => Array.from(document.querySelectorAll('.msg.agent')).some((b) => !b.classList.contains('streaming')), null, { timeout: 20_000 });
    const b = await openDemo(`#token=${encodeURIComponent(token)}&mic=0`);
    await say(b, '/stream 150');
    await replyDone(a, 150);
    await replyDone(b, 150);
    const [devA, devB] = await Promise.all([a, b].map((p) => p.evaluate(() => (window as unknown as { demo: { client: { session: { device: string } } } }).demo.client.session.device)));
    expect(devA).not.toBe(devB);
    // Both have seen everything up to a common offset: compare their timelines up to there.
    const upTo = async (): Promise<[string[], string[]]> => {
      const [sa, sb] = await Promise.all([shown(a), shown(b)]);
      const last = Math.min(seq(sa[sa.length - 1]!), seq(sb[sb.length - 1]!));
      return [sa.filter((o) => seq(o) <= last), sb.filter((o) => seq(o) <= last)];
    };
    const [sa, sb] = await upTo();
    expect(sa).toEqual(sb);
    await expectExactlyTheTimeline(a, id);
    await expectExactlyTheTimeline(b, id);
    const chat = async (p: Page): Promise<string[]> => p.$$eval('.msg .body, .tool', (els) => els.map((e) => e.textContent ?? ''));
    expect(await chat(b)).toEqual(await chat(a));
    // Presence shows both devices of the one user.
    await waitFor(async () => (await a.$$eval('.person .device.connected', (els) => els.length)) >= 3, { timeoutMs: 10_000, message: 'both tabs and the agent connected' });
  });

  it("the fake microphone's audio reaches a Node agent as decoded frames with energy", async () => {
    const page = await openDemo();
    const { id } = await sessionOf(page);
    const token = await relay.token(id, 'listener', 'agent');
    const agent = await LifelineSession.connect({ url: relay.url, token, transport: webrtcTransport({ iceHosts: ['127.0.0.1'] }), resume: 'now' });
    const decoder = await PcmDecoder.create(48000);
    const live = new AudioReceiver(agent, { from: 'user', source: 'rtp' });
    const loud: number[] = [];
    let frames = 0;
    live.onFrame((f) => {
      frames++;
      const pcm = decoder.decode(f.payload);
      let sum = 0;
      for (const v of pcm) sum += (v / 32768) ** 2;
      const rms = pcm.length > 0 ? Math.sqrt(sum / pcm.length) : 0;
      if (rms > 0.01) loud.push(rms);
    });
    try {
      await waitFor(() => loud.length >= 25, { timeoutMs: 15_000, message: `25 loud frames from the fake microphone (got ${frames} frames)` });
      expect(Math.max(...loud)).toBeGreaterThan(0.05);
      // And the same microphone is in the timeline as audio.frame events from the user.
      const recorded = (await relay.events(id)).filter((e: TimelineEvent) => e.kind === 'audio.frame' && e.from.role === 'user');
      expect(recorded.length).toBeGreaterThan(0);
    } finally {
      live.close();
      decoder.close();
      agent.close();
    }
  });

  it("the echo agent says the user's audio back: its speech is recorded and plays in the page", async () => {
    const page = await openDemo();
    const { id } = await sessionOf(page);
    await waitFor(async () => (await relay.events(id)).some((e) => e.kind === 'audio.frame' && e.from.role === 'agent' && e.track === 'speech'), {
      timeoutMs: 30_000,
      message: 'agent speech frames in the timeline',
    });
    await page.waitForFunction(() => (window as unknown as { demo: { client: { audioState: string } } }).demo.client.audioState === 'playing', null, { timeout: 20_000 });
  });

  it('screenshots of the demo and the inspector (docs/)', async () => {
    const page = await openDemo();
    const { id, token } = await sessionOf(page);
    await say(page, 'Hello agent, can you hear me?');
    await page.waitForFunction(() => Array.from(document.querySelectorAll('.msg.agent')).some((b) => !b.classList.contains('streaming')), null, { timeout: 20_000 });
    // Let the agent say the microphone's beeps back, so both pictures show its speech too.
    await waitFor(async () => (await relay.events(id)).filter((e) => e.kind === 'audio.frame' && e.from.role === 'agent').length > 20, {
      timeoutMs: 30_000,
      message: 'agent speech frames in the timeline',
    });
    await say(page, '/stream 40');
    await page.waitForFunction(() => ((document.querySelectorAll('.msg.agent .body')[1]?.textContent ?? '').match(/t\d+ /g)?.length ?? 0) >= 10, null, { timeout: 20_000 });
    await page.click('#restart');
    await replyDone(page, 40);
    await page.click('#drop');
    await page.waitForFunction(() => (window as unknown as { demo: { changes: { state: string }[] } }).demo.changes.some((c) => c.state === 'resumed'), null, { timeout: 15_000 });
    await say(page, 'Still there after the drop?');
    await page.waitForFunction(() => Array.from(document.querySelectorAll('.msg.agent')).filter((b) => !b.classList.contains('streaming')).length >= 3, null, { timeout: 20_000 });
    const docs = join(REPO_ROOT, 'docs');
    mkdirSync(docs, { recursive: true });
    await page.screenshot({ path: join(docs, 'browser-demo.png') });

    const inspector = await browser.tab();
    pages.push(inspector);
    await inspector.goto(`${relay.url}/inspect/${encodeURIComponent(id)}#token=${encodeURIComponent(token)}`);
    await inspector.waitForFunction(() => {
      const s = (window as unknown as { inspector?: { events: unknown[]; live: boolean } }).inspector;
      return s?.live === true && s.events.length > 0;
    }, null, { timeout: 20_000 });
    const seen = await inspector.evaluate(() => (window as unknown as { inspector: { events: { offset: string; energyDb?: number; kind: string }[] } }).inspector.events);
    const all = await relay.events(id);
    // The inspector read the timeline in order, without a gap (up to where it is).
    expect(seen.map((e) => e.offset)).toEqual(all.slice(0, seen.length).map((e) => e.offset));
    // Audio frames arrive with their level: the fake microphone's beeps are well above silence.
    const levels = seen.filter((e) => e.kind === 'audio.frame').map((e) => e.energyDb ?? -100);
    expect(levels.length).toBeGreaterThan(0);
    expect(Math.max(...levels)).toBeGreaterThan(-40);
    // Hover the agent's first message to show the tooltip in the picture. The inspector is live:
    // events still arriving (the microphone streams on) may redraw the canvas between reading a
    // message's place and moving the mouse there, so read and hover again until the tip shows.
    await inspector.click('#fit');
    const box = (await inspector.locator('#canvas').boundingBox())!;
    await waitFor(
      async () => {
        const hit = await inspector.evaluate(() => {
          const s = (window as unknown as { inspector: { hits: { x0: number; x1: number; y0: number; y1: number; label: string }[] } }).inspector;
          const h = s.hits.find((x) => x.label.startsWith('message reply-'));
          return h ? { x: (h.x0 + h.x1) / 2, y: (h.y0 + h.y1) / 2 } : undefined;
        });
        if (!hit) throw new Error('no agent message on the canvas');
        await inspector.mouse.move(box.x + hit.x, box.y + hit.y + 1);
        await inspector.mouse.move(box.x + hit.x, box.y + hit.y);
        return inspector.waitForSelector('#tip', { state: 'visible', timeout: 1000 }).then(
          () => true,
          () => false,
        );
      },
      { timeoutMs: 30_000, intervalMs: 100, message: 'the tooltip over the agent message' },
    );
    await inspector.screenshot({ path: join(docs, 'browser-inspector.png') });
  });
});
