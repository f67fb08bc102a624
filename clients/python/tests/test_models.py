"""The models match ``openapi.json`` field for field: the document the server serves."""

import httpx
import pytest

from veneer_client import models

PAIRS = [
    ("Organization", models.Organization),
    ("LedgerEntry", models.LedgerEntry),
    ("Variant", models.Variant),
    ("VariantImportResult", models.VariantImportResult),
    ("StrategyResult", models.StrategyResult),
    ("Job", models.Humanization),
    ("JobCancelResult", models.JobCancelResult),
    ("Problem", models.Problem),
]


@pytest.fixture
def document(server):
    return httpx.get(f"{server.url}/openapi.json").json()


@pytest.mark.parametrize("schema,model", PAIRS)
def test_each_model_has_exactly_the_documented_fields(document, schema, model):
    spec = document["components"]["schemas"][schema]
    assert set(model.model_fields) == set(spec["properties"]), schema
    required = {name for name, f in model.model_fields.items() if f.is_required()}
    # A field the document requires is required here too (nullable ones may default to None).
    for name in spec.get("required", []):
        field = model.model_fields[name]
        assert name in required or field.default is None, f"{schema}.{name}"


def test_the_parental_report_and_import_records_match(document):
    schemas = document["components"]["schemas"]
    parental = schemas["Job"]["properties"]["parental"]["properties"]
    assert set(models.Report.model_fields) == set(parental)
    record = schemas["VariantImportResult"]["properties"]["records"]["items"]["properties"]
    assert set(models.VariantImportRecord.model_fields) == set(record)
