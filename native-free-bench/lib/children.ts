import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Child processes for the systems under test (the relay, baseline servers), and the clean-up that
 * makes sure none outlives the harness: on normal return, on error, on SIGINT/SIGTERM, and on exit.
 */

const here = dirname(fileURLToPath(import.meta.url));
/** True when running the compiled harness from dist/ rather than TypeScript sources via tsx. */
export const COMPILED = import.meta.url.endsWith('.js');
/** The root the harness was loaded from: the repository, or its dist/ when compiled. */
export const BENCH_ROOT = resolve(here, '..', '..');
/** The repository root (where node_modules is), for the children's working directory. */
export const REPO_ROOT = COMPILED && existsSync(join(BENCH_ROOT, '..', 'package.json')) ? resolve(BENCH_ROOT, '..') : BENCH_ROOT;

/** Path of a module given without extension, relative to the root ("src/cli/main"). */
export function modulePath(relative: string): string {
  return join(BENCH_ROOT, `${relative}${COMPILED ? '.js' : '.ts'}`);
}

/**
 * Node arguments to run a module: plain from dist/, through tsx from sources; either way with the
 * orphan guard preloaded, so the child shuts down if the harness dies without cleaning up.
 */
export function nodeArgs(script: string): string[] {
  const guard = pathToFileURL(join(here, `orphan-guard${COMPILED ? '.js' : '.ts'}`)).href;
  return COMPILED ? ['--import', guard, script] : ['--import', 'tsx', '--import', guard, script];
}

export interface ChildServer {
  readonly name: string;
  /** What the child printed after "listening on ". */
  readonly url: string;
  readonly pid: number;
  readonly alive: boolean;
  /** Aborted if the child exits before stop() was called. */
  readonly died: AbortSignal;
  /** The last few KiB the child wrote on stderr. */
  stderrTail(): string;
  /** SIGTERM, then SIGKILL after `graceMs`. Resolves once the child is gone. Idempotent. */
  stop(graceMs?: number): Promise<void>;
}

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let installed = 0;
let onExit: (() => void) | undefined;
let onSignal: ((signal: NodeJS.Signals) => void) | undefined;

function killAllNow(): void {
  for (const c of live) {
    try {
      c.kill('SIGKILL');
    } catch {
      // already gone
    }
  }
  live.clear();
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
  tempDirs.clear();
}

/**
 * Installs process-wide clean-up for the duration of a run; call the returned function at the end.
 * A signal kills every child and temporary directory, then exits 130 (SIGINT) or 143 (SIGTERM).
 */
export function installCleanup(): () => void {
  if (installed++ === 0) {
    onExit = killAllNow;
    onSignal = (signal) => {
      process.stderr.write(`\nbench: ${signal}, stopping children\n`);
      killAllNow();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    };
    process.on('exit', onExit);
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  }
  return () => {
    if (--installed > 0) return;
    killAllNow();
    if (onExit) process.off('exit', onExit);
    if (onSignal) {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  };
}

/** A temporary directory removed by the returned function, or by the clean-up at the latest. */
export function tempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.add(dir);
  return {
    dir,
    remove: () => {
      tempDirs.delete(dir);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface StartOptions {
  name: string;
  /** Module to run (see modulePath). */
  script: string;
  args: string[];
  /** Time allowed for the "listening on URL" line (default 30 s: tsx compiles on first start). */
  readyTimeoutMs?: number;
  /** Extra flags for node itself, before the script (e.g. ['--cpu-prof', '--cpu-prof-dir', DIR]). */
  nodeFlags?: string[];
}

/**
 * Spawns `node [--import tsx] script args` on loopback and waits for its first stdout line,
 * which must be `listening on URL`. Rejects (and kills the child) if it exits or times out first.
 */
export function startChild(opts: StartOptions): Promise<ChildServer> {
  const child = spawn(process.execPath, [...(opts.nodeFlags ?? []), ...nodeArgs(opts.script), ...opts.args], {
    cwd: REPO_ROOT,
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, NODE_ENV: 'production' },
  });
  live.add(child);
  child.stdin!.on('error', () => {
    /* the child went away; nothing is written to it */
  });
  let tail = '';
  child.stderr!.setEncoding('utf8').on('data', (s: string) => {
    tail = (tail + s).slice(-4096);
  });
  const died = new AbortController();
  let stopping = false;
  let exited = false;
  const gone = new Promise<void>((res) =>
    child.once('exit', () => {
      exited = true;
      live.delete(child);
      child.stdin?.destroy();
      if (!stopping) died.abort(new Error(`${opts.name} exited unexpectedly (code ${child.exitCode}, signal ${child.signalCode})`));
      res();
    }),
  );
  const server = (url: string): ChildServer => ({
    name: opts.name,
    url,
    pid: child.pid ?? -1,
    get alive() {
      return !exited;
    },
    died: died.signal,
    stderrTail: () => tail,
    async stop(graceMs = 3000) {
      stopping = true;
      if (exited) return;
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      await gone;
      clearTimeout(timer);
    },
  });
  return new Promise((resolvePromise, reject) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`${opts.name} did not print "listening on" within ${opts.readyTimeoutMs ?? 30_000} ms`)), opts.readyTimeoutMs ?? 30_000);
    const onData = (s: string): void => {
      out += s;
      const nl = out.indexOf('\n');
      if (nl < 0) return;
      const line = out.slice(0, nl).trim();
      child.stdout!.off('data', onData);
      child.stdout!.resume(); // keep draining whatever else it prints
      const m = /^listening on (\S+)$/.exec(line);
      if (!m) return fail(new Error(`${opts.name} printed "${line.slice(0, 200)}" instead of "listening on URL"`));
      clearTimeout(timer);
      child.off('exit', onEarlyExit);
      resolvePromise(server(m[1]!));
    };
    const onEarlyExit = (): void => fail(new Error(`${opts.name} exited before listening (code ${child.exitCode})`));
    function fail(err: Error): void {
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      child.off('exit', onEarlyExit);
      stopping = true;
      child.kill('SIGKILL');
      const detail = tail.trim() ? `\n${tail.trim().split('\n').slice(-10).join('\n')}` : '';
      const settled = new Promise<void>((res) => setTimeout(res, 3000).unref());
      void Promise.race([gone, settled]).then(() => reject(new Error(err.message + detail)));
    }
    child.stdout!.setEncoding('utf8').on('data', onData);
    child.once('exit', onEarlyExit);
    child.once('error', (err) => fail(err));
  });
}
