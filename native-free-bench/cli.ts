export async function runBenchCli(args: string[]): Promise<number> {
  process.stderr.write(`bench: not yet (${args.join(' ')})\n`);
  return 1;
}
