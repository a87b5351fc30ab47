/**
 * Preloaded (`--import`) into every child the harness starts: the harness holds the child's stdin
 * open, so when stdin ends the harness is gone — even if it was killed with SIGKILL and could not
 * clean up — and the child sends itself SIGTERM to shut down the way it normally does.
 */
const bye = (): void => {
  process.kill(process.pid, 'SIGTERM');
  setTimeout(() => process.exit(0), 3000).unref();
};
process.stdin.on('end', bye);
process.stdin.on('error', bye);
process.stdin.resume();
// Reading stdin must not keep an otherwise finished child alive.
(process.stdin as { unref?: () => void }).unref?.();
