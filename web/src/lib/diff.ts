// Line diff between two schema versions: Myers' O(ND) algorithm, with the
// common prefix and suffix trimmed first (two versions of a schema usually
// share almost every line). Pure: no DOM, unit-tested in test/unit.

/** One line of a diff: kept, added (only in b) or removed (only in a). */
export interface DiffLine {
  kind: "equal" | "insert" | "delete";
  /** 0-based line number in a; -1 for an inserted line. */
  aLine: number;
  /** 0-based line number in b; -1 for a deleted line. */
  bLine: number;
  text: string;
}

/**
 * Above this much work (D times the diagonal range) the diff gives up on a
 * minimal answer and reports the changed middle as removed then added, so a
 * pathological pair of files cannot freeze the page.
 */
const maxWork = 4_000_000;

/** diffLines returns a minimal line diff turning a into b. */
export function diffLines(a: readonly string[], b: readonly string[]): DiffLine[] {
  let prefix = 0;
  while (prefix < a.length && prefix < b.length && a[prefix] === b[prefix]) prefix++;
  let suffix = 0;
  while (
    suffix < a.length - prefix &&
    suffix < b.length - prefix &&
    a[a.length - 1 - suffix] === b[b.length - 1 - suffix]
  ) {
    suffix++;
  }
  const out: DiffLine[] = [];
  for (let i = 0; i < prefix; i++) out.push({ kind: "equal", aLine: i, bLine: i, text: a[i]! });
  const midA = a.slice(prefix, a.length - suffix);
  const midB = b.slice(prefix, b.length - suffix);
  for (const op of deletionsFirst(myers(midA, midB))) {
    out.push({
      kind: op.kind,
      aLine: op.aLine < 0 ? -1 : op.aLine + prefix,
      bLine: op.bLine < 0 ? -1 : op.bLine + prefix,
      text: op.text,
    });
  }
  for (let i = 0; i < suffix; i++) {
    const ai = a.length - suffix + i;
    const bi = b.length - suffix + i;
    out.push({ kind: "equal", aLine: ai, bLine: bi, text: a[ai]! });
  }
  return out;
}

/**
 * deletionsFirst orders each run of changed lines as its removed lines then
 * its added ones, the way readers expect a replaced line to read.
 */
function deletionsFirst(lines: DiffLine[]): DiffLine[] {
  const out: DiffLine[] = [];
  let i = 0;
  while (i < lines.length) {
    if (lines[i]!.kind === "equal") {
      out.push(lines[i]!);
      i++;
      continue;
    }
    let j = i;
    while (j < lines.length && lines[j]!.kind !== "equal") j++;
    const run = lines.slice(i, j);
    out.push(...run.filter((l) => l.kind === "delete"), ...run.filter((l) => l.kind === "insert"));
    i = j;
  }
  return out;
}

function replaceAll(a: readonly string[], b: readonly string[]): DiffLine[] {
  return [
    ...a.map((text, i): DiffLine => ({ kind: "delete", aLine: i, bLine: -1, text })),
    ...b.map((text, i): DiffLine => ({ kind: "insert", aLine: -1, bLine: i, text })),
  ];
}

function myers(a: readonly string[], b: readonly string[]): DiffLine[] {
  const n = a.length;
  const m = b.length;
  if (n === 0 || m === 0) return replaceAll(a, b);
  const max = n + m;
  const offset = max;
  const v = new Int32Array(2 * max + 2);
  const trace: Int32Array[] = [];
  let found = false;
  for (let d = 0; d <= max && !found; d++) {
    if (d * (2 * d + 1) > maxWork) return replaceAll(a, b);
    trace.push(v.slice(offset - d - 1, offset + d + 2));
    for (let k = -d; k <= d; k += 2) {
      let x =
        k === -d || (k !== d && v[offset + k - 1]! < v[offset + k + 1]!)
          ? v[offset + k + 1]!
          : v[offset + k - 1]! + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[offset + k] = x;
      if (x >= n && y >= m) {
        found = true;
        break;
      }
    }
  }
  // Walk back through the saved frontiers. trace[d] holds v for diagonals
  // -d-1..d+1 as they were before round d.
  const rev: DiffLine[] = [];
  let x = n;
  let y = m;
  for (let d = trace.length - 1; d >= 0; d--) {
    const frame = trace[d]!;
    const at = (k: number): number => frame[k + d + 1]!;
    const k = x - y;
    const prevK = k === -d || (k !== d && at(k - 1) < at(k + 1)) ? k + 1 : k - 1;
    const prevX = d === 0 ? 0 : at(prevK);
    const prevY = d === 0 ? 0 : prevX - prevK;
    while (x > prevX && y > prevY) {
      x--;
      y--;
      rev.push({ kind: "equal", aLine: x, bLine: y, text: a[x]! });
    }
    if (d > 0) {
      if (x === prevX) {
        y--;
        rev.push({ kind: "insert", aLine: -1, bLine: y, text: b[y]! });
      } else {
        x--;
        rev.push({ kind: "delete", aLine: x, bLine: -1, text: a[x]! });
      }
    }
  }
  return rev.reverse();
}

/** A row of a rendered diff: a line, or a fold of unchanged lines. */
export type DiffRow = { kind: "line"; line: DiffLine } | { kind: "fold"; lines: DiffLine[] };

/**
 * fold keeps context unchanged lines around each change and folds longer
 * unchanged runs into one row the reader can expand.
 */
export function fold(lines: readonly DiffLine[], context = 3): DiffRow[] {
  const rows: DiffRow[] = [];
  let i = 0;
  while (i < lines.length) {
    if (lines[i]!.kind !== "equal") {
      rows.push({ kind: "line", line: lines[i]! });
      i++;
      continue;
    }
    let j = i;
    while (j < lines.length && lines[j]!.kind === "equal") j++;
    const run = lines.slice(i, j);
    const keepBefore = i === 0 ? 0 : context;
    const keepAfter = j === lines.length ? 0 : context;
    if (run.length > keepBefore + keepAfter + 1) {
      for (const l of run.slice(0, keepBefore)) rows.push({ kind: "line", line: l });
      rows.push({ kind: "fold", lines: run.slice(keepBefore, run.length - keepAfter) });
      for (const l of run.slice(run.length - keepAfter)) rows.push({ kind: "line", line: l });
    } else {
      for (const l of run) rows.push({ kind: "line", line: l });
    }
    i = j;
  }
  return rows;
}

/** Counts of added and removed lines, for the summary above a diff. */
export function diffStats(lines: readonly DiffLine[]): { added: number; removed: number } {
  let added = 0;
  let removed = 0;
  for (const l of lines) {
    if (l.kind === "insert") added++;
    else if (l.kind === "delete") removed++;
  }
  return { added, removed };
}

/** splitLines splits source text into lines, ignoring one trailing newline. */
export function splitLines(text: string): string[] {
  if (text === "") return [];
  const lines = text.split(/\r?\n/);
  if (lines[lines.length - 1] === "") lines.pop();
  return lines;
}
