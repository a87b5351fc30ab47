import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Summary } from './histogram.js';
import type { BenchRun } from './result.js';
import { renderSvg } from './svg.js';

/** Every (metric, series, summary) row of a run: the system under test first, then baselines. */
export function rowsOf(run: BenchRun): { metric: string; series: string; s: Summary }[] {
  const rows: { metric: string; series: string; s: Summary }[] = [];
  const subject = run.series[0] ?? 'subject';
  const metrics = new Set([...Object.keys(run.json.results), ...Object.values(run.json.baselines).flatMap((b) => Object.keys(b))]);
  for (const metric of metrics) {
    const own = run.json.results[metric];
    if (own) rows.push({ metric, series: subject, s: own });
    for (const [name, b] of Object.entries(run.json.baselines)) {
      const s = b[metric];
      if (s) rows.push({ metric, series: name, s });
    }
  }
  return rows;
}

const fmt = (x: number): string => (x >= 100 ? x.toFixed(1) : x.toFixed(3));

function configLine(run: BenchRun): string {
  return Object.entries(run.json.config)
    .map(([k, v]) => `${k}=${v}`)
    .join('  ');
}

function integrityLine(run: BenchRun): string {
  const i = run.json.integrity;
  return `sent=${i.sent} delivered=${i.delivered} lost=${i.lost} duplicated=${i.duplicated} reordered=${i.reordered}`;
}

/** The plain-text table printed without --json. */
export function renderTable(run: BenchRun): string {
  const head = ['metric', 'series', 'unit', 'n', 'p50', 'p95', 'p99', 'max'];
  const body = rowsOf(run).map(({ metric, series, s }) => [metric, series, s.unit, String(s.n), fmt(s.p50), fmt(s.p95), fmt(s.p99), fmt(s.max)]);
  const widths = head.map((h, c) => Math.max(h.length, ...body.map((r) => r[c]!.length)));
  const line = (cells: string[]): string => cells.map((cell, c) => (c < 3 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ');
  const out = [
    `${run.json.scenario}: ${configLine(run)}`,
    '',
    line(head),
    line(widths.map((w) => '-'.repeat(w))),
    ...body.map(line),
    '',
    `ratios (${run.series[0]} / ${run.series[1] ?? 'baseline'}): ` +
      (Object.entries(run.json.ratios)
        .map(([k, v]) => `${k}=${v === null ? 'n/a' : `${v}x`}`)
        .join('  ') || 'none'),
    `integrity: ${integrityLine(run)}  ${run.ok ? 'OK' : 'FAILED'}`,
    ...run.notes.map((n) => `note: ${n}`),
  ];
  return out.join('\n') + '\n';
}

/** Markdown: the exact command, the configuration, the table, ratios, integrity, the chart. */
export function renderMarkdown(run: BenchRun, command: string, svgFile: string | undefined): string {
  const j = run.json;
  const rows = rowsOf(run)
    .map(({ metric, series, s }) => `| ${metric} | ${series} | ${s.unit} | ${s.n} | ${fmt(s.p50)} | ${fmt(s.p95)} | ${fmt(s.p99)} | ${fmt(s.max)} |`)
    .join('\n');
  const ratios = Object.entries(j.ratios);
  const i = j.integrity;
  return [
    `# Benchmark: ${j.scenario}`,
    '',
    '```sh',
    command,
    '```',
    '',
    `Finished at ${new Date().toISOString()}. Configuration: ${Object.entries(j.config)
      .map(([k, v]) => `${k} \`${v}\``)
      .join(', ')}.`,
    '',
    '| metric | series | unit | n | p50 | p95 | p99 | max |',
    '|---|---|---|--:|--:|--:|--:|--:|',
    rows,
    '',
    ratios.length
      ? [`Ratios (${run.series[0]} / ${run.series[1] ?? 'baseline'}):`, '', `| ${ratios.map(([k]) => k).join(' | ')} |`, `|${ratios.map(() => '--:').join('|')}|`, `| ${ratios.map(([, v]) => (v === null ? 'n/a' : `${v}×`)).join(' | ')} |`, ''].join('\n')
      : '',
    'Integrity:',
    '',
    '| sent | delivered | lost | duplicated | reordered | verdict |',
    '|--:|--:|--:|--:|--:|---|',
    `| ${i.sent} | ${i.delivered} | ${i.lost} | ${i.duplicated} | ${i.reordered} | ${run.ok ? 'OK' : 'FAILED'} |`,
    '',
    ...(run.notes.length ? ['Notes:', '', ...run.notes.map((n) => `- ${n}`), ''] : []),
    ...(svgFile ? [`![${j.scenario} percentiles](${svgFile})`, ''] : []),
  ].join('\n');
}

/** Writes DIR/<scenario>.md and DIR/<scenario>.svg; returns their paths. */
export function writeReport(dir: string, run: BenchRun, command: string): string[] {
  mkdirSync(dir, { recursive: true });
  const svgName = `${run.json.scenario}.svg`;
  const svgPath = join(dir, svgName);
  const mdPath = join(dir, `${run.json.scenario}.md`);
  writeFileSync(svgPath, renderSvg(run));
  writeFileSync(mdPath, renderMarkdown(run, command, svgName));
  return [mdPath, svgPath];
}

/** A shell-quoted command line for the report. */
export function shellCommand(parts: string[]): string {
  return parts.map((p) => (/^[A-Za-z0-9_./:=@%+-]+$/.test(p) ? p : `'${p.replace(/'/g, `'\\''`)}'`)).join(' ');
}
