// The dashboard's shell: top bar, router (history API; the Go server
// answers every page path with index.html), live polling, footer.

import "./style.css";
import { Code, ConnectError } from "@connectrpc/connect";
import { accessClient, problem, session, setToken } from "./api.js";
import { h, replace } from "./dom.js";
import { duration } from "./format.js";
import { live } from "./live.js";
import { dot, link, type View } from "./ui.js";
import { auditView } from "./views/audit.js";
import { healthView } from "./views/health.js";
import { routesView } from "./views/routes.js";
import { subjectView } from "./views/subject.js";
import { subjectsView } from "./views/subjects.js";
import { topicsView } from "./views/topics.js";

const nav = [
  { href: "/", label: "Subjects", match: (p: string) => p === "/" || p.startsWith("/subjects/") },
  { href: "/routes", label: "Routes", match: (p: string) => p === "/routes" },
  { href: "/topics", label: "Topics & sinks", match: (p: string) => p === "/topics" },
  { href: "/audit", label: "Audit log", match: (p: string) => p === "/audit" },
  { href: "/health", label: "Health", match: (p: string) => p === "/health" },
];

function route(pathname: string, query: URLSearchParams): View {
  if (pathname === "/" || pathname === "/subjects") return subjectsView(query);
  const subject = /^\/subjects\/([^/]+)\/?$/.exec(pathname);
  if (subject) return subjectView(decodeURIComponent(subject[1]!), query);
  if (pathname === "/routes") return routesView(query);
  if (pathname === "/topics") return topicsView();
  if (pathname === "/audit") return auditView(query);
  if (pathname === "/health") return healthView();
  return {
    el: h("div", { class: "view" }, h("h1", null, "Not found"), h("p", null, "No page here. ", link("/", null, "Back to the subjects"), ".")),
  };
}

const app = document.getElementById("app")!;
const navEl = h("nav", { class: "nav" });
const healthPill = link("/health", { class: "health-pill", "data-testid": "health-pill" });
const banner = h("div", { class: "banner-slot" });
const main = h("main", { class: "main" });
const footerStatus = h("span");
const whoBox = h("span", { "data-testid": "who" });

app.replaceChildren(
  h(
    "header",
    { class: "topbar" },
    h(
      "div",
      { class: "topbar-inner" },
      link("/", { class: "brand" }, h("img", { src: "/favicon.svg", alt: "", width: 22, height: 22 }), h("span", null, "pipeline")),
      navEl,
      healthPill,
    ),
  ),
  banner,
  main,
  h(
    "footer",
    { class: "footer" },
    h(
      "div",
      { class: "footer-inner" },
      footerStatus,
      whoBox,
    ),
  ),
);

let current: View | undefined;

function render(): void {
  current?.dispose?.();
  const { pathname, search } = window.location;
  current = route(pathname, new URLSearchParams(search));
  replace(main, current.el);
  replace(
    navEl,
    nav.map((n) => link(n.href, { class: n.match(pathname) ? "nav-link active" : "nav-link" }, n.label)),
  );
  const title = current.el.querySelector("h1")?.textContent;
  document.title = title ? `${title} · pipeline` : "pipeline";
}

/** navigate shows another page without reloading the document. */
export function navigate(href: string): void {
  history.pushState(null, "", href);
  render();
  window.scrollTo(0, 0);
}

document.addEventListener("click", (ev) => {
  if (ev.defaultPrevented || ev.button !== 0 || ev.metaKey || ev.ctrlKey || ev.shiftKey || ev.altKey) return;
  const a = (ev.target as Element | null)?.closest?.("a[data-nav]");
  if (!(a instanceof HTMLAnchorElement) || a.origin !== window.location.origin) return;
  ev.preventDefault();
  if (a.pathname + a.search !== window.location.pathname + window.location.search) navigate(a.pathname + a.search);
});
window.addEventListener("popstate", render);

function updateChrome(): void {
  const st = live.status;
  if (live.error && !st) {
    replace(healthPill, dot("bad"), "unreachable");
  } else if (st) {
    const sinksDown = st.sinks.filter((s) => !s.connected).length;
    const ok = st.busConnected && st.registryConnected && sinksDown === 0;
    replace(
      healthPill,
      dot(ok ? "ok" : st.busConnected && st.registryConnected ? "warn" : "bad"),
      ok ? "healthy" : sinksDown ? `${sinksDown} sink database${sinksDown === 1 ? "" : "s"} down` : "degraded",
    );
  }
  replace(
    banner,
    live.error && !st
      ? h("div", { class: "banner", role: "alert" }, `The pipeline does not answer (${live.error}); retrying every 2 seconds.`)
      : null,
  );
  replace(
    footerStatus,
    st ? `pipeline ${st.version} · up ${duration(st.uptimeSeconds)} · ${st.bus} bus · refreshed every 2 s` : "pipeline",
  );
}

function updateWho(): void {
  const me = session.me;
  if (!me) {
    replace(whoBox, null);
  } else if (me.method === "none") {
    replace(
      whoBox,
      h("span", { "data-testid": "no-auth-note" }, "Auth is off (loopback only): anyone on this machine can change compatibility modes and routes."),
    );
  } else {
    replace(
      whoBox,
      "Signed in as ",
      h("strong", { "data-testid": "who-name" }, me.name),
      ` (${me.role}${me.subjects.length ? `, subjects ${me.subjects.join(", ")}` : ""}) · `,
      h(
        "button",
        {
          type: "button",
          class: "btn btn-small",
          "data-testid": "sign-out",
          onclick: () => {
            setToken("");
            window.location.reload();
          },
        },
        "Sign out",
      ),
    );
  }
}

/**
 * signIn asks for a token when the server requires one (it answered
 * unauthenticated), and resolves once the server accepts one.
 */
function signIn(reason: string): Promise<void> {
  return new Promise((resolve) => {
    const input = h("input", {
      type: "password",
      name: "token",
      required: true,
      autocomplete: "off",
      placeholder: "pl_…",
      "data-testid": "token-input",
      "aria-label": "Token",
    });
    const status = h("div", { class: "form-status" }, reason ? h("div", { class: "notice notice-bad" }, reason) : null);
    const form = h(
      "form",
      {
        class: "stack",
        "data-testid": "sign-in",
        onsubmit: async (ev: Event) => {
          ev.preventDefault();
          setToken(input.value);
          try {
            session.me = await accessClient.whoAmI({});
            resolve();
          } catch (err) {
            setToken("");
            replace(status, h("div", { class: "notice notice-bad" }, problem(err).message));
          }
        },
      },
      h("label", { class: "field" }, h("span", { class: "field-label" }, "Token"), input, h("span", { class: "field-hint" }, "Kept for this browser tab only (sessionStorage), sent as Authorization: Bearer.")),
      h("div", { class: "form-actions" }, h("button", { type: "submit", class: "btn btn-primary", "data-testid": "sign-in-submit" }, "Sign in")),
      status,
    );
    replace(
      main,
      h(
        "div",
        { class: "view" },
        h("div", { class: "page-header" }, h("div", null, h("h1", null, "Sign in"), h("p", { class: "subtitle" }, "This pipeline requires a token (pipeline token new makes one)."))),
        h("section", { class: "card" }, h("div", { class: "card-body" }, form)),
      ),
    );
    document.title = "Sign in · pipeline";
    input.focus();
  });
}

/** start learns who the user is (asking for a token if needed), then shows the pages. */
async function start(): Promise<void> {
  for (;;) {
    try {
      session.me = await accessClient.whoAmI({});
      break;
    } catch (err) {
      if (ConnectError.from(err).code !== Code.Unauthenticated) break; // unreachable: the banner says so; nothing is hidden
      const hadToken = session.token !== "";
      setToken("");
      await signIn(hadToken ? "The server no longer accepts the token of this tab." : "");
      break;
    }
  }
  updateWho();
  live.subscribe(() => {
    updateChrome();
    current?.update?.();
  });
  render();
  live.start();
}

void start();
