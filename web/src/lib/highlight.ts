// A small tokenizer for .proto sources, enough to colour them: comments,
// strings, numbers, keywords, scalar types and the names being declared.
// It never fails: anything it does not know is plain text. Pure: no DOM.

export type TokenKind =
  | "comment"
  | "string"
  | "number"
  | "keyword"
  | "type"
  | "decl"
  | "ident"
  | "punct"
  | "space";

export interface Token {
  kind: TokenKind;
  text: string;
}

const keywords = new Set([
  "syntax", "edition", "package", "import", "weak", "public", "option", "message", "enum",
  "service", "rpc", "returns", "stream", "oneof", "map", "reserved", "extensions", "extend",
  "to", "max", "repeated", "optional", "required", "group", "true", "false", "inf", "nan",
]);

const scalarTypes = new Set([
  "double", "float", "int32", "int64", "uint32", "uint64", "sint32", "sint64", "fixed32",
  "fixed64", "sfixed32", "sfixed64", "bool", "string", "bytes",
]);

/** Keywords whose next identifier is the name being declared. */
const declaring = new Set(["message", "enum", "service", "rpc", "oneof", "extend", "group"]);

const identStart = /[A-Za-z_]/;
const identPart = /[A-Za-z0-9_]/;
const digit = /[0-9]/;
const numberRE = /^(?:0[xX][0-9A-Fa-f]+|[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?)/;

/** tokenize splits a .proto source into tokens whose texts concatenate back to src. */
export function tokenize(src: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  let expectDecl = false;
  const push = (kind: TokenKind, text: string): void => {
    const last = out[out.length - 1];
    if (last && last.kind === kind && (kind === "space" || kind === "punct")) last.text += text;
    else out.push({ kind, text });
  };
  while (i < src.length) {
    const c = src[i]!;
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      let j = i + 1;
      while (j < src.length && /[ \t\r\n]/.test(src[j]!)) j++;
      push("space", src.slice(i, j));
      i = j;
    } else if (c === "/" && src[i + 1] === "/") {
      let j = src.indexOf("\n", i);
      if (j < 0) j = src.length;
      push("comment", src.slice(i, j));
      i = j;
    } else if (c === "/" && src[i + 1] === "*") {
      let j = src.indexOf("*/", i + 2);
      j = j < 0 ? src.length : j + 2;
      push("comment", src.slice(i, j));
      i = j;
    } else if (c === '"' || c === "'") {
      let j = i + 1;
      while (j < src.length && src[j] !== c && src[j] !== "\n") j += src[j] === "\\" ? 2 : 1;
      if (j < src.length && src[j] === c) j++;
      j = Math.min(j, src.length);
      push("string", src.slice(i, j));
      i = j;
    } else if (digit.test(c) || (c === "." && digit.test(src[i + 1] ?? ""))) {
      const m = numberRE.exec(src.slice(i, i + 64));
      const text = m ? m[0] : c;
      push("number", text);
      i += text.length;
    } else if (identStart.test(c)) {
      let j = i + 1;
      while (j < src.length && identPart.test(src[j]!)) j++;
      const word = src.slice(i, j);
      const prev = previousSignificant(out);
      // After a '.', a word is part of a qualified name, never a keyword.
      const qualified = prev?.kind === "punct" && prev.text.endsWith(".");
      if (expectDecl) {
        push("decl", word);
        expectDecl = false;
      } else if (!qualified && keywords.has(word)) {
        push("keyword", word);
        expectDecl = declaring.has(word);
      } else if (!qualified && scalarTypes.has(word)) {
        push("type", word);
      } else {
        push("ident", word);
      }
      i = j;
    } else {
      push("punct", c);
      expectDecl = false;
      i++;
    }
  }
  return out;
}

function previousSignificant(tokens: Token[]): Token | undefined {
  for (let i = tokens.length - 1; i >= 0; i--) {
    if (tokens[i]!.kind !== "space") return tokens[i];
  }
  return undefined;
}

/** tokenLines splits tokens at newlines: one token list per source line. */
export function tokenLines(tokens: readonly Token[]): Token[][] {
  const lines: Token[][] = [[]];
  for (const t of tokens) {
    const parts = t.text.split("\n");
    parts.forEach((part, idx) => {
      if (idx > 0) lines.push([]);
      const text = part.endsWith("\r") ? part.slice(0, -1) : part;
      if (text !== "") lines[lines.length - 1]!.push({ kind: t.kind, text });
    });
  }
  if (lines.length > 1 && lines[lines.length - 1]!.length === 0) lines.pop();
  return lines;
}

/** highlightLines tokenizes src and returns its lines as tokens. */
export function highlightLines(src: string): Token[][] {
  if (src === "") return [];
  return tokenLines(tokenize(src));
}
