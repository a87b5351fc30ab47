#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander';
import { mintToken, ANY_SESSION, isLifelineError } from '../protocol/index.js';
import { createRelay } from '../relay/index.js';
import { startDemoAgent } from '../relay/demo-agent.js';
import { defaultSecret } from './secret.js';

const env = process.env;

function int(value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n)) throw new InvalidArgumentError('not a whole number');
  return n;
}

function envInt(name: string): number | undefined {
  const v = env[name];
  return v === undefined || v === '' ? undefined : int(v);
}

const program = new Command('lifeline')
  .description('Durable session relay for voice and text AI agents')
  .showHelpAfterError();

program
  .command('serve')
  .description('run the relay')
  .option('--host <host>', 'address to listen on (env LIFELINE_HOST)', env['LIFELINE_HOST'] ?? '127.0.0.1')
  .option('--port <port>', 'port, 0 for any free one (env LIFELINE_PORT)', int, envInt('LIFELINE_PORT') ?? 8787)
  .option('--store <spec>', 'memory | sqlite:PATH | nats://host:port[,host:port…] (env LIFELINE_STORE)', env['LIFELINE_STORE'] ?? 'sqlite:./data/lifeline.db')
  .option('--secret <secret>', 'token signing secret, ≥16 chars (env LIFELINE_SECRET)', env['LIFELINE_SECRET'])
  .addOption(new Option('--sqlite-sync <mode>', 'fsync policy: normal fsyncs appends in the background, full in every commit (env LIFELINE_SQLITE_SYNC)').choices(['full', 'normal']).default(env['LIFELINE_SQLITE_SYNC'] ?? 'normal'))
  .option('--sqlite-checkpoint-ms <n>', 'background WAL checkpoint and fsync period; with normal, how long an append may wait to be durable (env LIFELINE_SQLITE_CHECKPOINT_MS)', int, envInt('LIFELINE_SQLITE_CHECKPOINT_MS'))
  .option('--log-level <level>', 'fatal|error|warn|info|debug|trace|silent (env LIFELINE_LOG_LEVEL)', env['LIFELINE_LOG_LEVEL'] ?? 'warn')
  .option('--max-frame-bytes <n>', 'largest frame accepted (env LIFELINE_MAX_FRAME_BYTES)', int, envInt('LIFELINE_MAX_FRAME_BYTES'))
  .option('--heartbeat-ms <n>', 'client ping interval asked for (env LIFELINE_HEARTBEAT_MS)', int, envInt('LIFELINE_HEARTBEAT_MS'))
  .option('--idle-timeout-ms <n>', 'close connections silent this long (env LIFELINE_IDLE_TIMEOUT_MS)', int, envInt('LIFELINE_IDLE_TIMEOUT_MS'))
  .option('--rtc-ice-host <addr...>', 'addresses WebRTC advertises, e.g. 127.0.0.1 (env LIFELINE_RTC_ICE_HOSTS, comma-separated)', env['LIFELINE_RTC_ICE_HOSTS']?.split(',').filter(Boolean))
  .option('--presence-grace-ms <n>', 'a lost device stays reconnecting this long before gone (env LIFELINE_PRESENCE_GRACE_MS)', int, envInt('LIFELINE_PRESENCE_GRACE_MS'))
  .option('--lease-ttl-ms <n>', 'an agent lease outlives its silent or lost connection this long (env LIFELINE_LEASE_TTL_MS)', int, envInt('LIFELINE_LEASE_TTL_MS'))
  .option('--handoff-wait-ms <n>', 'a handoff waits this long for the worker it names, then any worker may take it (env LIFELINE_HANDOFF_WAIT_MS)', int, envInt('LIFELINE_HANDOFF_WAIT_MS'))
  .option('--no-presence-events', 'do not write presence changes into timelines (env LIFELINE_PRESENCE_EVENTS=0)')
  .option('--demo', 'serve the demo page\'s sessions and run the example echo agent (local use; env LIFELINE_DEMO=1)', env['LIFELINE_DEMO'] === '1')
  .option('--window <n>', 'events in flight per reader before an ack (env LIFELINE_WINDOW)', int, envInt('LIFELINE_WINDOW'))
  .option('--streams <mode>', 'Durable Streams at /v1/stream: token (every request needs a token) | open (streams created over HTTP need none) (env LIFELINE_STREAMS)', env['LIFELINE_STREAMS'] ?? 'token')
  .option('--stream-long-poll-ms <n>', 'how long a Durable Streams long-poll waits (env LIFELINE_STREAM_LONG_POLL_MS)', int, envInt('LIFELINE_STREAM_LONG_POLL_MS'))
  .option('--stream-max-body-bytes <n>', 'largest Durable Streams append (env LIFELINE_STREAM_MAX_BODY_BYTES)', int, envInt('LIFELINE_STREAM_MAX_BODY_BYTES'))
  .action(async (o: Record<string, string | number | boolean | string[] | undefined>) => {
    let secret = o['secret'] as string | undefined;
    if (!secret) {
      const found = defaultSecret(String(o['store']));
      secret = found.secret;
      process.stderr.write(`lifeline: no --secret given; using the secret ${found.source}\n`);
    }
    const relay = await createRelay({
      host: String(o['host']),
      port: Number(o['port']),
      store: String(o['store']),
      secret,
      sqliteSync: o['sqliteSync'] as 'full' | 'normal',
      ...(o['sqliteCheckpointMs'] !== undefined ? { sqliteCheckpointMs: Number(o['sqliteCheckpointMs']) } : {}),
      logLevel: o['logLevel'] as 'warn',
      ...(o['maxFrameBytes'] !== undefined ? { maxFrameBytes: Number(o['maxFrameBytes']) } : {}),
      ...(o['heartbeatMs'] !== undefined ? { heartbeatMs: Number(o['heartbeatMs']) } : {}),
      ...(o['idleTimeoutMs'] !== undefined ? { idleTimeoutMs: Number(o['idleTimeoutMs']) } : {}),
      ...(o['window'] !== undefined ? { window: Number(o['window']) } : {}),
      ...(o['rtcIceHost'] !== undefined ? { rtcIceHosts: o['rtcIceHost'] as unknown as string[] } : {}),
      ...(o['presenceGraceMs'] !== undefined ? { presenceGraceMs: Number(o['presenceGraceMs']) } : {}),
      ...(o['leaseTtlMs'] !== undefined ? { leaseTtlMs: Number(o['leaseTtlMs']) } : {}),
      ...(o['handoffWaitMs'] !== undefined ? { handoffWaitMs: Number(o['handoffWaitMs']) } : {}),
      presenceEvents: o['presenceEvents'] !== false && env['LIFELINE_PRESENCE_EVENTS'] !== '0',
      demo: o['demo'] === true,
      streams: o['streams'] as 'open' | 'token',
      ...(o['streamLongPollMs'] !== undefined ? { streamLongPollMs: Number(o['streamLongPollMs']) } : {}),
      ...(o['streamMaxBodyBytes'] !== undefined ? { streamMaxBodyBytes: Number(o['streamMaxBodyBytes']) } : {}),
    });
    const url = await relay.listen();
    process.stdout.write(`listening on ${url}\n`);
    const stopDemo = o['demo'] === true ? await startDemoAgent(url, secret, relay.log, relay.config.rtcIceHosts) : () => {};
    if (o['demo'] === true) process.stdout.write(`demo: open ${url}/ (the echo agent is running)\n`);
    if (!o['secret']) {
      const admin = await mintToken(secret, { session: ANY_SESSION, participant: 'admin', role: 'admin', ttlSeconds: 24 * 3600 });
      process.stderr.write(`lifeline: an admin token for the next 24 h (create sessions, mint tokens):\n${admin}\n`);
    }
    const stop = (signal: string): void => {
      relay.log.info({ signal }, 'shutting down');
      stopDemo();
      relay.close().then(
        () => process.exit(0),
        (err: unknown) => {
          relay.log.error({ err }, 'shutdown failed');
          process.exit(1);
        },
      );
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });

program
  .command('token')
  .description('mint an access token (prints it on stdout)')
  .requiredOption('--session <id>', `session id (${ANY_SESSION} with --role admin)`)
  .requiredOption('--participant <id>', 'participant id')
  .addOption(new Option('--role <role>', 'user | agent | admin').choices(['user', 'agent', 'admin']).default('user'))
  .option('--ttl <seconds>', 'lifetime in seconds', int, 3600)
  .option('--secret <secret>', 'the relay secret (env LIFELINE_SECRET)', env['LIFELINE_SECRET'])
  .action(async (o: { session: string; participant: string; role: 'user' | 'agent' | 'admin'; ttl: number; secret?: string }) => {
    if (!o.secret) throw new InvalidArgumentError('--secret or LIFELINE_SECRET is required');
    const token = await mintToken(o.secret, { session: o.session, participant: o.participant, role: o.role, ttlSeconds: o.ttl });
    process.stdout.write(token + '\n');
  });

program
  .command('bench')
  .description('latency benchmarks with baselines (see native-free-bench/)')
  .argument('[args...]', 'scenario and its options; `lifeline bench --help` lists them')
  .allowUnknownOption(true)
  .helpOption(false)
  .action(async (args: string[]) => {
    const { runBenchCli } = await import('../../native-free-bench/cli.js');
    process.exitCode = await runBenchCli(args);
  });

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`lifeline: ${isLifelineError(err) ? `${err.code}: ${err.message}` : String(err instanceof Error ? err.message : err)}\n`);
  process.exit(2);
});
