/**
 * The ceiling of any server built on Node's `http` module on this machine: answers the `http`
 * scenario's append phases (PUT → 201, POST → 204 after reading the body, DELETE → 204) and stores
 * nothing. It is not a Durable Streams server; it shows how much of a request's cost is Node's
 * HTTP/1.1 handling itself, which the relay and the reference both pay. Prints
 * `listening on http://127.0.0.1:PORT` first.
 *
 *   node --import tsx native-free-bench/baselines/http-noop-server.ts
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';

const server = createServer((req, res) => {
  req.on('data', () => undefined);
  req.on('end', () => {
    if (req.method === 'PUT') {
      res.writeHead(201, { 'stream-next-offset': '0000000000000000_0000000000000000' });
    } else {
      res.writeHead(req.method === 'POST' || req.method === 'DELETE' ? 204 : 405, req.method === 'POST' ? { 'stream-next-offset': '0000000000000000_0000000000000001' } : {});
    }
    res.end();
  });
});
server.keepAliveTimeout = 60_000;
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`listening on http://127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
const stop = (): void => {
  server.closeAllConnections();
  server.close(() => process.exit(0));
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
