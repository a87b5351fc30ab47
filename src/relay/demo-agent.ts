import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import { ANY_SESSION, mintToken } from '../protocol/index.js';

/** The example echo agent, built by scripts/build-browser.mjs (dist/examples/echo-agent.js). */
function echoAgentScript(): string | undefined {
  for (const rel of ['../../examples/echo-agent.js', '../../dist/examples/echo-agent.js']) {
    const path = fileURLToPath(new URL(rel, import.meta.url));
    if (existsSync(path)) return path;
  }
  return undefined;
}

/**
 * `lifeline serve --demo`: runs the example echo agent (examples/echo-agent.ts) as a child
 * process registered as a worker of this relay, so the demo page has someone to talk to.
 * Restarted if it dies; stopped with the relay. Returns the stop function.
 */
export async function startDemoAgent(url: string, secret: string, log: Logger, iceHosts: readonly string[] = []): Promise<() => void> {
  const script = echoAgentScript();
  if (!script) {
    log.warn('demo: dist/examples/echo-agent.js is not built (npm run build); the demo page will have no agent');
    return () => {};
  }
  const token = await mintToken(secret, { session: ANY_SESSION, participant: 'echo-agent', role: 'agent', ttlSeconds: 30 * 24 * 3600 });
  let child: ChildProcess | undefined;
  let stopped = false;
  const run = (): void => {
    const c = spawn(process.execPath, [script], {
      env: { ...process.env, LIFELINE_URL: url, LIFELINE_AGENT_TOKEN: token, ...(iceHosts.length > 0 ? { LIFELINE_RTC_ICE_HOSTS: iceHosts.join(',') } : {}) },
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    child = c;
    c.once('exit', (code, signal) => {
      if (stopped) return;
      log.warn({ code, signal }, 'demo: the echo agent exited; starting it again in 1 s');
      setTimeout(() => !stopped && run(), 1000).unref();
    });
  };
  run();
  const stop = (): void => {
    stopped = true;
    child?.kill('SIGTERM');
  };
  process.once('exit', stop);
  return stop;
}
