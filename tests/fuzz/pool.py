"""A small pool of long-lived worker processes, each restarted when it dies or hangs.

Jobs are ``(job id, case, path)``; every job ends with exactly one result:
``("ok", outputs)``, ``("error", type, message)``, ``("crash", description, log tail)``,
``("hang", seconds, log tail)`` or ``("builderr", message)``.
"""

from __future__ import annotations

import os
import pickle
import resource
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from typing import Callable, Iterable, Optional

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STARTUP_TIMEOUT = 180.0
# address space per worker: a runaway allocation fails (bad_alloc) instead of exhausting the machine
MEMORY_LIMIT = int(float(os.environ.get("PYOPS_FUZZ_MEMORY_GB", "12")) * (1 << 30))


def _limit_memory():
    try:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    except (ValueError, OSError):
        pass
    os.setsid()  # its own process group: killing it takes any children along


class Worker:
    def __init__(self, index: int, log_dir: str):
        self.index, self.log_path = index, os.path.join(log_dir, f"worker{index}.log")
        self.proc: Optional[subprocess.Popen] = None
        self.job = None
        self.deadline = 0.0
        self.log_offset = 0
        self.starts = 0

    def start(self) -> None:
        env = dict(os.environ, TRITON_INTERPRET="1", OMP_NUM_THREADS="1", MKL_NUM_THREADS="1",
                   PYTHONFAULTHANDLER="1", PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "tests.fuzz.worker"], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                     preexec_fn=_limit_memory)
        log.close()
        self.starts += 1
        ready, _, _ = select.select([self.proc.stdout], [], [], STARTUP_TIMEOUT)
        msg = self._read() if ready else None
        if not msg or msg[0] != "ready":
            tail = self.log_tail(0)
            self.kill()
            raise RuntimeError(f"fuzz worker {self.index} did not start:\n{tail}")

    def _read(self):
        head = self.proc.stdout.read(4)
        if len(head) < 4:
            return None
        (n,) = struct.unpack("<I", head)
        data = self.proc.stdout.read(n)
        if len(data) < n:
            return None
        return pickle.loads(data)

    def send(self, job, timeout: float) -> None:
        self.log_offset = os.path.getsize(self.log_path)
        data = pickle.dumps(job, protocol=pickle.HIGHEST_PROTOCOL)
        self.proc.stdin.write(struct.pack("<I", len(data)) + data)
        self.proc.stdin.flush()
        self.job = job
        self.deadline = time.monotonic() + timeout

    def log_tail(self, offset: Optional[int] = None, lines: int = 40) -> str:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_offset if offset is None else offset)
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def kill(self) -> None:
        if self.proc is None:
            return
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        for s in (self.proc.stdin, self.proc.stdout):
            try:
                s.close()
            except OSError:
                pass
        self.proc = None

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            pass
        self.kill()


def describe_exit(code: Optional[int]) -> str:
    if code is None:
        return "worker died (exit status unknown)"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        return f"killed by {name}"
    return f"worker exited with status {code} mid-call"


class Pool:
    def __init__(self, workers: int = 1, timeout: float = 20.0, log_dir: Optional[str] = None):
        self.timeout = timeout
        self._own_logs = log_dir is None  # a temporary folder, removed on exit (tails are in the results)
        self.log_dir = log_dir or tempfile.mkdtemp(prefix="pyops-fuzz-")
        self.workers = [Worker(i, self.log_dir) for i in range(max(1, workers))]
        self.restarts = 0

    def __enter__(self):
        for w in self.workers:
            w.start()
        return self

    def __exit__(self, *exc):
        for w in self.workers:
            w.stop()
        if self._own_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def run(self, jobs: Iterable, on_result: Callable, timeout_of: Optional[Callable] = None) -> None:
        """Run every job; ``on_result(job, result)`` as each finishes."""
        pending = deque(jobs)
        while pending or any(w.job is not None for w in self.workers):
            for w in self.workers:
                if w.job is None and pending:
                    if w.proc is None:
                        w.start()
                    job = pending.popleft()
                    try:
                        w.send(job, timeout_of(job) if timeout_of else self.timeout)
                    except (BrokenPipeError, OSError):
                        self._died(w, on_result)
            busy = [w for w in self.workers if w.job is not None]
            if not busy:
                continue
            wait = max(0.0, min(w.deadline for w in busy) - time.monotonic())
            ready, _, _ = select.select([w.proc.stdout for w in busy], [], [], wait)
            now = time.monotonic()
            for w in busy:
                if w.proc.stdout in ready:
                    msg = self._safe_read(w)
                    if msg is None:
                        self._died(w, on_result)
                        continue
                    job_id, result = msg
                    job, w.job = w.job, None
                    on_result(job, result)
                elif now >= w.deadline:
                    job, w.job = w.job, None
                    w.kill()
                    self.restarts += 1
                    on_result(job, ("hang", self.timeout if not timeout_of else timeout_of(job), w.log_tail()))

    def _safe_read(self, w: Worker):
        try:
            return w._read()
        except (EOFError, pickle.UnpicklingError, OSError):
            return None

    def _died(self, w: Worker, on_result: Callable) -> None:
        try:
            code = w.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            code = None
        tail = w.log_tail()
        job, w.job = w.job, None
        w.kill()
        self.restarts += 1
        if job is not None:
            on_result(job, ("crash", describe_exit(code), tail))
