/**
 * V8 flags the relay's Node process should run with (`npm start` passes them; so does the bench's
 * relay launcher; for `npx lifeline serve`, set `NODE_OPTIONS` to them).
 *
 * `--max-semi-space-size=4` (MiB): V8 grows the young generation to 16 MiB semi-spaces once a busy
 * start-up has made it, and a scavenge's pause grows with that size: about 2.7 ms at 16 MiB against
 * 1 ms at 4 MiB in the relay serving 10 WebRTC users (werift allocates a lot per packet). Scavenges
 * come four times as often, but a token that meets one waits a quarter as long. Measured with
 * `lifeline bench tokens --transport webrtc`: p99 1.29–1.51 ms against 1.70–2.44 ms warm, and
 * 2.5–3.7 ms against 5.3–8.2 ms in the first seconds (docs/BENCHMARKS.md).
 */
export const RELAY_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];
