/**
 * A real `nats-server` cluster with JetStream on free loopback ports, for the `cluster` bench
 * scenario and the tests (test/support/nats-cluster.ts re-exports it).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';

/** The Debian package's binary (`.ci/run` installs it); NATS_SERVER overrides. */
export const NATS_SERVER_BIN = process.env['NATS_SERVER'] ?? '/usr/sbin/nats-server';

export interface NatsNode {
  readonly name: string;
  readonly clientPort: number;
  readonly clusterPort: number;
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  readonly storeDir: string;
  /** Running now (started and not killed). */
  readonly running: boolean;
  /** kill -9; resolves once the process has exited. */
  kill(): Promise<void>;
  /** Starts the node again on the same ports and store directory. */
  restart(): Promise<void>;
}

export interface NatsCluster {
  readonly nodes: readonly NatsNode[];
  /** Every client URL, comma-separated, e.g. for `--store nats://a,b,c`. */
  readonly servers: string[];
  /** `nats://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3`, the store spec for openStore(). */
  readonly storeSpec: string;
  /** Resolves once JetStream answers through a client (a meta leader is elected). */
  waitReady(timeoutMs?: number): Promise<void>;
  /** Stops every node and removes the store directories. Idempotent. */
  stop(): Promise<void>;
  /** What the nodes wrote on stderr (the last 32 KiB each), for failure messages. */
  logs(): string;
}

/** A free loopback TCP port: bind port 0, read it, release it. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const everyChild = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of everyChild) child.kill('SIGKILL');
});

class Node implements NatsNode {
  readonly name: string;
  readonly clientPort: number;
  readonly clusterPort: number;
  readonly storeDir: string;
  readonly #routes: string;
  readonly #clusterName: string;
  #child: ChildProcess | undefined;
  #exited: Promise<void> = Promise.resolve();
  #log = '';

  constructor(name: string, clientPort: number, clusterPort: number, storeDir: string, routes: string, clusterName: string) {
    this.name = name;
    this.clientPort = clientPort;
    this.clusterPort = clusterPort;
    this.storeDir = storeDir;
    this.#routes = routes;
    this.#clusterName = clusterName;
  }

  get url(): string {
    return `nats://127.0.0.1:${this.clientPort}`;
  }

  get running(): boolean {
    return this.#child !== undefined;
  }

  get log(): string {
    return this.#log;
  }

  start(): void {
    if (this.#child) return;
    const args = [
      '-a', '127.0.0.1',
      '-p', String(this.clientPort),
      '-n', this.name,
      '-js',
      '-sd', this.storeDir,
      '--cluster_name', this.#clusterName,
      '--cluster', `nats://127.0.0.1:${this.clusterPort}`,
      '--routes', this.#routes,
    ];
    const child = spawn(NATS_SERVER_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    everyChild.add(child);
    this.#child = child;
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (chunk: string) => {
      this.#log = (this.#log + chunk).slice(-32 * 1024);
    });
    this.#exited = new Promise((resolve) => {
      child.once('exit', () => {
        everyChild.delete(child);
        if (this.#child === child) this.#child = undefined;
        resolve();
      });
      child.once('error', (err) => {
        this.#log += `\nspawn error: ${err.message}`;
        everyChild.delete(child);
        if (this.#child === child) this.#child = undefined;
        resolve();
      });
    });
  }

  async kill(): Promise<void> {
    const child = this.#child;
    if (!child) return;
    child.kill('SIGKILL');
    await this.#exited;
  }

  async restart(): Promise<void> {
    await this.kill();
    this.start();
  }
}

export interface StartNatsClusterOptions {
  /** Number of servers (default 3). */
  size?: number;
}

/**
 * Starts a real `nats-server` cluster with JetStream on free loopback ports, each node with its
 * own temporary store directory, and waits until JetStream answers. `stop()` kills every node and
 * removes the directories; call it from afterAll/afterEach.
 */
export async function startNatsCluster(opts: StartNatsClusterOptions = {}): Promise<NatsCluster> {
  const size = opts.size ?? 3;
  const root = mkdtempSync(join(tmpdir(), 'lifeline-nats-'));
  const ports: { client: number; cluster: number }[] = [];
  const taken = new Set<number>();
  while (ports.length < size) {
    const client = await freePort();
    const cluster = await freePort();
    if (client === cluster || taken.has(client) || taken.has(cluster)) continue;
    taken.add(client).add(cluster);
    ports.push({ client, cluster });
  }
  const routes = ports.map((p) => `nats://127.0.0.1:${p.cluster}`).join(',');
  const clusterName = `lifeline-${process.pid}-${ports[0]!.client}`;
  const nodes = ports.map((p, i) => new Node(`n${i + 1}`, p.client, p.cluster, join(root, `n${i + 1}`), routes, clusterName));
  for (const n of nodes) n.start();
  let stopped = false;

  const cluster: NatsCluster = {
    nodes,
    servers: nodes.map((n) => n.url),
    storeSpec: `nats://${nodes.map((n) => `127.0.0.1:${n.clientPort}`).join(',')}`,
    logs: () => nodes.map((n) => `--- ${n.name} ---\n${n.log}`).join('\n'),
    async waitReady(timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      let lastError: unknown;
      while (Date.now() < deadline) {
        const up = nodes.filter((n) => n.running).map((n) => n.url);
        try {
          const nc = await connect({ servers: up, timeout: 1000, reconnect: false });
          try {
            const jsm = await jetstreamManager(nc, { timeout: 1000 });
            await jsm.getAccountInfo();
            return;
          } finally {
            await nc.close();
          }
        } catch (err) {
          lastError = err;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`NATS cluster not ready after ${timeoutMs} ms: ${String(lastError)}\n${cluster.logs()}`);
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      await Promise.all(nodes.map((n) => n.kill()));
      rmSync(root, { recursive: true, force: true });
    },
  };
  try {
    await cluster.waitReady();
  } catch (err) {
    await cluster.stop();
    throw err;
  }
  return cluster;
}
