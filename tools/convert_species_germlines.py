#!/usr/bin/env python3
"""Convert ANARCI's germline V genes of all species into data/germlines/species_v.json.

Source: `anarci.germlines.all_germlines` of the `anarci` package (BSD-3-Clause,
Copyright 2019 Charlotte Deane, James Dunbar, Alexsandr Kovaltsuk, Claire Marks;
sequences from IMGT). veneer uses it for the species call: the species of the
closest germline V gene, as ANARCI assigns it.

Position convention: every sequence is ANARCI's IMGT-gapped V gene of exactly 128
characters; character i (0-based) is the residue at IMGT position i + 1, '-' where the
gene has none. There are no insertion positions (ANARCI's germline table has none).

Output structure:

  {
    "source": {...provenance...},
    "positions": 128,
    "V": {"H": {"human": {"IGHV1-18*01": "QVQLVQSGA-EVKK...", ...}, "mouse": {...}, ...},
          "K": {...}, "L": {...}}
  }

Only chain types H, K, L (no T-cell receptor chains). Within a species, a sequence
identical to an earlier one is dropped and the first gene name (in ANARCI's order) is
kept, since the species call needs each distinct sequence once.

Usage: python3 tools/convert_species_germlines.py [OUTPUT.json]
"""

import hashlib
import json
import os
import sys
from importlib.metadata import version

import anarci.germlines
from anarci.germlines import all_germlines

CHAIN_TYPES = ["H", "K", "L"]
LENGTH = 128
DEFAULT_OUTPUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "data", "germlines", "species_v.json"
)


def tables():
    out = {}
    stats = []
    for chain_type in CHAIN_TYPES:
        out[chain_type] = {}
        for species, genes in all_germlines["V"][chain_type].items():
            kept = {}
            seen = set()
            for name, seq in genes.items():
                if len(seq) != LENGTH:
                    raise SystemExit(f"{species} {name}: {len(seq)} positions, expected {LENGTH}")
                if set(seq) - set("ACDEFGHIKLMNPQRSTVWYX-"):
                    raise SystemExit(f"{species} {name}: unexpected letters {set(seq)}")
                if seq in seen:
                    continue
                seen.add(seq)
                kept[name] = seq
            out[chain_type][species] = kept
            stats.append((chain_type, species, len(genes), len(kept)))
    return out, stats


def render(data) -> str:
    """JSON with one gene per line, so diffs of a regenerated file stay readable."""
    lines = ["{", f'  "source": {json.dumps(data["source"], indent=4)[:-1]}  }},']
    lines.append(f'  "positions": {data["positions"]},')
    lines.append('  "V": {')
    for c_index, chain_type in enumerate(CHAIN_TYPES):
        lines.append(f'    "{chain_type}": {{')
        species_list = list(data["V"][chain_type].items())
        for s_index, (species, genes) in enumerate(species_list):
            lines.append(f"      {json.dumps(species)}: {{")
            items = list(genes.items())
            for i, (name, seq) in enumerate(items):
                comma = "," if i + 1 < len(items) else ""
                lines.append(f"        {json.dumps(name)}: {json.dumps(seq)}{comma}")
            lines.append("      }" + ("," if s_index + 1 < len(species_list) else ""))
        lines.append("    }" + ("," if c_index + 1 < len(CHAIN_TYPES) else ""))
    lines.append("  }")
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    output = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(DEFAULT_OUTPUT)
    with open(anarci.germlines.__file__, "rb") as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    v, stats = tables()
    data = {
        "source": {
            "package": "anarci",
            "version": version("anarci"),
            "file": "anarci/germlines.py",
            "sha256": sha256,
            "tables": "all_germlines['V'], chain types H, K, L",
            "license": "BSD-3-Clause (ANARCI, Copyright 2019 Charlotte Deane, James Dunbar, "
                       "Alexsandr Kovaltsuk, Claire Marks)",
            "attribution": "Germline sequences derived from IMGT(R), the international "
                           "ImMunoGeneTics information system(R), https://www.imgt.org",
            "position_convention": "each string has 128 characters; character i (0-based) is "
                                   "IMGT position i + 1; '-' = no residue; no insertions",
            "deduplication": "within a species, identical sequences are kept once, under "
                             "the first gene name in ANARCI's order",
            "converter": "tools/convert_species_germlines.py",
        },
        "positions": LENGTH,
        "V": v,
    }
    text = render(data)
    if json.loads(text) != data:
        raise SystemExit("rendered JSON does not round-trip")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        f.write(text)
    print(f"wrote {output}: {len(text):,} bytes")
    for chain_type, species, total, kept in stats:
        print(f"  V {chain_type} {species}: {kept} distinct of {total} genes")


if __name__ == "__main__":
    main()
