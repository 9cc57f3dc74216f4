"""The protos are the contract: buf lint is clean and the committed stubs are current."""

from __future__ import annotations

import filecmp
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_buf_lint_is_clean():
    buf = Path(sys.executable).with_name("buf")
    result = subprocess.run(
        [str(buf), "lint"], cwd=ROOT, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_python_stubs_match_the_protos(tmp_path):
    protos = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "protos").rglob("*.proto"))
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", "protos", f"--python_out={tmp_path}",
         f"--pyi_out={tmp_path}", f"--grpc_python_out={tmp_path}", *protos],
        cwd=ROOT, check=True,
    )  # fmt: skip
    generated = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*_pb2*.py*"))
    assert generated, "protoc generated nothing"
    stale = [
        str(rel)
        for rel in generated
        if not filecmp.cmp(tmp_path / rel, ROOT / "clients" / "python" / rel, shallow=False)
    ]
    assert not stale, f"stale generated code (run `make proto`): {stale}"
    shutil.rmtree(tmp_path)
