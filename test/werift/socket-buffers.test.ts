import { readFileSync } from 'node:fs';
import type { Socket } from 'node:dgram';
import { afterEach, describe, expect, it } from 'vitest';
import { RTCPeerConnection } from 'werift';
import { UDP_SOCKET_BUFFER_BYTES, gatheringComplete, peerConfig } from '../../src/werift/index.js';

/** The buffer Linux grants for a request of `bytes` (capped at the system maximum, then doubled for its bookkeeping). */
function granted(bytes: number, maxFile: string): number {
  return 2 * Math.min(bytes, Number(readFileSync(maxFile, 'utf8').trim()));
}

function candidateSockets(pc: RTCPeerConnection): Socket[] {
  return pc.iceTransports.flatMap((t) =>
    ((t.connection as unknown as { protocols?: { transport?: { socket?: Socket } }[] }).protocols ?? []).flatMap((p) => (p.transport?.socket ? [p.transport.socket] : [])),
  );
}

const peers: RTCPeerConnection[] = [];
afterEach(async () => {
  for (const pc of peers.splice(0)) await pc.close();
});

describe('werift fix 7: UDP socket buffers', () => {
  it.runIf(process.platform === 'linux')('every candidate socket gets the larger buffers once gathering is complete', async () => {
    const pc = new RTCPeerConnection(peerConfig(['127.0.0.1']));
    peers.push(pc);
    pc.createDataChannel('frames', { negotiated: true, id: 0 });
    await pc.setLocalDescription(await pc.createOffer());
    const before = candidateSockets(pc).map((s) => s.getRecvBufferSize());
    await gatheringComplete(pc);
    const sockets = candidateSockets(pc);
    expect(sockets.length).toBeGreaterThan(0);
    for (const socket of sockets) {
      expect(socket.getRecvBufferSize()).toBe(granted(UDP_SOCKET_BUFFER_BYTES, '/proc/sys/net/core/rmem_max'));
      expect(socket.getSendBufferSize()).toBe(granted(UDP_SOCKET_BUFFER_BYTES, '/proc/sys/net/core/wmem_max'));
    }
    // werift's own sockets start at the kernel's default, which is what this changes.
    const defaultRecv = Number(readFileSync('/proc/sys/net/core/rmem_default', 'utf8').trim());
    for (const size of before) expect(size).toBe(defaultRecv);
  });
});
