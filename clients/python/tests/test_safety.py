"""Safe by default: retried submits never charge twice, every refusal is its own exception with
the server's fields, cancel works on a running job, and both clients agree."""

import asyncio
import time

import pytest

import veneer_client as vc
from veneer_client import AsyncClient, Client

from conftest import FAST, VH, VL
from proxy import LossyProxy


def test_a_submit_whose_answer_is_lost_is_retried_with_its_key_and_charged_once(server):
    first_submit = {"left": 1}

    def drop(request: bytes) -> bool:
        if request.startswith(b"POST /v1/humanizations ") and first_submit["left"]:
            first_submit["left"] -= 1
            return True
        return False

    proxy = LossyProxy(server.url, drop)
    veneer = Client(proxy.url, api_key=server.key, backoff=0.05)
    variant = veneer.variants.create("AntiCD28", VH, VL)
    balance = veneer.organization.get().credit_balance
    job = veneer.humanizations.submit(variant)
    assert proxy.dropped == 1, "the first answer was really lost"
    assert [j.id for j in veneer.humanizations.list()] == [job.id], "one job"
    debits = [e for e in veneer.credits.ledger() if e.reason == "debit"]
    assert [d.job_id for d in debits] == [job.id], "one debit"
    assert veneer.organization.get().credit_balance == balance - 1
    proxy.close()


def test_a_503_is_retried_after_retry_after_with_the_same_key(server):
    seen: list[bytes] = []

    def refuse(request: bytes) -> bool:
        if request.startswith(b"POST /v1/humanizations "):
            seen.append(request)
            return len(seen) == 1
        return False

    proxy = LossyProxy(server.url, lambda _: False, refuse)
    veneer = Client(proxy.url, api_key=server.key)
    variant = veneer.variants.create("AntiCD28", VH, VL)
    started = time.monotonic()
    job = veneer.humanizations.submit(variant)
    assert proxy.refused == 1 and len(seen) == 2
    assert time.monotonic() - started >= 0.9, "waited as Retry-After said"
    keys = {line for r in seen for line in r.split(b"\r\n") if line.lower().startswith(b"idempotency-key:")}
    assert len(keys) == 1, "the retry carried the same Idempotency-Key"
    assert [j.id for j in veneer.humanizations.list()] == [job.id]
    proxy.close()


def test_a_write_without_a_key_is_not_resent_after_a_lost_answer(server):
    # A cancel carries no Idempotency-Key: after a lost answer the client reports the broken
    # connection instead of guessing.
    proxy = LossyProxy(server.url, lambda r: r.startswith(b"POST /v1/jobs/"))
    veneer = Client(proxy.url, api_key=server.key, backoff=0.05)
    with pytest.raises(vc.TransportError):
        veneer.jobs.cancel("01a20651-60bf-7071-8acf-dd18d042cc9e")
    proxy.close()


def test_each_refusal_raises_its_exception_with_the_servers_fields(start_server):
    server = start_server(*FAST, "--stage-delay-ms", "1500")
    veneer = Client(server.url, api_key=server.key)
    variant = veneer.variants.create("AntiCD28", VH, VL)

    # 402: a lab without credits.
    poor = Client(server.url, api_key=server.new_org("Poor lab", 0))
    mine = poor.variants.create("Mine", VH, VL)
    with pytest.raises(vc.InsufficientCredits) as e:
        poor.humanizations.submit(mine)
    assert (e.value.status, e.value.code, e.value.credit_cost, e.value.credit_balance) == (402, "insufficient_credits", 1, 0)
    assert e.value.request_id and "1 credit" in e.value.detail

    # 404: another organization's variant is not found.
    with pytest.raises(vc.NotFound) as e:
        poor.variants.get(variant)
    assert e.value.status == 404 and e.value.request_id

    # 422: the reason names the chain.
    with pytest.raises(vc.InvalidSequence) as e:
        veneer.variants.create("bad", VH[:40] + "*" + VH[40:], VL)
    assert e.value.detail.startswith("VH:")

    # 409 job_cancel_unavailable while finalizing, with the stage.
    job = veneer.humanizations.submit(variant)
    deadline = time.monotonic() + 30
    while (job := job.refresh()).stage != "finalizing":
        assert time.monotonic() < deadline and not job.done, job.status
        time.sleep(0.05)
    with pytest.raises(vc.JobCancelUnavailable) as e:
        job.cancel()
    assert (e.value.status, e.value.stage) == (409, "finalizing")

    # 409 conflict once it has completed.
    job = job.wait(timeout=30)
    assert job.status == "completed"
    with pytest.raises(vc.Conflict) as e:
        job.cancel()
    assert e.value.job_status == "completed"
    assert veneer.jobs.cancel(job).reason == "already_completed"


def test_429_raises_rate_limited_with_retry_after_and_is_retried_by_default(start_server):
    server = start_server("--read-rate", "1", "--read-burst", "1")
    strict = Client(server.url, api_key=server.key, max_retries=0)
    strict.organization.get()
    with pytest.raises(vc.RateLimited) as e:
        strict.organization.get()
    assert e.value.status == 429 and e.value.retry_after and e.value.retry_after >= 1
    # The default client waits as Retry-After says and gets through.
    patient = Client(server.url, api_key=server.key)
    started = time.monotonic()
    assert patient.organization.get().name
    assert time.monotonic() - started >= 0.5


def test_cancel_of_a_running_job_refunds_it(start_server):
    server = start_server(*FAST, "--stage-delay-ms", "2000")
    veneer = Client(server.url, api_key=server.key)
    job = veneer.humanizations.submit(veneer.variants.create("AntiCD28", VH, VL))
    deadline = time.monotonic() + 20
    while (job := job.refresh()).status != "running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    canceled = job.cancel()
    assert canceled.status == "canceled" and canceled.canceled_at is not None
    assert canceled.results is None
    refunds = [e for e in veneer.credits.ledger() if e.reason == "refund"]
    assert [r.job_id for r in refunds] == [job.id]
    with pytest.raises(vc.JobTimeout):
        veneer.humanizations.submit(canceled.variant_id).wait(timeout=1)


def test_wait_returns_the_finished_job_and_times_out_honestly(start_server):
    server = start_server(*FAST, "--stage-delay-ms", "300")
    veneer = Client(server.url, api_key=server.key)
    job = veneer.humanizations.submit(veneer.variants.create("AntiCD28", VH, VL))
    with pytest.raises(vc.JobTimeout) as e:
        job.wait(timeout=0.5)
    assert e.value.job.status in ("pending", "running")
    done = job.wait(timeout=60)
    assert done.status == "completed" and len(done.results) == 3
    generic = veneer.jobs.get(done, wait=True)
    assert isinstance(generic, vc.Humanization) and generic.results == done.results


def test_sync_and_async_clients_give_the_same_results(server):
    sync = Client(server.url, api_key=server.key)
    variant = sync.variants.create("AntiCD28", VH, VL)
    by_sync = sync.humanizations.submit(variant, wait=60)
    assert by_sync.status == "completed"

    async def run():
        async with AsyncClient(server.url, api_key=server.key) as veneer:
            job = await veneer.humanizations.submit(variant)
            job = await job.wait(timeout=60)
            many = [j async for j in veneer.humanize_many([variant, variant], concurrency=2, timeout=60)]
            listed = [j.id async for j in veneer.humanizations.list(limit=1)]
            org = await veneer.organization.get()
            return job, listed, many, org

    by_async, listed, many, org = asyncio.run(run())
    assert by_async.results == by_sync.results
    assert by_async.parental == by_sync.parental
    assert all(j.results == by_sync.results for j in many)
    assert len(listed) == 4 and by_async.id in listed
    assert org.credit_balance == sync.organization.get().credit_balance == 100 - 4
    with pytest.raises(vc.NotFound):
        asyncio.run(_get_missing(server))


async def _get_missing(server):
    async with AsyncClient(server.url, api_key=server.key) as veneer:
        await veneer.variants.get("01a20651-60bf-7071-8acf-dd18d042cc9e")


def test_designs_with_options_come_back_typed(server):
    veneer = Client(server.url, api_key=server.key)
    variant = veneer.variants.create("AntiCD28", VH, VL)
    job = veneer.humanizations.submit(
        variant, strategies=["cdr_grafting", {"name": "sapiens", "iterations": 2}], wait=60)
    assert [r.strategy for r in job.results] == ["cdr_grafting", "sapiens"]
    assert job.results[0].options == vc.Options(sapiens_iterations=0, backmutate_vhh_hallmark=False)
    assert job.results[1].options == vc.Options(iterations=2, humanize_cdrs=False, backmutate_vernier=False,
                                                  backmutate_vhh_hallmark=False)
    with pytest.raises(vc.InvalidRequest) as e:
        veneer.humanizations.submit(variant, strategies=[{"name": "sapiens", "iterations": 9}])
    assert "strategies[0]" in e.value.detail


def test_a_completed_job_exports_its_designs(server, start_server):
    veneer = Client(server.url, api_key=server.key)
    variant = veneer.variants.create("AntiCD28", VH, VL)
    job = veneer.humanizations.submit(variant, wait=60)
    fasta = veneer.humanizations.export(job, "fasta").decode()
    for r in job.results:
        assert f">AntiCD28_{r.strategy} VH\n" in fasta
        assert r.humanized_vh[:60] in fasta
    assert veneer.humanizations.export(job, "xlsx")[:2] == b"PK", "an XLSX is a zip"
    paused = start_server(*FAST, "--paused")
    queued = Client(paused.url, api_key=paused.key)
    pending = queued.humanizations.submit(queued.variants.create("AntiCD28", VH, VL))
    with pytest.raises(vc.Conflict) as e:
        queued.humanizations.export(pending, "csv")
    assert e.value.job_status == "pending"
