"""What every benchmark script shares: the run size, the machine line, side-by-side timing,
fresh worker processes, peak-RSS readings, verdict lines and realistic request data.

Not a benchmark itself (the ``bench`` session runs ``bench_*.py`` only).
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

#: ``BENCH_QUICK=1``: smaller sizes and fewer repetitions (a minute for every script together).
QUICK = os.environ.get("BENCH_QUICK") == "1"

HERE = Path(__file__).resolve().parent
#: A stand-in ``orjson`` built on the stdlib ``json`` (see its docstring).
STDLIB_JSON_DIR = HERE / "_stdlib_json"

_WORKER_FLAG = "--worker"


# -- the machine ------------------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    """One line naming what the figures were measured on."""
    return (
        f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
        f"{platform.python_implementation()} {platform.python_version()}"
    )


def header(title: str) -> None:
    size = "quick run (BENCH_QUICK=1)" if QUICK else "full run"
    print(f"== {title} -- {size}\n   machine: {machine()}")


# -- verdicts ---------------------------------------------------------------------------------


def verdict(met: bool) -> str:
    return "target met" if met else "target MISSED"


def report(label: str, figures: str, ratio: str, target: str, met: bool) -> None:
    """One result line: what was measured, the ratio, the target and whether it was met."""
    print(f"   {label}: {figures}\n      -> {ratio}; target {target}: {verdict(met)}")


def note(text: str) -> None:
    print(f"      ({text})")


def mib(size: float) -> str:
    return f"{size / (1 << 20):.1f} MiB"


# -- timing -----------------------------------------------------------------------------------


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def side_by_side(contenders: Mapping[str, Callable[[], float]], repeat: int) -> dict[str, float]:
    """Median seconds of each contender, run in turn *repeat* times (interleaved, so drift in
    the machine's load hits every contender alike). Each callable times itself and returns
    the seconds its measured part took, so it can prepare and clean up outside the timing."""
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeat):
        for name, run in contenders.items():
            times[name].append(run())
    return {name: median(values) for name, values in times.items()}


def timed(call: Callable[[], object]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def wall_of_fresh_python(code: str, env: Mapping[str, str] | None = None) -> float:
    """Wall seconds of ``python -c code`` in a fresh interpreter, from spawn to exit."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    return time.perf_counter() - start


# -- fresh worker processes -------------------------------------------------------------------


def run_worker(script: str, name: str, *args: object, env: Mapping[str, str] | None = None) -> Any:
    """Run ``script --worker name args...`` in a fresh interpreter; returns the JSON it prints
    on its last line. *env* entries are added to this process's environment."""
    proc = subprocess.run(
        [sys.executable, script, _WORKER_FLAG, name, *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {name} failed ({proc.returncode}):\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main_or_worker(main: Callable[[], int], workers: Mapping[str, Callable[..., Any]]) -> int:
    """The entry point of a benchmark script: the benchmark itself, or one of its workers."""
    if len(sys.argv) >= 3 and sys.argv[1] == _WORKER_FLAG:
        print(json.dumps(workers[sys.argv[2]](*sys.argv[3:])))
        return 0
    return main()


def stdlib_json_env() -> dict[str, str]:
    """Environment for a worker in which ``import orjson`` finds the stdlib stand-in."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": os.pathsep.join(filter(None, [str(STDLIB_JSON_DIR), path]))}


def peak_rss() -> int:
    """This process's peak resident set size so far, in bytes."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024  # Linux reports KiB


# -- data -------------------------------------------------------------------------------------

SYSTEM_PROMPT = "You are a careful assistant. Answer in two sentences at most."
QUESTION = (
    "explain, for a reader new to physics, why the sky looks blue at noon and red at sunset, "
    "and name the effect responsible."
)


def chat_request_dicts(
    n: int, *, model: str = "gpt-4o-mini", question: str = QUESTION
) -> Iterator[dict[str, Any]]:
    """*n* chat requests as a user writes them (batchcore's unified JSON format): a system
    prompt, one user question, ``max_tokens`` and ``temperature``."""
    for i in range(n):
        yield {
            "custom_id": f"request-{i:07d}",
            "model": model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"Question {i}: {question}"},
            ],
            "max_tokens": 256,
            "temperature": 0.2,
        }


def openai_line(request: Mapping[str, Any]) -> dict[str, Any]:
    """The OpenAI batch input line a hand-written script builds from one unified dict."""
    return {
        "custom_id": request["custom_id"],
        "method": "POST",
        "url": "/v1/chat/completions",
        "body": {
            "model": request["model"],
            "messages": request["messages"],
            "max_tokens": request["max_tokens"],
            "temperature": request["temperature"],
        },
    }


@contextlib.contextmanager
def openai_emulator_process(**spec: Any) -> Iterator[dict[str, Any]]:
    """An OpenAI emulator serving from its own process (see ``_openai_server.py``); yields
    what it printed (``url``, ``api_key``, ...) and stops it on exit."""
    # Its stderr goes to a file, shown only if it fails: the HTTP server logs every connection
    # a client drops, which is noise here.
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, str(HERE / "_openai_server.py"), json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        assert proc.stdin is not None and proc.stdout is not None
        try:
            ready = proc.stdout.readline()
            if not ready:
                proc.wait(timeout=120)
                errors.seek(0)
                raise RuntimeError(f"the emulator process failed:\n{errors.read()}")
            yield json.loads(ready)
        finally:
            proc.stdin.close()
            proc.wait(timeout=120)


#: The batch queue of a tier-5 organization for gpt-4o-mini (OpenAI's published 15 billion
#: enqueued tokens): the raw script never looks at a queue cap, so ours must not wait on the
#: tier-1 default either.
TIER_5_QUEUE = 15_000_000_000


def openai_config(server: Mapping[str, Any]) -> dict[str, Any]:
    """``openai`` provider config pointing at an emulator process, on a tier-5 account."""
    return {
        "base_url": server["url"] + "/v1",
        "api_key": server["api_key"],
        "max_enqueued_tokens": TIER_5_QUEUE,
    }
