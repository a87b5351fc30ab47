import { describe, expect, it } from 'vitest';
import { LifelineError } from '../../src/protocol/index.js';
import { openStore } from '../../src/store/index.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { runStoreContract } from './contract.js';

runStoreContract('memory', async () => {
  const store = new MemoryStore();
  return { store, cleanup: () => store.close() };
});

runStoreContract('memory via openStore', async () => {
  const store = await openStore('memory');
  return { store, cleanup: () => store.close() };
});

describe('openStore', () => {
  it('opens independent in-memory stores for "memory"', async () => {
    const one = await openStore('memory');
    const two = await openStore('memory');
    expect(one.kind).toBe('memory');
    await one.createSession({ id: 's', createdAt: 0, expiresAt: null, metadata: {} });
    expect(await one.getSession('s')).toBeDefined();
    expect(await two.getSession('s')).toBeUndefined();
    await one.close();
    await two.close();
  });

  it.each(['bogus', '', 'Memory', 'memory:', 'sqlite', 'postgres://x', 'sqlite:'])('rejects %j with BAD_REQUEST', async (spec) => {
    const err = await openStore(spec).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LifelineError);
    expect((err as LifelineError).code).toBe('BAD_REQUEST');
  });
});
