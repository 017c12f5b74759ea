"""Import and discovery: what ``import batchcore`` plus listing every installed provider costs.

Each contender is a fresh ``python -c`` interpreter, timed from spawn to exit (nothing is
subtracted, so interpreter start-up is in every figure); the contenders take turns, many times,
and the median counts:

* ours: ``import batchcore; batchcore.batch_provider_registry.list()`` with every first-party
  plugin installed (entry points scanned, plugin modules imported, providers named);
* against importing pluggy + attrs + importlib.metadata alone (target: at most 1.3x);
* against ``import openai`` (target: at least 5x faster);
* for reference, an interpreter that imports nothing.

A separate child then checks that discovery imported no vendor SDK (nor any provider module:
those load on the first ``get()``).

Run: ``python benchmarks/bench_import.py`` (``BENCH_QUICK=1``: 10 repetitions instead of 30).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys

from _common import QUICK, header, note, report, side_by_side, verdict, wall_of_fresh_python

REPEAT = 10 if QUICK else 30

OURS = "import batchcore; batchcore.batch_provider_registry.list()"
BASELINE = "import pluggy, attrs, importlib.metadata"
OPENAI = "import openai"
NOTHING = "pass"

#: Top-level modules of vendor SDKs (and their HTTP stacks) that discovery must not import,
#: plus the plugins' provider modules, which load only when a provider is used.
VENDOR_MODULES = (
    "openai",
    "anthropic",
    "httpx",
    "httpcore",
    "pydantic",
    "google",
    "mistralai",
    "cohere",
    "boto3",
    "batchcore_openai.provider",
    "batchcore_anthropic.provider",
)
FIRST_PARTY = {"openai", "azure-openai", "anthropic"}

_CHECK = f"""
import json, sys
import batchcore
names = batchcore.batch_provider_registry.list()
vendor = sorted(m for m in sys.modules
                if any(m == v or m.startswith(v + ".") for v in {VENDOR_MODULES!r}))
print(json.dumps({{"names": names, "vendor": vendor, "requests": "requests" in sys.modules}}))
"""


def main() -> int:
    header("import and discovery (fresh interpreters, median wall time)")
    times = side_by_side(
        {
            code: functools.partial(wall_of_fresh_python, code)
            for code in (OURS, BASELINE, OPENAI, NOTHING)
        },
        REPEAT,
    )
    ours, baseline, openai, nothing = (times[c] for c in (OURS, BASELINE, OPENAI, NOTHING))
    ms = 1000
    report(
        "import batchcore + registry.list()",
        f"{ours * ms:.0f} ms; pluggy + attrs + importlib.metadata {baseline * ms:.0f} ms "
        f"(median of {REPEAT}; a bare interpreter takes {nothing * ms:.0f} ms)",
        f"{ours / baseline:.2f}x the baseline's wall time",
        "<= 1.3x",
        ours / baseline <= 1.3,
    )
    report(
        "import batchcore + registry.list() vs import openai",
        f"{ours * ms:.0f} ms; import openai {openai * ms:.0f} ms",
        f"{openai / ours:.1f}x faster",
        ">= 5x faster",
        openai / ours >= 5,
    )
    found = json.loads(
        subprocess.run(
            [sys.executable, "-c", _CHECK], check=True, capture_output=True, text=True
        ).stdout
    )
    vendor = found["vendor"]
    missing = sorted(FIRST_PARTY - set(found["names"]))
    print(f"   providers discovered: {', '.join(found['names'])}")
    print(
        f"   vendor SDK or provider modules imported by discovery: {', '.join(vendor) or 'none'}"
        f" -> {verdict(not vendor and not missing)}"
    )
    if missing:
        note(f"first-party providers missing: {', '.join(missing)}")
    if found["requests"]:
        note("requests was imported (the core's HTTP transport); it should load on first use")
    return 0


if __name__ == "__main__":
    sys.exit(main())
