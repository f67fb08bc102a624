"""The README's notebook walk-through, run as written: import the 25 Hu-mAb parental antibodies,
humanize all of them, and tabulate OASis identity per strategy. The Sapiens designs are checked
against BioPhi's published Sapiens output for the same antibodies."""

import pandas as pd

from veneer_client import Client

from conftest import REPO


def biophi_sapiens() -> dict[tuple[str, str], str]:
    """BioPhi's published designs: (antibody, chain) -> sequence."""
    designs: dict[tuple[str, str], str] = {}
    name = None
    for line in (REPO / "tests/fixtures/humab25/sapiens1.fa").read_text().splitlines():
        if line.startswith(">"):
            antibody, chain = line[1:].split()[:2]
            name = (antibody, chain)
            designs[name] = ""
        elif name:
            designs[name] += line.strip()
    return designs

def test_import_humanize_25_and_tabulate(server):
    veneer = Client(server.url, api_key=server.key)

    # 1. Register the 25 antibodies from a CSV file (name,vh,vl).
    imported = veneer.variants.import_file(REPO / "data/examples/humab25_parental.csv")
    assert (imported.created, imported.failed) == (25, 0)
    variants = [r.variant for r in imported.records]

    # 2. Humanize them all, 4 at a time; each job is yielded when it ends.
    jobs = list(veneer.humanize_many(variants, concurrency=4, timeout=120))
    assert len(jobs) == 25 and all(j.status == "completed" for j in jobs)

    # 3. One table: OASis identity per antibody and strategy.
    names = {v.id: v.name for v in variants}
    table = pd.concat([j.to_dataframe() for j in jobs])
    table["antibody"] = table["variant_id"].map(names)
    identity = table.pivot(index="antibody", columns="strategy", values="oasis_identity")
    assert identity.shape == (25, 3)
    assert list(identity.columns) == ["cdr_grafting", "cdr_grafting_vernier", "sapiens"]
    assert identity.notna().all().all()

    # BioPhi's published Sapiens designs: 49 of 50 chains byte-identical (the 50th is the
    # numbering difference the engine's own parity test explains: Clazakizumab VH).
    published = biophi_sapiens()
    same, differ = 0, []
    for job in jobs:
        sapiens = job.result("sapiens")
        name = names[job.variant_id]
        for chain, seq in (("VH", sapiens.humanized_vh), ("VL", sapiens.humanized_vl)):
            if published[(name, chain)] == seq:
                same += 1
            else:
                differ.append(f"{name} {chain}")
    assert same == 49, differ
    assert differ == ["Clazakizumab VH"]

    # Every variant and job is in the lists, which follow cursors page by page.
    assert len(list(veneer.variants.list(limit=7))) == 25
    assert len(list(veneer.humanizations.list(status="completed", limit=10))) == 25
    assert veneer.organization.get().credit_balance == 100 - 25
    debits = [e for e in veneer.credits.ledger(limit=5) if e.reason == "debit"]
    assert len(debits) == 25
