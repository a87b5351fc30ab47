import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { ANY_SESSION, mintToken } from '../../src/protocol/index.js';
import { SECRET } from './relay.js';

export { SECRET };

/** The repository root (where `src/cli/main.ts` and node_modules live). */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface ExitInfo {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A relay running as a child process: `lifeline serve` started with Node and tsx. */
export interface RelayProcess {
  /** Base URL, e.g. http://127.0.0.1:41234 */
  readonly url: string;
  readonly port: number;
  /** The store spec it was started with (`memory` or `sqlite:PATH`). */
  readonly store: string;
  readonly child: ChildProcess;
  /** Settles when the process has exited (never rejects). */
  readonly exited: Promise<ExitInfo>;
  /** What the process wrote on stderr so far (the last 64 KiB). */
  stderr(): string;
  /** Sends `signal` (default SIGKILL) and resolves once the process has exited. */
  kill(signal?: NodeJS.Signals): Promise<ExitInfo>;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs` (default 10 s). Idempotent. */
  stop(graceMs?: number): Promise<ExitInfo>;
  /**
   * Runs a full garbage collection in the relay (through the V8 inspector; start it with
   * `inspect: true`), so heap figures measured next count live objects, not garbage V8 has not
   * bothered to collect yet.
   */
  collectGarbage(): Promise<void>;
}

export interface SpawnRelayOptions {
  /** `memory` or `sqlite:PATH`. */
  store: string;
  /** Port to listen on; 0 or absent for any free one. Pass an old relay's port to restart "in place". */
  port?: number;
  /** More `serve` options, e.g. ['--window', '64']. */
  args?: string[];
  /** Options for Node itself, before `--import tsx`, e.g. ['--max-old-space-size=96']. */
  nodeArgs?: string[];
  /** Time allowed for the `listening on` line (default 30 s: tsx compiles on a cold start). */
  startTimeoutMs?: number;
  /**
   * When a fixed port is taken (EADDRINUSE, e.g. the old process's socket not yet released), try
   * again this many times, 200 ms apart (default 10). Only that one error is retried.
   */
  portRetries?: number;
  /** Opens the V8 inspector on a free loopback port (needed for collectGarbage()). */
  inspect?: boolean;
  /** Write presence events into timelines (off by default in these suites). */
  presenceEvents?: boolean;
}

/** Every child started here that has not exited yet; killAllRelays() ends them. */
const live = new Set<ChildProcess>();

process.once('exit', () => {
  // Last resort if a test file ends without its afterEach/afterAll (e.g. the worker is torn down).
  for (const child of live) child.kill('SIGKILL');
});

/**
 * SIGKILLs every relay child still running and waits for them to exit. Call it from afterEach (or
 * afterAll) in every file that spawns relays, so a failing test never leaves a process behind.
 */
export async function killAllRelays(): Promise<void> {
  const children = [...live];
  await Promise.all(
    children.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) {
            live.delete(child);
            resolve();
            return;
          }
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
}

/** The number of relay children still running (for tests of the cleanup itself). */
export function liveRelayCount(): number {
  return live.size;
}

const LISTENING = /^listening on (http:\/\/[^\s]+:(\d+))$/;

class PortInUse extends Error {}

/** Starts `lifeline serve` in a child process and waits for its `listening on` line. */
export async function spawnRelay(opts: SpawnRelayOptions): Promise<RelayProcess> {
  const retries = opts.port ? (opts.portRetries ?? 10) : 0;
  for (let attempt = 0; ; attempt++) {
    try {
      return await spawnOnce(opts);
    } catch (err) {
      if (!(err instanceof PortInUse) || attempt >= retries) throw err;
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
  }
}

function spawnOnce(opts: SpawnRelayOptions): Promise<RelayProcess> {
  const args = [
    ...(opts.inspect ? ['--inspect=127.0.0.1:0'] : []),
    ...(opts.nodeArgs ?? []),
    '--import',
    'tsx',
    'src/cli/main.ts',
    'serve',
    '--port',
    String(opts.port ?? 0),
    '--store',
    opts.store,
    '--secret',
    SECRET,
    '--log-level',
    'warn',
    // As in test/support/relay.ts: these suites assert exact offsets; presence suites opt in.
    ...(opts.presenceEvents ? [] : ['--no-presence-events']),
    ...(opts.args ?? []),
  ];
  // Only the command line configures the child: drop any LIFELINE_* settings of the parent.
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('LIFELINE_')));
  const child = spawn(process.execPath, args, { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'], env });
  live.add(child);
  const exited = new Promise<ExitInfo>((resolve) => {
    child.once('exit', (code, signal) => {
      live.delete(child);
      resolve({ code, signal });
    });
  });

  let stderr = '';
  let inspector: string | undefined;
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    stderr = (stderr + chunk).slice(-64 * 1024);
    inspector ??= /Debugger listening on (ws:\/\/\S+)/.exec(stderr)?.[1];
  });

  return new Promise<RelayProcess>((resolve, reject) => {
    let stdout = '';
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new Error(`relay did not print its listening line within ${opts.startTimeoutMs ?? 30_000} ms; stderr:\n${stderr}`)),
      opts.startTimeoutMs ?? 30_000,
    );
    child.stdout!.setEncoding('utf8');
    // Always keep reading stdout, so the child can never block on a full pipe.
    child.stdout!.on('data', (chunk: string) => {
      if (settled) return;
      stdout += chunk;
      const nl = stdout.indexOf('\n');
      if (nl < 0) return;
      const first = stdout.slice(0, nl);
      const m = LISTENING.exec(first);
      if (!m) {
        fail(new Error(`unexpected first stdout line from the relay: ${JSON.stringify(first)}`));
        return;
      }
      settled = true;
      clearTimeout(timer);
      const url = m[1]!;
      const port = Number(m[2]);
      let stopping: Promise<ExitInfo> | undefined;
      const kill = (signal: NodeJS.Signals = 'SIGKILL'): Promise<ExitInfo> => {
        if (child.exitCode === null && child.signalCode === null) child.kill(signal);
        return exited;
      };
      resolve({
        url,
        port,
        store: opts.store,
        child,
        exited,
        stderr: () => stderr,
        kill,
        collectGarbage: () => collectGarbage(inspector),
        stop(graceMs = 10_000) {
          stopping ??= (async () => {
            const t = setTimeout(() => child.kill('SIGKILL'), graceMs);
            try {
              return await kill('SIGTERM');
            } finally {
              clearTimeout(t);
            }
          })();
          return stopping;
        },
      });
    });
    void exited.then(({ code, signal }) => {
      if (settled) return;
      if (opts.port && /EADDRINUSE/.test(stderr)) fail(new PortInUse(`port ${opts.port} in use`));
      else fail(new Error(`relay exited before listening (code ${code}, signal ${signal}); stderr:\n${stderr}`));
    });
  });
}

/** Asks the V8 inspector at `inspector` (from "Debugger listening on ws://…") for a full GC. */
async function collectGarbage(inspector: string | undefined): Promise<void> {
  if (!inspector) throw new Error('the relay was not started with inspect: true');
  const ws = new WebSocket(inspector, { perMessageDeflate: false });
  try {
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('inspector: no answer to collectGarbage')), 10_000);
      ws.on('message', (data: Buffer) => {
        const reply = JSON.parse(data.toString('utf8')) as { id?: number; error?: { message: string } };
        if (reply.id !== 1) return;
        clearTimeout(timer);
        if (reply.error) reject(new Error(`inspector: ${reply.error.message}`));
        else resolve();
      });
      ws.send(JSON.stringify({ id: 1, method: 'HeapProfiler.collectGarbage' }));
    });
  } finally {
    ws.terminate();
  }
}

// ---- small HTTP helpers for a relay reached by URL -------------------------------------------

export function adminToken(): Promise<string> {
  return mintToken(SECRET, { session: ANY_SESSION, participant: 'admin', role: 'admin' });
}

/** Creates a session through the HTTP API; resolves with its id. */
export async function createSession(url: string, body: Record<string, unknown> = {}): Promise<string> {
  const res = await fetch(`${url}/v1/sessions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${await adminToken()}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  if (res.status !== 201) throw new Error(`create session: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { id: string }).id;
}

export function sessionToken(session: string, participant: string, role: 'user' | 'agent'): Promise<string> {
  return mintToken(SECRET, { session, participant, role });
}

/**
 * The relay's /metrics as name → value, for unlabelled samples (and `name{labels}` keys for
 * labelled ones).
 */
export async function scrapeMetrics(url: string): Promise<Map<string, number>> {
  const res = await fetch(`${url}/metrics`);
  if (res.status !== 200) throw new Error(`GET /metrics: ${res.status}`);
  const out = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const m = /^(\S+)\s+(\S+)/.exec(line);
    if (m) out.set(m[1]!, Number(m[2]));
  }
  return out;
}

/** Polls `probe` every `intervalMs` until it returns true; throws with `what` after `timeoutMs`. */
export async function until(probe: () => boolean, what: string, timeoutMs = 20_000, intervalMs = 5): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
  }
}
