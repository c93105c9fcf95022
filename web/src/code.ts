// Rendering of .proto sources: highlighted listings and line diffs.

import { h, type Child } from "./dom.js";
import { type DiffLine, diffLines, diffStats, fold, splitLines } from "./lib/diff.js";
import { highlightLines, type Token } from "./lib/highlight.js";

function tokens(line: Token[] | undefined, fallback: string): Child {
  if (!line) return fallback;
  return line.map((t) => (t.kind === "space" || t.kind === "punct" || t.kind === "ident" ? t.text : h("span", { class: `tok-${t.kind}` }, t.text)));
}

/** sourceListing shows one file with line numbers and highlighting. */
export function sourceListing(path: string, content: string): HTMLElement {
  const lines = highlightLines(content);
  const raw = splitLines(content);
  return h(
    "figure",
    { class: "code-file", "data-testid": "source-file" },
    h("figcaption", null, h("span", { class: "file-path" }, path), h("span", { class: "muted" }, `${raw.length} lines`)),
    h(
      "div",
      { class: "code-scroll" },
      h(
        "table",
        { class: "code" },
        h(
          "tbody",
          null,
          raw.map((text, i) =>
            h("tr", null, h("td", { class: "ln" }, i + 1), h("td", { class: "src" }, tokens(lines[i], text))),
          ),
        ),
      ),
    ),
  );
}

interface FileText {
  path: string;
  content: string;
}

/** fileDiffs diffs two versions' file sets by path. */
export function fileDiffs(from: FileText[], to: FileText[]): { path: string; status: string; lines: DiffLine[]; fromText: string; toText: string }[] {
  const paths = [...new Set([...from.map((f) => f.path), ...to.map((f) => f.path)])].sort();
  return paths.map((path) => {
    const a = from.find((f) => f.path === path);
    const b = to.find((f) => f.path === path);
    const fromText = a?.content ?? "";
    const toText = b?.content ?? "";
    const status = !a ? "added" : !b ? "removed" : fromText === toText ? "unchanged" : "modified";
    return { path, status, lines: diffLines(splitLines(fromText), splitLines(toText)), fromText, toText };
  });
}

/** diffView renders the line diff of one file, unchanged runs folded. */
export function diffView(path: string, status: string, lines: DiffLine[], fromText: string, toText: string): HTMLElement {
  const aTok = highlightLines(fromText);
  const bTok = highlightLines(toText);
  const { added, removed } = diffStats(lines);
  const row = (l: DiffLine): HTMLElement => {
    const sign = l.kind === "insert" ? "+" : l.kind === "delete" ? "−" : " ";
    const tok = l.kind === "insert" ? bTok[l.bLine] : aTok[l.aLine];
    return h(
      "tr",
      { class: `d-${l.kind}`, "data-kind": l.kind },
      h("td", { class: "ln" }, l.aLine >= 0 ? l.aLine + 1 : ""),
      h("td", { class: "ln" }, l.bLine >= 0 ? l.bLine + 1 : ""),
      h("td", { class: "sign" }, sign),
      h("td", { class: "src" }, tokens(tok, l.text)),
    );
  };
  const tbody = h("tbody");
  for (const r of fold(lines)) {
    if (r.kind === "line") {
      tbody.append(row(r.line));
      continue;
    }
    const foldRow: HTMLElement = h(
      "tr",
      { class: "d-fold" },
      h(
        "td",
        { colspan: 4 },
        h(
          "button",
          {
            type: "button",
            class: "link",
            onclick: () => foldRow.replaceWith(...r.lines.map(row)),
          },
          `⋯ ${r.lines.length} unchanged lines`,
        ),
      ),
    );
    tbody.append(foldRow);
  }
  return h(
    "figure",
    { class: "code-file", "data-testid": "diff-file" },
    h(
      "figcaption",
      null,
      h("span", { class: "file-path" }, path),
      h("span", { class: `badge ${status === "unchanged" ? "" : "badge-info"}` }, status),
      h("span", { class: "diff-stat" }, h("span", { class: "add" }, `+${added}`), " ", h("span", { class: "del" }, `−${removed}`)),
    ),
    status === "unchanged"
      ? h("p", { class: "empty" }, "No change in this file.")
      : h("div", { class: "code-scroll" }, h("table", { class: "code diff" }, tbody)),
  );
}
