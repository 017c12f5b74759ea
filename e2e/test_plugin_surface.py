"""The plugins keep to the author surface, and discovering them costs nothing.

* A plugin's runtime modules import from batchcore only ``batchcore.plugin`` (the one surface the
  core keeps stable for provider authors); its emulator (``testing.py``, ``_emulation.py``) may
  also use the testing surface, ``batchcore.testing`` and its modules.
* Importing batchcore, listing the providers and ``batchcore providers``, with every plugin
  installed, import no vendor SDK and no provider module (only the SDK-free entry points).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PLUGINS = sorted(REPO.glob("plugins/*/batchcore_*/*.py"))
#: The modules of a plugin's emulator, which may use ``batchcore.testing`` too.
EMULATOR_MODULES = frozenset({"testing.py", "_emulation.py"})
AUTHOR_SURFACE = "batchcore.plugin"
TESTING_SURFACE = "batchcore.testing"
#: What discovery must never import: the vendors' SDKs and the HTTP clients they bring.
VENDOR_PACKAGES = (
    "openai",
    "anthropic",
    "google",
    "httpx",
    "httpx2",
    "mistralai",
    "together",
    "groq",
)


def core_imports(source: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every import of batchcore's own modules in *source* (at any
    depth: inside functions and ``TYPE_CHECKING`` blocks too)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
            if node.module == "batchcore":  # from batchcore import plugin, models
                names = [f"batchcore.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        found.extend(
            (node.lineno, name)
            for name in names
            if name == "batchcore" or name.startswith("batchcore.")
        )
    return found


def outside_the_surface(source: str, *, emulator: bool) -> list[str]:
    """The imports of *source* that reach past the surfaces a module may use."""

    def allowed(module: str) -> bool:
        if module == AUTHOR_SURFACE:
            return True
        return emulator and (module == TESTING_SURFACE or module.startswith(TESTING_SURFACE + "."))

    return [
        f"line {line}: {module}" for line, module in core_imports(source) if not allowed(module)
    ]


def test_the_check_tells_the_surfaces_apart() -> None:
    source = (
        "from batchcore.plugin import BaseBatchProvider\n"
        "from batchcore.models import BatchResult\n"
        "import batchcore.http\n"
        "from batchcore import plugin, models\n"
        "from batchcore.testing.emulation import Timing\n"
        "def later():\n"
        "    from batchcore.provider import BaseBatchProvider\n"
        "from batchcore_openai import _mapping\n"
    )
    assert outside_the_surface(source, emulator=False) == [
        "line 2: batchcore.models",
        "line 3: batchcore.http",
        "line 4: batchcore.models",
        "line 5: batchcore.testing.emulation",
        "line 7: batchcore.provider",
    ]
    assert outside_the_surface(source, emulator=True) == [
        "line 2: batchcore.models",
        "line 3: batchcore.http",
        "line 4: batchcore.models",
        "line 7: batchcore.provider",
    ]


def test_every_plugin_is_checked() -> None:
    packages = {path.parent.name for path in PLUGINS}
    assert packages >= {
        "batchcore_anthropic",
        "batchcore_gemini",
        "batchcore_groq",
        "batchcore_mistral",
        "batchcore_openai",
        "batchcore_together",
    }


@pytest.mark.parametrize("path", PLUGINS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_a_plugin_module_imports_only_the_author_surface(path: Path) -> None:
    emulator = path.name in EMULATOR_MODULES
    wrong = outside_the_surface(path.read_text(encoding="utf-8"), emulator=emulator)
    surfaces = "batchcore.plugin" + (" and batchcore.testing" if emulator else "")
    assert not wrong, (
        f"{path.relative_to(REPO)} imports batchcore beyond {surfaces}: {wrong}; what a "
        "provider needs from the core is re-exported by batchcore.plugin (add it there)"
    )


_DISCOVERY = """
import io, json, sys
import batchcore
names = batchcore.batch_provider_registry.list()
failures = [str(f) for f in batchcore.batch_provider_registry.failures]
from batchcore import cli
out = io.StringIO()
code = cli.main(["providers"], stdout=out)
print(json.dumps({
    "names": sorted(names),
    "failures": failures,
    "code": code,
    "listing": out.getvalue(),
    "modules": sorted(sys.modules),
}))
"""


def test_discovery_and_the_providers_command_import_no_vendor_sdk(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _DISCOVERY],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=tmp_path,  # the installed distributions, not the source tree on the path
    )
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    expected = {"anthropic", "azure-openai", "gemini", "groq", "mistral", "openai", "together"}
    assert set(seen["names"]) >= expected and not seen["failures"], seen["failures"]
    assert seen["code"] == 0
    for name in expected:
        assert name in seen["listing"]
    modules = seen["modules"]
    vendor = [m for m in modules if m.split(".")[0] in VENDOR_PACKAGES]
    assert not vendor, f"listing providers imported vendor modules: {vendor}"
    providers = [m for m in modules if m.startswith("batchcore_") and m.endswith(".provider")]
    assert not providers, f"listing providers imported provider modules: {providers}"
