import type { FastifyRequest } from 'fastify';
import { LifelineError } from '../../protocol/index.js';
import type { Origin, ProducerRef, TokenClaims } from '../../protocol/index.js';
import type { SessionRecord } from '../../store/index.js';

/**
 * Who may use a stream. `open`: streams created over HTTP (they have a content type) need no
 * token, as in the reference Durable Streams server; session timelines still need their session
 * token. `token`: every request needs a token for the stream's id (a session token, or an admin
 * token) — the default, since an open relay lets anyone create, read and delete streams.
 */
export type StreamAccessMode = 'open' | 'token';

/** Token checks the relay provides (its Authenticator); the transport never sees the secret. */
export interface StreamAuth {
  /**
   * The claims of the request's token if it carries one, checked for `streamId` (session token
   * for that id, or an admin/worker token for every session). Undefined when there is no token.
   * Throws UNAUTHORIZED / TOKEN_EXPIRED / FORBIDDEN — before anything about the stream is looked
   * up, so a token for another stream learns nothing about this one.
   */
  claimsFor(req: FastifyRequest, streamId: string): Promise<TokenClaims | undefined>;
}

/** What a request may do with one stream, decided once per request. */
export class StreamAccess {
  readonly claims: TokenClaims | undefined;

  constructor(claims: TokenClaims | undefined) {
    this.claims = claims;
  }

  static async check(auth: StreamAuth, mode: StreamAccessMode, req: FastifyRequest, streamId: string): Promise<StreamAccess> {
    const claims = await auth.claimsFor(req, streamId);
    if (!claims && mode === 'token') throw new LifelineError('UNAUTHORIZED', 'streams need a token (relay runs with --streams token)');
    return new StreamAccess(claims);
  }

  get admin(): boolean {
    return this.claims?.role === 'admin';
  }

  /**
   * Called with the stream's record once it is known: session timelines (no content type) always
   * need a token, whatever the mode. In open mode an anonymous request thus learns that the name
   * is a session's (401), never anything of its content.
   */
  allow(record: SessionRecord | undefined): void {
    if (record && record.contentType == null && !this.claims) throw new LifelineError('UNAUTHORIZED', 'session streams need the session token');
  }

  /** Deleting a session timeline (or creating forks of one) is the session API's: admin only. */
  allowManage(record: SessionRecord | undefined): void {
    this.allow(record);
    if (record && record.contentType == null && !this.admin) throw new LifelineError('FORBIDDEN', 'needs an admin token');
  }

  /** The origin of events this request appends. */
  origin(): Origin {
    const c = this.claims;
    if (!c) return { participant: 'anonymous', device: 'http', role: 'user' };
    return { participant: c.participant, device: 'http', role: c.role === 'admin' ? 'system' : c.role };
  }

  /**
   * Producer ids are scoped by participant as on every transport (so a producer continues over
   * HTTP where it left off over WebSocket); anonymous requests use the id as given. `@role` lease
   * producers need the lease, which HTTP cannot hold.
   */
  producerKey(ref: ProducerRef): ProducerRef {
    if (ref.id.startsWith('@')) throw new LifelineError('NOT_LEASE_HOLDER', 'lease producers append over a connection that holds the lease');
    return this.claims ? { ...ref, id: `${this.claims.participant}/${ref.id}` } : ref;
  }
}
