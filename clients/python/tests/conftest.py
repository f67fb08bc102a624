"""Starts the real ``veneer`` binary on 127.0.0.1:0 with a temporary database, as a user would.
The binary is ``$VENEER_BIN``, else the release build of this repository."""

from __future__ import annotations

import os
import pathlib
import subprocess
import tempfile
import threading
import time

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
BIN = os.environ.get("VENEER_BIN") or str(REPO / "target" / "release" / "veneer")

VH = "EVKLQQSGPGLVTPSQSLSITCTVSGFSLSDYGVHWVRQSPGQGLEWLGVIWAGGGTNYNSALMSRKSISKDNSKSQVFLKMNSLQADDTAVYYCARDKGYSYYYSMDYWGQGTSVTVSS"
VL = "DIETLQSPASLAVSLGQRATISCRASESVEYYVTSLMQWYQQKPGQPPKLLIFAASNVESGVPARFSGSGSGTNFSLNIHPVDEDDVAMYFCQQSRKYVPYTFGGGTKLEIK"

FAST = ["--write-rate", "1000", "--write-burst", "1000", "--read-rate", "1000", "--read-burst", "1000"]


class Server:
    def __init__(self, *args: str):
        if not os.path.exists(BIN):
            raise RuntimeError(f"{BIN} is missing: run `cargo build --release` first (or set VENEER_BIN)")
        self.dir = tempfile.TemporaryDirectory()
        self.db = os.path.join(self.dir.name, "veneer.db")
        self.log = open(os.path.join(self.dir.name, "serve.log"), "wb")
        self.proc = subprocess.Popen(
            [BIN, "serve", "--listen", "127.0.0.1:0", "--db", self.db, *args],
            stdout=subprocess.PIPE, stderr=self.log, text=True)
        self.key = None
        deadline = time.monotonic() + 20
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if line.startswith("api key: "):
                self.key = line[len("api key: "):]
            elif line.startswith("listening on "):
                self.url = line[len("listening on "):]
                break
            if time.monotonic() > deadline:
                raise RuntimeError("veneer serve did not start")
        # Keep draining stdout so the server never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()
        assert self.key, "the first start prints an API key"

    def admin(self, *args: str) -> str:
        out = subprocess.run([BIN, "--db", self.db, *args], capture_output=True, text=True, check=True)
        return out.stdout.strip()

    def new_org(self, name: str, credits: int) -> str:
        org = self.admin("orgs", "create", name, "--credits", str(credits))
        return self.admin("keys", "create", "--org", org)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()
        self.dir.cleanup()


@pytest.fixture
def start_server():
    """A factory: ``start_server(*serve_flags)``; every server is stopped after the test."""
    servers: list[Server] = []

    def start(*args: str) -> Server:
        s = Server(*args)
        servers.append(s)
        return s

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def server(start_server):
    return start_server(*FAST)
