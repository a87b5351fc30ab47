/**
 * Failover under load, with real processes: two `lifeline serve` nodes on a real three-node NATS
 * cluster, several sessions each with an agent streaming tokens and audio frames (binary payloads)
 * on one node and a user reading on the other. Then, separately:
 *   - kill -9 of one NATS server (the stream's leader): no acknowledged event is lost or doubled;
 *   - kill -9 of one relay node: its clients reconnect to the other node (the SDK is given both
 *     URLs), resume from their offsets, and nothing is lost or repeated.
 */
import { jetstreamManager } from '@nats-io/jetstream';
import { connect as natsConnect } from '@nats-io/transport-node';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ExponentialBackoff, connect, formatOffset } from '../../src/sdk/index.js';
import type { ConnectionState, LifelineSession, TimelineEvent } from '../../src/sdk/index.js';
import { NatsStore } from '../../src/store/nats/index.js';
import { createSession, killAllRelays, sessionToken, spawnRelay, until } from '../support/relay-process.js';
import type { RelayProcess } from '../support/relay-process.js';
import { startNatsCluster } from '../support/nats-cluster.js';
import type { NatsCluster } from '../support/nats-cluster.js';

const SESSIONS = 4;
const APPENDS = 1200; // per session: every 10th an audio frame, the rest tokens

let cluster: NatsCluster;
const clients: LifelineSession[] = [];

beforeAll(async () => {
  cluster = await startNatsCluster();
});
afterEach(async () => {
  for (const s of clients.splice(0)) s.close();
  await killAllRelays();
  for (const node of cluster.nodes) if (!node.running) await node.restart();
  await cluster.waitReady();
});
afterAll(async () => {
  await cluster?.stop();
});

interface Load {
  sessionId: string;
  agent: LifelineSession;
  user: LifelineSession;
  agentNode: RelayProcess;
  userNode: RelayProcess;
  received: TimelineEvent[];
  agentStates: ConnectionState[];
  userStates: ConnectionState[];
  acked: string[];
}

const isAudio = (i: number): boolean => i % 10 === 9;

function frame(i: number): Uint8Array {
  const b = new Uint8Array(120);
  for (let k = 0; k < b.length; k++) b[k] = (i * 31 + k) & 0xff;
  return b;
}

async function sdk(urls: string[], sessionId: string, participant: string, role: 'user' | 'agent'): Promise<LifelineSession> {
  const s = await connect({
    url: urls[0]!,
    urls,
    token: await sessionToken(sessionId, participant, role),
    reconnect: new ExponentialBackoff({ initialMs: 20, maxMs: 200 }),
    maxOutbox: 256,
  });
  clients.push(s);
  return s;
}

async function startLoad(nodes: RelayProcess[]): Promise<Load[]> {
  const loads: Load[] = [];
  for (let i = 0; i < SESSIONS; i++) {
    const agentNode = nodes[i % 2]!;
    const userNode = nodes[(i + 1) % 2]!;
    const sessionId = await createSession(agentNode.url);
    const urlsFor = (first: RelayProcess): string[] => [first.url, ...nodes.filter((n) => n !== first).map((n) => n.url)];
    const agent = await sdk(urlsFor(agentNode), sessionId, `bot${i}`, 'agent');
    const user = await sdk(urlsFor(userNode), sessionId, `user${i}`, 'user');
    const load: Load = { sessionId, agent, user, agentNode, userNode, received: [], agentStates: [], userStates: [], acked: [] };
    agent.on('state', (c) => load.agentStates.push(c.state));
    user.on('state', (c) => load.userStates.push(c.state));
    void (async () => {
      for await (const e of user.stream) load.received.push(e);
    })().catch(() => {});
    loads.push(load);
  }
  return loads;
}

/** Starts every agent's appends (tokens and audio frames); resolves with all acknowledged offsets. */
function produce(loads: Load[]): Promise<void> {
  return Promise.all(
    loads.map(async (load) => {
      const pending: Promise<string>[] = [];
      for (let i = 0; i < APPENDS; i++) {
        const p = isAudio(i) ? load.agent.append('audio.frame', { codec: 'opus', n: i }, { track: 'speaker', bin: frame(i) }) : load.agent.sendText(`t${i}`);
        pending.push(
          p.then((offset) => {
            load.acked.push(offset);
            return offset;
          }),
        );
      }
      await Promise.all(pending);
    }),
  ).then(() => undefined);
}

function checkEvents(events: readonly { offset?: string; seq?: number; kind: string; data: unknown; bin?: Uint8Array | undefined }[], who: string): string[] {
  const problems: string[] = [];
  if (events.length !== APPENDS) problems.push(`${who}: ${events.length} events, expected ${APPENDS}`);
  for (let i = 0; i < events.length && problems.length < 5; i++) {
    const e = events[i]!;
    const offset = e.offset ?? formatOffset(e.seq!);
    if (offset !== formatOffset(i + 1)) problems.push(`${who}[${i}] at ${offset}`);
    if (isAudio(i)) {
      if (e.kind !== 'audio.frame' || (e.data as { n?: number }).n !== i || !e.bin || Buffer.compare(Buffer.from(e.bin), Buffer.from(frame(i))) !== 0) problems.push(`${who}[${i}]: bad audio frame`);
    } else if (e.kind !== 'text.delta' || (e.data as { text?: string }).text !== `t${i}`) problems.push(`${who}[${i}]: ${e.kind} ${JSON.stringify(e.data)}`);
  }
  return problems;
}

async function verify(loads: Load[], prefix: string): Promise<void> {
  const started = Date.now();
  await until(() => loads.every((l) => l.received.length >= APPENDS), 'every user has every event', 60_000).catch((err: unknown) => {
    throw new Error(`${String(err)}: received ${loads.map((l) => `${l.received.length}/${l.acked.length}`).join(', ')}`);
  });
  console.info(`every user had every event ${Date.now() - started} ms after the last ack`);
  const problems: string[] = [];
  for (const l of loads) {
    problems.push(...checkEvents(l.received, `live ${l.sessionId}`));
    if (new Set(l.acked).size !== APPENDS) problems.push(`${l.sessionId}: ${new Set(l.acked).size} distinct acks`);
  }
  // The store itself, read through a fresh connection: every acknowledged event exactly once.
  const store = await NatsStore.open({ servers: cluster.servers, prefix });
  try {
    for (const l of loads) {
      const stored = await store.read(l.sessionId, 0, 10 * APPENDS);
      problems.push(...checkEvents(stored, `stored ${l.sessionId}`));
      const at = new Set(stored.map((e) => formatOffset(e.seq)));
      for (const o of l.acked) if (!at.has(o)) problems.push(`${l.sessionId}: acked ${o} not stored`);
    }
  } finally {
    await store.close();
  }
  console.info(`store contents checked ${Date.now() - started} ms after the last ack`);
  expect(problems.slice(0, 10)).toEqual([]);
}

async function streamLeader(stream: string): Promise<string> {
  const nc = await natsConnect({ servers: cluster.servers });
  try {
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info(stream);
    return info.cluster?.leader ?? '';
  } finally {
    await nc.close();
  }
}

describe('failover under a multi-session token and audio load', () => {
  it('kill -9 of the stream leader NATS server loses no acknowledged event', { timeout: 180_000 }, async () => {
    const prefix = `fn${process.pid}`;
    const store = `${cluster.storeSpec}?prefix=${prefix}`;
    const nodes = await Promise.all([spawnRelay({ store }), spawnRelay({ store })]);
    const loads = await startLoad(nodes);
    const leader = await streamLeader(`${prefix}_events`);
    const victim = cluster.nodes.find((n) => n.name === leader) ?? cluster.nodes[0]!;
    const done = produce(loads);
    done.catch(() => {});
    await until(() => loads.reduce((n, l) => n + l.acked.length, 0) >= (SESSIONS * APPENDS) / 3, 'a third of the load acknowledged', 60_000);
    const ackedAtKill = loads.reduce((n, l) => n + l.acked.length, 0);
    await victim.kill();
    const killedAt = Date.now();
    await done;
    expect(ackedAtKill).toBeLessThan(SESSIONS * APPENDS);
    console.info(
      `NATS ${victim.name} (stream leader: ${leader}) killed after ${ackedAtKill}/${SESSIONS * APPENDS} acks; ` +
        `the rest acknowledged ${Date.now() - killedAt} ms later`,
    );
    await verify(loads, prefix);
    // The relays never went away: no client had to reconnect.
    for (const l of loads) expect(l.userStates).not.toContain('closed');
  });

  it('kill -9 of one relay node: its clients resume on the other node, nothing lost or repeated', { timeout: 180_000 }, async () => {
    const prefix = `fr${process.pid}`;
    const store = `${cluster.storeSpec}?prefix=${prefix}`;
    const nodes = await Promise.all([spawnRelay({ store }), spawnRelay({ store })]);
    const loads = await startLoad(nodes);
    const done = produce(loads);
    done.catch(() => {});
    await until(() => loads.reduce((n, l) => n + l.acked.length, 0) >= (SESSIONS * APPENDS) / 3, 'a third of the load acknowledged', 60_000);
    const victim = nodes[0]!;
    const ackedAtKill = loads.reduce((n, l) => n + l.acked.length, 0);
    await victim.kill('SIGKILL');
    const killedAt = Date.now();
    await done;
    expect(ackedAtKill).toBeLessThan(SESSIONS * APPENDS);
    console.info(`relay ${victim.url} killed after ${ackedAtKill}/${SESSIONS * APPENDS} acks; the rest acknowledged ${Date.now() - killedAt} ms later`);
    await verify(loads, prefix);
    // Every client of the killed node came back (on the other one) and resumed.
    for (const l of loads) {
      if (l.agentNode === victim) expect(l.agentStates).toContain('resumed');
      if (l.userNode === victim) expect(l.userStates).toContain('resumed');
      expect(l.userStates).not.toContain('closed');
      expect(l.agentStates).not.toContain('closed');
    }
  });
});
