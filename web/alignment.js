// The Kabat alignment of a parental and a humanized chain, drawn from what the engine reported:
// each chain's `numbering` ([label, residue] pairs), the strategy's `mutation_list` and each
// side's `liabilities`. Nothing is recomputed here; the Kabat regions come from kabat.js.

import { h } from "./dom.js";
import { cdrOf, isVernier, labelOrder } from "./kabat.js";

const BLOCK = 50;

const LIABILITY_NAMES = {
  glycosylation: "N-glycosylation",
  deamidation: "deamidation",
  isomerization: "isomerization",
  oxidation: "oxidation",
  fragmentation: "fragmentation",
  hydrolysis: "hydrolysis",
  unpaired_cysteine: "unpaired cysteine",
};

export const liabilityName = (type) => LIABILITY_NAMES[type] || type.replaceAll("_", " ");

/** label → [liability types] for the labels of one chain (`H…` or `L…`). */
export function liabilitiesAt(liabilities, chainLetter) {
  const at = new Map();
  for (const [type, labels] of Object.entries(liabilities || {})) {
    for (const label of labels) {
      if (!label.startsWith(chainLetter)) continue;
      if (!at.has(label)) at.set(label, []);
      at.get(label).push(type);
    }
  }
  return at;
}

/** The labels a strategy's `mutation_list` names (`H3:K>Q` → `H3`). */
export function mutatedLabels(list) {
  return new Set((list || []).map((m) => m.split(":")[0]));
}

/**
 * One chain's alignment. `chain` is "VH" or "VL"; `parental` and `humanized` are numberings.
 */
export function alignment({ chain, parental, humanized, mutations, parentalLiabilities, humanizedLiabilities }) {
  const letter = chain === "VH" ? "H" : "L";
  const p = new Map(parental.map(([label, r]) => [label, r]));
  const q = new Map(humanized.map(([label, r]) => [label, r]));
  const labels = [...new Set([...p.keys(), ...q.keys()])].sort((a, b) => labelOrder(a) - labelOrder(b));
  const pl = liabilitiesAt(parentalLiabilities, letter);
  const ql = liabilitiesAt(humanizedLiabilities, letter);

  const row = (name, title, cells, extra = {}) =>
    h("div", { class: `arow ${name}`, role: "row", ...extra },
      h("span", { class: "ahead", role: "rowheader" }, title),
      h("span", { class: "acells" }, cells));

  const regionClass = (label) => {
    const cdr = cdrOf(label);
    return [cdr ? `cdr cdr${cdr}` : "fw", isVernier(label) ? "vernier" : ""].join(" ");
  };

  const ruler = labels.map((label) =>
    h("span", { class: `cell ruler ${regionClass(label)}`, role: "columnheader" }, label.slice(1)));
  const regions = labels.map((label) => {
    const cdr = cdrOf(label);
    return h("span", { class: `cell region ${regionClass(label)}`, "aria-hidden": "true" },
      isVernier(label) ? "v" : cdr ? String(cdr) : "");
  });
  const residueCell = (label, residue, liabilities, side) => {
    const mutated = mutations.has(label);
    const notes = [label];
    const cdr = cdrOf(label);
    notes.push(cdr ? `CDR${cdr}` : "framework");
    if (isVernier(label)) notes.push("Vernier");
    if (mutated) notes.push(`mutated ${p.get(label) || "-"}→${q.get(label) || "-"}`);
    const liab = liabilities.get(label);
    if (liab) notes.push(`liability: ${liab.map(liabilityName).join(", ")}`);
    const classes = ["cell", "res", regionClass(label)];
    if (mutated) classes.push("mut");
    if (liab) classes.push("liab");
    if (!residue) classes.push("gap");
    return h("span", { class: classes.join(" "), title: `${side} ${notes.join(" · ")}`, role: "cell" }, residue || "-");
  };

  // Blocks of BLOCK positions, as a sequence viewer prints them: a whole chain fits a 1280 px
  // screen; a narrow one scrolls each block sideways.
  const blocks = [];
  for (let start = 0; start < labels.length; start += BLOCK) {
    const part = labels.slice(start, start + BLOCK);
    blocks.push(h("div", { class: "ascroll", role: "table", "aria-label": `${chain} alignment, positions ${part[0]} to ${part[part.length - 1]}` },
      row("rruler", "Kabat", ruler.slice(start, start + BLOCK)),
      row("rregion", "Region", regions.slice(start, start + BLOCK)),
      row("rparental", "Parental", part.map((l) => residueCell(l, p.get(l), pl, "parental")), { "data-row": "parental" }),
      row("rhumanized", "Humanized", part.map((l) => residueCell(l, q.get(l), ql, "humanized")), { "data-row": "humanized" })));
  }
  return h("figure", { class: "alignment", dataset: { chain } },
    h("figcaption", {}, `${chain} — Kabat numbering`),
    blocks);
}

/** The legend shared by every alignment. */
export function legend() {
  return h("p", { class: "legend" },
    h("span", { class: "cell cdr sample" }, "A"), " CDR (Kabat) ",
    h("span", { class: "cell vernier sample" }, "v"), " Vernier position ",
    h("span", { class: "cell mut sample" }, "A"), " mutated ",
    h("span", { class: "cell liab sample" }, "A"), " liability motif ");
}

/**
 * Liabilities of parental and humanized antibody compared per kind: added (only the design has
 * it), removed (only the parental), kept (both).
 */
export function liabilityComparison(parental, humanized) {
  const types = [...new Set([...Object.keys(parental || {}), ...Object.keys(humanized || {})])];
  const rows = types.map((type) => {
    const before = new Set(parental?.[type] || []);
    const after = new Set(humanized?.[type] || []);
    const added = [...after].filter((l) => !before.has(l));
    const removed = [...before].filter((l) => !after.has(l));
    const kept = [...after].filter((l) => before.has(l));
    return { type, added, removed, kept };
  });
  const list = (labels) => (labels.length ? labels.join(", ") : "—");
  return h("table", { class: "liabilities" },
    h("caption", {}, "Liabilities, parental vs humanized"),
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Motif"), h("th", { scope: "col" }, "Added"),
      h("th", { scope: "col" }, "Removed"), h("th", { scope: "col" }, "Kept"))),
    h("tbody", {}, rows.map((r) => h("tr", { dataset: { type: r.type } },
      h("th", { scope: "row" }, liabilityName(r.type)),
      h("td", { class: r.added.length ? "added" : "" }, list(r.added)),
      h("td", { class: r.removed.length ? "removed" : "" }, list(r.removed)),
      h("td", {}, list(r.kept))))));
}
