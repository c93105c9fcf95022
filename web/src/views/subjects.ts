// The home page: every subject with its latest version, compatibility mode
// and traffic, searchable.

import { h, replace } from "../dom.js";
import { compatibilityName, count, perSecond } from "../format.js";
import { live } from "../live.js";
import { badge, empty, kpi, link, notice, numCell, pageHeader, subjectHref, table, type View } from "../ui.js";

export function subjectsView(query: URLSearchParams): View {
  let filter = query.get("q") ?? "";
  const kpis = h("div", { class: "kpis" });
  const tbody = h("tbody");
  const status = h("div");
  const search = h("input", {
    type: "search",
    class: "search",
    placeholder: "Filter by subject or message…",
    "aria-label": "Filter subjects",
    "data-testid": "subject-search",
    value: filter,
    oninput: (ev: Event) => {
      filter = (ev.target as HTMLInputElement).value;
      const url = new URL(window.location.href);
      if (filter) url.searchParams.set("q", filter);
      else url.searchParams.delete("q");
      history.replaceState(null, "", url);
      update();
    },
  });
  const body = h("div", { class: "subjects-body" });

  function update(): void {
    let totalEvents = 0;
    let totalRefusals = 0;
    let known = false;
    for (const s of live.subjects) {
      const e = live.eventsRate(s.name);
      const r = live.refusalsRate(s.name);
      if (e !== null) {
        known = true;
        totalEvents += e;
      }
      if (r !== null) totalRefusals += r;
    }
    const lags = live.sinks.map((s) => Number(s.lag)).filter((n) => n >= 0);
    const maxLag = lags.length ? Math.max(...lags) : null;
    replace(
      kpis,
      kpi("Subjects", count(live.subjects.length)),
      kpi("Events/s", known ? perSecond(totalEvents) : "–"),
      kpi("Refusals/s", known ? perSecond(totalRefusals) : "–", { class: totalRefusals > 0 ? "kpi kpi-bad" : "kpi" }),
      kpi("Largest sink backlog", maxLag === null ? "–" : count(maxLag), { class: maxLag ? "kpi kpi-warn" : "kpi" }),
    );

    replace(status, live.error && !live.subjects.length ? notice(live.error) : null);
    const needle = filter.trim().toLowerCase();
    const rows = live.subjects.filter(
      (s) => !needle || s.name.toLowerCase().includes(needle) || s.message.toLowerCase().includes(needle),
    );
    replace(
      tbody,
      rows.map((s) => {
        const ev = live.eventsRate(s.name);
        const rf = live.refusalsRate(s.name);
        const totals = live.counts(s.name);
        return h(
          "tr",
          { "data-testid": "subject-row", "data-subject": s.name },
          h("td", null, link(subjectHref(s.name), { class: "strong" }, s.name)),
          h("td", { class: "mono muted" }, s.message),
          h("td", null, badge(`v${s.latestVersion}`, "info")),
          h("td", null, badge(compatibilityName(s.compatibility))),
          numCell(perSecond(ev), { "data-testid": "events-rate" }),
          numCell(perSecond(rf), { class: rf ? "num text-bad" : "num", "data-testid": "refusals-rate" }),
          numCell(count(totals.accepted)),
          numCell(count(totals.refused), { class: totals.refused ? "num text-bad" : "num" }),
        );
      }),
    );
    if (!live.loaded) replace(body, empty("Loading subjects…"));
    else if (!live.subjects.length)
      replace(
        body,
        empty([
          h("p", null, "No subject is registered yet."),
          h("p", { class: "muted" }, "Register one with ", h("code", null, "pipeline schema register --subject orders --message shop.v1.OrderCreated protos/"), " or the SchemaService.RegisterSchema call."),
        ]),
      );
    else if (!rows.length) replace(body, empty(`No subject matches “${filter}”.`));
    else
      replace(
        body,
        table(["Subject", "Message", "Latest", "Compatibility", "Events/s", "Refusals/s", "Accepted", "Refused"], tbody, {
          "data-testid": "subjects-table",
        }),
      );
  }

  const el = h(
    "div",
    { class: "view" },
    pageHeader("Subjects", "Every subject the registry knows, its latest schema and its traffic. Rates average the last 10 seconds."),
    kpis,
    status,
    h("section", { class: "card" }, h("header", { class: "card-header" }, h("h2", null, "All subjects"), search), h("div", { class: "card-body flush" }, body)),
  );
  update();
  return { el, update };
}
