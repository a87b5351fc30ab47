import type { RTCPeerConnection } from 'werift';
import { describe, expect, it, vi } from 'vitest';
import { hurryChecks, retransmitWhenReconnected, sendOnOldPairUntilNominated } from '../../src/werift/index.js';

/**
 * The werift fixes reach into werift's ICE and SCTP internals. These tests drive them through a
 * stand-in with the same shape, so the decisions (when to retransmit, and how often) are checked
 * without the timing of real sockets; test/webrtc/ checks the whole over real ones.
 */
function standIn() {
  const oldSocket = {
    name: 'old socket',
    transactions: { t1: { ended: false, request: 'check', addr: ['127.0.0.1', 4000] } },
    sendStun: vi.fn(async () => {}),
    sendData: vi.fn(async (_data: Buffer, _addr: unknown) => {}),
  };
  const newSocket = { name: 'new socket', transactions: {}, sendStun: vi.fn(async () => {}), sendData: vi.fn(async (_data: Buffer, _addr: unknown) => {}) };
  const dropped: Buffer[] = [];
  const handled: unknown[][] = [];
  const listeners = new Set<(s: string) => void>();
  const connection = {
    nominated: { protocol: oldSocket, remoteAddr: ['127.0.0.1', 4000] } as { protocol: unknown; remoteAddr: unknown } | undefined,
    protocols: [oldSocket, newSocket],
    checkIncoming(message: unknown, addr: unknown, protocol: unknown): void {
      handled.push([message, addr, protocol]);
    },
    checkComplete(pair: { protocol: unknown; remoteAddr: unknown }): void {
      connection.nominated = pair;
    },
    /** werift's own send: on the nominated pair, or nowhere. */
    async send(data: Buffer): Promise<void> {
      if (!connection.nominated) dropped.push(data);
    },
  };
  const assoc = {
    timer3Handle: {} as unknown,
    sentQueue: [{ retransmit: false }, { retransmit: false }],
    flightSize: 2400,
    partialBytesAcked: 0,
    fastRecoveryExit: undefined as number | undefined,
    timer3Cancel: vi.fn(),
    transmit: vi.fn(async () => {}),
  };
  const pc = {
    iceTransports: [
      {
        connection,
        onStateChange: {
          subscribe(cb: (s: string) => void) {
            listeners.add(cb);
            return { unSubscribe: () => listeners.delete(cb) };
          },
        },
      },
    ],
    sctpTransport: { sctp: assoc },
  } as unknown as RTCPeerConnection;
  /** What a restart does to werift: the bridge goes in first, then the selected pair is cleared. */
  const restart = () => {
    const bridge = sendOnOldPairUntilNominated(pc);
    connection.nominated = undefined;
    return bridge;
  };
  return { pc, connection, assoc, oldSocket, newSocket, handled, listeners, dropped, restart };
}

const flush = () => new Promise<void>((r) => setImmediate(r));

describe('retransmitWhenReconnected', () => {
  it('retransmits as soon as a check arrives over the old path, before any nomination, and not again when that path is nominated', async () => {
    const s = standIn();
    const bridge = s.restart();
    const reconnected = vi.fn();
    retransmitWhenReconnected(s.pc, reconnected, bridge);
    s.connection.checkIncoming('check', ['127.0.0.1', 4000], s.oldSocket);
    expect(s.handled).toHaveLength(1); // werift answered it first
    expect(s.assoc.transmit).toHaveBeenCalledTimes(1);
    expect(s.assoc.sentQueue.every((c) => c.retransmit)).toBe(true);
    expect(s.assoc.flightSize).toBe(0);
    expect(reconnected).not.toHaveBeenCalled();
    s.connection.checkIncoming('check', ['127.0.0.1', 4000], s.oldSocket);
    expect(s.assoc.transmit).toHaveBeenCalledTimes(1);
    s.connection.checkComplete({ protocol: s.oldSocket, remoteAddr: ['127.0.0.1', 4000] });
    await flush();
    expect(reconnected).toHaveBeenCalledTimes(1);
    expect(s.assoc.transmit).toHaveBeenCalledTimes(1);
  });

  it('a first check over another path moves the bridge there (the peer moved) and retransmits over it', async () => {
    const s = standIn();
    const bridge = s.restart();
    retransmitWhenReconnected(s.pc, undefined, bridge);
    s.connection.checkIncoming('check', ['127.0.0.1', 4100], s.newSocket);
    expect(bridge.path).toEqual({ protocol: s.newSocket, remoteAddr: ['127.0.0.1', 4100] });
    expect(s.assoc.transmit).toHaveBeenCalledTimes(1);
    await s.connection.send(Buffer.from('record'));
    expect(s.newSocket.sendData).toHaveBeenCalledWith(Buffer.from('record'), ['127.0.0.1', 4100]);
    expect(s.oldSocket.sendData).not.toHaveBeenCalled();
    // Later checks over other paths change nothing; the nomination of that path retransmits nothing more.
    s.connection.checkIncoming('check', ['127.0.0.1', 4000], s.oldSocket);
    expect(bridge.path?.protocol).toBe(s.newSocket);
    s.connection.checkComplete({ protocol: s.newSocket, remoteAddr: ['127.0.0.1', 4100] });
    await flush();
    expect(s.assoc.transmit).toHaveBeenCalledTimes(1);
  });

  it('retransmits again when the pair nominated is not the path the first check came over', async () => {
    const s = standIn();
    const bridge = s.restart();
    retransmitWhenReconnected(s.pc, undefined, bridge);
    s.connection.checkIncoming('check', ['127.0.0.1', 4000], s.oldSocket);
    expect(s.assoc.transmit).toHaveBeenCalledTimes(1);
    s.connection.checkComplete({ protocol: s.oldSocket, remoteAddr: ['127.0.0.1', 4100] });
    await flush();
    expect(s.assoc.transmit).toHaveBeenCalledTimes(2);
    // Nominated: werift's own send again.
    await s.connection.send(Buffer.from('after'));
    expect(s.oldSocket.sendData).not.toHaveBeenCalled();
  });

  it('a restart before the last one healed keeps the bridge in place', () => {
    const s = standIn();
    s.restart();
    const second = s.restart();
    expect(second.path).toEqual({ protocol: s.oldSocket, remoteAddr: ['127.0.0.1', 4000] });
    void s.connection.send(Buffer.from('record'));
    expect(s.oldSocket.sendData).toHaveBeenCalledTimes(1);
    expect(s.dropped).toHaveLength(0);
    second.dispose();
    void s.connection.send(Buffer.from('record'));
    expect(s.dropped).toHaveLength(1);
    expect(s.listeners.size).toBe(0);
  });

  it('without a bridge, or with nothing outstanding, only the nomination counts', async () => {
    const s = standIn();
    s.restart();
    retransmitWhenReconnected(s.pc);
    s.connection.checkIncoming('check', ['127.0.0.1', 4000], s.oldSocket);
    expect(s.assoc.transmit).not.toHaveBeenCalled();
    for (const l of s.listeners) l('connected');
    expect(s.assoc.transmit).toHaveBeenCalledTimes(1);

    const idle = standIn();
    idle.assoc.timer3Handle = undefined;
    const bridge = idle.restart();
    retransmitWhenReconnected(idle.pc, undefined, bridge);
    idle.connection.checkIncoming('check', ['127.0.0.1', 4000], idle.oldSocket);
    idle.connection.checkComplete({ protocol: idle.oldSocket, remoteAddr: ['127.0.0.1', 4000] });
    await flush();
    expect(idle.assoc.transmit).not.toHaveBeenCalled();
  });

  it('after dispose nothing is retransmitted and no listener is left behind, whatever order the fixes stop in', async () => {
    const s = standIn();
    const bridge = s.restart();
    const original = s.connection.checkComplete;
    const stopHurry = hurryChecks(s.pc, 1_000);
    const stopKick = retransmitWhenReconnected(s.pc, stopHurry, bridge);
    stopHurry(); // the hurry's own time limit, before the kick's disposer
    stopKick();
    bridge.dispose();
    s.connection.checkIncoming('check', ['127.0.0.1', 4000], s.oldSocket);
    s.connection.checkComplete({ protocol: s.oldSocket, remoteAddr: ['127.0.0.1', 4000] });
    await flush();
    expect(s.assoc.transmit).not.toHaveBeenCalled();
    expect(s.oldSocket.sendStun).not.toHaveBeenCalled();
    expect(s.connection.checkComplete).toBe(original);
    expect(s.listeners.size).toBe(0);
    // The hook wrapper stays (installed once per connection), with nothing hooked on it.
    expect(s.handled).toHaveLength(1);
  });
});

describe('hurryChecks', () => {
  it("answers the peer's check by resending our pending check to that address at once, until stopped", () => {
    const s = standIn();
    const stop = hurryChecks(s.pc, 1_000);
    s.connection.checkIncoming('check', ['127.0.0.1', 4100], s.oldSocket);
    expect(s.oldSocket.sendStun).not.toHaveBeenCalled();
    s.connection.checkIncoming('check', ['127.0.0.1', 4000], s.oldSocket);
    expect(s.oldSocket.sendStun).toHaveBeenCalledWith('check', ['127.0.0.1', 4000]);
    stop();
    s.connection.checkIncoming('check', ['127.0.0.1', 4000], s.oldSocket);
    expect(s.oldSocket.sendStun).toHaveBeenCalledTimes(1);
    expect(s.handled).toHaveLength(3);
  });
});
