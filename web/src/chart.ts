// A small SVG line chart for lag and throughput over the last minutes.
// Hand-written: the dashboard needs lines, a time axis and a legend, not a
// charting library.

import { h, s } from "./dom.js";
import { compact } from "./format.js";
import { niceTicks, type Point } from "./lib/series.js";

export interface Series {
  name: string;
  points: Point[];
}

export interface ChartOptions {
  series: Series[];
  /** Right edge of the time axis (ms since the epoch). */
  now: number;
  /** Width of the time axis in ms. */
  spanMs: number;
  width: number;
  height: number;
  /** Shown with the latest value in the legend: "entries", "events/s". */
  unit: string;
  /** A gap between readings longer than this breaks the line. */
  gapMs: number;
  label: string;
}

const palette = 8;

/** timeStep picks a round tick spacing giving at most six ticks. */
function timeStep(spanMs: number): number {
  for (const step of [10_000, 15_000, 30_000, 60_000, 120_000, 300_000]) {
    if (spanMs / step <= 6) return step;
  }
  return 600_000;
}

function ago(ms: number): string {
  const secs = Math.round(ms / 1000);
  if (secs < 60) return `${secs}s`;
  return secs % 60 === 0 ? `${secs / 60}m` : `${Math.floor(secs / 60)}m${secs % 60}s`;
}

/** lineChart draws the series; each keeps its colour by its position. */
export function lineChart(o: ChartOptions): HTMLElement {
  const pad = { left: 44, right: 14, top: 12, bottom: 24 };
  const w = Math.max(240, Math.round(o.width));
  const ht = o.height;
  const plotW = w - pad.left - pad.right;
  const plotH = ht - pad.top - pad.bottom;
  const t0 = o.now - o.spanMs;
  let maxV = 0;
  for (const se of o.series) for (const p of se.points) if (p.t >= t0 && p.v > maxV) maxV = p.v;
  const ticks = niceTicks(maxV || 1);
  const top = ticks[ticks.length - 1]!;
  const x = (t: number): number => pad.left + ((t - t0) / o.spanMs) * plotW;
  const y = (v: number): number => pad.top + plotH - (v / top) * plotH;

  const svg = s("svg", {
    class: "chart-svg", width: w, height: ht, viewBox: `0 0 ${w} ${ht}`, role: "img", "aria-label": o.label,
  });
  for (const tv of ticks) {
    const yy = y(tv).toFixed(1);
    svg.append(
      s("line", { class: "grid", x1: pad.left, x2: w - pad.right, y1: yy, y2: yy }),
      s("text", { class: "axis", x: pad.left - 6, y: yy, "text-anchor": "end", "dominant-baseline": "middle" }, compact(tv)),
    );
  }
  const step = timeStep(o.spanMs);
  for (let back = 0; back <= o.spanMs; back += step) {
    const xx = x(o.now - back);
    svg.append(
      s("text", { class: "axis", x: xx.toFixed(1), y: ht - 6, "text-anchor": back === 0 ? "end" : "middle" }, back === 0 ? "now" : `−${ago(back)}`),
    );
  }
  o.series.forEach((se, i) => {
    const visible = se.points.filter((p) => p.t >= t0);
    let segment: string[] = [];
    let prevT = -Infinity;
    const flush = (): void => {
      if (segment.length > 1) svg.append(s("polyline", { class: `line c${i % palette}`, points: segment.join(" ") }));
      segment = [];
    };
    for (const p of visible) {
      if (p.t - prevT > o.gapMs) flush();
      segment.push(`${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`);
      prevT = p.t;
    }
    flush();
    const last = visible[visible.length - 1];
    if (last) svg.append(s("circle", { class: `dot c${i % palette}`, cx: x(last.t).toFixed(1), cy: y(last.v).toFixed(1), r: 3 }));
  });

  const legend = h(
    "ul",
    { class: "legend" },
    o.series.map((se, i) => {
      const last = se.points[se.points.length - 1];
      return h(
        "li",
        null,
        h("span", { class: `swatch c${i % palette}` }),
        h("span", { class: "legend-name" }, se.name),
        h("span", { class: "legend-value" }, last ? `${compact(last.v)} ${o.unit}` : "–"),
      );
    }),
  );
  const enough = o.series.some((se) => se.points.filter((p) => p.t >= t0).length > 1);
  return h(
    "div",
    { class: "chart" },
    svg,
    enough ? null : h("div", { class: "chart-empty" }, o.series.length ? "Collecting readings…" : "Nothing to draw yet"),
    legend,
  );
}
