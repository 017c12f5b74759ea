"""Discovery of a real, built and pip-installed distribution, and import lightness, each
checked in a fresh interpreter (an in-process check would see modules other tests imported)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SAMPLE = Path(__file__).parent / "dists" / "batchcore-sample"
VENDOR_MODULES = (
    "openai",
    "anthropic",
    "requests",
    "httpx",
    "httpx2",
    "urllib3",
    "google.genai",
    "mistralai",
)


def run_python(code: str, *, extra_path: Path | None = None) -> dict[str, object]:
    env = dict(os.environ)
    if extra_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(extra_path), env.get("PYTHONPATH")]))
    env.pop("BATCHCORE_PLUGINS", None)
    env.pop("BATCHCORE_STRICT_PLUGINS", None)
    out = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def installed_sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the sample distribution's wheel and pip-install it into a target directory that
    the child interpreters put on their path."""
    work = tmp_path_factory.mktemp("sample-dist")
    wheels = work / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(wheels),
            str(SAMPLE),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("batchcore_sample-1.2.3-*.whl")
    target = work / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "--no-index",
            "--target",
            str(target),
            str(wheel),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return target


def test_installed_distribution_is_discovered_without_registration(installed_sample: Path) -> None:
    result = run_python(
        """
        import json, sys
        import batchcore
        names = batchcore.batch_provider_registry.list()
        info = batchcore.batch_provider_registry.info("sample")
        before = "batchcore_sample.provider" in sys.modules
        cls = batchcore.batch_provider_registry.get("sample")
        print(json.dumps({"names": names, "dist": info.distribution, "version": info.version,
                          "description": info.description, "imported_before_get": before,
                          "cls": cls.__name__}))
        """,
        extra_path=installed_sample,
    )
    assert "sample" in result["names"]  # type: ignore[operator]
    assert result["dist"] == "batchcore-sample"
    assert result["version"] == "1.2.3"
    assert result["description"] == "The sample provider"
    assert result["imported_before_get"] is False
    assert result["cls"] == "SampleProvider"


def test_without_the_distribution_the_provider_is_absent() -> None:
    result = run_python(
        """
        import json, batchcore
        print(json.dumps({"names": batchcore.batch_provider_registry.list()}))
        """
    )
    assert "sample" not in result["names"]  # type: ignore[operator]


def test_import_and_list_import_no_vendor_sdk(installed_sample: Path) -> None:
    result = run_python(
        f"""
        import json, sys
        import batchcore
        from batchcore import batch_provider_registry
        after_import = sorted(m for m in {VENDOR_MODULES!r} if m in sys.modules)
        batch_provider_registry.list()
        after_list = sorted(m for m in {VENDOR_MODULES!r} if m in sys.modules)
        print(json.dumps({{"after_import": after_import, "after_list": after_list}}))
        """,
        extra_path=installed_sample,
    )
    assert result == {"after_import": [], "after_list": []}
