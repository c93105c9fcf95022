// Unit tests of the dashboard's pure logic: the line diff, the .proto
// tokenizer, rates and axis ticks. The TypeScript sources are bundled with
// esbuild and imported as they are.
import assert from "node:assert/strict";
import { dirname, join } from "node:path";
import { before, describe, test } from "node:test";
import { fileURLToPath } from "node:url";
import { importTS } from "../support/load-ts.mjs";

const src = join(dirname(fileURLToPath(import.meta.url)), "../../src/lib");
let diff, highlight, series, schema;

before(async () => {
  [diff, highlight, series, schema] = await Promise.all([
    importTS(join(src, "diff.ts")),
    importTS(join(src, "highlight.ts")),
    importTS(join(src, "series.ts")),
    importTS(join(src, "schema.ts")),
  ]);
});

/** apply rebuilds both sides from a diff: the proof that it is a diff of a and b. */
function sides(lines) {
  return {
    a: lines.filter((l) => l.kind !== "insert").map((l) => l.text),
    b: lines.filter((l) => l.kind !== "delete").map((l) => l.text),
  };
}

function lcsLength(a, b) {
  const dp = Array.from({ length: a.length + 1 }, () => new Array(b.length + 1).fill(0));
  for (let i = 1; i <= a.length; i++)
    for (let j = 1; j <= b.length; j++) dp[i][j] = a[i - 1] === b[j - 1] ? dp[i - 1][j - 1] + 1 : Math.max(dp[i - 1][j], dp[i][j - 1]);
  return dp[a.length][b.length];
}

describe("diffLines", () => {
  const cases = [
    { name: "identical", a: ["x", "y"], b: ["x", "y"], added: 0, removed: 0 },
    { name: "both empty", a: [], b: [], added: 0, removed: 0 },
    { name: "from empty", a: [], b: ["x", "y"], added: 2, removed: 0 },
    { name: "to empty", a: ["x", "y"], b: [], added: 0, removed: 2 },
    { name: "a field added", a: ["message M {", "  int32 a = 1;", "}"], b: ["message M {", "  int32 a = 1;", "  string b = 2;", "}"], added: 1, removed: 0 },
    { name: "a type changed", a: ["message M {", "  int64 a = 1;", "}"], b: ["message M {", "  string a = 1;", "}"], added: 1, removed: 1 },
    { name: "moved line", a: ["a", "b", "c", "d"], b: ["b", "c", "d", "a"], added: 1, removed: 1 },
    { name: "interleaved", a: ["a", "b", "c", "a", "b", "b", "a"], b: ["c", "b", "a", "b", "a", "c"], added: 2, removed: 3 },
    { name: "repeated lines", a: ["}", "}", "}"], b: ["}", "x", "}", "}"], added: 1, removed: 0 },
  ];
  for (const c of cases) {
    test(c.name, () => {
      const lines = diff.diffLines(c.a, c.b);
      assert.deepEqual(sides(lines), { a: c.a, b: c.b });
      assert.deepEqual(diff.diffStats(lines), { added: c.added, removed: c.removed });
    });
  }

  test("minimal and consistent on random inputs", () => {
    let seed = 42;
    const rnd = (n) => {
      seed = (seed * 1103515245 + 12345) % 2147483648;
      return seed % n;
    };
    for (let round = 0; round < 300; round++) {
      const a = Array.from({ length: rnd(30) }, () => "abcde"[rnd(5)]);
      const b = Array.from({ length: rnd(30) }, () => "abcde"[rnd(5)]);
      const lines = diff.diffLines(a, b);
      assert.deepEqual(sides(lines), { a, b });
      const kept = lines.filter((l) => l.kind === "equal").length;
      assert.equal(kept, lcsLength(a, b), `not minimal for ${a.join("")} -> ${b.join("")}`);
      let sawInsert = false;
      for (const l of lines) {
        if (l.kind === "delete") assert.ok(!sawInsert, "a removed line after an added one in the same change");
        sawInsert = l.kind === "insert" ? true : l.kind === "equal" ? false : sawInsert;
        if (l.kind !== "insert") assert.equal(a[l.aLine], l.text);
        if (l.kind !== "delete") assert.equal(b[l.bLine], l.text);
      }
    }
  });

  test("a large pair with a few changes stays fast", () => {
    const a = Array.from({ length: 20000 }, (_, i) => `  int32 f${i} = ${i + 1};`);
    const b = a.slice();
    b.splice(5000, 1, "  string changed = 5001;");
    b.splice(15000, 0, "  bool added = 30000;");
    const start = performance.now();
    const lines = diff.diffLines(a, b);
    assert.ok(performance.now() - start < 2000, "diff of 20,000 lines took too long");
    assert.deepEqual(diff.diffStats(lines), { added: 2, removed: 1 });
  });

  test("gives up on a minimal answer past its work bound, still a correct diff", () => {
    const a = Array.from({ length: 3000 }, (_, i) => `a${i}`);
    const b = Array.from({ length: 3000 }, (_, i) => `b${i}`);
    const lines = diff.diffLines(a, b);
    assert.deepEqual(sides(lines), { a, b });
  });
});

describe("fold", () => {
  test("keeps three lines of context around a change and folds the rest", () => {
    const a = Array.from({ length: 20 }, (_, i) => `line ${i}`);
    const b = a.slice();
    b[10] = "changed";
    const rows = diff.fold(diff.diffLines(a, b));
    const shape = rows.map((r) => (r.kind === "fold" ? `fold${r.lines.length}` : r.line.kind[0]));
    assert.deepEqual(shape, ["fold7", "e", "e", "e", "d", "i", "e", "e", "e", "fold6"]);
  });
  test("does not fold a run only one line longer than its context", () => {
    const rows = diff.fold(diff.diffLines(["a", "b", "c", "d", "x"], ["a", "b", "c", "d", "y"]));
    assert.equal(rows.filter((r) => r.kind === "fold").length, 0);
  });
});

describe("splitLines", () => {
  test("one trailing newline is not an extra line; CRLF works", () => {
    assert.deepEqual(diff.splitLines("a\nb\n"), ["a", "b"]);
    assert.deepEqual(diff.splitLines("a\r\nb"), ["a", "b"]);
    assert.deepEqual(diff.splitLines("a\n\n"), ["a", ""]);
    assert.deepEqual(diff.splitLines(""), []);
  });
});

describe("tokenize", () => {
  const src = `syntax = "proto3";
package shop.v1;
/* block
   comment */
message Order { // trailing
  repeated string ids = 1 [(buf.validate.field).string.min_len = 1];
  map<string, int64> totals = 2;
  double ratio = 3 [default = -1.5e3];
  enum Kind { KIND_UNSPECIFIED = 0x0; }
}
service Orders { rpc Get(Order) returns (stream Order); }
`;
  test("the tokens concatenate back to the source", () => {
    assert.equal(highlight.tokenize(src).map((t) => t.text).join(""), src);
  });
  test("classifies keywords, types, declarations, strings, numbers, comments", () => {
    const toks = highlight.tokenize(src).filter((t) => t.kind !== "space");
    const kinds = (kind) => toks.filter((t) => t.kind === kind).map((t) => t.text);
    assert.deepEqual(kinds("decl"), ["Order", "Kind", "Orders", "Get"]);
    assert.deepEqual(kinds("string"), ['"proto3"']);
    assert.deepEqual(kinds("comment"), ["/* block\n   comment */", "// trailing"]);
    assert.deepEqual(kinds("type"), ["string", "string", "int64", "double"]);
    assert.deepEqual(kinds("number"), ["1", "1", "2", "3", "1.5e3", "0x0"]);
    for (const k of ["syntax", "package", "message", "repeated", "map", "enum", "service", "rpc", "returns", "stream"]) {
      assert.ok(kinds("keyword").includes(k), `${k} is a keyword`);
    }
    // In a qualified name a keyword-like word is a plain identifier.
    assert.ok(!kinds("type").includes("min_len") && kinds("ident").includes("field"));
    assert.ok(!kinds("type").slice(0, 1).includes("validate"));
  });
  test("a qualified name never turns its parts into keywords or types", () => {
    const toks = highlight.tokenize("foo.string.message x = 1;").filter((t) => t.kind !== "space");
    assert.deepEqual(toks.slice(0, 5).map((t) => t.kind), ["ident", "punct", "ident", "punct", "ident"]);
  });
  test("never fails on broken input", () => {
    for (const broken of ['"unterminated', "/* open", "message", "'\\", "1e", ".5", "@#$%"]) {
      assert.equal(highlight.tokenize(broken).map((t) => t.text).join(""), broken);
    }
  });
  test("highlightLines splits at newlines, a block comment over several lines", () => {
    const lines = highlight.highlightLines("a /* x\ny */ b\n");
    assert.equal(lines.length, 2);
    assert.deepEqual(lines[1].map((t) => [t.kind, t.text]), [["comment", "y */"], ["space", " "], ["ident", "b"]]);
    assert.deepEqual(highlight.highlightLines(""), []);
    assert.equal(highlight.highlightLines("a\n\nb").length, 3);
  });
});

describe("rate and rates", () => {
  test("rate over the newest window", () => {
    const pts = [
      { t: 0, v: 0 },
      { t: 2000, v: 10 },
      { t: 4000, v: 30 },
      { t: 6000, v: 40 },
    ];
    assert.equal(series.rate(pts, 10_000), 40 / 6);
    assert.equal(series.rate(pts, 4000), (40 - 10) / 4);
    assert.equal(series.rate(pts.slice(0, 1), 10_000), null);
    assert.equal(series.rate([], 10_000), null);
  });
  test("a counter that restarted counts from its new value", () => {
    const pts = [
      { t: 0, v: 100 },
      { t: 1000, v: 110 },
      { t: 2000, v: 5 },
    ];
    assert.equal(series.rate(pts, 10_000), (10 + 5) / 2);
  });
  test("rates per interval merge readings closer than the minimum interval", () => {
    const pts = [
      { t: 0, v: 0 },
      { t: 2000, v: 4 },
      { t: 2100, v: 5 },
      { t: 4000, v: 8 },
    ];
    assert.deepEqual(series.rates(pts), [
      { t: 2000, v: 2 },
      { t: 4000, v: 2 },
    ]);
  });
});

describe("niceTicks", () => {
  const cases = [
    [7, [0, 2, 4, 6, 8]],
    [8, [0, 2, 4, 6, 8]],
    [45, [0, 20, 40, 60]],
    [100, [0, 50, 100]],
    [1234, [0, 500, 1000, 1500]],
    [0.3, [0, 0.1, 0.2, 0.3]],
    [0, [0, 1]],
    [Number.NaN, [0, 1]],
  ];
  for (const [max, want] of cases) {
    test(`max ${max}`, () => {
      const ticks = series.niceTicks(max);
      assert.deepEqual(ticks, want);
      if (max > 0) assert.ok(ticks[ticks.length - 1] >= max);
    });
  }
});

describe("messageFile", () => {
  const files = [
    { name: "a/common.proto", package: "shop.v1", messageType: [{ name: "Money" }] },
    { name: "b/other.proto", package: "shop", messageType: [{ name: "Order" }] },
    { name: "z/order.proto", package: "shop.v1", messageType: [{ name: "Order" }] },
    { name: "nopkg.proto", package: "", messageType: [{ name: "Bare" }] },
  ];
  test("the file declaring the message, not the first one", () => {
    assert.equal(schema.messageFile(files, "shop.v1.Order"), "z/order.proto");
    assert.equal(schema.messageFile(files, "shop.v1.Money"), "a/common.proto");
  });
  test("a nested message is in the file of its top-level message", () => {
    assert.equal(schema.messageFile(files, "shop.v1.Order.Item"), "z/order.proto");
  });
  test("a package that is a prefix of another does not match by accident", () => {
    assert.equal(schema.messageFile(files, "shop.Order"), "b/other.proto");
  });
  test("no package, and no such message", () => {
    assert.equal(schema.messageFile(files, "Bare"), "nopkg.proto");
    assert.equal(schema.messageFile(files, "shop.v1.Nope"), undefined);
  });
});
