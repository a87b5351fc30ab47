/**
 * The Durable Streams reference server (`@durable-streams/server`, its DurableStreamTestServer)
 * with in-memory storage, as the `http` scenario's baseline. Runs as its own process (the package
 * loads LMDB, a native module, which the harness itself must not) on 127.0.0.1 and a free port,
 * and prints `listening on http://127.0.0.1:PORT` first.
 *
 * Response compression is off, as on the relay: both answer the harness's identical requests
 * with identical bytes, so neither spends CPU the other does not.
 *
 *   node --import tsx native-free-bench/baselines/ds-reference-server.ts
 */
import { DurableStreamTestServer } from '@durable-streams/server';

const server = new DurableStreamTestServer({ host: '127.0.0.1', port: 0, compression: false, longPollTimeout: 20_000 });
const url = await server.start();
process.stdout.write(`listening on ${url}\n`);
const stop = (): void => {
  void server.stop().finally(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
