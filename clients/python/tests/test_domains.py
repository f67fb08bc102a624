"""Nanobodies and scFv through the client: a VH-only variant grafts as AbNumber does (with and
without VHH hallmark back-mutation), and one scFv sequence registers as ANARCI splits it."""

import json

import pytest

import veneer_client as vc
from veneer_client import Client

from conftest import REPO

FIXTURES = REPO / "tests" / "fixtures"


def _jsonl(name):
    with open(FIXTURES / name) as f:
        return [json.loads(line) for line in f if line.strip()]


def test_a_nanobody_grafts_as_abnumber_does(server):
    # A chain whose hallmark back-mutation changes the straight graft.
    chain = next(r for r in _jsonl("abnumber_vhh_grafts.jsonl") if r["straight"] != r["straight_hallmark"])
    veneer = Client(server.url, api_key=server.key)
    variant = veneer.variants.create("nanobody", vh=chain["sequence"])
    assert (variant.vl, variant.vl_chain_type, variant.scfv) == (None, None, None)
    balance = veneer.organization.get().credit_balance
    job = veneer.humanizations.submit(variant, strategies=[
        {"name": "cdr_grafting", "backmutate_vhh_hallmark": True},
        "cdr_grafting",
        {"name": "cdr_grafting_vernier", "backmutate_vhh_hallmark": True},
    ], wait=60)
    assert job.status == "completed", job.error
    hallmark, straight, vernier = job.results
    assert hallmark.humanized_vh == chain["straight_hallmark"]
    assert straight.humanized_vh == chain["straight"]
    assert vernier.humanized_vh == chain["vernier_hallmark"]
    assert hallmark.options == vc.Options(sapiens_iterations=0, backmutate_vhh_hallmark=True)
    for r in job.results:
        assert r.humanized_vl is None and r.mutations.vl is None and r.germline_content.vl is None
        assert r.germline_content.antibody == r.germline_content.vh
    assert veneer.organization.get().credit_balance == balance - 1, "one credit per submit"


@pytest.mark.parametrize("name", ["scfv_Herceptin_VH_G4S3_VL", "scfv_Bevacizumab_VL_G4S4_VH",
                                  "scfv_AntiCD28_signal_VH_G4S3_VL"])
def test_an_scfv_registers_as_anarci_splits_it(server, name):
    record = next(r for r in _jsonl("anarci_domains.jsonl") if r["name"] == name)
    seq = record["sequence"]
    heavy = next(d for d in record["domains"] if d["chain_type"] == "H")
    light = next(d for d in record["domains"] if d["chain_type"] in "KL")
    veneer = Client(server.url, api_key=server.key)
    variant = veneer.variants.create(name, scfv=seq)
    split = variant.scfv
    assert split is not None
    assert split.order == ("VH-VL" if heavy["seq_start"] < light["seq_start"] else "VL-VH")
    assert (split.vh_span.start, split.vh_span.end) == (heavy["seq_start"], heavy["seq_end"])
    assert (split.vl_span.start, split.vl_span.end) == (light["seq_start"], light["seq_end"])
    assert variant.vh == seq[heavy["seq_start"]:heavy["seq_end"] + 1]
    assert variant.vl == seq[light["seq_start"]:light["seq_end"] + 1]
    assert variant.vl_chain_type == ("kappa" if light["chain_type"] == "K" else "lambda")
    first, second = sorted([heavy, light], key=lambda d: d["seq_start"])
    assert split.n_terminal == seq[:first["seq_start"]]
    assert split.linker == seq[first["seq_end"] + 1:second["seq_start"]]
    assert split.c_terminal == seq[second["seq_end"] + 1:]
    assert veneer.variants.get(variant.id).scfv == split


def test_a_sequence_that_is_not_an_scfv_is_refused_and_nothing_is_created(server):
    bivalent = next(r for r in _jsonl("anarci_domains.jsonl") if r["name"].startswith("bivalent_vhh"))
    veneer = Client(server.url, api_key=server.key)
    before = [v.id for v in veneer.variants.list()]
    with pytest.raises(vc.ApiError) as e:
        veneer.variants.create("bivalent", scfv=bivalent["sequence"])
    assert e.value.status == 422 and e.value.detail.startswith("scFv:"), e.value.detail
    with pytest.raises(vc.InvalidRequest):
        veneer.variants.create("both", vh=bivalent["sequence"][:118], scfv=bivalent["sequence"])
    assert [v.id for v in veneer.variants.list()] == before
