#!/usr/bin/env python3
"""Convert AbNumber's human germline V and J genes into data/germlines/human_imgt.json.

Source: `abnumber/germlines.py` of AbNumber 0.4.4 (MIT), whose tables are derived
from IMGT. The module is imported, not parsed, so the data is exactly what AbNumber
itself uses for `graft_cdrs_onto_human_germline` and `find_human_germlines`.

Output structure, unchanged from AbNumber's `HUMAN_IMGT_IG_V` / `HUMAN_IMGT_IG_J`:

  {
    "source": {...provenance...},
    "V": {"H": {"positions": ["H1", ...], "aligned_sequences": {"IGHV1-18*01": "QVQ...", ...}},
          "K": {...}, "L": {...}},
    "J": {...same for J genes...}
  }

`positions` are IMGT labels as AbNumber writes them (chain letter + number +
insertion letter, e.g. "H111A"; kappa and lambda both "L"), `aligned_sequences[gene][i]`
is the residue at `positions[i]`, '-' where the gene has none. Genes keep AbNumber's
order.

Usage: python3 tools/convert_germlines.py [OUTPUT.json]
"""

import hashlib
import json
import os
import sys

import abnumber
import abnumber.germlines as germlines

CHAIN_TYPES = ["H", "K", "L"]
DEFAULT_OUTPUT = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "data", "germlines", "human_imgt.json"
)


def tables():
    out = {}
    for segment, table in [("V", germlines.HUMAN_IMGT_IG_V), ("J", germlines.HUMAN_IMGT_IG_J)]:
        out[segment] = {}
        for chain_type in CHAIN_TYPES:
            positions = list(table[chain_type]["positions"])
            sequences = dict(table[chain_type]["aligned_sequences"])
            if len(set(positions)) != len(positions):
                raise SystemExit(f"{segment} {chain_type}: repeated position labels")
            prefix = "H" if chain_type == "H" else "L"
            for label in positions:
                if not label.startswith(prefix):
                    raise SystemExit(f"{segment} {chain_type}: unexpected label {label}")
            for name, seq in sequences.items():
                if len(seq) != len(positions):
                    raise SystemExit(f"{name}: {len(seq)} residues for {len(positions)} positions")
                if not name.startswith(f"IG{chain_type}{segment}"):
                    raise SystemExit(f"{name} is not an IG{chain_type}{segment} gene")
                if set(seq) - set("ACDEFGHIKLMNPQRSTVWY-"):
                    raise SystemExit(f"{name}: unexpected letters {set(seq)}")
            out[segment][chain_type] = {"positions": positions, "aligned_sequences": sequences}
    return out


def render(data) -> str:
    """JSON with one gene per line, so diffs of a regenerated file stay readable."""
    lines = ["{", f'  "source": {json.dumps(data["source"], indent=4)[:-1]}  }},']
    segments = ["V", "J"]
    for s_index, segment in enumerate(segments):
        lines.append(f'  "{segment}": {{')
        for c_index, chain_type in enumerate(CHAIN_TYPES):
            table = data[segment][chain_type]
            lines.append(f'    "{chain_type}": {{')
            lines.append(f'      "positions": {json.dumps(table["positions"])},')
            lines.append('      "aligned_sequences": {')
            items = list(table["aligned_sequences"].items())
            for i, (name, seq) in enumerate(items):
                comma = "," if i + 1 < len(items) else ""
                lines.append(f"        {json.dumps(name)}: {json.dumps(seq)}{comma}")
            lines.append("      }")
            lines.append("    }" + ("," if c_index + 1 < len(CHAIN_TYPES) else ""))
        lines.append("  }" + ("," if s_index + 1 < len(segments) else ""))
    lines.append("}")
    return "\n".join(lines) + "\n"


def main():
    output = sys.argv[1] if len(sys.argv) > 1 else os.path.normpath(DEFAULT_OUTPUT)
    if abnumber.__version__ != "0.4.4":
        raise SystemExit(f"expected AbNumber 0.4.4, found {abnumber.__version__}")
    with open(germlines.__file__, "rb") as f:
        sha256 = hashlib.sha256(f.read()).hexdigest()
    data = {
        "source": {
            "package": "abnumber",
            "version": abnumber.__version__,
            "file": "abnumber/germlines.py",
            "sha256": sha256,
            "tables": "HUMAN_IMGT_IG_V, HUMAN_IMGT_IG_J",
            "license": "MIT (AbNumber by David Prihoda)",
            "attribution": "Germline sequences derived from IMGT(R), the international "
                           "ImMunoGeneTics information system(R), https://www.imgt.org "
                           "(founder and director: Marie-Paule Lefranc)",
            "converter": "tools/convert_germlines.py",
        },
        **tables(),
    }
    text = render(data)
    if json.loads(text) != data:
        raise SystemExit("rendered JSON does not round-trip")
    os.makedirs(os.path.dirname(os.path.abspath(output)), exist_ok=True)
    with open(output, "w") as f:
        f.write(text)
    print(f"wrote {output}: {len(text):,} bytes")
    for segment in ["V", "J"]:
        for chain_type in CHAIN_TYPES:
            table = data[segment][chain_type]
            print(f"  {segment} {chain_type}: {len(table['aligned_sequences'])} genes, "
                  f"{len(table['positions'])} positions")


if __name__ == "__main__":
    main()
