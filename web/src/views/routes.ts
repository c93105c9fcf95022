// Routes: which topics get a copy of a subject's events, with a CEL filter
// and a partition key (every event also goes to its subject's own topic).
// Listed per subject with the subscriptions that read each route's topic,
// created and deleted here.

import { can, problem, routeClient } from "../api.js";
import { h, replace } from "../dom.js";
import type { Route } from "../gen/pipeline/v1/route_pb.js";
import { live } from "../live.js";
import { card, empty, link, notice, pageHeader, subjectHref, table, type View } from "../ui.js";

/**
 * routesPanel lists routes (of one subject when fixedSubject is set, else
 * of the subject chosen in its filter) with a form to add one.
 */
export function routesPanel(fixedSubject?: string, initialFilter = ""): View {
  let subjectFilter = fixedSubject ?? initialFilter;
  let routes: Route[] = [];
  let loadError: string | undefined;
  let loaded = false;
  let disposed = false;
  const listBox = h("div");
  const formStatus = h("div", { class: "form-status" });

  async function load(): Promise<void> {
    try {
      const res = await routeClient.listRoutes({ subject: subjectFilter });
      routes = res.routes;
      loadError = undefined;
    } catch (err) {
      loadError = problem(err).message;
    }
    loaded = true;
    if (!disposed) renderList();
  }

  function renderList(): void {
    if (loadError) {
      replace(listBox, notice(loadError));
      return;
    }
    if (!loaded) {
      replace(listBox, empty("Loading routes…"));
      return;
    }
    if (!routes.length) {
      replace(
        listBox,
        empty(
          subjectFilter
            ? `No route for ${subjectFilter}: its events go to its own topic, named after the subject.`
            : "No route yet: every subject's events go to its own topic, named after it.",
        ),
      );
      return;
    }
    const tbody = h(
      "tbody",
      null,
      routes.map((r) =>
        h(
          "tr",
          { "data-testid": "route-row", "data-route": r.name },
          h("td", { class: "strong" }, r.name),
          h("td", null, link(subjectHref(r.subject, { tab: "routes" }), null, r.subject)),
          h("td", { class: "mono" }, r.topic),
          h("td", { class: "mono" }, r.filter || h("span", { class: "muted" }, "all events")),
          h("td", { class: "mono" }, r.key || h("span", { class: "muted" }, "none")),
          h("td", { "data-testid": "route-readers" }, readersOf(r.topic)),
          h(
            "td",
            { class: "actions" },
            can("routes.admin")
              ? h("button", { type: "button", class: "btn btn-danger btn-small", "data-testid": "route-delete", onclick: () => void remove(r.name) }, "Delete")
              : null,
          ),
        ),
      ),
    );
    replace(listBox, table(["Name", "Subject", "Topic", "Filter (CEL)", "Key", "Read by (on the bus)", ""], tbody, { "data-testid": "routes-table" }));
  }

  // readersOf names the subscriptions on a route's topic, as the bus
  // reports them; none is a warning: the events are kept for the bus's
  // retention, but nothing stores them.
  function readersOf(topic: string): HTMLElement {
    const subs = live.topics.find((tp) => tp.name === topic)?.subscriptions ?? [];
    if (!subs.length) return h("span", { class: "text-warn", title: "Events on this topic are kept for the bus's retention (bus.retention) until a consumer reads them." }, "no subscription");
    return h("span", { class: "mono" }, subs.map((s) => s.name).join(", "));
  }

  async function remove(name: string): Promise<void> {
    if (!window.confirm(`Delete route “${name}”? Its events stop going to its topic at once.`)) return;
    try {
      await routeClient.deleteRoute({ name });
      replace(formStatus, notice(`Route “${name}” deleted.`, "ok"));
    } catch (err) {
      replace(formStatus, notice(problem(err)));
    }
    await load();
  }

  const field = (label: string, input: HTMLElement, hint?: string): HTMLElement =>
    h("label", { class: "field" }, h("span", { class: "field-label" }, label), input, hint ? h("span", { class: "field-hint" }, hint) : null);
  const nameIn = h("input", { name: "name", required: true, placeholder: "orders-to-billing", autocomplete: "off" });
  const topicIn = h("input", { name: "topic", required: true, placeholder: "billing", autocomplete: "off" });
  const filterIn = h("input", { name: "filter", class: "mono", placeholder: "event.amount_cents > 10000", autocomplete: "off" });
  const keyIn = h("input", { name: "key", class: "mono", placeholder: "order_id", autocomplete: "off" });
  const subjectIn = h("select", { name: "subject", required: true });
  const fillSubjects = (): void => {
    const current = subjectIn.value || subjectFilter;
    replace(
      subjectIn,
      h("option", { value: "" }, "Choose a subject…"),
      live.subjects.map((s) => h("option", { value: s.name, selected: s.name === current }, s.name)),
    );
  };
  const form = h(
    "form",
    {
      class: "form-grid",
      "data-testid": "route-form",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        void create();
      },
    },
    field("Name", nameIn),
    fixedSubject ? null : field("Subject", subjectIn),
    field("Topic", topicIn, "Short names go under the bus's namespace."),
    field("Filter", filterIn, "CEL over event; empty sends every event."),
    field("Key", keyIn, "Field whose value is the partition key."),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Create route")),
  );

  async function create(): Promise<void> {
    const subject = fixedSubject ?? subjectIn.value;
    try {
      const res = await routeClient.createRoute({
        route: { name: nameIn.value.trim(), subject, topic: topicIn.value.trim(), filter: filterIn.value.trim(), key: keyIn.value.trim() },
      });
      const readers = res.subscriptions.length ? ` Read by ${res.subscriptions.join(", ")}.` : "";
      replace(
        formStatus,
        res.warning
          ? notice(`Route “${res.route?.name}” created: ${subject} → ${res.route?.topic}. ${res.warning}.`, "warn")
          : notice(`Route “${res.route?.name}” created: ${subject} → ${res.route?.topic}.${readers}`, "ok"),
      );
      nameIn.value = "";
      topicIn.value = "";
      filterIn.value = "";
      keyIn.value = "";
    } catch (err) {
      replace(formStatus, notice(problem(err)));
    }
    await load();
  }

  let filterSelect: HTMLSelectElement | undefined;
  const fillFilter = (): void => {
    if (!filterSelect) return;
    const current = subjectFilter;
    replace(
      filterSelect,
      h("option", { value: "" }, "All subjects"),
      live.subjects.map((s) => h("option", { value: s.name, selected: s.name === current }, s.name)),
    );
  };
  if (!fixedSubject) {
    filterSelect = h("select", {
      "aria-label": "Subject",
      "data-testid": "route-filter",
      onchange: (ev: Event) => {
        subjectFilter = (ev.target as HTMLSelectElement).value;
        const url = new URL(window.location.href);
        if (subjectFilter) url.searchParams.set("subject", subjectFilter);
        else url.searchParams.delete("subject");
        history.replaceState(null, "", url);
        void load();
      },
    });
    fillFilter();
  }
  fillSubjects();

  const el = h(
    "div",
    { class: "stack" },
    card(fixedSubject ? "Routes of this subject" : "Routes", h("div", { class: "flush" }, listBox), {
      actions: filterSelect ?? null,
    }),
    can("routes.admin") ? card("New route", [form, formStatus]) : null,
  );
  renderList();
  void load();
  let subjectCount = live.subjects.length;
  let topicKey = "";
  return {
    el,
    update: () => {
      const key = live.topics.map((tp) => tp.name + ":" + tp.subscriptions.map((s) => s.name).join(",")).join(";");
      if (key !== topicKey) {
        topicKey = key;
        renderList();
      }
      if (live.subjects.length !== subjectCount) {
        subjectCount = live.subjects.length;
        fillSubjects();
        fillFilter();
      }
    },
    dispose: () => {
      disposed = true;
    },
  };
}

export function routesView(query: URLSearchParams): View {
  const panel = routesPanel(undefined, query.get("subject") ?? "");
  const el = h(
    "div",
    { class: "view" },
    pageHeader("Routes", "Every event goes to its subject's own topic; a route adds a copy on its topic for each event its filter passes."),
    panel.el,
  );
  return { el, update: panel.update, dispose: panel.dispose };
}
