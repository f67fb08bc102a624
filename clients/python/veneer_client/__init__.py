"""veneer-client: the Python client for veneer, the self-hosted antibody humanization service.

>>> from veneer_client import Client                              # doctest: +SKIP
>>> veneer = Client("http://127.0.0.1:8080", api_key="vnr_...")
>>> variant = veneer.variants.create("AntiCD28", vh="EVKLQQ...", vl="DIETLQ...")
>>> job = veneer.humanizations.submit(variant).wait(timeout=60)
>>> job.result("sapiens").humanized_vh
"""

from ._core import new_idempotency_key
from .client import AsyncClient, Client
from .errors import (
    ApiError, Conflict, Forbidden, IdempotencyInProgress, IdempotencyMismatch, Internal,
    InvalidIdempotencyKey, InvalidRequest, InvalidSequence, InsufficientCredits,
    JobCancelUnavailable, JobTimeout, MethodNotAllowed, NotFound, PayloadTooLarge, QuotaExceeded,
    RateLimited, TransportError, Unauthenticated, Unavailable, UnsupportedMediaType, VeneerError,
)
from .models import (
    Humanization, Job, JobCancelResult, LedgerEntry, LiabilityHint, Options, Organization, Pooled,
    Problem, Report, SapiensOptions, ScfvSplit, StrategyResult, Variant, VariantImportRecord, VariantImportResult,
)

__all__ = [
    "AsyncClient", "Client", "new_idempotency_key",
    "Job", "Humanization", "StrategyResult", "Options", "SapiensOptions", "Report", "Pooled",
    "LiabilityHint", "ScfvSplit", "Variant", "VariantImportResult",
    "VariantImportRecord", "Organization", "LedgerEntry", "JobCancelResult", "Problem",
    "VeneerError", "ApiError", "TransportError", "JobTimeout", "InvalidRequest",
    "InvalidIdempotencyKey", "Unauthenticated", "InsufficientCredits", "Forbidden", "NotFound",
    "MethodNotAllowed", "Conflict", "JobCancelUnavailable", "IdempotencyMismatch",
    "IdempotencyInProgress", "PayloadTooLarge", "UnsupportedMediaType", "InvalidSequence",
    "RateLimited", "QuotaExceeded", "Internal", "Unavailable",
]
__version__ = "0.1.0"
