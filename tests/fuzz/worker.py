"""A fuzz worker: ``python -m tests.fuzz.worker`` (started by the pool, never by hand).

Reads ``(job id, case, path)`` frames on stdin, runs the call and writes ``(job id, result)`` on
the protocol pipe (the original stdout; anything the ops print goes to stderr, the worker's log).
``TRITON_INTERPRET=1`` is set before triton is first imported.  A crash (signal) or a hang ends
the process: the pool sees EOF or its deadline pass, records it, and starts a fresh worker.
"""

from __future__ import annotations

import faulthandler
import os
import pickle
import struct
import sys


def _read_frame(stream):
    head = stream.read(4)
    if len(head) < 4:
        return None
    (n,) = struct.unpack("<I", head)
    return pickle.loads(stream.read(n))


def _write_frame(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<I", len(data)) + data)
    stream.flush()


def _normalise(out):
    """Outputs as a tuple of contiguous CPU tensors / Python scalars (small pickles, no views)."""
    import torch

    if not isinstance(out, (tuple, list)):
        out = (out,)
    res = []
    for o in out:
        if isinstance(o, torch.Tensor):
            res.append(o.detach().contiguous().clone())
        elif o is None or isinstance(o, (bool, int, float)):
            res.append(o)
        else:
            res.append(repr(o))
    return tuple(res)


def main() -> None:
    proto = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # ops that print (or warn through stdout) write to the log, never the protocol
    sys.stdout = sys.stderr
    os.environ["TRITON_INTERPRET"] = "1"
    faulthandler.enable(sys.stderr)

    import torch

    torch.set_num_threads(1)
    from . import spec, targets

    for family in ("pam", "fewbit", "intops", "gaunt", "wavehax"):  # import (and so set up) triton up front
        __import__(f"pyops.kernels.{family}")
    _write_frame(proto, ("ready", os.getpid()))
    stdin = sys.stdin.buffer
    while True:
        msg = _read_frame(stdin)
        if msg is None:
            return
        job_id, case, path = msg
        try:
            print(f"=== job {job_id}: {path} {spec.fmt_call(case)[:500]}", file=sys.stderr, flush=True)
            args, kwargs = spec.build_call(case)
            if case["op"] == "fewbit.fn":
                kwargs = dict(kwargs, fn=case["fn"], grad=spec.build(case["grad"]))
        except Exception as e:  # a bug of the suite, not of the op
            _write_frame(proto, (job_id, ("builderr", f"{type(e).__name__}: {e}")))
            continue
        try:
            out = targets.call(case["op"], path, args, kwargs)
            result = ("ok", _normalise(out))
        except Exception as e:
            result = ("error", type(e).__name__, str(e)[:4000])
        try:
            _write_frame(proto, (job_id, result))
        except Exception as e:
            _write_frame(proto, (job_id, ("error", "PicklingError", f"result not picklable: {e}")))


if __name__ == "__main__":
    main()
