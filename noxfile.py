"""Developer sessions. Plugins are discovered from ``plugins/*``: adding one edits no list here.

    nox -s tests       core tests, each plugin in its own environment beside the local core,
                       then end-to-end tests of the CLI and runner against the emulators
    nox -s lint        ruff
    nox -s typecheck   mypy (strict) on the core and every plugin
    nox -s dist        build every wheel, install them non-editable in a fresh env, smoke-test
    nox -s bench       run the benchmarks (prints ratios; not part of tests)

Sessions run on every supported interpreter found on PATH and skip the others.
"""

from __future__ import annotations

import glob
import re
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PLUGINS = sorted(p.name for p in (ROOT / "plugins").glob("*") if (p / "pyproject.toml").exists())
PYTHONS = ["3.10", "3.11", "3.12", "3.13"]
DEFAULT_PYTHON = f"{sys.version_info.major}.{sys.version_info.minor}"

nox.options.error_on_missing_interpreters = False
nox.options.sessions = ["tests", "lint", "typecheck"]
nox.options.reuse_venv = "yes"


def local_requirements(plugin: str) -> list[str]:
    """The local plugins *plugin* depends on (``batchcore-groq`` builds on ``batchcore-openai``),
    installed from this tree in the same resolver call: they are not on the index yet."""
    text = (ROOT / "plugins" / plugin / "pyproject.toml").read_text()
    names = set(re.findall(r'"(batchcore-[a-z0-9-]+)', text)) - {plugin}
    return [f"./plugins/{name}" for name in sorted(names) if name in PLUGINS]


@nox.session(python=PYTHONS)
@nox.parametrize("package", ["core", *PLUGINS, "e2e"])
def tests(session: nox.Session, package: str) -> None:
    """Run one package's tests against installed (non-editable) builds.

    A plugin's environment holds only the local core and that plugin (one resolver call),
    which proves each plugin installs and works on its own. ``e2e`` installs everything and
    runs the CLI and runner against the bundled emulators (kill -9 and resume included).
    """
    if package == "core":
        session.install(".[test]")
        session.run("pytest", *session.posargs)
        return
    if package == "e2e":
        session.install(".[test]", *(f"./plugins/{name}[test]" for name in PLUGINS))
        session.run("pytest", "e2e", *session.posargs)
        return
    session.install(".", *local_requirements(package), f"./plugins/{package}[test]")
    session.chdir(f"plugins/{package}")
    session.run("pytest", *session.posargs)


@nox.session(python=DEFAULT_PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.5")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=DEFAULT_PYTHON)
def typecheck(session: nox.Session) -> None:
    plugin_paths = [f"./plugins/{name}[test]" for name in PLUGINS]
    session.install("mypy>=1.10", "types-requests", "types-jsonschema", ".[test]", *plugin_paths)
    session.run("mypy", "batchcore")
    for name in PLUGINS:
        package = name.replace("-", "_")
        session.run("mypy", f"plugins/{name}/{package}")


@nox.session(python=DEFAULT_PYTHON)
def dist(session: nox.Session) -> None:
    """Build every wheel, install them (not editable) into this fresh env and smoke-test."""
    out = Path(session.create_tmp()) / "wheels"
    session.install("build")
    for directory in [".", *(f"plugins/{name}" for name in PLUGINS)]:
        session.run("python", "-m", "build", "--wheel", "--outdir", str(out), directory)
    wheels = sorted(glob.glob(str(out / "*.whl")))
    session.install("--force-reinstall", *wheels)
    session.chdir(session.create_tmp())  # away from the source tree, so imports hit site-packages
    session.run("batchcore", "providers")
    session.run(
        "python",
        "-c",
        "import sys, batchcore; names = batchcore.batch_provider_registry.list(); print(names); "
        f"expected = {sorted(n.removeprefix('batchcore-') for n in PLUGINS)!r}; "
        "missing = [n for n in expected if n not in names]; "
        "sys.exit(f'missing: {missing}' if missing else 0)",
    )


@nox.session(python=DEFAULT_PYTHON)
def bench(session: nox.Session) -> None:
    """Print the benchmark ratios (see benchmarks/README.md)."""
    session.install(".", *(f"./plugins/{name}" for name in PLUGINS))
    env = {"PYTHONHASHSEED": "0", **({"BENCH_QUICK": "1"} if "quick" in session.posargs else {})}
    for script in sorted((ROOT / "benchmarks").glob("bench_*.py")):
        session.run("python", str(script), env=env)
