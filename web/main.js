// The app shell: routes URLs to screens (history API, so every screen has its own URL and
// reload and back work), keeps the user signed in for the tab, and shows the banner when
// requests are being retried.

import { ApiError, on, session } from "./api.js";
import { fill, h, link, notice } from "./dom.js";
import { job } from "./job.js";
import { humanize, jobs, organization, problemText, signin, variants } from "./screens.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const banner = document.getElementById("banner");

const routes = [
  [/^\/signin$/, signin, { public: true }],
  [/^\/organization$/, organization],
  [/^\/variants$/, variants],
  [/^\/humanize$/, humanize],
  [/^\/jobs$/, jobs],
  [/^\/jobs\/([0-9a-fA-F-]{36})$/, job],
];

const TITLES = { signin: "Sign in", organization: "Organization", variants: "Variants", humanize: "Humanize", jobs: "Jobs", job: "Job" };

let current = null; // the screen being shown: its AbortController stops its polls on navigation

function navigate(path, { replace = false } = {}) {
  if (replace) history.replaceState({}, "", path);
  else history.pushState({}, "", path);
  render();
}

function signedIn() {
  nav.hidden = false;
}

async function render() {
  current?.abort();
  const controller = new AbortController();
  current = controller;
  const url = new URL(location.href);
  let path = url.pathname;
  if (path === "/") path = session.key ? "/variants" : "/signin";
  if (path !== url.pathname) history.replaceState({}, "", path + url.search);
  const match = routes.map(([re, screen, opts]) => [re.exec(path), screen, opts || {}]).find(([m]) => m);
  nav.hidden = !session.key;
  for (const a of nav.querySelectorAll("a")) {
    if (path.startsWith(a.getAttribute("href"))) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (!match) {
    fill(main, h("h1", {}, "Not found"), h("p", {}, "No screen at this address. ", link("/variants", "Go to variants")));
    return;
  }
  const [m, screen, opts] = match;
  if (!opts.public && !session.key) {
    navigate(`/signin?next=${encodeURIComponent(path + url.search)}`, { replace: true });
    return;
  }
  document.title = `${TITLES[screen.name] || "veneer"} · veneer`;
  fill(main, h("p", { class: "loading" }, "Loading…"));
  const ctx = { params: url.searchParams, id: m[1], signal: controller.signal, navigate, signedIn };
  try {
    await screen(main, ctx);
  } catch (e) {
    if (controller.signal.aborted || e.name === "AbortError") return;
    if (e instanceof ApiError && e.status === 401) return; // the sign-in screen takes over
    fill(main, h("h1", {}, TITLES[screen.name] || "veneer"),
      notice("error", e instanceof ApiError && e.status === 404 ? "Not found: it does not exist, or belongs to another organization." : problemText(e)));
  }
  if (document.activeElement === document.body) main.focus({ preventScroll: true });
}

// A refused key (unknown or revoked): forget it and ask for another, keeping where the user was.
on("unauthenticated", () => {
  session.signOut();
  const here = location.pathname + location.search;
  navigate(`/signin?reason=refused&next=${encodeURIComponent(here.startsWith("/signin") ? "/variants" : here)}`, { replace: true });
});

let bannerTimer = null;
on("retry", ({ reason, seconds }) => {
  clearInterval(bannerTimer);
  let left = Math.ceil(seconds);
  const show = () => fill(banner, notice("warn", `${reason}; retrying in ${left} s…`));
  banner.hidden = false;
  show();
  bannerTimer = setInterval(() => { left = Math.max(0, left - 1); show(); }, 1000);
});
on("recovered", () => {
  if (banner.hidden) return;
  clearInterval(bannerTimer);
  fill(banner, notice("ok", "Connected again."));
  bannerTimer = setTimeout(() => { banner.hidden = true; fill(banner); }, 2500);
});

document.getElementById("signout").addEventListener("click", () => {
  session.signOut();
  sessionStorage.clear();
  navigate("/signin");
});

// In-app links go through the router; modified clicks (new tab) keep the browser's behaviour.
document.addEventListener("click", (event) => {
  const a = event.target.closest?.("a[data-link]");
  if (!a || event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  event.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", render);

render();
