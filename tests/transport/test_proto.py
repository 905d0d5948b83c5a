"""The checked-in gRPC modules are what pot.proto generates."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
GENERATED = ["pot_pb2.py", "pot_pb2.pyi", "pot_pb2_grpc.py"]


def test_generated_code_is_up_to_date(tmp_path: Path) -> None:
    target = tmp_path / "pot_flower" / "transport"
    target.mkdir(parents=True)
    shutil.copy(ROOT / "pot_flower/transport/pot.proto", target)
    subprocess.run(
        [sys.executable, "-m", "grpc_tools.protoc", "-I", ".", "--python_out=.",
         "--pyi_out=.", "--grpc_python_out=.", "pot_flower/transport/pot.proto"],
        cwd=tmp_path,
        check=True,
    )  # fmt: skip
    for name in GENERATED:
        fresh = (target / name).read_text()
        checked_in = (ROOT / "pot_flower/transport" / name).read_text()
        assert fresh == checked_in, f"{name} is stale: bash scripts/gen-proto.sh"
