// Audit log: every control-plane change (schemas registered and deleted,
// compatibility modes, routes created and deleted), who made it, and the
// state before and after; newest first, filtered by subject and actor,
// paged with "Show older".

import { auditClient, problem } from "../api.js";
import { h, replace } from "../dom.js";
import type { AuditEvent } from "../gen/pipeline/v1/audit_pb.js";
import { ago, time } from "../format.js";
import { card, empty, link, notice, pageHeader, subjectHref, table, type View } from "../ui.js";

const pageSize = 50;

export function auditView(query: URLSearchParams): View {
  let subject = query.get("subject") ?? "";
  let actor = query.get("actor") ?? "";
  let events: AuditEvent[] = [];
  let next = "";
  let loadError: string | undefined;
  let loading = true;
  let disposed = false;
  let generation = 0; // a newer filter wins over a slower older answer
  const listBox = h("div");
  const moreBox = h("div", { class: "form-actions" });

  async function load(more: boolean): Promise<void> {
    const gen = more ? generation : ++generation;
    loading = true;
    render();
    try {
      const res = await auditClient.listAuditEvents({ subject, actor, pageSize, pageToken: more ? next : "" });
      if (gen !== generation || disposed) return;
      events = more ? events.concat(res.events) : res.events;
      next = res.nextPageToken;
      loadError = undefined;
    } catch (err) {
      if (gen !== generation || disposed) return;
      loadError = problem(err).message;
    }
    loading = false;
    render();
  }

  function render(): void {
    if (loadError) replace(listBox, notice(loadError));
    else if (loading && !events.length) replace(listBox, empty("Loading the audit log…"));
    else if (!events.length)
      replace(listBox, empty(subject || actor ? "No change matches these filters." : "No change yet: registrations, deletes, compatibility changes and routes are recorded here."));
    else
      replace(
        listBox,
        table(
          ["When", "Who", "What", "Subject", "Target", "Before", "After"],
          h(
            "tbody",
            null,
            events.map((ev) =>
              h(
                "tr",
                { "data-testid": "audit-row", "data-action": ev.action },
                h("td", { title: ago(ev.time) }, time(ev.time)),
                h("td", { class: "strong", "data-testid": "audit-actor" }, ev.actor),
                h("td", { class: "mono" }, ev.action),
                h("td", null, ev.subject ? link(subjectHref(ev.subject), null, ev.subject) : h("span", { class: "muted" }, "–")),
                h("td", null, ev.target || h("span", { class: "muted" }, "–")),
                h("td", { class: "mono audit-state" }, ev.before || h("span", { class: "muted" }, "none")),
                h("td", { class: "mono audit-state" }, ev.after || h("span", { class: "muted" }, "none")),
              ),
            ),
          ),
          { "data-testid": "audit-table" },
        ),
      );
    replace(
      moreBox,
      next && !loadError
        ? h("button", { type: "button", class: "btn", "data-testid": "audit-more", disabled: loading, onclick: () => void load(true) }, "Show older")
        : null,
    );
  }

  const subjectIn = h("input", { name: "subject", value: subject, placeholder: "any subject", autocomplete: "off" });
  const actorIn = h("input", { name: "actor", value: actor, placeholder: "anyone", autocomplete: "off" });
  const field = (label: string, input: HTMLElement): HTMLElement =>
    h("label", { class: "field" }, h("span", { class: "field-label" }, label), input);
  const form = h(
    "form",
    {
      class: "form-grid",
      "data-testid": "audit-filter",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        subject = subjectIn.value.trim();
        actor = actorIn.value.trim();
        const q = new URLSearchParams();
        if (subject) q.set("subject", subject);
        if (actor) q.set("actor", actor);
        history.replaceState(null, "", q.size ? `/audit?${q}` : "/audit");
        void load(false);
      },
    },
    field("Subject", subjectIn),
    field("Actor", actorIn),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary" }, "Filter")),
  );

  void load(false);
  return {
    el: h(
      "div",
      { class: "view" },
      pageHeader("Audit log", "Every change to schemas, compatibility modes and routes: who, when, and the state before and after."),
      card(null, h("div", null, form, listBox, moreBox)),
    ),
    dispose: () => {
      disposed = true;
    },
  };
}
