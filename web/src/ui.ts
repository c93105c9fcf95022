// Building blocks shared by the views: cards, badges, notices, links.

import type { Problem } from "./api.js";
import { h, type Child, type Props } from "./dom.js";

/** A view is a page: its element, what to redraw on every poll, and cleanup. */
export interface View {
  el: HTMLElement;
  /** update redraws the live parts after a poll. */
  update?: () => void;
  dispose?: () => void;
}

/** link is an in-app link; the router intercepts its clicks. */
export function link(href: string, props: Props | null, ...children: Child[]): HTMLAnchorElement {
  return h("a", { ...props, href, "data-nav": "" }, ...children);
}

export function subjectHref(name: string, query?: Record<string, string | number>): string {
  const q = query ? `?${new URLSearchParams(Object.entries(query).map(([k, v]) => [k, String(v)]))}` : "";
  return `/subjects/${encodeURIComponent(name)}${q}`;
}

export function pageHeader(title: Child, subtitle?: Child, actions?: Child): HTMLElement {
  return h(
    "div",
    { class: "page-header" },
    h("div", null, h("h1", null, title), subtitle ? h("p", { class: "subtitle" }, subtitle) : null),
    actions ? h("div", { class: "page-actions" }, actions) : null,
  );
}

export function card(title: Child | null, body: Child, props?: Props & { actions?: Child }): HTMLElement {
  const { actions, ...rest } = props ?? {};
  return h(
    "section",
    { class: "card", ...rest },
    title || actions ? h("header", { class: "card-header" }, h("h2", null, title), actions ? h("div", null, actions as Child) : null) : null,
    h("div", { class: "card-body" }, body),
  );
}

export type Tone = "ok" | "warn" | "bad" | "info" | "neutral";

export function badge(text: Child, tone: Tone = "neutral", props?: Props): HTMLElement {
  return h("span", { ...props, class: `badge badge-${tone}` }, text);
}

export function dot(tone: Tone): HTMLElement {
  return h("span", { class: `dot-status dot-${tone}`, "aria-hidden": "true" });
}

/** notice shows a failed call: its message and detail lines. */
export function notice(p: Problem | string, tone: Tone = "bad"): HTMLElement {
  const pr = typeof p === "string" ? { message: p, details: [] } : p;
  return h(
    "div",
    { class: `notice notice-${tone}`, role: tone === "bad" ? "alert" : "status" },
    h("strong", null, pr.message),
    pr.details.length ? h("ul", null, pr.details.map((d) => h("li", null, d))) : null,
  );
}

export function empty(text: Child): HTMLElement {
  return h("div", { class: "empty" }, text);
}

export function kpi(label: string, value: Child, props?: Props): HTMLElement {
  return h("div", { class: "kpi", ...props }, h("div", { class: "kpi-label" }, label), h("div", { class: "kpi-value" }, value));
}

export function table(head: Child[], body: HTMLElement, props?: Props): HTMLElement {
  return h(
    "div",
    { class: "table-wrap" },
    h("table", { class: "data", ...props }, h("thead", null, h("tr", null, head.map((c) => h("th", null, c)))), body),
  );
}

/** numCell is a right-aligned number cell. */
export function numCell(value: Child, props?: Props): HTMLElement {
  return h("td", { class: "num", ...props }, value);
}
