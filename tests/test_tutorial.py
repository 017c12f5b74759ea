"""The provider tutorial (docs/writing-a-provider.md) works as written.

Its code blocks whose first line is ``# file: PATH`` (``<!-- file: PATH -->`` in Markdown) are
written out as the package they describe, which is built into a wheel and installed into a
directory of its own, as ``pip install`` does (the tutorial's ``pip install -e .`` is not run:
nothing is installed into this environment). Then its Python sessions run as doctests, a batch
runs against its emulator, its own test suite, the conformance kit included, passes in an
inline pytest run (the packaging tests too: the installed entry point is on the path), the kit
failure it quotes is the kit's, and the commands it shows do what it says.
"""

from __future__ import annotations

import doctest
import io
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest

from batchcore.testing.kit import KIT_TESTS

DOC = Path(__file__).parents[1] / "docs" / "writing-a-provider.md"
#: The package the tutorial builds, file by file.
PACKAGE_FILES = frozenset(
    {
        "pyproject.toml",
        "README.md",
        "acme_batch/__init__.py",
        "acme_batch/plugin.py",
        "acme_batch/provider.py",
        "acme_batch/_mapping.py",
        "acme_batch/testing.py",
        "tests/conftest.py",
        "tests/test_contract.py",
        "tests/test_keyless.py",
    }
)
#: The tests of the tutorial's package beyond the kit's.
OWN_TESTS = frozenset(
    {
        "test_a_lost_create_is_found_not_sent_again",
        "test_the_core_refuses_to_guess_between_candidates",
    }
)
LOST_CREATE_TEST = "test_a_lost_create_leaves_exactly_one_batch"
#: Plugins the inner runs do without: the cache, and hypothesis (slow to set up each run).
QUIET = ("-p", "no:cacheprovider", "-p", "no:hypothesispytest")

_FENCE = re.compile(r"^(```|~~~)([\w-]*)\n(.*?)^\1$", re.DOTALL | re.MULTILINE)
_MARKER = re.compile(r"^(?:# file: (?P<py>\S+)|<!-- file: (?P<md>\S+) -->)$")


class Block(NamedTuple):
    language: str
    text: str
    line: int  # of the opening fence, counted from 1


def blocks(language: str | None = None) -> list[Block]:
    """The fenced code blocks of the tutorial, in order (only those of *language* if given)."""
    document = DOC.read_text("utf-8")
    found = [
        Block(match[2], match[3], document.count("\n", 0, match.start()) + 1)
        for match in _FENCE.finditer(document)
    ]
    return [block for block in found if language in (None, block.language)]


def marked_path(block: Block) -> str | None:
    first = block.text.split("\n", 1)[0]
    match = _MARKER.match(first)
    return None if match is None else match["py"] or match["md"]


def package_files() -> dict[str, str]:
    """The files of the tutorial's package, by path: each marked block, verbatim."""
    files: dict[str, str] = {}
    for block in blocks():
        path = marked_path(block)
        if path is not None:
            assert path not in files, f"{path} is written twice (line {block.line})"
            files[path] = block.text
    return files


def only_block(language: str, containing: str) -> Block:
    (found,) = [block for block in blocks(language) if containing in block.text]
    return found


class Tutorial(NamedTuple):
    source: Path  # the package as the tutorial writes it
    site: Path  # where its wheel is installed


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory: pytest.TempPathFactory) -> Tutorial:
    work = tmp_path_factory.mktemp("tutorial")
    source = work / "batchcore-acme"
    for path, text in package_files().items():
        target = source / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, "utf-8")
    wheels, site = work / "wheels", work / "site"
    pip("wheel", "--no-deps", "--no-build-isolation", "--wheel-dir", str(wheels), str(source))
    (wheel,) = wheels.glob("batchcore_acme-0.1.0-*.whl")
    pip("install", "--no-deps", "--no-index", "--target", str(site), str(wheel))
    return Tutorial(source=source, site=site)


def pip(*args: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"pip {args[0]} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture
def on_path(tutorial: Tutorial, monkeypatch: pytest.MonkeyPatch) -> Tutorial:
    """The installed package importable in this process, with no Acme settings around."""
    monkeypatch.syspath_prepend(str(tutorial.site))
    monkeypatch.delenv("ACME_API_KEY", raising=False)
    monkeypatch.delenv("ACME_BASE_URL", raising=False)
    return tutorial


def child_env(tutorial: Tutorial, home: Path) -> dict[str, str]:
    """The environment of a command the tutorial shows: the package installed, a private
    store, and the ``batchcore`` command of this interpreter first on the PATH."""
    bin_dir = home / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    command = bin_dir / "batchcore"
    command.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m batchcore "$@"\n')
    command.chmod(0o755)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BATCHCORE_", "ACME_")) and key != "PYTHONPATH"
    }
    env.update(
        PATH=os.pathsep.join([str(bin_dir), env.get("PATH", "")]),
        PYTHONPATH=str(tutorial.site),
        BATCHCORE_HOME=str(home),
        BATCHCORE_STORE=str(home / "jobs.sqlite3"),
    )
    return env


# -- the document -------------------------------------------------------------------------------


def test_every_code_block_of_the_package_is_a_marked_file() -> None:
    assert set(package_files()) == PACKAGE_FILES
    unmarked = [b.line for b in blocks() if b.language in ("python", "toml") and not marked_path(b)]
    assert not unmarked, f"python/toml blocks without a '# file:' line at lines {unmarked}"
    layout = only_block("text", "pyproject.toml").text
    for path in PACKAGE_FILES:
        assert Path(path).name in layout, f"the layout does not show {path}"


def test_the_sessions_run_as_shown(on_path: Tutorial) -> None:
    sessions = blocks("pycon")
    assert len(sessions) == 3
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report = io.StringIO()
    names: dict[str, Any] = {}  # one session across the page, as a reader types it
    try:
        for block in sessions:
            test = parser.get_doctest(block.text, names, "tutorial", str(DOC), block.line)
            runner.run(test, out=report.write, clear_globs=False)
            names = test.globs  # (a DocTest runs on a copy of the names it is given)
    finally:
        emulator = names.get("emulator")
        if emulator is not None:
            emulator.stop()
    results = runner.summarize(verbose=False)
    assert results.failed == 0, report.getvalue()
    typed = sum(line.startswith(">>> ") for b in sessions for line in b.text.splitlines())
    assert results.attempted == typed


def test_a_batch_runs_on_the_emulator(on_path: Tutorial) -> None:
    from acme_batch.provider import AcmeBatchProvider
    from acme_batch.testing import AcmeEmulator

    from batchcore import BatchRequest, BatchState, ResultStatus
    from batchcore.testing import ManualClock

    with AcmeEmulator(clock=ManualClock()) as emulator:
        provider = AcmeBatchProvider(config={"base_url": emulator.url, "api_key": emulator.api_key})
        requests = [
            BatchRequest(
                custom_id=f"doc-{n}",
                model="acme-large-1",
                messages=[
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": [{"type": "text", "text": f"Summarise {n}"}]},
                ],
                params={"max_tokens": 20, "top_k": 3},
            )
            for n in range(3)
        ]
        bad = emulator.failing_request("doc-bad", "acme-large-1")
        [payload] = provider.prepare_payloads([*requests, bad])
        handle = provider.submit(payload)
        payload.discard()
        assert provider.poll_status(handle).state is BatchState.VALIDATING
        assert provider.cancel(handle).state is BatchState.CANCELLED
        cancelled = list(provider.fetch_results(handle))
        assert {r.status for r in cancelled} == {ResultStatus.CANCELLED}
        assert all(r.retryable for r in cancelled)

        [payload] = provider.prepare_payloads([*requests, bad])
        handle = provider.submit(payload)
        payload.discard()
        emulator.advance(30)
        assert provider.poll_status(handle).state is BatchState.IN_PROGRESS
        emulator.advance(60)
        status = provider.poll_status(handle)
        assert (status.state, status.total, status.completed, status.failed) == (
            BatchState.COMPLETED,
            4,
            3,
            1,
        )
        results = {result.custom_id: result for result in provider.fetch_results(handle)}
        provider.close()
    assert results["doc-1"].text == "Acme says: Summarise 1"
    assert results["doc-1"].usage is not None and results["doc-1"].usage.output_tokens == 4
    assert results["doc-bad"].error is not None
    assert (results["doc-bad"].error.code, results["doc-bad"].retryable) == (
        "invalid_request",
        False,
    )
    assert sorted(results) == ["doc-0", "doc-1", "doc-2", "doc-bad"]


# -- the package's tests and the conformance kit ------------------------------------------------


def outcomes(recorder: pytest.HookRecorder) -> dict[str, str]:
    """{class::test (without parameters): worst outcome} of an inline run."""
    rank = {"passed": 0, "skipped": 1, "failed": 2}
    seen: dict[str, str] = {}
    for report in recorder.getreports("pytest_runtest_logreport"):
        if report.passed and report.when != "call":
            continue
        name = "::".join(report.nodeid.split("::")[1:]).split("[")[0]
        if rank[report.outcome] >= rank[seen.get(name, "passed")]:
            seen[name] = report.outcome
    return seen


def write_tests(pytester: pytest.Pytester, tutorial: Tutorial, **replaced: str) -> None:
    """The package's tests as a tests/ folder of the pytester directory (*replaced*: modules
    given other text), importing the installed package."""
    tests = pytester.path / "tests"
    tests.mkdir()
    for source in (tutorial.source / "tests").glob("*.py"):
        text = replaced.get(source.stem, source.read_text("utf-8"))
        (tests / source.name).write_text(text, "utf-8")
    pytester.syspathinsert(tutorial.site)


def test_the_package_s_tests_pass_with_the_conformance_kit(
    pytester: pytest.Pytester, on_path: Tutorial
) -> None:
    write_tests(pytester, on_path)
    recorder = pytester.inline_run(*QUIET)
    results = outcomes(recorder)
    problems = {
        report.nodeid: report.longreprtext
        for report in recorder.getreports("pytest_runtest_logreport")
        if not report.passed
    }
    assert not problems, problems  # nothing failed, nothing skipped
    kit = {f"TestAcmeContract::{name}" for name in KIT_TESTS}
    assert set(results) == kit | OWN_TESTS
    assert recorder.ret == 0


def test_the_quoted_kit_failure_is_the_kit_s(pytester: pytest.Pytester, on_path: Tutorial) -> None:
    quoted = only_block("text", "AmbiguousSubmitError").text.splitlines()
    failed_line, message = quoted[0], quoted[1]
    contract = (on_path.source / "tests" / "test_contract.py").read_text("utf-8")
    without_find_batches = contract + textwrap.dedent(
        """

        from batchcore.plugin import BaseBatchProvider

        _Acme = AcmeBatchProvider


        class AcmeBatchProvider(_Acme):  # the tutorial's provider, find_batches left out
            find_batches = BaseBatchProvider.find_batches
        """
    )
    write_tests(pytester, on_path, test_contract=without_find_batches)
    recorder = pytester.inline_run(*QUIET, "-k", LOST_CREATE_TEST)
    failures = [r for r in recorder.getreports("pytest_runtest_logreport") if r.failed]
    assert [r.nodeid for r in failures] == [failed_line.removeprefix("FAILED ")]
    assert message in failures[0].longreprtext


# -- the commands it shows ----------------------------------------------------------------------


def test_batchcore_providers_lists_it(tutorial: Tutorial, tmp_path: Path) -> None:
    shown = only_block("console", "$ batchcore providers").text.splitlines()
    (acme_line,) = [line for line in shown if line.startswith("acme ")]
    listed = subprocess.run(
        ["batchcore", "providers"],
        env=child_env(tutorial, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert listed.returncode == 0, listed.stderr
    assert acme_line in listed.stdout.splitlines()


def test_the_sandbox_command_runs(tutorial: Tutorial, tmp_path: Path) -> None:
    script = only_block("sh", "--sandbox").text
    ran = subprocess.run(
        ["bash", "-e", "-c", script],
        cwd=tmp_path,
        env=child_env(tutorial, tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert "SANDBOX: running against the bundled offline acme emulator" in ran.stderr
    results = [
        orjson.loads(line) for line in (tmp_path / "results.jsonl").read_bytes().splitlines()
    ]
    assert [(r["custom_id"], r["text"], r["sandbox"]) for r in results] == [
        ("q1", "Acme says: Hello", True),
        ("q2", "Acme says: Bonjour", True),
    ]
