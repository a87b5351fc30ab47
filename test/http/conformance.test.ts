import { join } from 'node:path';
import { runConformanceTests } from '@durable-streams/server-conformance-tests';
import { afterAll, beforeAll, describe } from 'vitest';
import { startRelay, tempDir } from '../support/relay.js';
import type { TestRelay } from '../support/relay.js';

/**
 * The published Durable Streams conformance suite (338 tests; the 6 opt-in subscription tests are
 * skipped unless asked for) against an in-process relay, once per store. The relay runs with
 * `streams: 'open'` because the suite sends no tokens; test/http/access.test.ts covers `token`.
 */
const LONG_POLL_MS = 2000;

for (const store of ['sqlite', 'memory'] as const) {
  describe(`Durable Streams conformance (${store} store)`, () => {
    // runConformanceTests reads baseUrl when each test runs, so it can be filled in by beforeAll.
    const options = { baseUrl: '', longPollTimeoutMs: LONG_POLL_MS };
    let relay: TestRelay | undefined;
    let dir: { dir: string; remove: () => void } | undefined;

    beforeAll(async () => {
      dir = store === 'sqlite' ? tempDir('lifeline-conformance-') : undefined;
      relay = await startRelay({
        store: dir ? `sqlite:${join(dir.dir, 'streams.db')}` : 'memory',
        streams: 'open',
        streamLongPollMs: LONG_POLL_MS,
        sweepIntervalMs: 250,
      });
      options.baseUrl = relay.url;
    });
    afterAll(async () => {
      await relay?.close();
      dir?.remove();
    });

    runConformanceTests(options);
  });
}
