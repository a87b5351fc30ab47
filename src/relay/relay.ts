import fastifyWebsocket from '@fastify/websocket';
import Fastify from 'fastify';
import type { FastifyBaseLogger, FastifyInstance } from 'fastify';
import { pino } from 'pino';
import type { Logger } from 'pino';
import { LifelineError } from '../protocol/index.js';
import { openStore } from '../store/index.js';
import { LeaseManager, PresenceTracker, RELAY_ORIGIN, Timeline } from '../timeline/index.js';
import { RtcTransport, registerWsTransport } from '../transport/index.js';
import { registerStreamRoutes } from '../transport/http/index.js';
import type { ConnectionLimits, ConnectionObserver, ConnectionServices } from '../transport/index.js';
import { Authenticator, tokenOf } from './auth.js';
import { parseConfig } from './config.js';
import type { RelayConfig, RelayConfigInput } from './config.js';
import { ConnectionRegistry } from './connection-registry.js';
import { installErrorHandlers } from './http-errors.js';
import { RelayMetrics } from './metrics.js';
import { registerSessionRoutes } from './session-routes.js';
import { registerStaticRoutes } from './static-routes.js';
import { WorkerPool } from './worker-pool.js';

export interface Relay {
  readonly config: RelayConfig;
  readonly app: FastifyInstance;
  readonly timeline: Timeline;
  readonly metrics: RelayMetrics;
  readonly connections: ConnectionRegistry;
  readonly rtc: RtcTransport;
  readonly presence: PresenceTracker;
  readonly leases: LeaseManager;
  readonly workers: WorkerPool;
  readonly log: Logger;
  /** Starts listening; resolves with the base URL (http://host:port). */
  listen(): Promise<string>;
  /** Ends every connection with SHUTTING_DOWN (close 4503: clients reconnect), closes WebRTC peers, waits for pending commits, closes the store. Idempotent. */
  close(): Promise<void>;
}

/**
 * The composition root: store → timeline → transports → HTTP API, metrics, logging.
 * Pass `logger` to share a pino instance; otherwise one is made at config.logLevel on stderr.
 */
export async function createRelay(input: RelayConfigInput, opts: { logger?: Logger } = {}): Promise<Relay> {
  const config = parseConfig(input);
  const log = opts.logger ?? pino({ level: config.logLevel, name: 'lifeline' }, pino.destination(2));
  const metrics = new RelayMetrics();
  const store = await openStore(config.store, {
    sqliteSynchronous: config.sqliteSync,
    sqliteCheckpointMs: config.sqliteCheckpointMs,
    onSqliteCheckpointFailure: (err) => log.warn({ err }, 'background WAL checkpoints failed; checkpointing inside commits from now on'),
    onSqliteRecovery: (skipped) =>
      log.warn({ skipped }, 'the last run stopped without closing the store and the machine restarted since: its last appends may be lost; every timeline skips offsets so none is reused'),
  });
  const timeline = new Timeline(store, {
    ringSize: config.ringSize,
    observer: {
      ...metrics.timelineObserver(),
      // Runs only after start-up, when everything below exists.
      sessionEnded: (id) => {
        presence.forget(id);
        leases.forget(id);
        rtc.media.forget(id);
        workers.forgetSession(id);
      },
    },
  });
  metrics.watch(timeline);
  const connections = new ConnectionRegistry();
  const auth = new Authenticator(config.secret);
  const limits: ConnectionLimits = {
    maxFrameBytes: config.maxFrameBytes,
    window: config.window,
    heartbeatMs: config.heartbeatMs,
    idleTimeoutMs: config.idleTimeoutMs,
    helloTimeoutMs: 5000,
    highWaterBytes: 1024 * 1024,
  };

  const app: FastifyInstance = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: Math.max(1024 * 1024, config.maxFrameBytes),
  });
  installErrorHandlers(app);
  // Frames above maxFrameBytes get a typed error and the connection lives on; far larger ones
  // are cut off by ws itself (close 1009) before they are buffered.
  await app.register(fastifyWebsocket, { options: { maxPayload: config.maxFrameBytes * 4 } });

  app.get('/healthz', async () => ({ ok: true, store: store.kind, connections: connections.size }));
  app.get('/metrics', async (_req, reply) => reply.type(metrics.contentType).send(await metrics.text()));
  const presence = new PresenceTracker(timeline, {
    graceMs: config.presenceGraceMs,
    recordEvents: config.presenceEvents,
    onError: (err) => log.warn({ err }, 'presence event not written'),
  });
  const workers = new WorkerPool({
    authorize: (req) => auth.claims(req),
    handoffWaitMs: config.handoffWaitMs,
    onHandoffTimeout: (a) => log.warn({ session: a.sessionId, role: a.role, to: a.to }, 'handoff target did not come; offering the session to any worker'),
    onAssign: (a, worker) => log.info({ session: a.sessionId, role: a.role, reason: a.reason, worker }, 'session assigned'),
  });
  const leases = new LeaseManager(store, {
    ttlMs: config.leaseTtlMs,
    onExpired: (lease) => {
      workers.ended(lease);
      workers.assign({ sessionId: lease.sessionId, role: lease.role, reason: 'expired', from: lease.holder ?? undefined });
    },
  });
  const services: ConnectionServices = {
    leases,
    released: (sessionId, lease, handoff) => {
      workers.ended(lease);
      if (!handoff) return;
      const data = { action: 'handoff', role: lease.role, from: lease.holder, to: handoff.to, ...(handoff.context !== undefined ? { context: handoff.context } : {}) };
      void timeline.append(sessionId, [{ from: RELAY_ORIGIN, kind: 'control', data }]).catch((err: unknown) => log.warn({ err }, 'handoff mark not written'));
      workers.assign({ sessionId, role: lease.role, reason: 'handoff', to: handoff.to, from: lease.holder ?? undefined, context: handoff.context });
    },
  };
  const metricsObserver = metrics.connectionObserver();
  const connectionObserver: ConnectionObserver = {
    ...metricsObserver,
    welcomed: (c) => presence.attach(c.sessionId, c.origin!, c),
    silent: (c) => presence.silent(c.sessionId, c.origin!, c),
    alive: (c) => presence.alive(c.sessionId, c.origin!, c),
    closed: (c, code, reason) => {
      metricsObserver.closed?.(c, code, reason);
      if (c.origin) presence.detach(c.sessionId, c.origin, c, c.cleanClose);
    },
    failed: (err, c) => log.error({ err, session: c.sessionId }, 'connection failed'),
  };
  registerSessionRoutes(app, { timeline, auth, registry: connections, presence, workers, secret: config.secret });
  await registerStreamRoutes(app, {
    timeline,
    access: config.streams,
    auth: { claimsFor: async (req, id) => (tokenOf(req) === undefined ? undefined : auth.forSession(req, id)) },
    longPollMs: config.streamLongPollMs,
    maxBodyBytes: config.streamMaxBodyBytes,
    sseKeepAliveMs: 15_000,
    observer: metrics.streamObserver(),
  });
  workers.register(app);
  registerStaticRoutes(app, { timeline, auth, workers, secret: config.secret, demo: config.demo });
  registerWsTransport(app, {
    timeline,
    limits,
    authorize: (req, sessionId) => auth.forSession(req, sessionId),
    registry: connections,
    observer: connectionObserver,
    services,
  });

  const rtc = new RtcTransport({
    timeline,
    limits,
    authorize: (req, sessionId) => auth.forSession(req, sessionId),
    registry: connections,
    observer: connectionObserver,
    rtc: { iceHosts: config.rtcIceHosts, icePortRange: config.rtcPortRange },
    services,
    onRestart: (_peer, ms) => metrics.iceRestarted(ms),
    media: { observer: metrics.mediaObserver() },
  });
  rtc.register(app);
  metrics.watchRtc(rtc);

  timeline.startSweeper(config.sweepIntervalMs, (err) => log.error({ err }, 'expiry sweep failed'));

  let closing: Promise<void> | undefined;
  return {
    config,
    app,
    timeline,
    metrics,
    connections,
    rtc,
    presence,
    leases,
    workers,
    log,
    async listen() {
      const address = await app.listen({ host: config.host, port: config.port });
      const url = new URL(address);
      if (url.hostname === '[::1]' || url.hostname === '::1') url.hostname = 'localhost';
      return url.origin;
    },
    close() {
      closing ??= (async () => {
        // No presence events for a shutdown: devices come back to another (or the same) relay.
        presence.close();
        leases.close();
        workers.closeAll();
        for (const c of connections.all()) c.fail(new LifelineError('SHUTTING_DOWN'));
        rtc.closeAll();
        await app.close();
        await timeline.close();
      })();
      return closing;
    },
  };
}
