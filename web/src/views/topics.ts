// Topics and sinks: publish rates, backlogs (lag), rows written, errors,
// and charts of lag and throughput over the last minutes.

import { timestampFromDate } from "@bufbuild/protobuf/wkt";
import { can, problem, sinkClient } from "../api.js";
import { lineChart, type Series } from "../chart.js";
import { h, replace } from "../dom.js";
import { ago, count, perSecond } from "../format.js";
import { rates } from "../lib/series.js";
import { historyMs, live } from "../live.js";
import { badge, card, empty, notice, numCell, pageHeader, table, type Tone, type View } from "../ui.js";

const stateTone: Record<string, Tone> = { running: "ok", stalled: "bad", stopped: "warn" };

// quantiles shows a latency histogram's p50 / p95 / p99 (computed by the
// server from its Prometheus histograms), "–" before any observation.
function quantiles(l: { count: bigint; p50Seconds: number; p95Seconds: number; p99Seconds: number } | undefined): string {
  if (!l || l.count === 0n) return "–";
  const ms = (s: number): string => (s < 1 ? `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)} ms` : `${s.toFixed(2)} s`);
  return `${ms(l.p50Seconds)} / ${ms(l.p95Seconds)} / ${ms(l.p99Seconds)}`;
}

export function topicsView(): View {
  const lagChart = h("div", { class: "chart-box", "data-testid": "lag-chart" });
  const rateChart = h("div", { class: "chart-box", "data-testid": "throughput-chart" });
  const sinksBox = h("div");
  const topicsBox = h("div");
  const status = h("div");
  const replay = replayForm();

  function update(): void {
    replay?.fill(live.sinks.map((sk) => sk.name));
    replace(status, live.error ? notice(`Some readings failed: ${live.error}`, "warn") : null);
    const now = Date.now();
    // The time axis grows with the readings, by whole minutes, up to five.
    const oldest = live.history[0]?.t ?? now;
    const chartSpanMs = Math.min(historyMs, 5 * 60_000, Math.max(60_000, Math.ceil((now - oldest) / 60_000) * 60_000));
    const lagSeries: Series[] = live.sinks.map((sk) => ({
      name: sk.name,
      points: live.series((s) => {
        const v = s.lag.get(sk.name);
        return v === undefined || v < 0 ? undefined : v;
      }),
    }));
    const topicNames = live.topics.filter((t) => Number(t.eventsPublished) > 0 || t.publishRate > 0).map((t) => t.name);
    const rateSeries: Series[] = topicNames.map((name) => ({
      name,
      points: rates(live.series((s) => s.published.get(name))),
    }));
    const width = (el: HTMLElement): number => el.clientWidth || 520;
    replace(
      lagChart,
      lineChart({ series: lagSeries, now, spanMs: chartSpanMs, width: width(lagChart), height: 200, unit: "entries", gapMs: live.gapMs, label: "Sink backlog over time" }),
    );
    replace(
      rateChart,
      lineChart({ series: rateSeries, now, spanMs: chartSpanMs, width: width(rateChart), height: 200, unit: "events/s", gapMs: live.gapMs, label: "Events published per second, per topic" }),
    );

    // Held tables: a table that refuses its events (a schema change it
    // cannot take, a lock) holds only its own; the sink's others go on.
    const held = live.sinks.flatMap((sk) => sk.heldTables.map((ht) => ({ sink: sk.name, ht })));
    if (!live.loaded) replace(sinksBox, empty("Loading sinks…"));
    else if (!live.sinks.length) replace(sinksBox, empty("No sink is configured: events stay in the bus."));
    else
      replace(
        sinksBox,
        held.length
          ? h(
              "div",
              { class: "held", "data-testid": "held-tables" },
              notice(
                `${held.length} table${held.length === 1 ? "" : "s"} held: ${held.length === 1 ? "its" : "their"} events wait, neither written nor acknowledged, until the table takes them; the other tables go on.`,
                "warn",
              ),
              table(
                ["Sink", "Subject", "Table", "Held events", "Held since", "Reason"],
                h(
                  "tbody",
                  null,
                  held.map(({ sink, ht }) =>
                    h(
                      "tr",
                      { "data-testid": "held-row", "data-sink": sink, "data-table": ht.table, "data-subject": ht.subject },
                      h("td", { class: "strong" }, sink),
                      h("td", { class: "mono" }, ht.subject),
                      h("td", { class: "mono" }, ht.table),
                      numCell(count(ht.events), { "data-testid": "held-events" }),
                      h("td", { class: "nowrap" }, ago(ht.since)),
                      h("td", { class: "error-cell", title: ht.reason }, h("span", { class: "text-bad", "data-testid": "held-reason" }, ht.reason)),
                    ),
                  ),
                ),
              ),
            )
          : null,
        table(
          [
            "Sink",
            "Database",
            "Status",
            "Reads",
            h(
              "span",
              { class: "help", title: "Bus entries the sink's subscription has not yet acknowledged, over all the topics it reads: what waits for this sink." },
              "Waiting for this sink",
            ),
            "Rows written",
            "Rows/s",
            "End to end p50 / p95 / p99",
            "Last error",
            "",
          ],
          h(
            "tbody",
            null,
            live.sinks.map((sk) => {
              const lag = Number(sk.lag);
              return h(
                "tr",
                { "data-testid": "sink-row", "data-sink": sk.name },
                h("td", { class: "strong" }, sk.name),
                h("td", null, sk.database),
                h(
                  "td",
                  { title: sk.statusReason },
                  badge(sk.status || "unknown", stateTone[sk.status] ?? "neutral", { "data-testid": "sink-status" }),
                  sk.heldTables.length ? [" ", badge(`${sk.heldTables.length} held`, "warn", { "data-testid": "sink-held" })] : null,
                ),
                h("td", { class: "mono small nowrap" }, (sk.subjects.length ? sk.subjects : sk.topics.length ? sk.topics : ["all topics"]).join(", ")),
                numCell(
                  [
                    lag < 0 ? "unknown" : count(lag),
                    // On a bus with partitions (Kafka): how many, and each one's backlog on hover.
                    sk.partitions.length
                      ? h(
                          "div",
                          {
                            class: "muted small",
                            "data-testid": "sink-partitions",
                            title: sk.partitions.map((p) => `${p.topic}[${p.partition}]: ${count(p.lag)}`).join("\n"),
                          },
                          `${sk.partitions.length} partition${sk.partitions.length === 1 ? "" : "s"}`,
                        )
                      : null,
                  ],
                  { class: lag > 0 ? "num text-warn strong" : "num", "data-testid": "sink-lag", "data-lag": lag },
                ),
                numCell(count(sk.rowsWritten), { "data-testid": "sink-rows" }),
                numCell(perSecond(live.rowsRate(sk.name))),
                numCell(quantiles(sk.endToEndLatency), { "data-testid": "sink-latency" }),
                h(
                  "td",
                  { class: "error-cell", title: sk.statusReason || sk.lastError },
                  sk.statusReason || sk.lastError ? h("span", { class: "text-bad" }, sk.statusReason || sk.lastError) : h("span", { class: "muted" }, "none"),
                ),
                h(
                  "td",
                  { class: "actions" },
                  replay
                    ? h("button", { type: "button", class: "btn btn-small", "data-testid": "sink-replay", onclick: () => replay.choose(sk.name) }, "Replay from…")
                    : null,
                ),
              );
            }),
          ),
          { "data-testid": "sinks-table" },
        ),
      );

    if (!live.loaded) replace(topicsBox, empty("Loading topics…"));
    else if (!live.topics.length) replace(topicsBox, empty("No topic yet: topics appear with the first event published."));
    else
      replace(
        topicsBox,
        live.topics.some((t) => t.subscriptions.some((su) => su.backlogSpansTopics))
          ? h(
              "p",
              { class: "table-note muted small", "data-testid": "spans-note" },
              "On this bus a subscription that reads several topics has one backlog over all of them (JetStream keeps one consumer per sink): it is shown on each of its topics, marked “all its topics”, and is the same number as the sink's “waiting” above, not this topic's share.",
            )
          : null,
        table(
          [
            "Topic",
            "Partitions",
            "Events/s (1 min)",
            "Published here",
            h("span", { class: "help", title: "Messages the bus keeps on the topic now, acknowledged or not, until its retention drops them." }, "Messages stored"),
            "Subscriptions and backlog",
          ],
          h(
            "tbody",
            null,
            live.topics.map((t) =>
              h(
                "tr",
                { "data-testid": "topic-row", "data-topic": t.name, "data-dead-letter-of": t.deadLetterOf || null },
                h(
                  "td",
                  { class: "mono strong" },
                  t.name,
                  t.deadLetterOf
                    ? h(
                        "div",
                        null,
                        badge(`dead-letter topic of ${t.deadLetterOf}`, "warn", {
                          "data-testid": "dead-letter-of",
                          title: `The events sink ${t.deadLetterOf} refused, with the reason; they wait here for an operator.`,
                        }),
                      )
                    : null,
                ),
                numCell(t.partitions > 0 ? count(t.partitions) : "–", { "data-testid": "topic-partitions" }),
                numCell(perSecond(t.publishRate)),
                numCell(count(t.eventsPublished)),
                numCell(t.messagesStored !== undefined ? count(t.messagesStored) : "–", { "data-testid": "topic-stored" }),
                numCell(quantiles(t.publishLatency), { "data-testid": "topic-latency" }),
                h(
                  "td",
                  null,
                  t.subscriptions.length
                    ? h(
                        "ul",
                        { class: "subs" },
                        t.subscriptions.map((su) => {
                          const n = count(su.backlog);
                          // What the number counts: the subscription's whole
                          // backlog (one consumer over all its topics), the
                          // refused events on a dead-letter topic not yet read,
                          // or this topic's entries not yet acknowledged.
                          const [label, title] = su.backlogSpansTopics
                            ? [`${n} waiting, all its topics`, `${su.name} has ${n} entries not yet acknowledged over all the topics it reads; the bus does not split it per topic.`]
                            : t.deadLetterOf
                              ? [`${n} dead-lettered, unread`, `${n} refused events on this dead-letter topic that ${su.name} has not yet acknowledged.`]
                              : [`${n} behind`, `${su.name} has ${n} entries of this topic not yet acknowledged.`];
                          return h(
                            "li",
                            { "data-testid": "subscription", "data-backlog": String(su.backlog), "data-spans": su.backlogSpansTopics ? "true" : "false", title },
                            h("span", { class: "mono" }, su.name),
                            badge(label, su.backlog > 0n ? "warn" : "ok"),
                          );
                        }),
                      )
                    : h("span", { class: "muted" }, "no subscription"),
                ),
              ),
            ),
          ),
          { "data-testid": "topics-table" },
        ),
      );
  }

  const el = h(
    "div",
    { class: "view" },
    pageHeader("Topics & sinks", "A sink's backlog is what its subscription has not yet acknowledged, in bus entries; a line that keeps rising is a sink that does not keep up."),
    status,
    h(
      "div",
      { class: "grid-2" },
      card("Sink backlog (entries)", lagChart),
      card("Throughput (events/s per topic)", rateChart),
    ),
    card("Sinks", h("div", { class: "flush" }, sinksBox)),
    replay ? card("Replay a sink", replay.el, { "data-testid": "replay-card" }) : null,
    card("Topics", h("div", { class: "flush" }, topicsBox)),
  );
  update();
  // Charts size themselves to their box, which exists only once attached.
  const frame = requestAnimationFrame(update);
  const onResize = (): void => update();
  window.addEventListener("resize", onResize);
  return {
    el,
    update,
    dispose: () => {
      cancelAnimationFrame(frame);
      window.removeEventListener("resize", onResize);
    },
  };
}

/**
 * replayForm rebuilds a sink from what the bus retains (ReplaySink), for
 * roles with sinks.admin: from the start or from a time, optionally
 * emptying the sink's tables first, after a confirmation. It lives outside
 * the sinks table, which every poll redraws, so a choice survives refreshes.
 */
function replayForm(): { el: HTMLElement; fill: (names: string[]) => void; choose: (name: string) => void } | null {
  if (!can("sinks.admin")) return null;
  const sinkIn = h("select", { name: "sink", "data-testid": "replay-sink", "aria-label": "Sink" });
  const fromStart = h("input", { type: "radio", name: "replay-from", value: "start", checked: true, "data-testid": "replay-from-start" });
  const fromTime = h("input", { type: "radio", name: "replay-from", value: "time", "data-testid": "replay-from-time" });
  const timeIn = h("input", { type: "datetime-local", step: "1", "data-testid": "replay-time", "aria-label": "Replay from (local time)" });
  const truncateIn = h("input", { type: "checkbox", "data-testid": "replay-truncate" });
  const out = h("div", { "data-testid": "replay-status" });
  timeIn.addEventListener("input", () => {
    fromTime.checked = true;
  });
  let names: string[] = [];
  const fill = (next: string[]): void => {
    if (next.join("\n") === names.join("\n")) return;
    names = next;
    const current = sinkIn.value;
    replace(sinkIn, names.map((n) => h("option", { value: n, selected: n === current }, n)));
  };
  const choose = (name: string): void => {
    sinkIn.value = name;
    sinkIn.scrollIntoView({ block: "nearest" });
    sinkIn.focus();
  };
  async function submit(): Promise<void> {
    const sink = sinkIn.value;
    if (!sink) return;
    let from: Date | undefined;
    if (fromTime.checked) {
      from = timeIn.value ? new Date(timeIn.value) : undefined;
      if (!from || Number.isNaN(from.getTime())) {
        replace(out, notice("Choose the time to replay from."));
        return;
      }
    }
    const where = from ? `from ${from.toLocaleString()}` : "from the oldest event the bus retains";
    const question = truncateIn.checked
      ? `Empty every table of sink “${sink}” and rebuild it ${where}? Rows no retained event restores are lost.`
      : `Replay sink “${sink}” ${where}? Rows already there are kept; only missing ones are added.`;
    if (!window.confirm(question)) return;
    replace(out, notice(`Replaying “${sink}”…`, "neutral"));
    try {
      const res = await sinkClient.replaySink({
        sink,
        start: from ? { case: "fromTime", value: timestampFromDate(from) } : { case: "fromStart", value: true },
        truncate: truncateIn.checked,
      });
      replace(out, notice(`Sink “${sink}”: ${res.note}.`, res.beforeRetention ? "warn" : "ok"));
    } catch (err) {
      replace(out, notice(problem(err)));
    }
  }
  const el = h(
    "form",
    {
      class: "form-grid",
      "data-testid": "replay-form",
      onsubmit: (ev: Event) => {
        ev.preventDefault();
        void submit();
      },
    },
    h("label", { class: "field" }, h("span", { class: "field-label" }, "Sink"), sinkIn),
    h(
      "div",
      { class: "field" },
      h("span", { class: "field-label" }, "From"),
      h("label", null, fromStart, " the oldest retained event"),
      h("label", null, fromTime, " a time: ", timeIn),
    ),
    h(
      "label",
      { class: "field" },
      h("span", { class: "field-label" }, "Truncate"),
      h("span", null, truncateIn, " empty the sink's tables first"),
      h("span", { class: "field-hint" }, "Without it nothing doubles: rows are keyed by event id."),
    ),
    h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-danger", "data-testid": "replay-submit" }, "Replay")),
    out,
  );
  return { el, fill, choose };
}
