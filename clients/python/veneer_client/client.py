"""``Client`` (blocking) and ``AsyncClient`` (asyncio): the same resources and methods, on
httpx. Both retry what is safe to retry — a broken connection for reads and for writes that
carry an Idempotency-Key, any 429 or 503 — waiting as ``Retry-After`` says."""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from typing import Any, AsyncIterator, Callable, Iterable, Iterator

import httpx

from . import errors
from ._core import TRANSPORT_ERRORS, Call, Config, result, retry_after, retryable_status
from .models import Job
from .resources import Credits, Humanizations, Jobs, OrganizationResource, Variants

PAGE = 100
#: ``Prefer: wait`` above this is treated as this by the server (SPEC §6).
MAX_WAIT = 120


class _Common:
    def _setup(self, base_url, api_key, timeout, max_retries, backoff, max_backoff):
        self._config = Config(base_url, api_key, timeout, max_retries, backoff, max_backoff)
        self.variants = Variants(self)
        self.humanizations = Humanizations(self)
        self.jobs = Jobs(self)
        self.organization = OrganizationResource(self)
        self.credits = Credits(self)

    @property
    def base_url(self) -> str:
        return self._config.base_url

    def _wait_step(self, job: Job, deadline: float | None, poll: float) -> Call:
        left = poll if deadline is None else min(poll, deadline - time.monotonic())
        seconds = max(1, min(int(left), MAX_WAIT))
        if job.object == "humanization":
            call = Call.get(f"/v1/humanizations/{job.id}", self.humanizations._bind)
            call.headers["Prefer"] = f"wait={seconds}"
            return call
        return Call.get(f"/v1/jobs/{job.id}", self.jobs._bind, wait="true")

    def _cancel_call(self, job: Job) -> Call:
        if job.object == "humanization":
            return Call("POST", f"/v1/humanizations/{job.id}/cancel", parse=self.humanizations._bind)
        return Call("POST", f"/v1/jobs/{job.id}/cancel", parse=lambda body: body)


class Client(_Common):
    """A blocking client: ``Client(base_url, api_key)``, or from ``VENEER_URL`` and
    ``VENEER_API_KEY``. Use it as a context manager, or call ``close()``.

    >>> with Client() as veneer:                                   # doctest: +SKIP
    ...     v = veneer.variants.create("AntiCD28", vh=VH, vl=VL)
    ...     job = veneer.humanizations.submit(v).wait(timeout=60)
    """

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout: float = 30.0, max_retries: int = 5, backoff: float = 0.5,
                 max_backoff: float = 8.0, http: httpx.Client | None = None):
        self._setup(base_url, api_key, timeout, max_retries, backoff, max_backoff)
        self._http = http or httpx.Client(base_url=self._config.base_url, timeout=timeout)

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _execute(self, call: Call) -> Any:
        config = self._config
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._http.request(
                    call.method, call.path, params=call.params, json=call.json,
                    headers={**config.headers(), **call.headers},
                    timeout=_timeout(config.timeout, call))
            except TRANSPORT_ERRORS as e:
                if not call.repeatable or attempt > config.max_retries:
                    raise errors.TransportError(f"{call.method} {call.path}: {e}") from e
                time.sleep(config.delay(attempt, None))
                continue
            if retryable_status(response.status_code) and attempt <= config.max_retries:
                time.sleep(config.delay(attempt, retry_after(response)))
                continue
            return result(call, response)

    def _paginate(self, path: str, parse: Callable[[Any], Any], params: dict[str, Any]) -> Iterator[Any]:
        limit = params.pop("limit", None) or PAGE
        after = None
        while True:
            page = self._execute(Call.get(path, lambda b: b, **params, limit=limit, starting_after=after))
            for item in page["data"]:
                yield parse(item)
            if not page["has_more"] or not page["data"]:
                return
            after = page["data"][-1]["id"]

    def _wait(self, job: Job, timeout: float | None, poll: float) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not job.done:
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.JobTimeout(job, timeout or 0)
            job = self._execute(self._wait_step(job, deadline, poll))
        return job

    def _cancel(self, job: Job) -> Any:
        return self._execute(self._cancel_call(job))

    def humanize_many(self, variants: Iterable[Any], *, concurrency: int = 4,
                      timeout: float | None = None, progress: bool | None = None) -> Iterator[Job]:
        """Submits a humanization of each variant and yields each job as it ends (completed,
        failed or canceled), ``concurrency`` at a time. ``progress``: a tqdm bar (default: when
        tqdm is installed and output is a terminal or notebook)."""
        variants = list(variants)
        bar = _progress(len(variants), progress)

        def one(variant: Any) -> Job:
            return self.humanizations.submit(variant).wait(timeout=timeout)

        with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            futures = [pool.submit(one, v) for v in variants]
            try:
                for future in concurrent.futures.as_completed(futures):
                    job = future.result()
                    if bar is not None:
                        bar.update(1)
                    yield job
            finally:
                for f in futures:
                    f.cancel()
                if bar is not None:
                    bar.close()


class AsyncClient(_Common):
    """The asyncio client: the same resources and methods as ``Client``, awaited; lists are
    async iterators (``async for``)."""

    def __init__(self, base_url: str | None = None, api_key: str | None = None, *,
                 timeout: float = 30.0, max_retries: int = 5, backoff: float = 0.5,
                 max_backoff: float = 8.0, http: httpx.AsyncClient | None = None):
        self._setup(base_url, api_key, timeout, max_retries, backoff, max_backoff)
        self._http = http or httpx.AsyncClient(base_url=self._config.base_url, timeout=timeout)

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _execute(self, call: Call) -> Any:
        config = self._config
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(
                    call.method, call.path, params=call.params, json=call.json,
                    headers={**config.headers(), **call.headers},
                    timeout=_timeout(config.timeout, call))
            except TRANSPORT_ERRORS as e:
                if not call.repeatable or attempt > config.max_retries:
                    raise errors.TransportError(f"{call.method} {call.path}: {e}") from e
                await asyncio.sleep(config.delay(attempt, None))
                continue
            if retryable_status(response.status_code) and attempt <= config.max_retries:
                await asyncio.sleep(config.delay(attempt, retry_after(response)))
                continue
            return result(call, response)

    async def _paginate(self, path: str, parse: Callable[[Any], Any], params: dict[str, Any]) -> AsyncIterator[Any]:
        limit = params.pop("limit", None) or PAGE
        after = None
        while True:
            page = await self._execute(Call.get(path, lambda b: b, **params, limit=limit, starting_after=after))
            for item in page["data"]:
                yield parse(item)
            if not page["has_more"] or not page["data"]:
                return
            after = page["data"][-1]["id"]

    async def _wait(self, job: Job, timeout: float | None, poll: float) -> Job:
        deadline = None if timeout is None else time.monotonic() + timeout
        while not job.done:
            if deadline is not None and time.monotonic() >= deadline:
                raise errors.JobTimeout(job, timeout or 0)
            job = await self._execute(self._wait_step(job, deadline, poll))
        return job

    async def _cancel(self, job: Job) -> Any:
        return await self._execute(self._cancel_call(job))

    async def humanize_many(self, variants: Iterable[Any], *, concurrency: int = 4,
                            timeout: float | None = None, progress: bool | None = None) -> AsyncIterator[Job]:
        """As ``Client.humanize_many``: yields each job as it ends, ``concurrency`` at a time."""
        variants = list(variants)
        bar = _progress(len(variants), progress)
        gate = asyncio.Semaphore(max(1, concurrency))

        async def one(variant: Any) -> Job:
            async with gate:
                job = await self.humanizations.submit(variant)
                return await job.wait(timeout=timeout)

        tasks = [asyncio.ensure_future(one(v)) for v in variants]
        try:
            for next_done in asyncio.as_completed(tasks):
                job = await next_done
                if bar is not None:
                    bar.update(1)
                yield job
        finally:
            for t in tasks:
                t.cancel()
            if bar is not None:
                bar.close()


def _timeout(base: float, call: Call) -> float:
    """A long poll holds the answer up to its wait; give the read that much more time."""
    prefer = call.headers.get("Prefer", "")
    if prefer.startswith("wait="):
        return base + float(prefer[5:])
    if call.params and call.params.get("wait") == "true":
        return base + 30
    return base


def _progress(total: int, wanted: bool | None):
    if wanted is False:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if wanted:
            raise ImportError("progress=True needs tqdm: pip install 'veneer-client[progress]'")
        return None
    import sys
    if wanted is None and not (sys.stderr.isatty() or "ipykernel" in sys.modules):
        return None
    return tqdm(total=total, unit="job", desc="humanize")
