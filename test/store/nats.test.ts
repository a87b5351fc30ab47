import { jetstreamManager } from '@nats-io/jetstream';
import { connect } from '@nats-io/transport-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LifelineError } from '../../src/protocol/index.js';
import { openStore } from '../../src/store/index.js';
import type { Store } from '../../src/store/index.js';
import { NatsStore, parseNatsSpec } from '../../src/store/nats/index.js';
import { startNatsCluster } from '../support/nats-cluster.js';
import type { NatsCluster } from '../support/nats-cluster.js';
import { runStoreContract } from './contract.js';

let cluster: NatsCluster;
let n = 0;

beforeAll(async () => {
  cluster = await startNatsCluster();
});
afterAll(async () => {
  await cluster?.stop();
});

/** Removes a test's stream and buckets, so the cluster does not accumulate RAFT groups. */
async function dropPrefix(prefix: string): Promise<void> {
  const nc = await connect({ servers: cluster.servers });
  try {
    const jsm = await jetstreamManager(nc);
    for (const name of [`${prefix}_events`, `KV_${prefix}-sessions`, `KV_${prefix}-cursors`]) await jsm.streams.delete(name).catch(() => false);
  } finally {
    await nc.close();
  }
}

runStoreContract('nats (3-node cluster, R3)', async () => {
  const prefix = `c${process.pid}x${++n}`;
  const spec = `${cluster.storeSpec}?prefix=${prefix}&replicas=3`;
  const opened: Store[] = [];
  const openOne = async (): Promise<Store> => {
    const s = await openStore(spec);
    opened.push(s);
    return s;
  };
  return {
    store: await openOne(),
    reopen: openOne,
    cleanup: async () => {
      for (const s of opened) await s.close();
      await dropPrefix(prefix);
    },
  };
});

describe('nats store spec', () => {
  it('parses servers and options', () => {
    expect(parseNatsSpec('nats://127.0.0.1:4222,127.0.0.1:4223?prefix=x&replicas=3&audioLingerMs=0')).toEqual({
      servers: ['nats://127.0.0.1:4222', 'nats://127.0.0.1:4223'],
      prefix: 'x',
      replicas: 3,
      audioLingerMs: 0,
    });
  });
  it.each(['nats://', 'nats://h:1?bogus=1', 'nats://h:1?replicas=0', 'nats://h:1?audioLingerMs=-1'])('rejects %j with BAD_REQUEST', (spec) => {
    let err: unknown;
    try {
      parseNatsSpec(spec);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(LifelineError);
    expect((err as LifelineError).code).toBe('BAD_REQUEST');
  });
  it('opens a NatsStore for nats://', async () => {
    const prefix = `o${process.pid}`;
    const store = await openStore(`${cluster.storeSpec}?prefix=${prefix}`);
    expect(store).toBeInstanceOf(NatsStore);
    expect(store.kind).toBe('nats');
    await store.close();
    await dropPrefix(prefix);
  });
});
