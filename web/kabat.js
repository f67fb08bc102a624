// Kabat regions as the engine defines them (src/engine/numbering.rs `kabat_cdr`, and the Vernier
// zone of Foote & Winter 1992 in src/engine/grafting.rs `is_vernier`); a Rust test
// (tests/web_assets.rs) keeps these lists equal to the engine's.

export const CDRS = {
  H: [[31, 35], [50, 65], [95, 102]],
  L: [[24, 34], [50, 56], [89, 97]],
};

export const VERNIER = {
  H: [2, 27, 28, 29, 30, 47, 48, 49, 67, 69, 71, 73, 78, 93, 94, 103],
  L: [2, 4, 35, 36, 46, 47, 48, 49, 64, 66, 68, 69, 71, 98],
};

/** `H100A` → {chain: "H", number: 100, insertion: "A"}. */
export function parseLabel(label) {
  const m = /^([HL])(\d+)([A-Z]?)$/.exec(label);
  return m ? { chain: m[1], number: Number(m[2]), insertion: m[3] } : null;
}

/** Kabat order: by number, then insertion letter (none first). */
export function labelOrder(label) {
  const p = parseLabel(label);
  return p ? p.number * 100 + (p.insertion ? p.insertion.charCodeAt(0) - 64 : 0) : Number.MAX_SAFE_INTEGER;
}

/** The CDR (1–3) a Kabat label lies in, or 0 in the framework. */
export function cdrOf(label) {
  const p = parseLabel(label);
  if (!p) return 0;
  const i = CDRS[p.chain].findIndex(([a, b]) => p.number >= a && p.number <= b);
  return i + 1;
}

export function isVernier(label) {
  const p = parseLabel(label);
  return Boolean(p) && VERNIER[p.chain].includes(p.number);
}
