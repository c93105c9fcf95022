// The live state of the pipeline, polled every two seconds whatever view
// is open, so that the charts already hold the last minutes when the
// reader opens them; on load, the server's own history of the last
// minutes (GetHistory) goes first, so a reload keeps them. Views subscribe
// and redraw their live parts.

import { ingestClient, problem, schemaClient, sinkClient, statusClient, topicClient } from "./api.js";
import type { Subject } from "./gen/pipeline/v1/schema_pb.js";
import type { Sink } from "./gen/pipeline/v1/sink_pb.js";
import type { GetHistoryResponse, GetStatusResponse } from "./gen/pipeline/v1/status_pb.js";
import type { Topic } from "./gen/pipeline/v1/topic_pb.js";
import { type Point, rate } from "./lib/series.js";

/** How often the dashboard asks; the charts' resolution. */
export const pollIntervalMs = 2000;
/** How far back the charts reach. */
export const historyMs = 10 * 60 * 1000;
/** Rates shown in tables average over this window. */
export const rateWindowMs = 10_000;

/** One poll's numbers, kept for the charts and the rates. */
export interface Sample {
  t: number;
  accepted: Map<string, number>; // subject -> events accepted since start
  refused: Map<string, number>; // subject -> events refused since start
  published: Map<string, number>; // topic -> events published since start
  lag: Map<string, number>; // sink -> backlog in entries (-1: unknown)
  rows: Map<string, number>; // sink -> rows written since start
}

type Listener = () => void;

export class Live {
  subjects: Subject[] = [];
  topics: Topic[] = [];
  sinks: Sink[] = [];
  status: GetStatusResponse | undefined;
  /** The last poll's failure, if any part of it failed. */
  error: string | undefined;
  /** Whether at least one poll has completed. */
  loaded = false;
  readonly history: Sample[] = [];
  /** A gap between readings longer than this breaks a chart's line. */
  gapMs = pollIntervalMs * 3;

  private readonly listeners = new Set<Listener>();
  private timer: number | undefined;
  private inFlight = false;

  /** start polls now and then every pollIntervalMs until stop. */
  start(): void {
    if (this.timer !== undefined) return;
    void this.loadHistory();
    void this.poll();
    // A second reading soon after the first gives rates within a second
    // of opening the page.
    window.setTimeout(() => void this.poll(), pollIntervalMs / 2);
    this.timer = window.setInterval(() => void this.poll(), pollIntervalMs);
  }

  stop(): void {
    window.clearInterval(this.timer);
    this.timer = undefined;
  }

  /** subscribe calls fn after every poll; the returned function unsubscribes. */
  subscribe(fn: Listener): () => void {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }

  /** refresh polls out of turn, after the reader changed something. */
  refresh(): Promise<void> {
    return this.poll();
  }

  private async poll(): Promise<void> {
    if (this.inFlight) return;
    this.inFlight = true;
    try {
      const [subjects, stats, topics, sinks, status] = await Promise.allSettled([
        schemaClient.listSubjects({}),
        ingestClient.listSubjectStats({}),
        topicClient.listTopics({}),
        sinkClient.listSinks({}),
        statusClient.getStatus({}),
      ]);
      const failures: string[] = [];
      const t = Date.now();
      const sample: Sample = {
        t, accepted: new Map(), refused: new Map(), published: new Map(), lag: new Map(), rows: new Map(),
      };
      if (subjects.status === "fulfilled") this.subjects = subjects.value.subjects;
      else failures.push(problem(subjects.reason).message);
      if (stats.status === "fulfilled") {
        for (const s of stats.value.subjects) {
          sample.accepted.set(s.subject, Number(s.eventsAccepted));
          sample.refused.set(s.subject, Number(s.eventsRefused));
        }
      } else failures.push(problem(stats.reason).message);
      if (topics.status === "fulfilled") {
        this.topics = topics.value.topics;
        for (const tp of this.topics) sample.published.set(tp.name, Number(tp.eventsPublished));
      } else failures.push(problem(topics.reason).message);
      if (sinks.status === "fulfilled") {
        this.sinks = sinks.value.sinks;
        for (const sk of this.sinks) {
          sample.lag.set(sk.name, Number(sk.lag));
          sample.rows.set(sk.name, Number(sk.rowsWritten));
        }
      } else failures.push(problem(sinks.reason).message);
      if (status.status === "fulfilled") this.status = status.value;
      else failures.push(problem(status.reason).message);

      this.error = failures.length ? [...new Set(failures)].join("; ") : undefined;
      if (failures.length < 5) {
        this.history.push(sample);
        while (this.history.length > 0 && t - this.history[0]!.t > historyMs) this.history.shift();
      }
      this.loaded = true;
    } finally {
      this.inFlight = false;
    }
    for (const fn of this.listeners) fn();
  }

  /**
   * loadHistory puts the server's last minutes of readings (GetHistory)
   * before this page's own, so that the charts survive a reload. A server
   * that does not answer it leaves the charts to the page's own polls.
   */
  private async loadHistory(): Promise<void> {
    let res: GetHistoryResponse;
    try {
      res = await statusClient.getHistory({});
    } catch {
      return;
    }
    const intervalMs = Number(res.interval?.seconds ?? 0n) * 1000 + (res.interval?.nanos ?? 0) / 1e6;
    this.gapMs = Math.max(this.gapMs, 2 * intervalMs);
    // Only readings older than the page's first: no reading twice.
    const before = this.history[0]?.t ?? Infinity;
    const now = Date.now();
    const stamp = (ts: { seconds: bigint; nanos: number } | undefined): number =>
      Number(ts?.seconds ?? 0n) * 1000 + Math.floor((ts?.nanos ?? 0) / 1e6);
    // The newest reading is at most one interval old: further off (or in
    // the future), the server's clock and this browser's disagree, and the
    // readings move by the difference so that they line up with the page's.
    const newest = res.samples.length ? stamp(res.samples[res.samples.length - 1]!.time) : now;
    const skew = now - newest < 0 || now - newest > intervalMs + 5000 ? now - newest : 0;
    const older: Sample[] = [];
    for (const sm of res.samples) {
      const t = stamp(sm.time) + skew;
      if (t >= before - pollIntervalMs / 2 || now - t > historyMs) continue;
      const sample: Sample = {
        t, accepted: new Map(), refused: new Map(), published: new Map(), lag: new Map(), rows: new Map(),
      };
      for (const x of sm.subjects) {
        sample.accepted.set(x.subject, Number(x.eventsAccepted));
        sample.refused.set(x.subject, Number(x.eventsRefused));
      }
      for (const x of sm.topics) sample.published.set(x.topic, Number(x.eventsPublished));
      for (const x of sm.sinks) {
        sample.lag.set(x.sink, Number(x.lag));
        sample.rows.set(x.sink, Number(x.rowsWritten));
      }
      older.push(sample);
    }
    if (!older.length) return;
    this.history.unshift(...older);
    for (const fn of this.listeners) fn();
  }

  /** series returns one number of every sample over time. */
  series(pick: (s: Sample) => number | undefined): Point[] {
    const out: Point[] = [];
    for (const s of this.history) {
      const v = pick(s);
      if (v !== undefined) out.push({ t: s.t, v });
    }
    return out;
  }

  /** eventsRate is a subject's accepted events per second, lately. */
  eventsRate(subject: string): number | null {
    return rate(this.series((s) => s.accepted.get(subject) ?? 0), rateWindowMs);
  }

  /** refusalsRate is a subject's refused events per second, lately. */
  refusalsRate(subject: string): number | null {
    return rate(this.series((s) => s.refused.get(subject) ?? 0), rateWindowMs);
  }

  /** rowsRate is a sink's rows written per second, lately. */
  rowsRate(sink: string): number | null {
    return rate(this.series((s) => s.rows.get(sink)), rateWindowMs);
  }

  /** counts returns a subject's totals since the server started. */
  counts(subject: string): { accepted: number; refused: number } {
    const last = this.history[this.history.length - 1];
    return { accepted: last?.accepted.get(subject) ?? 0, refused: last?.refused.get(subject) ?? 0 };
  }
}

export const live = new Live();
