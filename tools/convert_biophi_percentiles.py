#!/usr/bin/env python3
"""Writes data/oasis/oasis_percentiles.json from BioPhi's stats.py (MIT, Merck).

BioPhi reports an OASis identity as a percentile among therapeutic antibodies with the tables
HEAVY_PERCENTILES, LIGHT_PERCENTILES and MEAN_PERCENTILES in
`biophi/humanization/methods/stats.py`: keyed by the prevalence threshold in percent of
subjects (1..90), each a list of 101 percentiles for OASis identity 0.00, 0.01, ... 1.00.
This script reads the literals (no import, so BioPhi's dependencies are not needed).

    python3 tools/convert_biophi_percentiles.py path/to/biophi/humanization/methods/stats.py
"""

import ast
import hashlib
import json
import sys
from pathlib import Path

NAMES = {"HEAVY_PERCENTILES": "heavy", "LIGHT_PERCENTILES": "light", "MEAN_PERCENTILES": "mean"}


def main(stats_path: str) -> None:
    source = Path(stats_path).read_bytes()
    tables = {}
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) in NAMES:
            table = ast.literal_eval(node.value)
            for key, row in table.items():
                assert isinstance(key, int) and len(row) == 101, (key, len(row))
            tables[NAMES[node.targets[0].id]] = {str(k): v for k, v in sorted(table.items())}
    assert set(tables) == set(NAMES.values()), sorted(tables)
    out = {
        "source": {
            "package": "BioPhi (Merck/BioPhi), biophi/humanization/methods/stats.py",
            "licence": "MIT, Copyright (c) 2021 Merck Sharp & Dohme Corp.",
            "sha256": hashlib.sha256(source).hexdigest(),
            "layout": "tables[threshold percent][round(identity * 100)] = percentile; "
                      "BioPhi interpolates between floor and ceil",
        },
        **tables,
    }
    dest = Path(__file__).resolve().parent.parent / "data" / "oasis" / "oasis_percentiles.json"
    dest.write_text(json.dumps(out, separators=(",", ":")) + "\n")
    print(f"wrote {dest}")


if __name__ == "__main__":
    main(sys.argv[1])
