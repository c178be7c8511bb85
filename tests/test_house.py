"""The house rules of docs/architecture.md that import-linter does not see: imports inside
functions are only for optional third-party packages (never effnet's own modules, which
would hide an upward import or a circle), and the layers contract itself holds."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src" / "effnet"
# Packages effnet may use without depending on them (extras, or peers in benchmarks), so
# they are imported where they are needed: import effnet must work without them.
# torch and PIL only for their optional parts: tensorboard, and LittleCMS colour management.
OPTIONAL = {"onnx", "onnxruntime", "timm", "torchvision", "ray", "huggingface_hub", "skimage", "PIL", "torch",
            "fastapi", "starlette", "uvicorn", "prometheus_client", "nas_bench_graph", "openvino", "nncf",
            "torchao", "executorch", "onnxscript"}
OPTIONAL_SUBMODULES = {"torch": ("torch.utils.tensorboard",), "PIL": ("PIL.ImageCms",)}


def _function_imports() -> list[tuple[str, int, str]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for function in (n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))):
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    found += [(str(path.relative_to(SRC)), node.lineno, alias.name) for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    module = "." * node.level + (node.module or "")
                    found += [(str(path.relative_to(SRC)), node.lineno, f"{module}.{alias.name}".replace("..", "."))
                              for alias in node.names]
    return found


def _allowed(module: str) -> bool:
    if module.startswith(".") or module.split(".")[0] == "effnet":
        return False
    top = module.split(".")[0]
    if top not in OPTIONAL:
        return False
    only = OPTIONAL_SUBMODULES.get(top)
    return only is None or module.startswith(only)


def test_imports_inside_functions_are_only_for_optional_packages() -> None:
    bad = [f"{file}:{line} imports {module}" for file, line, module in _function_imports() if not _allowed(module)]
    assert not bad, "move these imports to the top of the module (see docs/architecture.md):\n" + "\n".join(bad)


def test_the_rule_catches_a_hidden_import() -> None:
    assert not _allowed("..factory") and not _allowed("effnet.weights") and not _allowed("yaml")
    assert _allowed("onnxruntime") and _allowed("torch.utils.tensorboard") and not _allowed("torch.nn")


@pytest.mark.skipif(shutil.which("lint-imports", path=str(Path(sys.executable).parent)) is None,
                    reason="import-linter is installed by ./run setup")
def test_layers_point_down_and_no_package_has_a_circle() -> None:
    linter = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(linter), "--no-cache"], capture_output=True, text=True,
                            cwd=SRC.parent.parent)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "2 kept, 0 broken" in result.stdout
