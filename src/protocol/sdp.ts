/**
 * Small SDP helpers shared by the relay and the clients. Pure string functions, no I/O.
 */

/** Drops candidate lines whose address is not in `iceHosts` (no-op when it is empty). */
export function filterCandidates(sdp: string, iceHosts: readonly string[]): string {
  if (iceHosts.length === 0) return sdp;
  const allowed = new Set(iceHosts);
  return sdp
    .split('\r\n')
    .filter((line) => {
      if (!line.startsWith('a=candidate:')) return true;
      const host = line.split(' ')[4];
      return host !== undefined && allowed.has(host);
    })
    .join('\r\n');
}

/** A cheap sanity check before handing an offer to a WebRTC stack (which fails unhelpfully). */
export function looksLikeOffer(sdp: string): boolean {
  return sdp.startsWith('v=0') && /\r?\nm=application /.test(sdp) && /\r?\na=ice-ufrag:/.test(sdp) && /\r?\na=fingerprint:/.test(sdp);
}

/** Rewrites every host candidate's address and port (e.g. to route a client through a proxy). */
export function rewriteCandidates(sdp: string, map: (host: string, port: number) => { host: string; port: number } | undefined): string {
  return sdp
    .split('\r\n')
    .flatMap((line) => {
      if (!line.startsWith('a=candidate:')) return [line];
      const parts = line.split(' ');
      const host = parts[4];
      const port = Number(parts[5]);
      if (host === undefined || !Number.isInteger(port)) return [line];
      const to = map(host, port);
      if (!to) return [];
      parts[4] = to.host;
      parts[5] = String(to.port);
      return [parts.join(' ')];
    })
    .join('\r\n');
}
