import type { CurvePoint } from './histogram.js';
import type { BenchRun } from './result.js';

/**
 * A hand-written SVG, no chart library: for the scenario's first metric, grouped bars of
 * p50/p95/p99/max per series (linear, in the metric's unit), and the percentile distribution of
 * each series for the first metric with a latency curve (log ms against "nines": 0, 90, 99, 99.9,
 * 99.99 percent, max).
 */

const COLORS = ['#d9480f', '#1c7ed6', '#2b8a3e', '#7048e8', '#e67700'];
const W = 880;
const H = 360;
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
const num = (x: number): string => (Math.round(x * 10) / 10).toString();
const label = (ms: number): string => (ms >= 100 ? ms.toFixed(0) : ms >= 10 ? ms.toFixed(1) : ms.toFixed(2));

function text(x: number, y: number, s: string, attrs = ''): string {
  return `<text x="${num(x)}" y="${num(y)}" ${attrs}>${esc(s)}</text>`;
}

function bars(run: BenchRun, metric: string, x0: number, y0: number, w: number, h: number): string[] {
  const series = run.series.map((name, i) => ({
    name,
    color: COLORS[i % COLORS.length]!,
    s: i === 0 ? run.json.results[metric] : run.json.baselines[name]?.[metric],
  }));
  const fields = ['p50', 'p95', 'p99', 'max'] as const;
  const top = Math.max(0.001, ...series.flatMap((se) => fields.map((f) => se.s?.[f] ?? 0))) * 1.12;
  const unit = series.find((se) => se.s)?.s?.unit ?? 'ms';
  const out = [text(x0, y0 - 12, `${metric}: percentiles (${unit})`, 'font-weight="bold"')];
  out.push(`<line x1="${x0}" y1="${y0 + h}" x2="${x0 + w}" y2="${y0 + h}" stroke="#555"/>`);
  const groupW = w / fields.length;
  const barW = Math.min(40, (groupW * 0.8) / series.length);
  fields.forEach((f, g) => {
    const gx = x0 + g * groupW + (groupW - barW * series.length) / 2;
    series.forEach((se, k) => {
      const v = se.s?.[f] ?? 0;
      const bh = (v / top) * h;
      const bx = gx + k * barW;
      out.push(`<rect x="${num(bx)}" y="${num(y0 + h - bh)}" width="${num(barW - 3)}" height="${num(bh)}" fill="${se.color}"/>`);
      out.push(text(bx + (barW - 3) / 2, y0 + h - bh - 4, unit === 'ms' ? label(v) : String(Math.round(v)), 'text-anchor="middle" font-size="10"'));
    });
    out.push(text(x0 + g * groupW + groupW / 2, y0 + h + 16, f, 'text-anchor="middle"'));
  });
  return out;
}

/** x position of a percentile on a "nines" axis: -log10(1 - p), with max drawn at 5 nines. */
const nines = (p: number): number => (p >= 100 ? 5 : Math.min(5, -Math.log10(1 - p / 100)));

function curves(run: BenchRun, metric: string, x0: number, y0: number, w: number, h: number): string[] {
  const all = run.series.map((name, i) => ({ name, color: COLORS[i % COLORS.length]!, pts: run.curves[name]?.[metric] ?? [] }));
  const values = all.flatMap((c) => c.pts.map((p) => p.ms)).filter((v) => v > 0);
  const out = [text(x0, y0 - 12, `${metric}: distribution (log ms)`, 'font-weight="bold"')];
  if (values.length === 0) return [...out, text(x0 + w / 2, y0 + h / 2, 'no data', 'text-anchor="middle"')];
  const lo = Math.log10(Math.max(0.001, Math.min(...values)) / 1.5);
  const hi = Math.log10(Math.max(...values) * 1.5);
  const px = (p: number): number => x0 + (nines(p) / 5) * w;
  const py = (ms: number): number => y0 + h - ((Math.log10(Math.max(ms, 10 ** lo)) - lo) / (hi - lo || 1)) * h;
  out.push(`<rect x="${x0}" y="${y0}" width="${w}" height="${h}" fill="none" stroke="#bbb"/>`);
  for (let d = Math.floor(lo); d <= Math.ceil(hi); d++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** d;
      if (v < 10 ** lo || v > 10 ** hi) continue;
      out.push(`<line x1="${x0}" y1="${num(py(v))}" x2="${x0 + w}" y2="${num(py(v))}" stroke="#eee"/>`);
      out.push(text(x0 - 4, py(v) + 3, String(+v.toPrecision(3)), 'text-anchor="end" font-size="10"'));
    }
  }
  const ticks: [number, string][] = [[0, '0%'], [90, '90%'], [99, '99%'], [99.9, '99.9%'], [99.99, '99.99%'], [100, 'max']];
  for (const [p, name] of ticks) out.push(text(px(p), y0 + h + 16, name, 'text-anchor="middle" font-size="10"'));
  for (const c of all) {
    if (c.pts.length === 0) continue;
    const path = c.pts.map((pt: CurvePoint, i: number) => `${i === 0 ? 'M' : 'L'}${num(px(pt.p))},${num(py(pt.ms))}`).join(' ');
    out.push(`<path d="${path}" fill="none" stroke="${c.color}" stroke-width="2"/>`);
    for (const pt of c.pts) out.push(`<circle cx="${num(px(pt.p))}" cy="${num(py(pt.ms))}" r="2.5" fill="${c.color}"/>`);
  }
  return out;
}

export function renderSvg(run: BenchRun, metric = Object.keys(run.json.results)[0] ?? 'latency'): string {
  const curveMetric = run.curves[run.series[0] ?? '']?.[metric] ? metric : (Object.keys(run.curves[run.series[0] ?? ''] ?? {})[0] ?? metric);
  const title = `${run.json.scenario} — ${Object.entries(run.json.config)
    .filter(([k]) => ['sessions', 'rate', 'duration', 'store', 'transport', 'burst'].includes(k))
    .map(([k, v]) => `${k} ${v}`)
    .join(', ')}`;
  const legend = run.series.map((name, i) => {
    const x = 20 + i * 150;
    return `<rect x="${x}" y="${H - 22}" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/>` + text(x + 18, H - 12, name);
  });
  const body = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`,
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    text(20, 22, title, 'font-size="14" font-weight="bold"'),
    ...bars(run, metric, 30, 70, 370, 220),
    ...curves(run, curveMetric, 480, 70, 370, 220),
    ...legend,
    text(W - 20, H - 12, run.ok ? 'integrity OK' : 'integrity FAILED', `text-anchor="end" fill="${run.ok ? '#2b8a3e' : '#c92a2a'}"`),
    '</svg>',
  ];
  return body.join('\n') + '\n';
}
