// The benchmark charts: the SVG must parse as XML, and its geometry must follow the values.
import { type Element, isElement, parse } from 'ltx';
import { describe, expect, it } from 'vitest';
import { barChart, lineChart } from '../../benchmarks/lib/chart.js';

/** Every element below `root` whose class list holds `cls`. */
function byClass(root: Element, cls: string): Element[] {
  const out: Element[] = [];
  const walk = (el: Element): void => {
    const classes = String(el.attrs['class'] ?? '').split(' ');
    if (classes.includes(cls)) out.push(el);
    for (const child of el.children) if (isElement(child)) walk(child);
  };
  walk(root);
  return out;
}

const num = (el: Element, attr: string): number => Number(el.attrs[attr]);

/** Points of a line series from [x, y] pairs. */
const xy = (...pairs: [number, number][]): { x: number; y: number }[] => pairs.map(([x, y]) => ({ x, y }));

describe('barChart', () => {
  const groups = [
    {
      label: '100 B',
      bars: [
        { series: 'ejabberd', value: 16_300 },
        { series: 'prosody', value: 6_100 },
      ],
    },
    {
      label: '1 KB',
      bars: [
        { series: 'ejabberd', value: 12_000 },
        { series: 'prosody', value: 500 },
      ],
    },
  ];

  it('is an SVG document with a viewBox that scales', () => {
    const svg = parse(barChart({ title: 'QoS 1', yLabel: 'msgs/s', groups }));
    expect(svg.name).toBe('svg');
    expect(svg.attrs['xmlns']).toBe('http://www.w3.org/2000/svg');
    expect(svg.attrs['viewBox']).toBe('0 0 720 400');
    expect(byClass(svg, 'legend').map((g) => g.attrs['data-series'])).toEqual(['ejabberd', 'prosody']);
  });

  it('draws bar heights in the order of their values, on a linear axis from zero', () => {
    const svg = parse(barChart({ title: 't', yLabel: 'y', groups }));
    const bars = byClass(svg, 'bar').sort((a, b) => num(a, 'data-value') - num(b, 'data-value'));
    const heights = bars.map((b) => num(b, 'height'));
    expect(bars.map((b) => num(b, 'data-value'))).toEqual([500, 6_100, 12_000, 16_300]);
    for (let i = 1; i < heights.length; i++) expect(heights[i]!).toBeGreaterThan(heights[i - 1]!);
    // Linear: height is proportional to value, so the ratio survives.
    expect(heights[3]! / heights[1]!).toBeCloseTo(16_300 / 6_100, 1);
    // All bars stand on the same baseline.
    const bottoms = new Set(bars.map((b) => (num(b, 'y') + num(b, 'height')).toFixed(1)));
    expect(bottoms.size).toBe(1);
  });

  it('labels the y axis with nice 1-2-5 steps starting at zero, and the bars with their values', () => {
    const svg = parse(barChart({ title: 't', yLabel: 'y', groups }));
    const ticks = byClass(svg, 'tick').map((t) => t.getText());
    expect(ticks).toEqual(['0', '5k', '10k', '15k', '20k']);
    expect(byClass(svg, 'value').map((t) => t.getText())).toContain('16.3k');
  });

  it('places bars on a log axis by the logarithm of their value', () => {
    const svg = parse(
      barChart({
        title: 't',
        yLabel: 'y',
        logY: true,
        groups: [{ label: 'g', bars: [10, 100, 1000].map((value, i) => ({ series: `s${i}`, value })) }],
      }),
    );
    const [h10, h100, h1000] = byClass(svg, 'bar').map((b) => num(b, 'height'));
    // Equal ratios, equal steps: 10→100 and 100→1000 add the same height.
    expect(h100! - h10!).toBeCloseTo(h1000! - h100!, 0);
    expect(byClass(svg, 'tick').map((t) => t.getText())).toEqual(['10', '20', '50', '100', '200', '500', '1k']);
  });

  it('escapes text so titles and names cannot break the markup', () => {
    const text = barChart({
      title: 'a < b & "c"',
      yLabel: "it's",
      groups: [{ label: '<g>', bars: [{ series: 'x&y', value: 1 }] }],
    });
    expect(text).not.toContain('<g>');
    const svg = parse(text);
    expect(byClass(svg, 'title')[0]!.getText()).toBe('a < b & "c"');
    expect(byClass(svg, 'group')[0]!.getText()).toBe('<g>');
    expect(byClass(svg, 'bar')[0]!.attrs['data-series']).toBe('x&y');
  });

  it('gives a series the same colour in every chart, whatever its position', () => {
    const fill = (svgText: string, series: string): unknown =>
      byClass(parse(svgText), 'bar').find((b) => b.attrs['data-series'] === series)!.attrs['fill'];
    const one = barChart({ title: 't', yLabel: 'y', groups: [{ label: 'g', bars: [{ series: 'nats', value: 1 }] }] });
    const two = barChart({
      title: 't',
      yLabel: 'y',
      groups: [
        {
          label: 'g',
          bars: [
            { series: 'mosquitto', value: 1 },
            { series: 'nats', value: 2 },
          ],
        },
      ],
    });
    expect(fill(one, 'nats')).toBe(fill(two, 'nats'));
    expect(fill(two, 'nats')).not.toBe(fill(two, 'mosquitto'));
  });
});

describe('lineChart', () => {
  const series = [
    {
      name: 'rpc',
      points: xy([100, 20_000], [1_024, 18_000], [16_384, 6_000], [65_536, 2_000]),
    },
  ];

  it('spaces a log x axis by ratio and ticks it at 1-2-5 within three decades', () => {
    const svg = parse(lineChart({ title: 't', xLabel: 'bytes', yLabel: 'calls/s', series, logX: true }));
    const xTicks = byClass(svg, 'x').filter((t) => t.name === 'text' && t.attrs['class'] === 'tick x');
    expect(xTicks.map((t) => t.getText())).toEqual([
      '100',
      '200',
      '500',
      '1k',
      '2k',
      '5k',
      '10k',
      '20k',
      '50k',
      '100k',
    ]);
    const tickX = new Map(xTicks.map((t) => [num(t, 'data-value'), num(t, 'x')]));
    // 100 → 1k and 1k → 10k are the same distance.
    expect(tickX.get(1_000)! - tickX.get(100)!).toBeCloseTo(tickX.get(10_000)! - tickX.get(1_000)!, 0);
    const points = byClass(svg, 'point');
    const cx = points.map((p) => num(p, 'cx'));
    const expected = (v: number): number =>
      tickX.get(100)! + (Math.log10(v / 100) / 3) * (tickX.get(100_000)! - tickX.get(100)!);
    expect(cx[1]).toBeCloseTo(expected(1_024), 0);
    expect(cx[3]).toBeCloseTo(expected(65_536), 0);
  });

  it('puts higher y values higher up (smaller SVG y), and uses powers of ten on wide log ranges', () => {
    const svg = parse(
      lineChart({
        title: 't',
        xLabel: 'x',
        yLabel: 'y',
        logY: true,
        series: [
          {
            name: 's',
            points: xy([1, 1], [2, 1e3], [3, 1e6]),
          },
        ],
      }),
    );
    const cy = byClass(svg, 'point').map((p) => num(p, 'cy'));
    expect(cy[0]!).toBeGreaterThan(cy[1]!);
    expect(cy[1]!).toBeGreaterThan(cy[2]!);
    expect(cy[0]! - cy[1]!).toBeCloseTo(cy[1]! - cy[2]!, 0);
    const yTicks = byClass(svg, 'y').filter((t) => t.name === 'text' && t.attrs['class'] === 'tick y');
    expect(yTicks.map((t) => t.getText())).toEqual(['1', '10', '100', '1k', '10k', '100k', '1M']);
  });

  it('lets series share a colour through a colour key, told apart by dashes in the plot and the legend', () => {
    const svg = parse(
      lineChart({
        title: 't',
        xLabel: 'x',
        yLabel: 'y',
        series: [
          {
            name: 'ejabberd RPC · Node',
            colourKey: 'ejabberd RPC',
            points: xy([1, 1], [2, 2]),
          },
          {
            name: 'ejabberd RPC · server',
            colourKey: 'ejabberd RPC',
            dashed: true,
            points: xy([1, 2], [2, 3]),
          },
          {
            name: 'prosody RPC',
            points: xy([1, 3], [2, 4]),
          },
        ],
      }),
    );
    const lines = byClass(svg, 'line');
    expect(lines[0]!.attrs['stroke']).toBe(lines[1]!.attrs['stroke']);
    expect(lines[2]!.attrs['stroke']).not.toBe(lines[0]!.attrs['stroke']);
    expect(lines.map((l) => l.attrs['stroke-dasharray'] !== undefined)).toEqual([false, true, false]);
    const legendDashed = byClass(svg, 'legend').map((g) => g.getChild('line')!.attrs['stroke-dasharray'] !== undefined);
    expect(legendDashed).toEqual([false, true, false]);
  });

  it('leaves out non-positive values on a log axis instead of drawing NaN', () => {
    const text = lineChart({
      title: 't',
      xLabel: 'x',
      yLabel: 'y',
      logY: true,
      series: [
        {
          name: 's',
          points: xy([1, 0], [2, 10], [3, 100]),
        },
      ],
    });
    expect(text).not.toContain('NaN');
    expect(byClass(parse(text), 'point')).toHaveLength(2);
  });
});
