"""The API's resources, written once for both clients: each method builds a ``Call`` and hands
it to the client, which sends it (``Client``) or returns a coroutine (``AsyncClient``)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Union

from ._core import Call, new_idempotency_key
from .models import (
    Humanization, Job, JobCancelResult, LedgerEntry, Organization, Variant, VariantImportResult,
    job_from,
)

if TYPE_CHECKING:
    from .client import AsyncClient, Client

VariantRef = Union[Variant, str]


def _id(thing: Any) -> str:
    return thing if isinstance(thing, str) else str(thing.id)


class _Resource:
    def __init__(self, client: "Client | AsyncClient"):
        self._c = client


class Variants(_Resource):
    """Antibody variants (VH + VL) of the caller's organization."""

    def create(self, name: str, vh: str | None = None, vl: str | None = None, *,
               scfv: str | None = None, idempotency_key: str | None = None):
        """Registers a variant from ``vh`` and ``vl``, from ``vh`` alone (a nanobody), or from one
        ``scfv`` sequence that the server splits into its VH and VL domains (``variant.scfv`` says
        how). Sequences are cleaned and checked (``InvalidSequence`` names the chain)."""
        key = idempotency_key or new_idempotency_key()
        body: dict[str, Any] = {"name": name}
        for field, value in (("vh", vh), ("vl", vl), ("scfv", scfv)):
            if value is not None:
                body[field] = value
        return self._c._execute(Call.write("POST", "/v1/variants", body, Variant.model_validate, key))

    def get(self, variant: VariantRef):
        """One variant by id."""
        return self._c._execute(Call.get(f"/v1/variants/{_id(variant)}", Variant.model_validate))

    def list(self, *, limit: int | None = None):
        """Every variant, newest first; an iterator that follows the cursor page by page."""
        return self._c._paginate("/v1/variants", Variant.model_validate, {"limit": limit})

    def delete(self, variant: VariantRef):
        """Deletes a variant (jobs keep their own copy of its sequences)."""
        return self._c._execute(Call("DELETE", f"/v1/variants/{_id(variant)}", parse=lambda _: None))

    def import_file(self, file: "str | os.PathLike[str] | Any", *, idempotency_key: str | None = None):
        """Imports a FASTA or CSV file (a path, or an open text file) as ``veneer variants import``
        reads it; returns each record's outcome (``VariantImportResult``)."""
        if hasattr(file, "read"):
            content = file.read()
        else:
            with open(file, encoding="utf-8") as f:
                content = f.read()
        if isinstance(content, bytes):
            content = content.decode("utf-8")
        key = idempotency_key or new_idempotency_key()
        return self._c._execute(Call.write("POST", "/v1/variants/import", {"content": content},
                                           VariantImportResult.model_validate, key))


class Humanizations(_Resource):
    """Humanization jobs (1 credit each)."""

    def submit(self, variant: VariantRef, *, strategies: "list[str | dict[str, Any]] | None" = None,
               idempotency_key: str | None = None, wait: int | None = None):
        """Submits a humanization of ``variant``. Always sends an Idempotency-Key (a new one
        unless given), and every retry reuses it, so a retried submit never charges twice.
        ``strategies``: the designs to run, e.g. ``["cdr_grafting", {"name": "sapiens",
        "iterations": 2}]`` (default: every strategy the server runs). ``wait``: seconds the
        server may hold the answer until the job ends (``Prefer: wait``)."""
        key = idempotency_key or new_idempotency_key()
        body: dict[str, Any] = {"variant_id": _id(variant)}
        if strategies is not None:
            body["strategies"] = [{"name": d} if isinstance(d, str) else dict(d) for d in strategies]
        call = Call.write("POST", "/v1/humanizations", body, self._bind, key)
        if wait:
            call.headers["Prefer"] = f"wait={int(wait)}"
        return self._c._execute(call)

    def get(self, job: Any, *, wait: int | None = None):
        """The job as it stands; with ``wait``, long-polls up to that many seconds for its end."""
        call = Call.get(f"/v1/humanizations/{_id(job)}", self._bind)
        if wait:
            call.headers["Prefer"] = f"wait={int(wait)}"
        return self._c._execute(call)

    def export(self, job: Any, format: str = "csv") -> Any:
        """A completed job's designs as a file's bytes: ``format`` is ``fasta``, ``csv`` or
        ``xlsx`` (``Conflict`` while the job has not completed)."""
        call = Call.get(f"/v1/humanizations/{_id(job)}/export", lambda body: body, format=format)
        call.raw = True
        return self._c._execute(call)

    def list(self, *, status: str | None = None, limit: int | None = None):
        """Humanization jobs, newest first, optionally by status; follows the cursor."""
        return self._c._paginate("/v1/humanizations", self._bind, {"status": status, "limit": limit})

    def cancel(self, job: Any):
        """Cancels a pending or running job; returns it ``canceled`` (its credit refunded).
        ``Conflict`` if it already ended, ``JobCancelUnavailable`` while it is finalizing."""
        return self._c._execute(Call("POST", f"/v1/humanizations/{_id(job)}/cancel", parse=self._bind))

    def _bind(self, body: Any) -> Humanization:
        job = Humanization.model_validate(body)
        job._client = self._c
        return job


class Jobs(_Resource):
    """Every job kind through the generic routes (``object`` says the kind)."""

    def get(self, job: Any, *, wait: bool = False):
        """The job; ``wait=True`` long-polls up to 30 s for its end."""
        return self._c._execute(Call.get(f"/v1/jobs/{_id(job)}", self._bind, wait="true" if wait else None))

    def list(self, *, object: str | None = None, status: str | None = None, limit: int | None = None):
        """All jobs, newest first, filtered by kind and status; follows the cursor."""
        return self._c._paginate("/v1/jobs", self._bind, {"object": object, "status": status, "limit": limit})

    def cancel(self, job: Any):
        """Sends the cancel signal (the peers' shape): ``accepted`` and, if not, ``reason``."""
        return self._c._execute(Call("POST", f"/v1/jobs/{_id(job)}/cancel", parse=JobCancelResult.model_validate))

    def _bind(self, body: Any) -> Job:
        job = job_from(body)
        job._client = self._c
        return job

    def _refresh(self, job: Job):
        if isinstance(job, Humanization):
            return self._c.humanizations.get(job)
        return self.get(job)


class OrganizationResource(_Resource):
    """The organization the key belongs to."""

    def get(self):
        """The caller's organization with its balance by bucket."""
        return self._c._execute(Call.get("/v1/organization", Organization.model_validate))


class Credits(_Resource):
    """The credit ledger: every grant, debit and refund."""

    def ledger(self, *, limit: int | None = None):
        """The organization's credit ledger, newest first; follows the cursor."""
        return self._c._paginate("/v1/credits/ledger", LedgerEntry.model_validate, {"limit": limit})
