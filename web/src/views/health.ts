// The pipeline's health: bus, registry and sink databases connected or
// not, version and uptime.

import { h, replace } from "../dom.js";
import { duration, time } from "../format.js";
import { live } from "../live.js";
import { badge, card, dot, empty, kpi, notice, pageHeader, table, type View } from "../ui.js";

export function healthView(): View {
  const body = h("div", { class: "stack" });

  function update(): void {
    const st = live.status;
    if (!st) {
      replace(body, live.error ? notice(`The pipeline does not answer: ${live.error}`) : empty("Asking the pipeline…"));
      return;
    }
    const conn = (ok: boolean, label: string, testid: string): HTMLElement =>
      h("span", { class: "conn", "data-testid": testid, "data-ok": ok ? "true" : "false" }, dot(ok ? "ok" : "bad"), ok ? "connected" : "not connected", label ? h("span", { class: "muted" }, ` · ${label}`) : null);
    replace(
      body,
      live.error ? notice(`Some readings failed: ${live.error}`, "warn") : null,
      h(
        "div",
        { class: "kpis" },
        kpi("Version", st.version, { "data-testid": "health-version" }),
        kpi("Uptime", duration(st.uptimeSeconds)),
        kpi("Started", time(st.startedAt)),
        kpi("Bus", st.bus),
      ),
      h(
        "div",
        { class: "grid-2" },
        card(
          "Bus",
          h("div", { class: "health-item" }, conn(st.busConnected, st.bus, "bus-health"), st.busError ? h("p", { class: "text-bad small" }, st.busError) : null),
        ),
        card(
          "Schema registry",
          h("div", { class: "health-item" }, conn(st.registryConnected, "", "registry-health"), st.registryError ? h("p", { class: "text-bad small" }, st.registryError) : null),
        ),
      ),
      card(
        "Sink databases",
        st.sinks.length
          ? h(
              "div",
              { class: "flush" },
              table(
                ["Sink", "Database", "Connection", "Error"],
                h(
                  "tbody",
                  null,
                  st.sinks.map((d) =>
                    h(
                      "tr",
                      { "data-testid": "db-row", "data-sink": d.name, "data-ok": d.connected ? "true" : "false" },
                      h("td", { class: "strong" }, d.name),
                      h("td", null, d.database),
                      h("td", null, d.connected ? badge("connected", "ok") : badge("not connected", "bad")),
                      h("td", { class: "error-cell" }, d.error ? h("span", { class: "text-bad" }, d.error) : h("span", { class: "muted" }, "none")),
                    ),
                  ),
                ),
              ),
            )
          : empty("No sink is configured."),
      ),
    );
  }

  const el = h("div", { class: "view" }, pageHeader("Health", "What this pipeline process is connected to, asked every 2 seconds."), body);
  update();
  return { el, update };
}
