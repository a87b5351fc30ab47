import type { FastifyInstance, FastifyRequest } from 'fastify';
import { z } from 'zod';
import { IdSchema, LifelineError } from '../../protocol/index.js';
import type { TokenClaims } from '../../protocol/index.js';
import type { Timeline } from '../../timeline/index.js';
import type { ConnectionLimits, ConnectionObserver, ConnectionServices, ProtocolConnection } from '../protocol-connection.js';
import { DEFAULT_RTC_OPTIONS } from './rtc-options.js';
import type { RtcOptions } from './rtc-options.js';
import { RtcPeer } from './rtc-peer.js';
import { MediaRouter } from './media-router.js';
import type { MediaLimits, MediaObserver } from './media-router.js';

export interface RtcTransportOptions {
  timeline: Timeline;
  limits: ConnectionLimits;
  authorize: (req: FastifyRequest, sessionId: string) => Promise<TokenClaims>;
  registry: { add(c: ProtocolConnection): void; remove(c: ProtocolConnection): void };
  observer?: ConnectionObserver;
  services?: ConnectionServices;
  rtc?: Partial<RtcOptions>;
  /** RTP routing and recording: limits and metrics hooks. */
  media?: { limits?: Partial<MediaLimits>; observer?: MediaObserver };
  /** Told of every ICE restart the relay answers, with its signaling time in ms. */
  onRestart?: (peer: RtcPeer, ms: number) => void;
}

const SessionParams = z.object({ id: IdSchema });
/** `batch=1`: the client unpacks message batches, so the relay may batch binary frames too. */
const OfferQuery = z.object({ batch: z.enum(['0', '1']).optional() });
const PeerParams = z.object({ id: IdSchema, peer: z.string().regex(/^[0-9a-f]{32}$/) });

function params<T>(schema: z.ZodType<T>, value: unknown): T {
  const parsed = schema.safeParse(value);
  if (!parsed.success) throw new LifelineError('BAD_REQUEST', 'bad path parameters');
  return parsed.data;
}

function sdpBody(req: FastifyRequest): string {
  if (typeof req.body !== 'string' || req.body.length === 0) throw new LifelineError('BAD_SDP', 'send the SDP offer as the body, Content-Type: application/sdp');
  return req.body;
}

/**
 * WebRTC signaling in the style of WHIP:
 *   POST   /v1/sessions/:id/rtc          offer → 201 answer, Location: the connection URL
 *   PATCH  /v1/sessions/:id/rtc/:peer    new offer (ICE restart) → 200 answer
 *   DELETE /v1/sessions/:id/rtc/:peer    leave → 204
 * Bodies are `application/sdp`. Non-trickle: answers carry every candidate.
 */
export class RtcTransport {
  readonly peers = new Map<string, RtcPeer>();
  readonly options: RtcOptions;
  /** Audio and video between the session's peers, and audio into the timeline. */
  readonly media: MediaRouter;
  readonly #opts: RtcTransportOptions;

  constructor(opts: RtcTransportOptions) {
    this.#opts = opts;
    this.options = { ...DEFAULT_RTC_OPTIONS, ...opts.rtc };
    this.media = new MediaRouter(opts.timeline, opts.media ?? {});
  }

  register(app: FastifyInstance): void {
    app.addContentTypeParser('application/sdp', { parseAs: 'string', bodyLimit: 64 * 1024 }, (_req, body, done) => done(null, body));

    app.post('/v1/sessions/:id/rtc', async (req, reply) => {
      const { id } = params(SessionParams, req.params);
      const claims = await this.#opts.authorize(req, id);
      await this.#opts.timeline.session(id);
      const offer = sdpBody(req);
      const query = OfferQuery.safeParse(req.query);
      const { peer, answer } = await RtcPeer.answer(offer, {
        batch: query.success && query.data.batch === '1',
        timeline: this.#opts.timeline,
        sessionId: id,
        claims,
        limits: this.#opts.limits,
        options: this.options,
        observer: this.#opts.observer ?? {},
        ...(this.#opts.services ? { services: this.#opts.services } : {}),
        media: this.media,
        onClosed: (p) => {
          this.peers.delete(p.id);
          this.#opts.registry.remove(p.connection);
        },
      });
      // The peer may already have failed (ICE gave up) while the answer was on its way back.
      if (peer.closed) throw new LifelineError('BAD_SDP', 'the connection failed during setup');
      this.peers.set(peer.id, peer);
      this.#opts.registry.add(peer.connection);
      return reply
        .status(201)
        .header('location', `/v1/sessions/${encodeURIComponent(id)}/rtc/${peer.id}`)
        .type('application/sdp')
        .send(answer);
    });

    app.patch('/v1/sessions/:id/rtc/:peer', async (req, reply) => {
      const peer = await this.#peerFor(req);
      const started = performance.now();
      const answer = await peer.restart(sdpBody(req));
      this.#opts.onRestart?.(peer, performance.now() - started);
      return reply.status(200).type('application/sdp').send(answer);
    });

    app.delete('/v1/sessions/:id/rtc/:peer', async (req, reply) => {
      const peer = await this.#peerFor(req);
      peer.close(true);
      return reply.status(204).send();
    });
  }

  async #peerFor(req: FastifyRequest): Promise<RtcPeer> {
    const { id, peer: peerId } = params(PeerParams, req.params);
    const claims = await this.#opts.authorize(req, id);
    const peer = this.peers.get(peerId);
    // Same answer for "no such peer" and "not yours": nothing leaks about other connections.
    if (!peer || peer.sessionId !== id || (claims.role !== 'admin' && peer.claims.participant !== claims.participant)) {
      throw new LifelineError('CONNECTION_NOT_FOUND');
    }
    return peer;
  }

  closeAll(): void {
    for (const peer of [...this.peers.values()]) peer.close();
    this.media.close();
  }
}
