// How numbers, times and enum values read on screen.

import { type Timestamp, timestampDate } from "@bufbuild/protobuf/wkt";
import { Compatibility } from "./gen/pipeline/v1/schema_pb.js";

const integer = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });
const oneDecimal = new Intl.NumberFormat("en-US", { minimumFractionDigits: 1, maximumFractionDigits: 1 });

/** count formats a counter: 12,345. */
export function count(n: number | bigint): string {
  return integer.format(n);
}

/** perSecond formats a rate; null (not known yet) reads as a dash. */
export function perSecond(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  if (n === 0) return "0";
  if (n < 0.05) return "< 0.1";
  if (n < 100) return oneDecimal.format(n);
  return integer.format(n);
}

/** compact formats an axis value: 1.5k, 20, 0.5. */
export function compact(n: number): string {
  if (n >= 1e6) return `${trim(n / 1e6)}M`;
  if (n >= 1e3) return `${trim(n / 1e3)}k`;
  return trim(n);
}

function trim(n: number): string {
  return Number(n.toFixed(n < 10 ? 1 : 0)).toString();
}

/** duration formats seconds as the two largest units: 3d 4h, 5m 10s. */
export function duration(totalSeconds: number | bigint): string {
  let s = Math.max(0, Math.floor(Number(totalSeconds)));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const hr = Math.floor(s / 3600);
  s -= hr * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d > 0) return `${d}d ${hr}h`;
  if (hr > 0) return `${hr}h ${m}m`;
  if (m > 0) return `${m}m ${s}s`;
  return `${s}s`;
}

const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
const dateTimeFmt = new Intl.DateTimeFormat(undefined, {
  year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
});

/** time formats a timestamp: the time of day today, the date otherwise. */
export function time(ts: Timestamp | undefined): string {
  if (!ts) return "–";
  const d = timestampDate(ts);
  const now = new Date();
  if (d.toDateString() === now.toDateString()) return timeFmt.format(d);
  return dateTimeFmt.format(d);
}

/** ago says how long ago a timestamp was: 12 s ago. */
export function ago(ts: Timestamp | undefined, now = Date.now()): string {
  if (!ts) return "";
  const s = Math.max(0, Math.round((now - timestampDate(ts).getTime()) / 1000));
  return `${duration(s)} ago`;
}

/** compatibilityName drops the enum prefix: BACKWARD_TRANSITIVE. */
export function compatibilityName(c: Compatibility): string {
  const name = Compatibility[c] ?? `MODE_${c}`;
  return name.replace(/^COMPATIBILITY_/, "");
}

/** The modes an admin can choose, in the order users know them. */
export const compatibilityModes: Compatibility[] = [
  Compatibility.BACKWARD,
  Compatibility.BACKWARD_TRANSITIVE,
  Compatibility.FORWARD,
  Compatibility.FORWARD_TRANSITIVE,
  Compatibility.FULL,
  Compatibility.FULL_TRANSITIVE,
  Compatibility.NONE,
  Compatibility.WIRE,
  Compatibility.WIRE_TRANSITIVE,
  Compatibility.WIRE_JSON,
  Compatibility.WIRE_JSON_TRANSITIVE,
];
