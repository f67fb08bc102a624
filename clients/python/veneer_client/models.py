"""Typed views of what the API returns, field for field as ``openapi.json`` names them (a test
keeps them in step). Unknown fields are kept (``extra="allow"``): a newer server may add some.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

T = TypeVar("T")


class Model(BaseModel):
    """Base of every model: keeps fields a newer server adds."""

    model_config = ConfigDict(extra="allow", frozen=False)


class Buckets(Model):
    """Credits by bucket: debits take ``subscription`` first; refunds go back there."""

    subscription: int
    purchased: int


class Organization(Model):
    """The caller's organization and its credit balance by bucket."""

    id: str
    object: str
    name: str
    credit_balance: int
    buckets: Buckets
    created_at: datetime


class LedgerEntry(Model):
    """One credit change: a ``grant``, a ``debit`` for a job, or its ``refund``."""

    id: str
    object: str
    bucket: Literal["subscription", "purchased"]
    delta: int
    reason: Literal["grant", "debit", "refund"]
    job_id: str | None
    created_at: datetime


class Span(Model):
    """0-based residue indexes into an scFv sequence, ``end`` inclusive (ANARCI's domain span)."""

    start: int
    end: int


class ScfvSplit(Model):
    """How a variant registered from one scFv sequence was split into its two domains."""

    order: Literal["VH-VL", "VL-VH"]
    vh_span: Span
    vl_span: Span
    linker: str
    n_terminal: str
    c_terminal: str


class Variant(Model):
    """A registered antibody: cleaned VH and VL sequences and the light chain's type. ``vl`` and
    ``vl_chain_type`` are ``None`` for a single-domain antibody (VHH); ``scfv`` says how a
    variant registered from one scFv sequence was split (``None`` otherwise)."""

    id: str
    object: str
    name: str
    vh: str
    vl: str | None
    vl_chain_type: Literal["kappa", "lambda"] | None
    scfv: ScfvSplit | None = None
    created_at: datetime


class ImportFailure(Model):
    """Why one record of an imported file was refused: ``invalid_sequence`` or ``invalid_request``."""

    code: str
    detail: str


class VariantImportRecord(Model):
    """What became of one antibody of an imported file."""

    index: int
    name: str
    status: Literal["created", "failed"]
    variant: Variant | None
    error: ImportFailure | None


class VariantImportResult(Model):
    """The outcome of ``variants.import_file``: counts and one record per antibody."""

    object: str
    created: int
    failed: int
    records: list[VariantImportRecord]


class PerChain(Model, Generic[T]):
    """A value for each chain; ``vl`` is ``None`` for a single-domain antibody."""

    vh: T
    vl: T | None = None


class OasisScore(Model):
    """Mean and median of the per-residue OASis scores over all residues."""

    mean: float
    median: float


class OasisIdentity(Model):
    """Per chain and pooled over the antibody: human 9-mers over all 9-mers (``oasis_identity``),
    or that identity's percentile among therapeutic antibodies (``oasis_percentile``)."""

    vh: float | None = None
    vl: float | None = None
    antibody: float | None = None


class Pooled(Model, Generic[T]):
    """A value for each chain and for both chains' residues together; ``vl`` is ``None`` for a
    single-domain antibody."""

    vh: T | None = None
    vl: T | None = None
    antibody: T | None = None


class Alternative(Model):
    """One substitution inside a liability's motif that Sapiens accepts and that removes it."""

    position: str
    from_: str = Field(alias="from")
    to: str
    probability: float

    model_config = ConfigDict(extra="allow", populate_by_name=True)


class LiabilityHint(Model):
    """A CDR liability with the substitutions that would remove it, most probable first.
    Reported, never applied."""

    liability: str
    at: str
    motif: str
    alternatives: list[Alternative]


class Germline(Model):
    """The closest human V and J genes."""

    v: str
    j: str


class Report(Model):
    """What the engine reports about one antibody; the job's ``parental`` is one."""

    liabilities: dict[str, list[str]]
    oasis_score: OasisScore | None
    oasis_identity: OasisIdentity
    oasis_percentile: OasisIdentity
    oasis_non_human_peptides: Pooled[int]
    oasis_residue_scores: PerChain[list[float]]
    numbering: PerChain[list[tuple[str, str]]]
    germlines: PerChain[Germline]
    germline_content: Pooled[float]
    sapiens_score: Pooled[float]
    liability_hints: list[LiabilityHint]


class Options(Model):
    """The options a design ran with: exactly those its strategy takes, each with the value
    used: ``sapiens`` carries ``iterations``, ``humanize_cdrs``, ``backmutate_vernier`` (and
    ``max_mutations`` when a budget was set); ``cdr_grafting_sapiens`` carries ``iterations`` and
    ``backmutate_vernier``; the two grafts carry ``sapiens_iterations``; every strategy carries
    ``backmutate_vhh_hallmark``. Options a strategy does not take are ``None``."""

    iterations: int | None = None
    humanize_cdrs: bool | None = None
    backmutate_vernier: bool | None = None
    max_mutations: int | None = None
    sapiens_iterations: int | None = None
    backmutate_vhh_hallmark: bool | None = None


SapiensOptions = Options  # the name of earlier releases


class StrategyResult(Report):
    """One design's humanized antibody with its report (SCIENCE.md) and the options it ran with."""

    strategy: str
    options: Options
    humanized_vh: str
    humanized_vl: str | None
    mutations: PerChain[int]
    mutation_list: PerChain[list[str]]
    vernier_mutations: PerChain[list[str]]
    interface_mutations: PerChain[list[str]]
    rank: int


class Problem(Model):
    """An RFC 9457 problem, as in a failed job's ``error``."""

    type: str
    title: str
    status: int
    detail: str
    instance: str
    code: str
    request_id: str | None
    credit_cost: int | None = None
    credit_balance: int | None = None
    job_status: str | None = None
    stage: str | None = None


class JobCancelResult(Model):
    """``POST /v1/jobs/{id}/cancel``: whether the signal was delivered, and if not, why."""

    job_id: str
    accepted: bool
    reason: str | None = None


TERMINAL = frozenset({"completed", "failed", "canceled"})


class Job(Model):
    """The envelope every job kind shares (SPEC §9). ``object`` is the kind.

    A job fetched through a client is bound to it: ``job.wait()``, ``job.cancel()`` and
    ``job.refresh()`` use that client (with ``AsyncClient`` they are coroutines).
    """

    id: str
    object: str
    status: Literal["pending", "running", "completed", "failed", "canceled"]
    stage: str | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    failed_at: datetime | None
    canceled_at: datetime | None
    credit_cost: int
    inputs: dict[str, Any]
    error: Problem | None
    results: list[Any] | None

    _client: Any = PrivateAttr(default=None)

    @property
    def done(self) -> bool:
        """Whether the job has reached a terminal status."""
        return self.status in TERMINAL

    def refresh(self):
        """Fetches the job again and returns the new state."""
        return self._bound().jobs._refresh(self)

    def wait(self, timeout: float | None = None, poll: float = 30.0):
        """Long-polls until the job ends (``Prefer: wait``), or raises ``JobTimeout``."""
        return self._bound()._wait(self, timeout, poll)

    def cancel(self):
        """Cancels the job on its kind's route and returns it as it then stands."""
        return self._bound()._cancel(self)

    def _bound(self):
        if self._client is None:
            raise RuntimeError("this job was not fetched through a client")
        return self._client


class Humanization(Job):
    """A humanization job; ``results`` holds one ``StrategyResult`` per strategy when completed."""

    results: list[StrategyResult] | None
    parental: Report | None = None

    @property
    def variant_id(self) -> str:
        """The variant this job humanized (its sequences were copied at submit)."""
        return str(self.inputs.get("variant_id"))

    def result(self, strategy: str) -> StrategyResult:
        """The result of one strategy (``cdr_grafting``, ``cdr_grafting_vernier``, ``sapiens``)."""
        for r in self.results or []:
            if r.strategy == strategy:
                return r
        raise KeyError(f"no {strategy!r} result in job {self.id} (status {self.status})")

    def to_dataframe(self):
        """One row per strategy with the scores a report compares (needs ``pandas``)."""
        try:
            import pandas as pd
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError("to_dataframe needs pandas: pip install 'veneer-client[pandas]'") from e
        return pd.DataFrame([_row(self, r) for r in self.results or []])


def _row(job: Humanization, r: StrategyResult) -> dict[str, Any]:
    return {
        "job_id": job.id,
        "variant_id": job.variant_id,
        "strategy": r.strategy,
        "humanized_vh": r.humanized_vh,
        "humanized_vl": r.humanized_vl,
        "mutations_vh": r.mutations.vh,
        "mutations_vl": r.mutations.vl,
        "oasis_identity": r.oasis_identity.antibody,
        "oasis_identity_vh": r.oasis_identity.vh,
        "oasis_identity_vl": r.oasis_identity.vl,
        "oasis_score_mean": r.oasis_score.mean if r.oasis_score else None,
        "germline_content": r.germline_content.antibody,
        "germline_content_vh": r.germline_content.vh,
        "germline_content_vl": r.germline_content.vl,
        "sapiens_score": r.sapiens_score.antibody,
        "non_human_peptides": r.oasis_non_human_peptides.antibody,
        "germline_vh": f"{r.germlines.vh.v}/{r.germlines.vh.j}",
        "germline_vl": f"{r.germlines.vl.v}/{r.germlines.vl.j}" if r.germlines.vl else None,
        "liabilities": sum(len(v) for v in r.liabilities.values()),
        "interface_mutations": len(r.interface_mutations.vh) + len(r.interface_mutations.vl or []),
    }


KINDS: dict[str, type[Job]] = {"humanization": Humanization}


def job_from(data: dict[str, Any]) -> Job:
    """The typed job for an envelope, by its ``object``; unknown kinds stay plain ``Job``."""
    return KINDS.get(str(data.get("object")), Job).model_validate(data)
