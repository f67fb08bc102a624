// The job page: status while it runs (live, with cancel), and for a completed humanization the
// strategies side by side, each strategy's Kabat alignments, liabilities and per-residue OASis
// humanness, and the exports. Everything shown is a field of the job envelope.

import { get, follow } from "./api.js";
import { alignment, legend, liabilityComparison, mutatedLabels } from "./alignment.js";
import { fill, fixed, h, link, notice, time } from "./dom.js";
import { labelOrder } from "./kabat.js";
import * as exporters from "./exports.js";
import { cancelButton, statusBadge } from "./screens.js";

const STRATEGY_NAMES = {
  cdr_grafting: "CDR grafting",
  cdr_grafting_vernier: "CDR grafting + Vernier",
  sapiens: "Sapiens",
  cdr_grafting_sapiens: "CDR grafting + Sapiens",
};
const strategyName = (s) => STRATEGY_NAMES[s] || s;
/** A design's title: the strategy, and its options when they are not its defaults (one pass,
 * no hallmarks, Vernier as the strategy keeps it, no budget). */
function designTitle(r) {
  const text = exporters.optionsText(r);
  return text === "" || text === "1 pass" ? strategyName(r.strategy) : `${strategyName(r.strategy)} (${text})`;
}

export async function job(main, ctx) {
  let envelope = await get(`/v1/jobs/${ctx.id}`);
  let variantName = null;
  const variantId = envelope.inputs?.variant_id;
  if (variantId) {
    variantName = await get(`/v1/variants/${variantId}`).then((v) => v.name).catch(() => null);
  }
  const draw = (j) => fill(main, ...page(j, variantName, ctx, draw));
  draw(envelope);
  if (!["completed", "failed", "canceled"].includes(envelope.status)) {
    envelope = await follow(envelope, (j) => {
      // Stage changes redraw only the header; the end redraws the whole page.
      const status = document.getElementById("job-status");
      if (status && !["completed", "failed", "canceled"].includes(j.status)) fill(status, statusBadge(j.status, j.stage));
      else draw(j);
    }, ctx.signal);
  }
}

function page(j, variantName, ctx, draw) {
  const title = variantName ? `${variantName}` : j.inputs?.variant_id ? `variant ${j.inputs.variant_id}` : j.id;
  const note = h("div", { id: "job-note", "aria-live": "polite" });
  const header = [
    h("h1", {}, h("span", { class: "kind" }, `${j.object} `), title),
    h("dl", { class: "facts" },
      h("div", {}, h("dt", {}, "Status"), h("dd", { id: "job-status" }, statusBadge(j.status, j.stage))),
      h("div", {}, h("dt", {}, "Job"), h("dd", {}, h("code", {}, j.id))),
      h("div", {}, h("dt", {}, "Submitted"), h("dd", {}, time(j.created_at))),
      h("div", {}, h("dt", {}, "Started"), h("dd", {}, time(j.started_at))),
      h("div", {}, h("dt", {}, "Ended"), h("dd", {}, time(j.completed_at || j.failed_at || j.canceled_at))),
      h("div", {}, h("dt", {}, "Cost"), h("dd", {}, `${j.credit_cost} credit${j.credit_cost === 1 ? "" : "s"}`))),
  ];
  if (j.status === "pending" || j.status === "running") {
    header.push(h("div", { class: "actions-row" }, cancelButton(j, draw, note), h("span", { class: "help" }, "Following live; this page updates when the job ends.")), note);
    return header;
  }
  if (j.status === "failed") return [...header, notice("error", j.error?.detail || "The job failed.", " Its credit was refunded.")];
  if (j.status === "canceled") return [...header, note, notice("info", "This job was canceled; its credit was refunded (see ", link("/organization", "the ledger"), ").")];
  const results = j.results || [];
  if (!results.length) return [...header, notice("info", "The job completed with no strategies configured.")];
  const name = variantName || "variant";
  const keys = exporters.designKeys(results);
  return [...header, exportsRow(j, name), summary(j, keys), strategies(j, ctx, keys)];
}

function exportsRow(j, name) {
  const stem = exporters.fileStem(name, j);
  const file = (label, ext, type, text) => {
    const a = h("a", { class: "button secondary", id: `export-${ext}`, download: `${stem}.${ext}`, href: URL.createObjectURL(new Blob([text], { type })) }, label);
    return a;
  };
  return h("section", { class: "exports", "aria-label": "Exports" },
    h("span", {}, "Export: "),
    file("Humanized FASTA", "fasta", "text/x-fasta", exporters.fasta(j, name)),
    file("CSV, one row per strategy", "csv", "text/csv", exporters.csv(j, name)),
    file("JSON envelope", "json", "application/json", exporters.json(j)));
}

/** All strategies side by side with the parental antibody. */
function summary(j, keys) {
  const columns = [{ key: "parental", title: "Parental", r: j.parental || {} }, ...j.results.map((r, i) => ({ key: keys[i], title: designTitle(r), r }))];
  const germline = (g) => (g ? `${g.v} / ${g.j}` : "—");
  const liabilityCount = (l) => Object.values(l || {}).reduce((n, list) => n + list.length, 0);
  const rows = [
    ["oasis_identity", "OASis identity (antibody)", (r) => fixed(r.oasis_identity?.antibody)],
    ["oasis_percentile", "OASis percentile (antibody)", (r) => fixed(r.oasis_percentile?.antibody)],
    ["oasis_identity_vh", "OASis identity VH", (r) => fixed(r.oasis_identity?.vh)],
    ["oasis_identity_vl", "OASis identity VL", (r) => fixed(r.oasis_identity?.vl)],
    ["oasis_score_mean", "OASis score, mean", (r) => fixed(r.oasis_score?.mean)],
    ["oasis_score_median", "OASis score, median", (r) => fixed(r.oasis_score?.median)],
    ["germline_content_vh", "Germline content VH", (r) => fixed(r.germline_content?.vh)],
    ["germline_content_vl", "Germline content VL", (r) => fixed(r.germline_content?.vl)],
    ["germline_content", "Germline content (antibody)", (r) => fixed(r.germline_content?.antibody)],
    ["sapiens_score", "Sapiens score (antibody)", (r) => fixed(r.sapiens_score?.antibody)],
    ["non_human_peptides", "Non-human 9-mers (antibody)", (r) => String(r.oasis_non_human_peptides?.antibody ?? "—")],
    ["germlines_vh", "Germlines VH (V / J)", (r) => germline(r.germlines?.vh)],
    ["germlines_vl", "Germlines VL (V / J)", (r) => germline(r.germlines?.vl)],
    ["mutations_vh", "Mutations VH", (r, key) => (key === "parental" ? "—" : String(r.mutations?.vh ?? "—"))],
    ["mutations_vl", "Mutations VL", (r, key) => (key === "parental" ? "—" : String(r.mutations?.vl ?? "—"))],
    ["liabilities", "Liability motifs", (r) => String(liabilityCount(r.liabilities))],
    ["vernier_mutations", "Vernier mutations", (r, key) => (key === "parental" ? "—" : String((r.vernier_mutations?.vh?.length ?? 0) + (r.vernier_mutations?.vl?.length ?? 0)))],
    ["interface_mutations", "VH/VL interface mutations", (r, key) => (key === "parental" ? "—" : String((r.interface_mutations?.vh?.length ?? 0) + (r.interface_mutations?.vl?.length ?? 0)))],
    ["rank", "Rank (OASis identity, then fewer mutations)", (r, key) => (key === "parental" ? "—" : String(r.rank ?? "—"))],
  ];
  return h("section", { class: "card", "aria-labelledby": "summary-h" },
    h("h2", { id: "summary-h" }, "Strategies side by side"),
    h("div", { class: "table-wrap" }, h("table", { id: "summary", class: "summary" },
      h("thead", {}, h("tr", {}, h("th", { scope: "col" }, ""), columns.map((c) => h("th", { scope: "col", dataset: { strategy: c.key } }, c.title)))),
      h("tbody", {}, rows.map(([field, label, value]) => h("tr", { dataset: { field } },
        h("th", { scope: "row" }, label),
        columns.map((c) => h("td", { class: "num", dataset: { strategy: c.key } }, value(c.r, c.key)))))))));
}

function strategies(j, ctx, keys) {
  const wanted = ctx.params.get("strategy");
  const current = keys.includes(wanted) ? wanted : keys[0];
  const tabs = h("div", { role: "tablist", class: "tabs", "aria-label": "Strategies" });
  const panels = h("div", {});
  const select = (strategy, focus) => {
    for (const tab of tabs.children) {
      const on = tab.dataset.strategy === strategy;
      tab.setAttribute("aria-selected", String(on));
      tab.tabIndex = on ? 0 : -1;
      if (on && focus) tab.focus();
    }
    for (const panel of panels.children) panel.hidden = panel.dataset.strategy !== strategy;
    const url = new URL(location.href);
    url.searchParams.set("strategy", strategy);
    history.replaceState(history.state, "", url);
    for (const panel of panels.children) if (!panel.hidden) panel.dispatchEvent(new Event("shown"));
  };
  j.results.forEach((r, i) => {
    const key = keys[i];
    const tab = h("button", { type: "button", role: "tab", id: `tab-${key}`, "aria-controls": `panel-${key}`, dataset: { strategy: key } }, designTitle(r));
    tab.addEventListener("click", () => select(key, false));
    tab.addEventListener("keydown", (e) => {
      const step = e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0;
      if (!step) return;
      const next = keys[(i + step + keys.length) % keys.length];
      select(next, true);
    });
    tabs.append(tab);
    panels.append(panel(j, r, key));
  });
  const section = h("section", { class: "card", "aria-label": "Designs" }, tabs, panels);
  queueMicrotask(() => select(current, false));
  return section;
}

function panel(j, r, key) {
  const chains = [["VH", "vh"], ["VL", "vl"]].filter(([, k]) => r.numbering?.[k] && j.parental?.numbering?.[k]);
  const plots = h("div", { class: "plots" });
  const el = h("div", { role: "tabpanel", id: `panel-${key}`, "aria-labelledby": `tab-${key}`, dataset: { strategy: key }, hidden: true },
    h("p", { class: "counts" }, `Mutations: VH ${r.mutations.vh}`, r.mutations.vl === null ? "" : `, VL ${r.mutations.vl}`,
      ` · OASis identity ${fixed(r.oasis_identity?.antibody)} (parental ${fixed(j.parental?.oasis_identity?.antibody)})`),
    legend(),
    chains.map(([chain, k]) => alignment({
      chain,
      parental: j.parental.numbering[k],
      humanized: r.numbering[k],
      mutations: mutatedLabels(r.mutation_list?.[k]),
      parentalLiabilities: j.parental.liabilities,
      humanizedLiabilities: r.liabilities,
    })),
    liabilityComparison(j.parental?.liabilities, r.liabilities),
    h("h3", {}, "Per-residue OASis humanness"),
    h("p", { class: "help" }, "For each residue, the fraction of the 9-mer peptides covering it that occur in human repertoires (OASis); parental and humanized, by Kabat position."),
    plots);
  let drawn = false;
  el.addEventListener("shown", () => {
    if (drawn) return;
    drawn = true;
    for (const [chain, k] of chains) plots.append(plot(chain, j.parental, r, k));
  });
  return el;
}

/** Parental and humanized per-residue OASis scores of one chain, on the union of Kabat labels. */
function plot(chain, parental, r, k) {
  const box = h("figure", { class: "plot", dataset: { chain } }, h("figcaption", {}, `${chain} per-residue OASis score`));
  const scored = (report) => {
    const numbering = report.numbering?.[k] || [];
    const scores = report.oasis_residue_scores?.[k] || [];
    return numbering.length === scores.length ? new Map(numbering.map(([label], i) => [label, scores[i]])) : null;
  };
  const p = scored(parental);
  const q = scored(r);
  if (!p || !q || typeof window.uPlot !== "function") {
    box.append(h("p", { class: "help" }, "No per-residue scores for this chain."));
    return box;
  }
  const order = [...new Set([...p.keys(), ...q.keys()])];
  // The union in Kabat order, as the alignment draws it.
  order.sort((a, b) => labelOrder(a) - labelOrder(b));
  const xs = order.map((_, i) => i);
  const data = [xs, order.map((l) => p.get(l) ?? null), order.map((l) => q.get(l) ?? null)];
  const host = h("div", { class: "plot-host" });
  box.append(host);
  const make = () => {
    const width = Math.max(320, host.clientWidth || 800);
    const u = new window.uPlot({
      width, height: 220,
      scales: { x: { time: false }, y: { range: [0, 1] } },
      axes: [
        { values: (_, splits) => splits.map((i) => order[i] ?? ""), label: "Kabat position" },
        { label: "OASis score", values: (_, splits) => splits.map((v) => v.toFixed(1)) },
      ],
      series: [
        { label: "position", value: (_, i) => (i === null ? "—" : order[i] ?? "") },
        { label: "parental", stroke: "#c2703d", width: 1.5, spanGaps: false, value: (_, v) => (v === null ? "—" : v.toFixed(3)) },
        { label: "humanized", stroke: "#2f6f5e", width: 2, spanGaps: false, value: (_, v) => (v === null ? "—" : v.toFixed(3)) },
      ],
    }, data, host);
    new ResizeObserver(() => {
      const w = Math.max(320, host.clientWidth);
      if (Math.abs(w - u.width) > 8) u.setSize({ width: w, height: 220 });
    }).observe(host);
  };
  requestAnimationFrame(make);
  return box;
}

