// Dependency-free SVG charts for benchmark results: grouped bars and lines, linear or log axes.
// The output is plain SVG text (no fonts, scripts or styles from outside) with a viewBox, so it
// scales to the column width when a README embeds it with <img> or ![](…). A white background keeps
// it readable on GitHub's dark theme. Elements carry classes and data-* attributes (bar, point,
// tick) so tests can check geometry against values.

export interface BarGroup {
  label: string;
  bars: { series: string; value: number }[];
}

export interface LineSeries {
  name: string;
  points: { x: number; y: number }[];
  /** Series with the same colour key share a colour (default: the name), e.g. two sides of one system. */
  colourKey?: string;
  /** Drawn dashed, to tell apart series that share a colour. */
  dashed?: boolean;
}

const DEFAULT_WIDTH = 720;
const DEFAULT_HEIGHT = 400;
const FONT = "system-ui, -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif";
/** Rough advance width of one character as a fraction of the font size (sans-serif digits ≈ 0.55–0.6). */
const CHAR_WIDTH = 0.6;
const TICK_FONT = 11;
const LABEL_FONT = 12;
const VALUE_FONT = 10;
const TITLE_FONT = 15;
/** Room above the highest value on a linear y axis, so its value label fits inside the plot. */
const HEADROOM = 1.06;
const DASH = '6 4';
/** A white outline behind value labels, so lines crossing them do not blur the digits. */
const HALO = 'stroke="#fff" stroke-width="3" paint-order="stroke"';

/** Tableau 10, with its light yellow, pink and grey darkened so value labels in them stay legible on white. */
const PALETTE = [
  '#4e79a7',
  '#f28e2b',
  '#e15759',
  '#76b7b2',
  '#59a14f',
  '#c9a227',
  '#b07aa1',
  '#e377c2',
  '#9c755f',
  '#6b6ecf',
];

// ---------------------------------------------------------------------------------------------
// Public API

/** What every chart takes: its title, the y axis, and its size (default 720 × 400). */
interface ChartOptions {
  title: string;
  yLabel: string;
  logY?: boolean;
  width?: number;
  height?: number;
}

export function barChart(o: ChartOptions & { groups: BarGroup[] }): string {
  const width = o.width ?? DEFAULT_WIDTH;
  const height = o.height ?? DEFAULT_HEIGHT;
  const seriesNames = unique(o.groups.flatMap((g) => g.bars.map((b) => b.series)));
  const colours = assignColours(seriesNames);
  const values = o.groups.flatMap((g) => g.bars.map((b) => b.value));
  const yAxis = o.logY ? logAxis(values) : linearAxis([0, ...values], HEADROOM);

  const legend = layoutLegend(
    seriesNames.map((name) => ({ name, colour: colours.get(name)!, line: false, dashed: false })),
    width,
  );
  const groupLabelWidth = Math.max(0, ...o.groups.map((g) => textWidth(g.label, TICK_FONT)));
  const plotLeft = 16 + LABEL_FONT + 8 + yAxis.labelWidth;
  const plotRight = width - 16;
  const groupWidth = (plotRight - plotLeft) / Math.max(1, o.groups.length);
  // Long group labels are turned 30° instead of overlapping their neighbours.
  const rotateLabels = groupLabelWidth > groupWidth - 4;
  const labelDrop = rotateLabels ? groupLabelWidth * 0.5 + TICK_FONT : TICK_FONT;
  const plot = {
    left: plotLeft,
    right: plotRight,
    top: legend.bottom + 14,
    bottom: height - 12 - labelDrop,
  };
  const y = scaler(yAxis, plot.bottom, plot.top);

  const out: string[] = [];
  out.push(...frame(width, height, o.title), ...legend.svg);
  out.push(...yGrid(yAxis, y, plot), yTitle(o.yLabel, plot));

  const placed: Box[] = [];
  const labels: string[] = [];
  const slot = (groupWidth * 0.8) / Math.max(1, seriesNames.length);
  o.groups.forEach((group, gi) => {
    const groupLeft = plot.left + gi * groupWidth + groupWidth * 0.1;
    for (const bar of group.bars) {
      const si = seriesNames.indexOf(bar.series);
      const x = groupLeft + si * slot + slot * 0.05;
      const w = slot * 0.9;
      const base = yAxis.log ? plot.bottom : y(0);
      const top = y(yAxis.log ? Math.max(bar.value, yAxis.min) : bar.value);
      const h = Math.abs(base - top);
      out.push(
        `<rect class="bar" data-series="${esc(bar.series)}" data-value="${bar.value}" x="${r(x)}" ` +
          `y="${r(Math.min(base, top))}" width="${r(w)}" height="${r(h)}" fill="${colours.get(bar.series)}">` +
          `<title>${esc(`${group.label} · ${bar.series}: ${formatNumber(bar.value)}`)}</title></rect>`,
      );
      const text = formatNumber(bar.value);
      const tw = textWidth(text, VALUE_FONT);
      // A value label must fit over its bar (or its slot), stay inside the plot, and not overlap.
      const box = { x: x + w / 2 - tw / 2, y: Math.min(base, top) - 3 - VALUE_FONT, w: tw, h: VALUE_FONT };
      if (tw <= slot + 2 && box.y >= plot.top - VALUE_FONT && !placed.some((p) => overlaps(p, box))) {
        placed.push(box);
        labels.push(
          `<text class="value" x="${r(x + w / 2)}" y="${r(box.y + VALUE_FONT - 1)}" text-anchor="middle" ` +
            `font-size="${VALUE_FONT}" fill="#333">${esc(text)}</text>`,
        );
      }
    }
    const cx = plot.left + (gi + 0.5) * groupWidth;
    const ly = plot.bottom + TICK_FONT + 5;
    out.push(
      rotateLabels
        ? `<text class="group" x="${r(cx)}" y="${r(ly)}" text-anchor="end" font-size="${TICK_FONT}" ` +
            `transform="rotate(-30 ${r(cx)} ${r(ly)})">${esc(group.label)}</text>`
        : `<text class="group" x="${r(cx)}" y="${r(ly)}" text-anchor="middle" font-size="${TICK_FONT}">` +
            `${esc(group.label)}</text>`,
    );
  });
  out.push(...labels, axisLines(plot), '</svg>');
  return out.join('\n') + '\n';
}

export function lineChart(o: ChartOptions & { xLabel: string; series: LineSeries[]; logX?: boolean }): string {
  const width = o.width ?? DEFAULT_WIDTH;
  const height = o.height ?? DEFAULT_HEIGHT;
  const colourKey = (s: LineSeries): string => s.colourKey ?? s.name;
  const colours = assignColours(unique(o.series.map(colourKey)));
  const xs = o.series.flatMap((s) => s.points.map((p) => p.x));
  const ys = o.series.flatMap((s) => s.points.map((p) => p.y));
  const xAxis = o.logX ? logAxis(xs) : linearAxis(xs);
  // Linear y starts at zero: a rate axis that starts elsewhere exaggerates differences.
  const yAxis = o.logY ? logAxis(ys) : linearAxis([0, ...ys], HEADROOM);

  const legend = layoutLegend(
    o.series.map((s) => ({ name: s.name, colour: colours.get(colourKey(s))!, line: true, dashed: s.dashed ?? false })),
    width,
  );
  const plot = {
    left: 16 + LABEL_FONT + 8 + yAxis.labelWidth,
    right: width - 16 - textWidth(xAxis.labels.at(-1) ?? '', TICK_FONT) / 2,
    top: legend.bottom + 14,
    bottom: height - 16 - TICK_FONT - LABEL_FONT - 8,
  };
  const x = scaler(xAxis, plot.left, plot.right);
  const y = scaler(yAxis, plot.bottom, plot.top);

  const out: string[] = [];
  out.push(...frame(width, height, o.title), ...legend.svg);
  out.push(...yGrid(yAxis, y, plot), yTitle(o.yLabel, plot));
  xAxis.ticks.forEach((t, i) => {
    const px = x(t);
    out.push(
      `<line x1="${r(px)}" y1="${r(plot.top)}" x2="${r(px)}" y2="${r(plot.bottom)}" stroke="#eee"/>`,
      `<text class="tick x" data-value="${t}" x="${r(px)}" y="${r(plot.bottom + TICK_FONT + 5)}" ` +
        `text-anchor="middle" font-size="${TICK_FONT}">${esc(xAxis.labels[i]!)}</text>`,
    );
  });
  out.push(
    `<text class="axis-title x" x="${r((plot.left + plot.right) / 2)}" y="${r(height - 12)}" ` +
      `text-anchor="middle" font-size="${LABEL_FONT}">${esc(o.xLabel)}</text>`,
  );

  const inDomain = (v: number, axis: Axis): boolean => !axis.log || v > 0;
  const drawn = o.series.map((s) => ({
    s,
    colour: colours.get(colourKey(s))!,
    pts: s.points
      .filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && inDomain(p.x, xAxis) && inDomain(p.y, yAxis))
      .sort((a, b) => a.x - b.x)
      .map((p) => ({ ...p, px: x(p.x), py: y(p.y) })),
  }));
  // Every marker is an obstacle before any label is placed, so no label covers a point.
  const placed: Box[] = drawn.flatMap(({ pts }) => pts.map((p) => ({ x: p.px - 3, y: p.py - 3, w: 6, h: 6 })));
  const labels: string[] = [];
  for (const { s, colour, pts } of drawn) {
    if (pts.length > 1) {
      const d = pts.map((p) => `${r(p.px)},${r(p.py)}`).join(' ');
      out.push(
        `<polyline class="line" data-series="${esc(s.name)}" points="${d}" fill="none" stroke="${colour}" ` +
          `stroke-width="2" stroke-linejoin="round"${s.dashed ? ` stroke-dasharray="${DASH}"` : ''}/>`,
      );
    }
    for (const p of pts) {
      out.push(
        `<circle class="point" data-series="${esc(s.name)}" data-x="${p.x}" data-y="${p.y}" cx="${r(p.px)}" ` +
          `cy="${r(p.py)}" r="3" fill="${colour}"><title>${esc(`${s.name}: ${formatNumber(p.x)} → ${formatNumber(p.y)}`)}</title></circle>`,
      );
      const text = formatNumber(p.y);
      const tw = textWidth(text, VALUE_FONT);
      // Labels of the first and last points are pushed inwards rather than over the axis.
      const lx = Math.min(Math.max(p.px - tw / 2, plot.left + 2), plot.right + 8 - tw);
      const box = { x: lx, y: p.py - 5 - VALUE_FONT, w: tw, h: VALUE_FONT };
      if (box.y >= plot.top - VALUE_FONT && !placed.some((b) => overlaps(b, box))) {
        placed.push(box);
        labels.push(
          `<text class="value" x="${r(lx + tw / 2)}" y="${r(box.y + VALUE_FONT - 1)}" text-anchor="middle" ` +
            `font-size="${VALUE_FONT}" fill="${colour}" ${HALO}>${esc(text)}</text>`,
        );
      }
    }
  }
  out.push(...labels, axisLines(plot), '</svg>');
  return out.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// Axes

interface Axis {
  min: number;
  max: number;
  log: boolean;
  ticks: number[];
  labels: string[];
  /** Width of the widest tick label, to size the margin. */
  labelWidth: number;
}

function axis(min: number, max: number, log: boolean, ticks: number[]): Axis {
  const labels = ticks.map(formatNumber);
  return { min, max, log, ticks, labels, labelWidth: Math.max(0, ...labels.map((l) => textWidth(l, TICK_FONT))) };
}

/** Ticks at 1, 2 or 5 × 10^k, about five of them, over a range widened to whole ticks. */
function linearAxis(values: number[], headroom = 1): Axis {
  const finite = values.filter(Number.isFinite);
  let lo = Math.min(...finite, Infinity);
  let hi = Math.max(...finite, -Infinity) * headroom;
  if (!Number.isFinite(lo)) [lo, hi] = [0, 1];
  if (lo === hi) [lo, hi] = lo === 0 ? [0, 1] : [Math.min(0, lo), Math.max(0, hi) || 1];
  const step = niceStep((hi - lo) / 5);
  const min = Math.floor(lo / step) * step;
  const max = Math.ceil(hi / step) * step;
  const ticks: number[] = [];
  for (let i = 0; min + i * step <= max + step * 1e-9; i++) ticks.push(tidy(min + i * step));
  return axis(tidy(min), tidy(max), false, ticks);
}

function niceStep(raw: number): number {
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / magnitude;
  return (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * magnitude;
}

/**
 * Log ticks: 1-2-5 in every decade when the data spans up to three decades (so a 100 B → 64 KB axis
 * still has labels between the powers of ten), plain powers of ten beyond that. Non-positive
 * values have no place on a log axis and are ignored.
 */
function logAxis(values: number[]): Axis {
  const positive = values.filter((v) => v > 0 && Number.isFinite(v));
  let lo = Math.min(...positive, Infinity);
  let hi = Math.max(...positive, -Infinity);
  if (!Number.isFinite(lo)) [lo, hi] = [1, 10];
  let loExp = Math.floor(Math.log10(lo) + 1e-9);
  let hiExp = Math.ceil(Math.log10(hi) - 1e-9);
  if (hiExp <= loExp) hiExp = loExp + 1;
  const decades = hiExp - loExp;
  if (decades <= 3) {
    const candidates: number[] = [];
    for (let e = loExp; e <= hiExp; e++) for (const m of [1, 2, 5]) candidates.push(tidy(m * 10 ** e));
    const min = Math.max(...candidates.filter((t) => t <= lo * (1 + 1e-9)));
    const max = Math.min(...candidates.filter((t) => t >= hi * (1 - 1e-9)));
    const ticks = candidates.filter((t) => t >= min && t <= max);
    if (ticks.length >= 2) return axis(min, max, true, ticks);
  }
  // Wide ranges: every power of ten, or every second/third one past eight decades.
  const stride = Math.ceil(decades / 8);
  loExp = Math.floor(loExp / stride) * stride;
  hiExp = Math.ceil(hiExp / stride) * stride;
  const ticks: number[] = [];
  for (let e = loExp; e <= hiExp; e += stride) ticks.push(tidy(10 ** e));
  return axis(ticks[0]!, ticks.at(-1)!, true, ticks);
}

/** Maps a data value to a pixel coordinate between `from` (axis minimum) and `to` (maximum). */
function scaler(a: Axis, from: number, to: number): (v: number) => number {
  if (a.log) {
    const lmin = Math.log10(a.min);
    const span = Math.log10(a.max) - lmin;
    return (v) => from + ((Math.log10(v) - lmin) / span) * (to - from);
  }
  const span = a.max - a.min;
  return (v) => from + ((v - a.min) / span) * (to - from);
}

/** 1234 → "1.23k", 64000 → "64k", 0.35 → "0.35": three significant digits with an SI suffix. */
function formatNumber(v: number): string {
  if (!Number.isFinite(v)) return String(v);
  const abs = Math.abs(v);
  const units: [number, string][] = [
    [1e9, 'G'],
    [1e6, 'M'],
    [1e3, 'k'],
  ];
  for (const [scale, suffix] of units) {
    if (abs >= scale) return `${trim(v / scale)}${suffix}`;
  }
  return trim(v);
}

function trim(v: number): string {
  return String(Number(v.toPrecision(3)));
}

/** Removes float noise such as 0.30000000000000004 from computed tick values. */
function tidy(v: number): number {
  return Number(v.toPrecision(12));
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

interface Plot {
  left: number;
  right: number;
  top: number;
  bottom: number;
}

function frame(width: number, height: number, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${width} ${height}" width="${width}" ` +
      `height="${height}" font-family="${esc(FONT)}" font-size="${LABEL_FONT}" fill="#222">`,
    `<title>${esc(title)}</title>`,
    `<rect class="background" x="0" y="0" width="${width}" height="${height}" fill="#fff"/>`,
    `<text class="title" x="${width / 2}" y="${TITLE_FONT + 8}" text-anchor="middle" font-size="${TITLE_FONT}" ` +
      `font-weight="600">${esc(title)}</text>`,
  ];
}

function yGrid(a: Axis, y: (v: number) => number, plot: Plot): string[] {
  return a.ticks.flatMap((t, i) => {
    const py = y(t);
    return [
      `<line x1="${r(plot.left)}" y1="${r(py)}" x2="${r(plot.right)}" y2="${r(py)}" stroke="#e5e5e5"/>`,
      `<text class="tick y" data-value="${t}" x="${r(plot.left - 6)}" y="${r(py + TICK_FONT * 0.35)}" ` +
        `text-anchor="end" font-size="${TICK_FONT}">${esc(a.labels[i]!)}</text>`,
    ];
  });
}

function yTitle(label: string, plot: Plot): string {
  const cy = (plot.top + plot.bottom) / 2;
  const cx = 16 + LABEL_FONT / 2;
  return (
    `<text class="axis-title y" x="${r(cx)}" y="${r(cy)}" text-anchor="middle" font-size="${LABEL_FONT}" ` +
    `transform="rotate(-90 ${r(cx)} ${r(cy)})">${esc(label)}</text>`
  );
}

function axisLines(plot: Plot): string {
  return (
    `<path class="axis" d="M${r(plot.left)},${r(plot.top)}V${r(plot.bottom)}H${r(plot.right)}" ` +
    `fill="none" stroke="#444"/>`
  );
}

interface LegendItem {
  name: string;
  colour: string;
  /** A line swatch (line charts, possibly dashed) instead of a square. */
  line: boolean;
  dashed: boolean;
}

/** One row of swatches under the title, wrapping to more rows when the names do not fit. */
function layoutLegend(entries: LegendItem[], width: number): { bottom: number; svg: string[] } {
  const top = TITLE_FONT + 18;
  const rowHeight = LABEL_FONT + 6;
  const swatch = (it: LegendItem): number => (it.line ? 22 : 10);
  const placed: (LegendItem & { x: number; row: number })[] = [];
  let x = 16;
  let row = 0;
  for (const it of entries) {
    const w = swatch(it) + 4 + textWidth(it.name, LABEL_FONT) + 16;
    if (x + w > width - 16 && x > 16) {
      row++;
      x = 16;
    }
    placed.push({ ...it, x, row });
    x += w;
  }
  const rows = entries.length === 0 ? 0 : row + 1;
  const svg = placed.map((it) => {
    const y = top + it.row * rowHeight;
    const mark = it.line
      ? `<line x1="${r(it.x)}" y1="${r(y + 5)}" x2="${r(it.x + 22)}" y2="${r(y + 5)}" stroke="${it.colour}" ` +
        `stroke-width="2"${it.dashed ? ` stroke-dasharray="${DASH}"` : ''}/>`
      : `<rect x="${r(it.x)}" y="${r(y)}" width="10" height="10" fill="${it.colour}"/>`;
    return (
      `<g class="legend" data-series="${esc(it.name)}">${mark}` +
      `<text x="${r(it.x + swatch(it) + 4)}" y="${r(y + 9.5)}">${esc(it.name)}</text></g>`
    );
  });
  return { bottom: top + rows * rowHeight, svg };
}

/**
 * A colour per series name from a hash of the name, so the same system keeps its colour across
 * charts; two names in one chart that hash alike take the next free colour.
 */
function assignColours(names: string[]): Map<string, string> {
  const used = new Set<number>();
  const out = new Map<string, string>();
  for (const name of names) {
    let i = fnv1a(name) % PALETTE.length;
    for (let tries = 0; used.has(i) && tries < PALETTE.length; tries++) i = (i + 1) % PALETTE.length;
    used.add(i);
    out.set(name, PALETTE[i]!);
  }
  return out;
}

function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function overlaps(a: Box, b: Box): boolean {
  return a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
}

function textWidth(s: string, fontSize: number): number {
  return s.length * fontSize * CHAR_WIDTH;
}

function unique(xs: string[]): string[] {
  return [...new Set(xs)];
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&${{ '&': 'amp', '<': 'lt', '>': 'gt', '"': 'quot', "'": 'apos' }[c]};`);
}

function r(v: number): string {
  return String(Math.round(v * 10) / 10);
}
