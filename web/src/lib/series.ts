// Numbers over time: rates from monotonically growing counters polled every
// few seconds, and the "nice" axis ticks of the charts. Pure: no DOM.

/** A counter or gauge reading at time t (milliseconds since the epoch). */
export interface Point {
  t: number;
  v: number;
}

/**
 * rate is the per-second growth of a counter over the newest window of
 * readings (oldest reading at most windowMs before the newest). It returns
 * null with fewer than two readings in the window. A counter that went down
 * (the server restarted) counts from its new value: the rate restarts
 * rather than going negative.
 */
export function rate(points: readonly Point[], windowMs: number): number | null {
  if (points.length < 2) return null;
  const newest = points[points.length - 1]!;
  let oldest: Point | undefined;
  for (let i = points.length - 2; i >= 0; i--) {
    const p = points[i]!;
    if (newest.t - p.t > windowMs) break;
    oldest = p;
  }
  if (!oldest || newest.t <= oldest.t) return null;
  let growth = 0;
  let prev = oldest;
  for (const p of points) {
    if (p.t <= oldest.t) continue;
    growth += p.v >= prev.v ? p.v - prev.v : p.v;
    prev = p;
  }
  return growth / ((newest.t - oldest.t) / 1000);
}

/**
 * rates turns counter readings into one rate per interval, stamped at the
 * end of the interval; what a throughput chart draws. Readings closer than
 * minIntervalMs to the previous one used (an out-of-turn poll) are merged
 * into the next interval, so one event in a tenth of a second does not
 * draw as a spike of ten per second.
 */
export function rates(points: readonly Point[], minIntervalMs = 1000): Point[] {
  const out: Point[] = [];
  let a = points[0];
  for (let i = 1; i < points.length; i++) {
    const b = points[i]!;
    if (!a || b.t - a.t < minIntervalMs) continue;
    const growth = b.v >= a.v ? b.v - a.v : b.v;
    out.push({ t: b.t, v: growth / ((b.t - a.t) / 1000) });
    a = b;
  }
  return out;
}

/**
 * niceTicks returns evenly spaced round values from 0 covering max: steps
 * of 1, 2 or 5 times a power of ten, about count of them.
 */
export function niceTicks(max: number, count = 4): number[] {
  if (!(max > 0) || !Number.isFinite(max)) return [0, 1];
  const raw = max / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const norm = raw / mag;
  const step = (norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10) * mag;
  const ticks: number[] = [];
  for (let v = 0; v < max + step / 2; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < max) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}
