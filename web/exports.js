// What the job page offers to download: the designs as FASTA (records named as
// `veneer variants import` reads them), one CSV row per strategy, and the job envelope itself.

/**
 * A stable name per design: the strategy's name, or `sapiens_2`, `sapiens_3`… when a job ran
 * that strategy more than once (with other options).
 */
export function designKeys(results) {
  const total = {};
  for (const r of results) total[r.strategy] = (total[r.strategy] || 0) + 1;
  const seen = {};
  return results.map((r) => {
    seen[r.strategy] = (seen[r.strategy] || 0) + 1;
    return total[r.strategy] > 1 ? `${r.strategy}_${seen[r.strategy]}` : r.strategy;
  });
}

/** The options a design ran with, in words (`2 passes, Vernier kept`), or "". */
export function optionsText(r) {
  const o = r.options;
  if (!o) return "";
  const parts = [];
  if (o.iterations != null) parts.push(`${o.iterations} pass${o.iterations === 1 ? "" : "es"}`);
  if (o.sapiens_iterations) parts.push(`then ${o.sapiens_iterations} Sapiens pass${o.sapiens_iterations === 1 ? "" : "es"}`);
  if (o.humanize_cdrs) parts.push("CDRs humanized");
  if (o.backmutate_vernier && r.strategy !== "cdr_grafting_sapiens") parts.push("Vernier kept");
  if (o.backmutate_vernier === false && r.strategy === "cdr_grafting_sapiens") parts.push("Vernier not kept");
  if (o.backmutate_vhh_hallmark) parts.push("VHH hallmarks kept");
  if (o.max_mutations != null) parts.push(`at most ${o.max_mutations} mutations per chain`);
  return parts.join(", ");
}

const chains = (r) => [["VH", r.humanized_vh], ["VL", r.humanized_vl]].filter(([, s]) => s);

/** A FASTA name part: letters, digits, `-`, `_`, `.` only (no spaces, which split names). */
const safe = (name) => String(name).replace(/[^A-Za-z0-9._-]+/g, "_") || "variant";

export function fasta(job, name) {
  const lines = [];
  const keys = designKeys(job.results || []);
  for (const [i, r] of (job.results || []).entries()) {
    for (const [chain, seq] of chains(r)) {
      lines.push(`>${safe(name)}_${keys[i]} ${chain}`);
      for (let i = 0; i < seq.length; i += 60) lines.push(seq.slice(i, i + 60));
    }
  }
  return lines.join("\n") + "\n";
}

/** RFC 4180 quoting; a cell that a spreadsheet would run as a formula is prefixed with `'`. */
function cell(value) {
  if (value === null || value === undefined) return "";
  let s = typeof value === "number" ? String(value) : String(value);
  if (/^[=+\-@\t\r]/.test(s) && typeof value !== "number") s = `'${s}`;
  return /[",\n\r]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

export const CSV_COLUMNS = [
  "variant", "job_id", "design", "rank", "strategy", "options", "humanized_vh", "humanized_vl", "mutations_vh", "mutations_vl",
  "oasis_identity_vh", "oasis_identity_vl", "oasis_identity", "oasis_score_mean", "oasis_score_median",
  "germline_content_vh", "germline_content_vl", "germline_content", "sapiens_score", "non_human_peptides", "germline_vh_v", "germline_vh_j", "germline_vl_v",
  "germline_vl_j", "liabilities",
];

export function csv(job, name) {
  const keys = designKeys(job.results || []);
  const rows = (job.results || []).map((r, i) => [
    name, job.id, keys[i], r.rank, r.strategy, optionsText(r), r.humanized_vh, r.humanized_vl, r.mutations?.vh, r.mutations?.vl,
    r.oasis_identity?.vh, r.oasis_identity?.vl, r.oasis_identity?.antibody, r.oasis_score?.mean,
    r.oasis_score?.median, r.germline_content?.vh, r.germline_content?.vl, r.germline_content?.antibody,
    r.sapiens_score?.antibody, r.oasis_non_human_peptides?.antibody, r.germlines?.vh?.v,
    r.germlines?.vh?.j, r.germlines?.vl?.v, r.germlines?.vl?.j,
    Object.entries(r.liabilities || {}).flatMap(([t, ls]) => ls.map((l) => `${t}:${l}`)).join(" "),
  ]);
  return [CSV_COLUMNS, ...rows].map((row) => row.map(cell).join(",")).join("\r\n") + "\r\n";
}

export function json(job) {
  return JSON.stringify(job, null, 2) + "\n";
}

export const fileStem = (name, job) => `${safe(name)}-${job.id.slice(0, 8)}`;
