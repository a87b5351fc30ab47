import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import type { BrowserContext, Page } from 'playwright-core';
import { ANY_SESSION, mintToken } from '../../src/protocol/index.js';
import { REPO_ROOT } from '../support/relay-process.js';
import { SECRET, startRelay } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';
import { startEchoAgent } from '../../examples/echo-agent.js';
import type { AgentWorker, TimelineEvent } from '../../src/sdk/index.js';

/**
 * Exactly the flags of the issue: a fake microphone and permission prompt, and no background
 * traffic (this machine refuses the internet; without them Chromium keeps trying).
 */
export const CHROMIUM_ARGS = [
  '--use-fake-device-for-media-stream',
  '--use-fake-ui-for-media-stream',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const CHROMIUM_PATH = '/usr/bin/chromium';

/** Builds dist/browser (esbuild, well under a second) so the pages test this checkout's code. */
export function buildBrowserBundle(): void {
  execFileSync(process.execPath, [join(REPO_ROOT, 'scripts', 'build-browser.mjs')], { cwd: REPO_ROOT, stdio: 'inherit' });
}

export interface Chromium {
  context: BrowserContext;
  /** A new tab; page errors are collected in `errors`. */
  tab(): Promise<Page>;
  errors: string[];
  close(): Promise<void>;
}

/** Headless Chromium with a fresh user-data directory (Playwright passes it as --user-data-dir). */
export async function launchChromium(): Promise<Chromium> {
  const dir = mkdtempSync(join(tmpdir(), 'lifeline-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 760 },
  });
  const errors: string[] = [];
  return {
    context,
    errors,
    async tab() {
      const page = await context.newPage();
      page.on('pageerror', (e) => errors.push(e.message));
      return page;
    },
    async close() {
      await context.close().catch(() => undefined);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface DemoRelay extends TestRelay {
  agent: AgentWorker;
  /** Every event of a session, from the relay's own timeline. */
  events(sessionId: string): Promise<TimelineEvent[]>;
}

/**
 * An in-process relay on 127.0.0.1 in demo mode, whose WebRTC side advertises and pairs only
 * 127.0.0.1, with the example echo agent registered as its worker (tokens 5 ms apart).
 */
export async function startDemoRelay(): Promise<DemoRelay> {
  const r = await startRelay({ rtcIceHosts: ['127.0.0.1'], demo: true, presenceEvents: true });
  const agentToken = await mintToken(SECRET, { session: ANY_SESSION, participant: 'echo-agent', role: 'agent' });
  const agent = await startEchoAgent({ url: r.url, token: agentToken, tokenDelayMs: 5, iceHosts: ['127.0.0.1'], onError: () => undefined });
  return {
    ...r,
    agent,
    async events(sessionId) {
      const head = await r.relay.timeline.head(sessionId);
      const reader = await r.relay.timeline.reader(sessionId, 0);
      const out: TimelineEvent[] = [];
      try {
        while (out.length < head) out.push(...(await reader.next(head - out.length)));
      } finally {
        reader.close();
      }
      return out;
    },
    async close() {
      agent.close();
      await r.close();
    },
  };
}
