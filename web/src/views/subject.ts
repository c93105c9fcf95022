// One subject: its versions and their sources, the diff between any two,
// a compatibility check of a pasted candidate, a check of a pasted event
// (CheckEvent: what Publish would answer, nothing published), its mode,
// its refused events and its routes.

import { fromBinary } from "@bufbuild/protobuf";
import { ConnectError } from "@connectrpc/connect";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { can, ingestClient, problem, quarantineClient, schemaClient } from "../api.js";
import { diffView, fileDiffs, sourceListing } from "../code.js";
import { h, replace } from "../dom.js";
import { ago, compatibilityModes, compatibilityName, count, perSecond, time } from "../format.js";
import { ValidationErrorSchema } from "../gen/pipeline/v1/ingest_pb.js";
import { ReplayOutcome, type QuarantinedEvent, type RuleCount } from "../gen/pipeline/v1/quarantine_pb.js";
import { Compatibility, type Schema, type SchemaVersion } from "../gen/pipeline/v1/schema_pb.js";
import { messageFile } from "../lib/schema.js";
import { live } from "../live.js";
import { badge, card, empty, kpi, link, notice, table, type View } from "../ui.js";
import { routesPanel } from "./routes.js";

type Tab = "source" | "diff" | "check" | "event" | "refused" | "routes";
// Each tab with the permission its calls need (none: every reader's).
const allTabs: { id: Tab; label: string; permission?: string }[] = [
  { id: "source", label: "Versions & source" },
  { id: "diff", label: "Diff" },
  { id: "check", label: "Check a candidate", permission: "schema.check" },
  // CheckEvent is checked like Publish (events.publish), and publishes nothing.
  { id: "event", label: "Check an event", permission: "events.publish" },
  { id: "refused", label: "Refused events", permission: "events.refused" },
  { id: "routes", label: "Routes", permission: "routes.read" },
];

export function subjectView(name: string, query: URLSearchParams): View {
  const tabs = allTabs.filter((t) => !t.permission || can(t.permission));
  let tab: Tab = (tabs.find((t) => t.id === query.get("tab"))?.id ?? "source") as Tab;
  let versions: SchemaVersion[] = [];
  let versionsError: string | undefined;
  let mode: Compatibility | undefined;
  let refused: QuarantinedEvent[] = [];
  let rules: RuleCount[] = [];
  let refusedTotal = 0n;
  let refusedError: string | undefined;
  let disposed = false;
  let eventDraft = ""; // the pasted event, kept across redraws of the tab
  const schemas = new Map<number, Promise<Schema>>();

  const getSchema = (version: number): Promise<Schema> => {
    let p = schemas.get(version);
    if (!p) {
      p = schemaClient.getSchema({ subject: name, version }).then((r) => {
        if (!r.schema) throw new Error(`version ${version} has no schema`);
        return r.schema;
      });
      p.catch(() => schemas.delete(version));
      schemas.set(version, p);
    }
    return p;
  };
  const liveVersions = (): SchemaVersion[] => versions.filter((v) => !v.deleted);
  const latestVersion = (): number => {
    const vs = liveVersions();
    return vs.length ? vs[vs.length - 1]!.version : 0;
  };
  const setQuery = (params: Record<string, string | number | undefined>): void => {
    const url = new URL(window.location.href);
    for (const [k, v] of Object.entries(params)) {
      if (v === undefined || v === "") url.searchParams.delete(k);
      else url.searchParams.set(k, String(v));
    }
    history.replaceState(null, "", url);
  };

  // Header: name, message, latest version, rates, and the mode selector.
  const headerInfo = h("div", { class: "subject-meta" });
  const headerKpis = h("div", { class: "kpis kpis-inline" });
  // Changing the mode is the admin's: others see it, read-only.
  const modeSelect = h("select", { "aria-label": "Compatibility mode", "data-testid": "mode-select", disabled: !can("schema.admin") });
  const modeStatus = h("span", { class: "mode-status" });
  const modeButton = h(
    "button",
    { type: "button", class: "btn", "data-testid": "mode-save", onclick: () => void saveMode() },
    "Apply",
  );

  function fillModes(): void {
    replace(
      modeSelect,
      compatibilityModes.map((m) => h("option", { value: String(m), selected: m === mode }, compatibilityName(m))),
    );
  }

  async function saveMode(): Promise<void> {
    const next = Number(modeSelect.value) as Compatibility;
    modeButton.disabled = true;
    try {
      const res = await schemaClient.updateSubjectConfig({ subject: name, compatibility: next });
      mode = res.compatibility;
      replace(modeStatus, badge(`Saved: ${compatibilityName(res.compatibility)}`, "ok", { "data-testid": "mode-saved" }));
      void live.refresh();
    } catch (err) {
      replace(modeStatus, badge(problem(err).message, "bad"));
    } finally {
      modeButton.disabled = false;
    }
  }

  function updateHeader(): void {
    const subject = live.subjects.find((s) => s.name === name);
    replace(
      headerInfo,
      subject
        ? [
            h("span", { class: "mono" }, subject.message),
            badge(`latest v${subject.latestVersion}`, "info"),
            h("span", { class: "muted" }, `schema id ${subject.latestSchemaId}`),
          ]
        : live.loaded
          ? badge("not found", "bad")
          : null,
    );
    const totals = live.counts(name);
    const rf = live.refusalsRate(name);
    replace(
      headerKpis,
      kpi("Events/s", perSecond(live.eventsRate(name)), { "data-testid": "kpi-events" }),
      kpi("Refusals/s", perSecond(rf), { class: rf ? "kpi kpi-bad" : "kpi" }),
      kpi("Accepted", count(totals.accepted)),
      kpi("Refused", count(totals.refused), { class: totals.refused ? "kpi kpi-bad" : "kpi" }),
    );
  }

  // Tabs.
  const tabBar = h("nav", { class: "tabs", role: "tablist" });
  const panel = h("div", { class: "tab-panel" });
  let panelView: View | undefined;

  function renderTabs(): void {
    replace(
      tabBar,
      tabs.map((t) =>
        h(
          "button",
          {
            type: "button",
            role: "tab",
            class: t.id === tab ? "tab active" : "tab",
            "aria-selected": t.id === tab ? "true" : "false",
            "data-testid": `tab-${t.id}`,
            onclick: () => selectTab(t.id),
          },
          t.label,
          t.id === "refused" && refusedTotal ? h("span", { class: "tab-count" }, count(refusedTotal)) : null,
          t.id === "source" && liveVersions().length ? h("span", { class: "tab-count" }, liveVersions().length) : null,
        ),
      ),
    );
  }

  function selectTab(next: Tab): void {
    tab = next;
    setQuery({ tab: next === "source" ? undefined : next, v: undefined, from: undefined, to: undefined });
    renderTabs();
    renderPanel();
  }

  function renderPanel(): void {
    panelView?.dispose?.();
    panelView = undefined;
    if (versionsError) {
      replace(panel, notice(versionsError));
      return;
    }
    if (!versions.length && tab !== "routes" && tab !== "refused") {
      replace(panel, empty("Loading versions…"));
      return;
    }
    switch (tab) {
      case "source":
        panelView = sourceTab();
        break;
      case "diff":
        panelView = diffTab();
        break;
      case "check":
        panelView = checkTab();
        break;
      case "event":
        panelView = eventTab();
        break;
      case "refused":
        panelView = refusedTab();
        break;
      case "routes":
        panelView = routesPanel(name);
        break;
    }
    replace(panel, panelView.el);
  }

  // Versions & source.
  function sourceTab(): View {
    const wanted = Number(new URLSearchParams(window.location.search).get("v")) || latestVersion();
    let selected = wanted;
    const listBox = h("div", { class: "version-list", "data-testid": "version-list" });
    const sourceBox = h("div", { class: "source-box" });
    const renderList = (): void => {
      replace(
        listBox,
        versions.map((v) =>
          h(
            "button",
            {
              type: "button",
              class: v.version === selected ? "version active" : "version",
              "data-testid": "version-item",
              "data-version": v.version,
              onclick: () => {
                selected = v.version;
                setQuery({ v: v.version === latestVersion() ? undefined : v.version });
                renderList();
                void show();
              },
            },
            h("span", { class: "version-num" }, `v${v.version}`),
            h(
              "span",
              { class: "version-meta" },
              v.deleted ? badge("deleted", "warn") : v.version === latestVersion() ? badge("latest", "info") : null,
              h("span", { class: "muted" }, `id ${v.schemaId}`),
            ),
            h("span", { class: "version-time muted", title: v.createdAt ? time(v.createdAt) : "" }, v.createdAt ? ago(v.createdAt) : ""),
          ),
        ),
      );
    };
    const deleteStatus = h("div", { "data-testid": "delete-status" });
    // A soft delete hides the version from its subject's versions; its
    // schema ID still resolves (DeleteSchemaVersion). Only the admin may
    // (schema.admin), and only after saying yes.
    const deleteButton = (version: number): HTMLElement =>
      h(
        "button",
        {
          type: "button",
          class: "btn btn-small btn-danger",
          "data-testid": "version-delete",
          onclick: async (ev: Event) => {
            if (!window.confirm(`Soft-delete version ${version} of ${name}? It is hidden from the subject; its schema ID keeps resolving.`)) return;
            const btn = ev.currentTarget as HTMLButtonElement;
            btn.disabled = true;
            try {
              await schemaClient.deleteSchemaVersion({ subject: name, version });
              schemas.delete(version);
              void live.refresh();
              await loadVersions();
            } catch (err) {
              btn.disabled = false;
              replace(deleteStatus, notice(problem(err)));
            }
          },
        },
        "Delete version",
      );
    const show = async (): Promise<void> => {
      const version = selected;
      replace(sourceBox, empty("Loading source…"));
      try {
        const sc = await getSchema(version);
        if (version !== selected || disposed) return;
        replace(
          sourceBox,
          h(
            "div",
            { class: "schema-head" },
            h("h3", null, `Version ${sc.version}`),
            h("span", { class: "mono" }, sc.message),
            h("span", { class: "muted" }, `schema id ${sc.schemaId} · registered ${time(sc.createdAt)}`),
            sc.deleted ? badge("deleted", "warn") : null,
            !sc.deleted && can("schema.admin") ? deleteButton(sc.version) : null,
          ),
          deleteStatus,
          sc.files.length
            ? sc.files.map((f) => sourceListing(f.path, f.content))
            : empty("This version was registered as a FileDescriptorSet: there is no .proto source to show."),
          sc.references.length
            ? h("p", { class: "muted" }, "References: ", sc.references.map((r) => `${r.name} → ${r.subject} v${r.version}`).join(", "))
            : null,
        );
      } catch (err) {
        if (version === selected) replace(sourceBox, notice(problem(err)));
      }
    };
    renderList();
    void show();
    return {
      el: h("div", { class: "split" }, card("Versions", listBox, { class: "card versions-card" }), h("div", { class: "source-col" }, sourceBox)),
    };
  }

  // Diff between two versions.
  function diffTab(): View {
    const q = new URLSearchParams(window.location.search);
    const vs = versions.map((v) => v.version);
    const latest = latestVersion();
    let to = Number(q.get("to")) || latest;
    const older = vs.filter((v) => v < to);
    let from = Number(q.get("from")) || (older.length ? Math.max(...older) : to);
    const out = h("div", { class: "diff-out" });
    const pick = (label: string, value: number, testid: string, set: (v: number) => void): HTMLElement =>
      h(
        "label",
        { class: "inline-field" },
        h("span", { class: "field-label" }, label),
        h(
          "select",
          {
            "data-testid": testid,
            onchange: (ev: Event) => {
              set(Number((ev.target as HTMLSelectElement).value));
              setQuery({ from, to });
              void render();
            },
          },
          versions.map((v) => h("option", { value: v.version, selected: v.version === value }, `v${v.version}${v.deleted ? " (deleted)" : ""}`)),
        ),
      );
    const render = async (): Promise<void> => {
      const want = `${from}:${to}`;
      replace(out, empty("Computing the diff…"));
      try {
        const [a, b] = await Promise.all([getSchema(from), getSchema(to)]);
        if (want !== `${from}:${to}` || disposed) return;
        const diffs = fileDiffs(a.files, b.files);
        const changed = diffs.filter((d) => d.status !== "unchanged").length;
        replace(
          out,
          h(
            "p",
            { class: "muted", "data-testid": "diff-summary" },
            from === to
              ? "The same version on both sides."
              : `${changed} of ${diffs.length} file${diffs.length === 1 ? "" : "s"} changed from v${from} to v${to}` +
                  (a.message !== b.message ? ` · message ${a.message} → ${b.message}` : ""),
          ),
          diffs.map((d) => diffView(d.path, d.status, d.lines, d.fromText, d.toText)),
        );
      } catch (err) {
        replace(out, notice(problem(err)));
      }
    };
    const controls = h(
      "div",
      { class: "toolbar" },
      pick("From", from, "diff-from", (v) => (from = v)),
      h("span", { class: "arrow" }, "→"),
      pick("To", to, "diff-to", (v) => (to = v)),
    );
    if (vs.length < 2) {
      return { el: card("Diff", empty("There is only one version: nothing to compare yet.")) };
    }
    void render();
    return { el: card("Diff between versions", [controls, out]) };
  }

  // declaringFile is the path of the schema's file that declares its
  // message (a schema of several files: the one the candidate replaces).
  function declaringFile(sc: Schema): string | undefined {
    if (!sc.fileDescriptorSet.length) return undefined;
    try {
      return messageFile(fromBinary(FileDescriptorSetSchema, sc.fileDescriptorSet).file, sc.message);
    } catch {
      return undefined; // not a descriptor set we can read: the first file
    }
  }

  // What the last registration from the check tab did, shown once by the
  // check tab that the new version list draws.
  let registered: HTMLElement | undefined;

  // Compatibility check of a pasted candidate, and its registration.
  // Check an event: the answer Publish would give to a pasted event (its
  // violations, or where it would go and with which key), publishing,
  // counting and keeping nothing.
  function eventTab(): View {
    const json = h("textarea", {
      class: "code-input",
      rows: 12,
      spellcheck: false,
      "aria-label": "Event as JSON",
      "data-testid": "event-json",
      placeholder: '{"orderId": "o-1", "amountCents": "1200"}',
    });
    json.value = eventDraft;
    json.addEventListener("input", () => (eventDraft = json.value));
    const versionIn = h(
      "select",
      { name: "version", "aria-label": "Schema version", "data-testid": "event-version" },
      h("option", { value: "0" }, "latest version"),
      liveVersions()
        .slice()
        .reverse()
        .map((v) => h("option", { value: String(v.schemaId) }, `v${v.version} (schema id ${v.schemaId})`)),
    );
    const result = h("div", { class: "check-result", "data-testid": "event-result" });
    const button = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "event-run" }, "Check event");
    const run = async (): Promise<void> => {
      button.disabled = true;
      replace(result, empty("Checking…"));
      try {
        const res = await ingestClient.checkEvent({
          event: { subject: name, schemaId: BigInt(versionIn.value), payload: { case: "json", value: json.value } },
        });
        replace(
          result,
          h(
            "div",
            { class: "verdict verdict-ok", "data-testid": "event-verdict" },
            h("strong", null, "Valid"),
            ` against v${res.version} (schema id ${res.schemaId}): Publish would accept it and send it to ${res.targets.length} topic${res.targets.length === 1 ? "" : "s"}. Nothing was published.`,
          ),
          table(
            ["Topic", "Key"],
            h(
              "tbody",
              null,
              res.targets.map((t) =>
                h(
                  "tr",
                  { "data-testid": "event-target" },
                  h("td", { class: "mono" }, t.topic),
                  h("td", { class: "mono" }, t.key || h("span", { class: "muted" }, "the event id Publish would mint")),
                ),
              ),
            ),
          ),
        );
      } catch (err) {
        const p = problem(err);
        const violations = ConnectError.from(err).findDetails(ValidationErrorSchema).flatMap((d) => d.violations);
        replace(
          result,
          h("div", { class: "verdict verdict-bad", "data-testid": "event-verdict" }, h("strong", null, "Refused"), `: ${p.message}. Nothing was published.`),
          violations.length
            ? table(
                ["Field", "Rule", "Violation"],
                h(
                  "tbody",
                  null,
                  violations.map((v) =>
                    h(
                      "tr",
                      { "data-testid": "event-violation" },
                      h("td", { class: "mono strong" }, v.field || "(event)"),
                      h("td", null, badge(v.rule, "bad")),
                      h("td", null, v.message),
                    ),
                  ),
                ),
              )
            : p.details.length
              ? notice({ message: "Problems", details: p.details })
              : null,
        );
      } finally {
        button.disabled = false;
      }
    };
    const form = h(
      "form",
      {
        class: "check-form",
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          void run();
        },
      },
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Event (the message's JSON form)"), json),
      h(
        "div",
        { class: "form-actions" },
        versionIn,
        button,
        h("span", { class: "muted" }, "Answers exactly what Publish would, and publishes nothing."),
      ),
    );
    return { el: h("div", { class: "stack" }, card("Check an event", form), result) };
  }

  function checkTab(): View {
    const pathIn = h("input", { class: "mono", name: "path", "aria-label": "File path", "data-testid": "check-path" });
    const messageIn = h("input", { class: "mono", name: "message", "aria-label": "Message", "data-testid": "check-message" });
    const source = h("textarea", {
      class: "code-input",
      rows: 18,
      spellcheck: false,
      "aria-label": "Candidate .proto source",
      "data-testid": "check-source",
      placeholder: "Paste the candidate .proto source here",
    });
    const result = h("div", { class: "check-result", "data-testid": "check-result" });
    const button = h("button", { type: "submit", class: "btn btn-primary", "data-testid": "check-run" }, "Check compatibility");
    // Registering is the registrar's and the admin's (schema.register).
    const registerButton = can("schema.register")
      ? h("button", { type: "button", class: "btn", "data-testid": "check-register", onclick: () => void register() }, "Register")
      : null;
    let base: Schema | undefined;
    if (registered) {
      replace(result, registered);
      registered = undefined;
    }

    getSchema(latestVersion())
      .then((sc) => {
        base = sc;
        const first = sc.files.find((f) => f.path === declaringFile(sc)) ?? sc.files[0];
        if (!pathIn.value) pathIn.value = first?.path ?? "candidate.proto";
        if (!messageIn.value) messageIn.value = sc.message;
        if (!source.value) source.value = first?.content ?? "";
      })
      .catch((err) => replace(result, notice(problem(err))));

    // The candidate replaces the file with its path; the latest version's
    // other files (imports) go along unchanged.
    const candidate = () => {
      const path = pathIn.value.trim() || "candidate.proto";
      const files = (base?.files ?? []).filter((f) => f.path !== path).map((f) => ({ path: f.path, content: f.content }));
      files.push({ path, content: source.value });
      return { subject: name, message: messageIn.value.trim(), files, references: base?.references ?? [] };
    };

    const register = async (): Promise<void> => {
      if (!registerButton) return;
      button.disabled = registerButton.disabled = true;
      replace(result, empty("Registering…"));
      try {
        const res = await schemaClient.registerSchema(candidate());
        registered = h(
          "div",
          { class: "verdict verdict-ok", "data-testid": "verdict" },
          h("strong", null, "Registered"),
          ` as version ${res.version} (schema id ${res.schemaId}).`,
        );
        replace(result, registered);
        lastLatest = res.version; // the next poll need not reload again
        void live.refresh();
        await loadVersions(); // draws the check tab anew, on the new latest version
      } catch (err) {
        const p = problem(err);
        replace(
          result,
          h("div", { class: "verdict verdict-bad", "data-testid": "verdict" }, h("strong", null, "Not registered"), `: ${p.message}`),
          p.details.length ? notice({ message: "Problems", details: p.details }) : null,
        );
      } finally {
        button.disabled = registerButton.disabled = false;
      }
    };

    const run = async (): Promise<void> => {
      button.disabled = true;
      replace(result, empty("Checking…"));
      try {
        const res = await schemaClient.checkCompatibility(candidate());
        const modeName = mode !== undefined ? compatibilityName(mode) : "the subject's mode";
        if (res.compatible) {
          replace(result, h("div", { class: "verdict verdict-ok", "data-testid": "verdict" }, h("strong", null, "Compatible"), ` under ${modeName}: registering it would be accepted.`));
        } else {
          replace(
            result,
            h(
              "div",
              { class: "verdict verdict-bad", "data-testid": "verdict" },
              h("strong", null, "Incompatible"),
              ` under ${modeName}: ${res.violations.length} violation${res.violations.length === 1 ? "" : "s"}; registering it would be refused.`,
            ),
            table(
              ["Rule", "Violation", "Location", "Against"],
              h(
                "tbody",
                null,
                res.violations.map((v) =>
                  h(
                    "tr",
                    { "data-testid": "violation-row" },
                    h("td", null, badge(v.rule, "bad")),
                    h("td", null, v.message),
                    h("td", { class: "mono muted" }, v.location),
                    h("td", null, v.againstVersion ? `v${v.againstVersion}` : "–"),
                  ),
                ),
              ),
              { "data-testid": "violations-table" },
            ),
          );
        }
      } catch (err) {
        const p = problem(err);
        replace(result, h("div", { class: "verdict verdict-bad", "data-testid": "verdict" }, h("strong", null, "Not checked"), `: ${p.message}`), p.details.length ? notice({ message: "Problems", details: p.details }) : null);
      } finally {
        button.disabled = false;
      }
    };

    const form = h(
      "form",
      {
        class: "check-form",
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          void run();
        },
      },
      h(
        "div",
        { class: "form-row" },
        h("label", { class: "field grow" }, h("span", { class: "field-label" }, "File path"), pathIn),
        h("label", { class: "field grow" }, h("span", { class: "field-label" }, "Message"), messageIn),
      ),
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Candidate source"), source),
      h(
        "div",
        { class: "form-actions" },
        button,
        registerButton,
        h(
          "button",
          {
            type: "button",
            class: "btn",
            onclick: () => {
              const f = base?.files.find((x) => x.path === pathIn.value.trim()) ?? base?.files[0];
              source.value = f?.content ?? "";
              replace(result);
            },
          },
          "Reset to latest",
        ),
        h(
          "span",
          { class: "muted" },
          registerButton
            ? "Check compares against the registered versions under the subject's mode and registers nothing; Register adds the candidate as the next version if the mode allows it."
            : "Checks against the registered versions under the subject's compatibility mode; nothing is registered.",
        ),
      ),
    );
    return { el: h("div", { class: "stack" }, card("Candidate schema", form), result) };
  }

  // Refused events: the quarantine (shared by the replicas), grouped by
  // rule, searched by payload text, filtered by time; replayable.
  const refusedBox = h("div");
  const rulesBox = h("div", { class: "toolbar rule-groups", "data-testid": "refused-rules" });
  const replayBox = h("div");
  // The payloads the reader opened, by event, so that a redraw (a new
  // refusal arrives every few seconds under traffic) keeps them open.
  const openPayloads = new Set<string>();
  const refusedId = (e: QuarantinedEvent): string => `${e.eventId}@${e.time?.seconds}.${e.time?.nanos}`;
  let ruleFilter = "";
  let textFilter = "";
  let sinceHours = 0; // 0: any time
  const payloadText = (e: QuarantinedEvent): string => {
    if (e.payload.case === "json") return e.payload.value;
    if (e.payload.case === "binary") return Array.from(e.payload.value.subarray(0, 1024), (b) => b.toString(16).padStart(2, "0")).join("");
    return "";
  };
  function payloadDetails(e: QuarantinedEvent): HTMLElement {
    const id = refusedId(e);
    const details = h("details", { open: openPayloads.has(id) }, h("summary", null, "payload"), h("pre", { class: "payload" }, payloadText(e)));
    details.addEventListener("toggle", () => {
      if (details.open) openPayloads.add(id);
      else openPayloads.delete(id);
    });
    return details;
  }
  function refusedFilter(): { subject: string; rule: string; text: string; since?: { seconds: bigint; nanos: number } } {
    const f: { subject: string; rule: string; text: string; since?: { seconds: bigint; nanos: number } } = { subject: name, rule: ruleFilter, text: textFilter };
    if (sinceHours) f.since = { seconds: BigInt(Math.floor(Date.now() / 1000) - sinceHours * 3600), nanos: 0 };
    return f;
  }
  function renderRules(): void {
    // The chosen rule stays a chip (to clear it) after its last event left.
    const shown = ruleFilter && !rules.some((r) => r.rule === ruleFilter) ? [...rules, { rule: ruleFilter, count: 0n }] : rules;
    replace(
      rulesBox,
      h("span", { class: "field-label" }, "By rule"),
      shown.length
        ? shown.map((r) =>
            h(
              "button",
              {
                type: "button",
                class: r.rule === ruleFilter ? "btn btn-small btn-primary" : "btn btn-small",
                "data-testid": "refused-rule",
                "data-rule": r.rule,
                onclick: () => {
                  ruleFilter = ruleFilter === r.rule ? "" : r.rule;
                  refusedKey = "";
                  void loadRefused();
                },
              },
              r.rule,
              " ",
              h("span", { class: "tab-count", "data-testid": "refused-rule-count" }, count(r.count)),
            ),
          )
        : h("span", { class: "muted" }, "none"),
    );
  }
  function renderRefused(): void {
    // Payloads are the producers' data: the admin's only (the server sends
    // them to no one else either).
    const payloads = can("events.payloads");
    renderRules();
    if (refusedError) {
      replace(refusedBox, notice(refusedError));
      return;
    }
    if (!refused.length) {
      replace(
        refusedBox,
        empty(
          ruleFilter || textFilter || sinceHours
            ? "No refused event matches the filter."
            : "No refused event kept. Refused events of this subject are kept in the quarantine (quarantine.max_events, max_age, max_bytes).",
        ),
      );
      return;
    }
    const tbody = h(
      "tbody",
      null,
      refused.map((e) =>
        h(
          "tr",
          { "data-testid": "refused-row", "data-event": e.eventId },
          h("td", { class: "nowrap" }, time(e.time), h("div", { class: "muted small" }, ago(e.time))),
          h("td", { class: "mono small" }, e.eventId || "–"),
          h("td", { class: "nowrap" }, schemaLabel(e.schemaId)),
          h(
            "td",
            null,
            h(
              "ul",
              { class: "violations" },
              e.violations.map((v) =>
                h("li", { "data-testid": "refused-violation" }, h("span", { class: "mono strong" }, v.field || "(event)"), " ", badge(v.rule, "bad"), " ", v.message),
              ),
            ),
          ),
          payloads ? h("td", null, e.payload.case ? payloadDetails(e) : h("span", { class: "muted" }, "–")) : null,
        ),
      ),
    );
    const columns = ["Time", "Event id", "Version", "Violations"];
    if (payloads) columns.push("Payload");
    replace(refusedBox, table(columns, tbody, { "data-testid": "refused-table" }));
  }
  function schemaLabel(schemaId: bigint): HTMLElement | string {
    if (!schemaId) return "–";
    const v = versions.find((x) => x.schemaId === schemaId);
    return v ? h("span", null, `v${v.version} `, h("span", { class: "muted small" }, `id ${schemaId}`)) : `id ${schemaId}`;
  }
  const outcomeNames: Record<number, [string, "ok" | "bad" | "warn" | "neutral"]> = {
    [ReplayOutcome.PUBLISHED]: ["published", "ok"],
    [ReplayOutcome.STILL_REFUSED]: ["still refused", "bad"],
    [ReplayOutcome.NOT_FOUND]: ["not found", "neutral"],
    [ReplayOutcome.FAILED]: ["failed", "warn"],
  };
  async function replay(): Promise<void> {
    replace(replayBox, h("p", { class: "muted" }, "Replaying…"));
    try {
      const res = await quarantineClient.replay({ subject: name, filter: refusedFilter() });
      replace(
        replayBox,
        h(
          "p",
          { "data-testid": "replay-summary" },
          `Validated with v${res.version}: ${res.published} published, ${res.stillRefused} still refused, ${res.failed} failed${res.more ? "; more to replay" : ""}.`,
        ),
        res.results.length
          ? table(
              ["Event id", "Outcome", "Where / why"],
              h(
                "tbody",
                null,
                res.results.map((r) => {
                  const [label, tone] = outcomeNames[r.outcome] ?? ["?", "neutral"];
                  return h(
                    "tr",
                    { "data-testid": "replay-result", "data-event": r.eventId, "data-outcome": label },
                    h("td", { class: "mono small" }, r.eventId),
                    h("td", null, badge(label, tone)),
                    h(
                      "td",
                      { class: "small" },
                      r.topics.length ? r.topics.join(", ") : null,
                      r.violations.map((v) => h("div", null, h("span", { class: "mono" }, v.field || "(event)"), " ", badge(v.rule, "bad"), " ", v.message)),
                      r.error ? r.error.message : null,
                    ),
                  );
                }),
              ),
              { "data-testid": "replay-table" },
            )
          : null,
      );
    } catch (err) {
      replace(replayBox, notice(problem(err)));
    }
    refusedKey = "";
    void loadRefused();
  }
  function refusedTab(): View {
    renderRefused();
    const textIn = h("input", { name: "text", value: textFilter, placeholder: "text in the payload", autocomplete: "off", "data-testid": "refused-search" });
    const sinceIn = h(
      "select",
      { name: "since", "data-testid": "refused-since" },
      [
        [0, "any time"],
        [1, "last hour"],
        [24, "last 24 hours"],
        [168, "last 7 days"],
      ].map(([hours, label]) => h("option", { value: String(hours), selected: hours === sinceHours }, String(label))),
    );
    const apply = (): void => {
      textFilter = textIn.value;
      sinceHours = Number(sinceIn.value);
      refusedKey = "";
      void loadRefused();
    };
    sinceIn.addEventListener("change", apply);
    const filters = h(
      "form",
      {
        class: "toolbar",
        "data-testid": "refused-filter",
        onsubmit: (ev: Event) => {
          ev.preventDefault();
          apply();
        },
      },
      // Searching reads payloads: the server allows it to events.payloads only.
      can("events.payloads") ? textIn : null,
      can("events.payloads") ? h("button", { type: "submit", class: "btn btn-small" }, "Search") : null,
      sinceIn,
      can("events.publish")
        ? h(
            "button",
            {
              type: "button",
              class: "btn btn-small btn-primary",
              "data-testid": "replay",
              title: "Validate the matching events against the latest version and publish those that pass, with their event ids",
              onclick: () => void replay(),
            },
            "Replay",
          )
        : null,
    );
    return { el: card("Refused events (quarantine)", h("div", null, filters, rulesBox, replayBox, h("div", { class: "flush" }, refusedBox))) };
  }

  let refusedKey = "";
  async function loadRefused(): Promise<void> {
    try {
      const f = refusedFilter();
      const [list, counts] = await Promise.all([
        quarantineClient.listRefused({ filter: f, pageSize: 50 }),
        quarantineClient.countRefused({ filter: { subject: name } }),
      ]);
      refused = list.events;
      rules = counts.rules;
      refusedTotal = counts.subjects.find((c) => c.subject === name)?.count ?? 0n;
      refusedError = undefined;
    } catch (err) {
      refusedError = problem(err).message;
    }
    if (disposed) return;
    // Redraw only on change, so an opened payload stays open.
    const key = refusedError ?? `${refused.map(refusedId).join(",")}|${rules.map((r) => `${r.rule}=${r.count}`).join(",")}`;
    if (key === refusedKey) return;
    refusedKey = key;
    renderTabs();
    if (tab === "refused") renderRefused();
  }

  async function loadVersions(): Promise<void> {
    try {
      const [vs, cfg] = await Promise.all([
        schemaClient.listVersions({ subject: name, includeDeleted: true }),
        schemaClient.getSubjectConfig({ subject: name }),
      ]);
      versions = [...vs.versions].sort((a, b) => a.version - b.version);
      mode = cfg.compatibility;
      versionsError = undefined;
    } catch (err) {
      versionsError = problem(err).message;
    }
    if (disposed) return;
    fillModes();
    renderTabs();
    renderPanel();
  }

  const el = h(
    "div",
    { class: "view" },
    h("div", { class: "crumbs" }, link("/", null, "Subjects"), h("span", null, "/"), h("span", null, name)),
    h(
      "div",
      { class: "page-header" },
      h("div", null, h("h1", { "data-testid": "subject-name" }, name), headerInfo),
      h(
        "div",
        { class: "mode-box" },
        h("span", { class: "field-label" }, "Compatibility"),
        h("div", { class: "mode-controls" }, modeSelect, can("schema.admin") ? modeButton : null),
        modeStatus,
      ),
    ),
    headerKpis,
    tabBar,
    panel,
  );
  fillModes();
  updateHeader();
  renderTabs();
  renderPanel();
  void loadVersions();
  void loadRefused();

  let lastLatest = live.subjects.find((s) => s.name === name)?.latestVersion;
  return {
    el,
    update: () => {
      updateHeader();
      void loadRefused();
      panelView?.update?.();
      // A new version registered elsewhere: reload the list.
      const latest = live.subjects.find((s) => s.name === name)?.latestVersion;
      if (lastLatest !== undefined && latest !== lastLatest) void loadVersions();
      lastLatest = latest;
    },
    dispose: () => {
      disposed = true;
      panelView?.dispose?.();
    },
  };
}
