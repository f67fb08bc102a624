// The list and form screens: sign-in, organization and ledger, variants (register, import,
// delete), humanize (submit, follow, cancel) and jobs. Each is `async (main, ctx)`, drawn from
// API answers; `ctx.params` is the URL's query (cursors live there, so reload keeps the page).

import { ApiError, get, newIdempotencyKey, post, query, request, session, follow } from "./api.js";
import { fill, h, link, notice, shortId, time } from "./dom.js";

const PAGE = 20;

/** A problem shown to a person: the API's detail, with its code for support. */
export function problemText(e) {
  if (!(e instanceof ApiError)) return String(e?.message || e);
  if (e.status === 0) return "The server could not be reached. Check that veneer is running, then try again.";
  return `${e.detail} (${e.status} ${e.code})`;
}

function statusBadge(status, stage) {
  return h("span", { class: `badge ${status}` }, status, stage ? ` · ${stage}` : "");
}

/** Cursor pager: “Next page” carries the last id; “First page” drops the cursor. */
function pager(ctx, page, path) {
  const params = new URLSearchParams(ctx.params);
  const items = [];
  if (params.get("after")) {
    params.delete("after");
    items.push(link(`${path}${params.size ? `?${params}` : ""}`, "← First page"));
  }
  if (page.has_more && page.data.length) {
    const next = new URLSearchParams(ctx.params);
    next.set("after", page.data[page.data.length - 1].id);
    items.push(link(`${path}?${next}`, "Next page →"));
  }
  return items.length ? h("nav", { class: "pager", "aria-label": "Pages" }, items) : null;
}

// ---- sign-in ----

export async function signin(main, ctx) {
  const reason = ctx.params.get("reason");
  const error = h("p", { class: "field-error", id: "key-error", role: "alert" });
  if (reason === "refused") error.textContent = "The server refused that API key: it is unknown or has been revoked. Sign in with a valid key.";
  const input = h("input", {
    id: "api-key", name: "api-key", type: "password", autocomplete: "off", spellcheck: "false",
    required: true, placeholder: "vnr_…", "aria-describedby": "key-help key-error",
  });
  const button = h("button", { type: "submit" }, "Sign in");
  const form = h("form", { class: "card narrow", id: "signin-form" },
    h("h1", {}, "Sign in"),
    h("label", { for: "api-key" }, "API key"),
    input,
    h("p", { class: "help", id: "key-help" },
      "The key `veneer serve` printed on first start, or one from `veneer keys create`. It is kept in this tab only and forgotten on sign-out."),
    error,
    button);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    button.disabled = true;
    error.textContent = "";
    session.signIn(key);
    try {
      await request("GET", "/v1/organization", { attempts: 3, quiet401: true });
      ctx.signedIn();
      ctx.navigate(ctx.params.get("next") || "/variants", { replace: true });
    } catch (e) {
      session.signOut();
      error.textContent = e.status === 401
        ? "The server refused that API key: it is unknown or has been revoked."
        : problemText(e);
      button.disabled = false;
      input.focus();
    }
  });
  fill(main, form);
  input.focus();
}

// ---- organization ----

export async function organization(main, ctx) {
  const [org, ledger] = await Promise.all([
    get("/v1/organization"),
    get(`/v1/credits/ledger${query({ limit: PAGE, starting_after: ctx.params.get("after") })}`),
  ]);
  fill(main,
    h("h1", {}, org.name),
    h("section", { class: "card", "aria-labelledby": "balance-h" },
      h("h2", { id: "balance-h" }, "Credits"),
      h("dl", { class: "balance" },
        h("div", {}, h("dt", {}, "Balance"), h("dd", { id: "balance" }, String(org.credit_balance))),
        h("div", {}, h("dt", {}, "Subscription"), h("dd", { id: "bucket-subscription" }, String(org.buckets.subscription))),
        h("div", {}, h("dt", {}, "Purchased"), h("dd", { id: "bucket-purchased" }, String(org.buckets.purchased)))),
      h("p", { class: "help" }, "A humanization costs 1 credit, taken from the subscription bucket first. A canceled or failed job is refunded to the subscription bucket.")),
    h("section", { class: "card", "aria-labelledby": "ledger-h" },
      h("h2", { id: "ledger-h" }, "Ledger"),
      ledger.data.length === 0 ? h("p", {}, "No entries yet.") :
        h("div", { class: "table-wrap" }, h("table", { id: "ledger" },
          h("thead", {}, h("tr", {}, ["When", "Reason", "Bucket", "Change", "Job"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, ledger.data.map((e) => h("tr", { dataset: { reason: e.reason } },
            h("td", {}, time(e.created_at)),
            h("td", {}, e.reason),
            h("td", {}, e.bucket),
            h("td", { class: e.delta > 0 ? "num plus" : "num minus" }, e.delta > 0 ? `+${e.delta}` : String(e.delta)),
            h("td", {}, e.job_id ? link(`/jobs/${e.job_id}`, shortId(e.job_id)) : "—")))))),
      pager(ctx, ledger, "/organization")));
}

// ---- variants ----

/** Where a 422/400 detail belongs: `VH: …` beside VH, `VL: …` beside VL, `scFv: …` beside the
 * scFv, `name: …` beside the name. */
function fieldOf(detail) {
  const m = /^(VH|VL|scFv|scfv|name|vh|vl)\b/.exec(detail || "");
  return m ? m[1].toLowerCase() : null;
}

/** What a registered variant is, in words: its light chain, or single domain, and an scFv's split. */
function variantKind(v) {
  const kind = v.vl_chain_type ? `${v.vl_chain_type} light chain` : "single domain";
  if (!v.scfv) return kind;
  const span = (s) => `${s.start + 1}–${s.end + 1}`;
  return `${kind}; scFv ${v.scfv.order}, VH ${span(v.scfv.vh_span)}, VL ${span(v.scfv.vl_span)}, linker ${v.scfv.linker || "none"}`;
}

function registerForm(onCreated) {
  const errors = { name: h("p", { class: "field-error", id: "name-error" }), vh: h("p", { class: "field-error", id: "vh-error" }), vl: h("p", { class: "field-error", id: "vl-error" }), scfv: h("p", { class: "field-error", id: "scfv-error" }) };
  const general = h("div", { id: "register-result", "aria-live": "polite" });
  const name = h("input", { id: "variant-name", name: "name", required: true, maxlength: 200, autocomplete: "off", "aria-describedby": "name-error" });
  const vh = h("textarea", { id: "variant-vh", name: "vh", rows: 3, spellcheck: "false", "aria-describedby": "vh-help vh-error" });
  const vl = h("textarea", { id: "variant-vl", name: "vl", rows: 3, spellcheck: "false", "aria-describedby": "vh-help vl-error" });
  const scfv = h("textarea", { id: "variant-scfv", name: "scfv", rows: 3, spellcheck: "false", "aria-describedby": "scfv-help scfv-error" });
  const button = h("button", { type: "submit", id: "register" }, "Register variant");
  let pending = null; // one key per registration; a retry or a second click reuses it
  const form = h("form", { class: "card", id: "register-form" },
    h("h2", {}, "Register a variant"),
    h("label", { for: "variant-name" }, "Name"), name, errors.name,
    h("label", { for: "variant-vh" }, "VH (heavy chain variable domain)"), vh, errors.vh,
    h("label", { for: "variant-vl" }, "VL (light chain variable domain, kappa or lambda; empty for a nanobody)"), vl, errors.vl,
    h("p", { class: "help", id: "vh-help" }, "One-letter amino-acid codes. Spaces, line breaks, digits and lower case are cleaned as the API cleans them; any other character is refused with its reason."),
    h("label", { for: "variant-scfv" }, "Or one scFv sequence (instead of VH and VL)"), scfv, errors.scfv,
    h("p", { class: "help", id: "scfv-help" }, "VH–linker–VL or VL–linker–VH, tags and signal peptide allowed: the server numbers both domains and shows how it split them."),
    button, general);
  form.addEventListener("input", () => { pending = null; });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (button.disabled) return;
    for (const el of Object.values(errors)) el.textContent = "";
    fill(general);
    // What the API would clean anyway (whitespace, digits from pasted numbered FASTA lines).
    const clean = (s) => s.replace(/[\s\d]+/g, "");
    const body = { name: name.value.trim() };
    if (clean(scfv.value)) {
      body.scfv = clean(scfv.value);
      if (clean(vh.value)) body.vh = clean(vh.value);
      if (clean(vl.value)) body.vl = clean(vl.value);
    } else {
      body.vh = clean(vh.value);
      if (clean(vl.value)) body.vl = clean(vl.value);
    }
    pending = pending || newIdempotencyKey();
    button.disabled = true;
    try {
      const { body: variant } = await post("/v1/variants", body, { idempotencyKey: pending });
      pending = null;
      form.reset();
      fill(general, notice("ok", "Registered ", link(`/humanize?variant=${variant.id}`, variant.name), ` (${variantKind(variant)}). `, link(`/humanize?variant=${variant.id}`, "Humanize it →")));
      onCreated(variant);
    } catch (e) {
      const field = e instanceof ApiError ? fieldOf(e.detail) : null;
      if (field && (e.status === 422 || e.status === 400)) {
        errors[field].textContent = e.detail;
        ({ name, vh, vl, scfv })[field].focus();
      } else {
        fill(general, notice("error", problemText(e)));
      }
      if (!(e instanceof ApiError) || e.status !== 0) pending = null;
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function importForm(onImported) {
  const file = h("input", { id: "import-file", type: "file", accept: ".csv,.fa,.fasta,.faa,.txt,text/csv,text/plain", required: true, "aria-describedby": "import-help" });
  const button = h("button", { type: "submit", id: "import" }, "Import file");
  const result = h("div", { id: "import-result", "aria-live": "polite" });
  const form = h("form", { class: "card", id: "import-form" },
    h("h2", {}, "Import a file"),
    h("label", { for: "import-file" }, "FASTA or CSV file"), file,
    h("p", { class: "help", id: "import-help" }, "The formats of `veneer variants import`: a CSV whose header names name,vh,vl, or FASTA records named “<name> VH” and “<name> VL” (or _VH/_VL). Good records are imported; each bad one is listed with its reason."),
    button, result);
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const chosen = file.files?.[0];
    if (!chosen || button.disabled) return;
    button.disabled = true;
    fill(result, h("p", {}, `Importing ${chosen.name}…`));
    try {
      if (chosen.size > 1024 * 1024 - 64) throw new Error(`${chosen.name} is over 1 MiB; split it or use \`veneer variants import\`.`);
      const content = await chosen.text();
      const { body } = await post("/v1/variants/import", { content }, { idempotencyKey: newIdempotencyKey() });
      fill(result,
        notice(body.failed ? "warn" : "ok", `${body.created} imported, ${body.failed} refused from ${chosen.name}.`),
        h("div", { class: "table-wrap" }, h("table", { id: "import-records" },
          h("thead", {}, h("tr", {}, ["#", "Name", "Outcome"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, body.records.map((r) => h("tr", { class: r.status, dataset: { status: r.status } },
            h("td", { class: "num" }, String(r.index + 1)),
            h("td", {}, r.variant ? link(`/humanize?variant=${r.variant.id}`, r.name) : r.name),
            h("td", {}, r.status === "created" ? "imported" : `refused: ${r.error.detail}`)))))));
      form.reset();
      onImported();
    } catch (e) {
      fill(result, notice("error", problemText(e)));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

function variantTable(page, { selectable = false, selected = new Set(), onDelete } = {}) {
  if (page.data.length === 0) return h("p", {}, "No variants yet: register one or import a file.");
  return h("div", { class: "table-wrap" }, h("table", { id: "variants" },
    h("thead", {}, h("tr", {},
      selectable ? h("th", { scope: "col" }, h("span", { class: "sr" }, "Select")) : null,
      ["Name", "Light chain", "VH length", "VL length", "Registered", "Id", ""].map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, page.data.map((v) => {
      const actions = [];
      if (!selectable) actions.push(link(`/humanize?variant=${v.id}`, "Humanize"));
      if (onDelete) {
        const del = h("button", { type: "button", class: "link danger", "aria-label": `Delete ${v.name}` }, "Delete");
        let armed = false;
        del.addEventListener("click", async () => {
          if (!armed) { armed = true; del.textContent = "Confirm delete"; setTimeout(() => { armed = false; del.textContent = "Delete"; }, 4000); return; }
          del.disabled = true;
          try { await request("DELETE", `/v1/variants/${v.id}`); onDelete(v); } catch (e) { del.replaceWith(h("span", { class: "field-error" }, problemText(e))); }
        });
        actions.push(" ", del);
      }
      const box = selectable ? h("input", { type: "checkbox", id: `pick-${v.id}`, value: v.id, checked: selected.has(v.id), "aria-label": `Select ${v.name}` }) : null;
      if (box) box.addEventListener("change", () => (box.checked ? selected.add(v.id) : selected.delete(v.id)));
      return h("tr", { dataset: { id: v.id } },
        selectable ? h("td", {}, box) : null,
        h("td", { class: "name" }, selectable ? h("label", { for: `pick-${v.id}` }, v.name) : v.name),
        h("td", {}, v.vl_chain_type || "single domain", v.scfv ? " (scFv)" : ""),
        h("td", { class: "num" }, String(v.vh.length)),
        h("td", { class: "num" }, v.vl ? String(v.vl.length) : "—"),
        h("td", {}, time(v.created_at)),
        h("td", {}, shortId(v.id)),
        h("td", {}, actions));
    }))));
}

export async function variants(main, ctx) {
  const list = h("section", { class: "card", "aria-labelledby": "variants-h" });
  const load = async () => {
    const page = await get(`/v1/variants${query({ limit: PAGE, starting_after: ctx.params.get("after") })}`);
    fill(list, h("h2", { id: "variants-h" }, "Variants, newest first"),
      variantTable(page, { onDelete: () => load() }), pager(ctx, page, "/variants"));
  };
  fill(main, h("h1", {}, "Variants"),
    h("div", { class: "two" }, registerForm(() => load()), importForm(() => load())),
    list);
  await load();
}

// ---- humanize: submit, follow, cancel ----

const TRACKED = "veneer.tracked_jobs";

/** Jobs submitted from this tab, kept across reloads so none drops out of view. */
const tracked = {
  all() { try { return JSON.parse(sessionStorage.getItem(TRACKED) || "[]"); } catch { return []; } },
  add(entry) { const all = tracked.all().filter((j) => j.id !== entry.id); all.unshift(entry); sessionStorage.setItem(TRACKED, JSON.stringify(all.slice(0, 200))); },
  clear() { sessionStorage.removeItem(TRACKED); },
};

function jobRow(entry, ctx) {
  const status = h("td", { class: "status" }, statusBadge("pending"));
  const note = h("td", { class: "note" });
  const actions = h("td", { class: "actions" });
  const row = h("tr", { dataset: { job: entry.id } },
    h("td", {}, entry.variant_name), h("td", {}, link(`/jobs/${entry.id}`, shortId(entry.id))), status, actions, note);
  const show = (job) => {
    fill(status, statusBadge(job.status, job.stage));
    row.dataset.status = job.status;
    fill(actions);
    if (job.status === "pending" || job.status === "running") actions.append(cancelButton(job, show, note));
    if (job.status === "completed") actions.append(link(`/jobs/${job.id}`, "View results"));
    if (job.status === "failed") fill(note, job.error?.detail || "The job failed; its credit was refunded.");
  };
  get(`/v1/humanizations/${entry.id}`, { signal: ctx.signal })
    .then((job) => { show(job); return follow(job, show, ctx.signal); })
    .catch((e) => { if (e.name !== "AbortError") fill(note, problemText(e)); });
  return row;
}

/** Cancels a pending or running job and says what was refunded. */
export function cancelButton(job, show, note) {
  const button = h("button", { type: "button", class: "secondary cancel", "aria-label": `Cancel job ${job.id}` }, "Cancel");
  button.addEventListener("click", async () => {
    button.disabled = true;
    try {
      const { body } = await post(`/v1/humanizations/${job.id}/cancel`, undefined);
      show(body);
      fill(note, notice("ok", `Canceled. ${body.credit_cost} credit${body.credit_cost === 1 ? "" : "s"} refunded to the subscription bucket.`));
    } catch (e) {
      if (e.code === "conflict") fill(note, `Not canceled: the job is already ${e.problem.job_status || "finished"}.`);
      else if (e.code === "job_cancel_unavailable") fill(note, `Not canceled: the job is ${e.problem.stage || "finalizing"} its results, which cannot be interrupted.`);
      else fill(note, problemText(e));
      button.disabled = false;
    }
  });
  return button;
}

export async function humanize(main, ctx) {
  const selected = new Set(ctx.params.getAll("variant"));
  const picker = h("section", { class: "card", "aria-labelledby": "pick-h" });
  const submitted = h("tbody", {});
  const outcome = h("div", { id: "submit-result", "aria-live": "polite" });
  const balance = h("span", { id: "humanize-balance" });
  const button = h("button", { type: "button", id: "submit-humanizations" }, "Humanize selected");
  const names = new Map();
  let inFlight = false;

  const refreshBalance = () => get("/v1/organization").then((o) => fill(balance, `Balance: ${o.credit_balance} credits. Each humanization costs 1.`)).catch(() => {});

  button.addEventListener("click", async () => {
    if (inFlight) return; // a double click while submitting sends nothing more
    const ids = [...selected];
    if (!ids.length) { fill(outcome, notice("warn", "Select at least one variant.")); return; }
    inFlight = true;
    button.disabled = true;
    fill(outcome, h("p", {}, `Submitting ${ids.length}…`));
    const failures = [];
    let accepted = 0;
    for (const id of ids) {
      // One key per variant per click; the API client's retries reuse it, so nothing is charged twice.
      const key = newIdempotencyKey();
      try {
        const { body: job } = await post("/v1/humanizations", { variant_id: id }, { idempotencyKey: key });
        accepted++;
        const entry = { id: job.id, variant_id: id, variant_name: names.get(id) || id, submitted_at: job.created_at };
        tracked.add(entry);
        submitted.prepend(jobRow(entry, ctx));
        selected.delete(id);
        const box = document.getElementById(`pick-${id}`);
        if (box) box.checked = false;
      } catch (e) {
        if (e.code === "insufficient_credits") {
          failures.push(`${names.get(id) || id}: not submitted — a humanization costs ${e.problem.credit_cost} credit${e.problem.credit_cost === 1 ? "" : "s"}; the organization has ${e.problem.credit_balance}.`);
          const rest = ids.slice(ids.indexOf(id) + 1);
          if (rest.length) failures.push(`${rest.length} more not submitted for lack of credits.`);
          break;
        }
        failures.push(`${names.get(id) || id}: ${problemText(e)}`);
      }
    }
    fill(outcome,
      accepted ? notice("ok", `${accepted} job${accepted === 1 ? "" : "s"} submitted.`) : null,
      failures.length ? notice("error", h("ul", {}, failures.map((f) => h("li", {}, f)))) : null);
    inFlight = false;
    button.disabled = false;
    refreshBalance();
  });

  const loadPicker = async () => {
    const page = await get(`/v1/variants${query({ limit: PAGE, starting_after: ctx.params.get("after") })}`);
    for (const v of page.data) names.set(v.id, v.name);
    // A variant asked for by URL but not on this page is fetched so it can be named.
    for (const id of selected) if (!names.has(id)) await get(`/v1/variants/${id}`).then((v) => names.set(v.id, v.name)).catch(() => selected.delete(id));
    const extra = [...selected].filter((id) => !page.data.some((v) => v.id === id));
    fill(picker, h("h2", { id: "pick-h" }, "Choose variants"),
      extra.length ? h("p", {}, "Also selected: ", extra.map((id) => names.get(id)).join(", ")) : null,
      variantTable(page, { selectable: true, selected }), pager(ctx, page, "/humanize"),
      h("div", { class: "actions-row" }, button, balance), outcome);
  };

  const clear = h("button", { type: "button", class: "link" }, "Forget this list");
  clear.addEventListener("click", () => { tracked.clear(); fill(submitted); });
  fill(main, h("h1", {}, "Humanize"), picker,
    h("section", { class: "card", "aria-labelledby": "submitted-h" },
      h("h2", { id: "submitted-h" }, "Submitted from this tab"),
      h("p", { class: "help" }, "Each job is followed live until it ends; the list survives reloads. ", clear),
      h("div", { class: "table-wrap" }, h("table", { id: "submitted" },
        h("thead", {}, h("tr", {}, ["Variant", "Job", "Status", "", ""].map((t) => h("th", { scope: "col" }, t)))),
        submitted))));
  for (const entry of tracked.all()) submitted.append(jobRow(entry, ctx));
  await Promise.all([loadPicker(), refreshBalance()]);
}

// ---- jobs ----

export async function jobs(main, ctx) {
  const status = ctx.params.get("status") || "";
  const page = await get(`/v1/jobs${query({ limit: PAGE, status, starting_after: ctx.params.get("after") })}`);
  const select = h("select", { id: "status-filter", name: "status" },
    ["", "pending", "running", "completed", "failed", "canceled"].map((s) => h("option", { value: s, selected: s === status }, s || "any")));
  select.addEventListener("change", () => ctx.navigate(`/jobs${query({ status: select.value })}`));
  fill(main, h("h1", {}, "Jobs"),
    h("section", { class: "card" },
      h("div", { class: "actions-row" }, h("label", { for: "status-filter" }, "Status"), select),
      page.data.length === 0 ? h("p", {}, status ? `No ${status} jobs.` : "No jobs yet.") :
        h("div", { class: "table-wrap" }, h("table", { id: "jobs" },
          h("thead", {}, h("tr", {}, ["Job", "Kind", "Status", "Created", "Finished", "Variant"].map((t) => h("th", { scope: "col" }, t)))),
          h("tbody", {}, page.data.map((j) => h("tr", { dataset: { status: j.status } },
            h("td", {}, link(`/jobs/${j.id}`, shortId(j.id))),
            h("td", {}, j.object),
            h("td", {}, statusBadge(j.status, j.stage)),
            h("td", {}, time(j.created_at)),
            h("td", {}, time(j.completed_at || j.failed_at || j.canceled_at)),
            h("td", {}, j.inputs?.variant_id ? shortId(j.inputs.variant_id) : "—")))))),
      pager(ctx, page, "/jobs")));
}

export { statusBadge };
