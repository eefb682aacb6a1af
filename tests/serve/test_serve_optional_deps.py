"""Without fastapi, uvicorn, prometheus-client, pymilvus and faiss: the package, the CLI's --help and the
gallery tools still work, and the service says what to install."""

from __future__ import annotations

import subprocess
import sys

BLOCK = """
import sys
BLOCKED = {"fastapi", "uvicorn", "starlette", "prometheus_client", "pymilvus", "milvus_lite", "faiss"}
class Blocker:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"No module named {name!r} (blocked by the test)")
sys.meta_path.insert(0, Blocker())
"""

SCRIPT = BLOCK + """
import reid_export, reid_export.cli
import reid_export.serve.gallery, reid_export.serve.indexing, reid_export.serve.stores
import reid_export.serve.batching, reid_export.serve.service, reid_export.serve.server
from reid_export.errors import ReidExportError
for module in ("reid_export.serve.app", "reid_export.serve.store_milvus"):
    try:
        __import__(module)
        if module.endswith("store_milvus"):
            reid_export.serve.service.make_store("milvus", uri="x.db")
    except ReidExportError as e:
        assert 'pip install "reid-export[' in str(e), str(e)
        print("refused", module)
try:
    reid_export.serve.server.serve(reid_export.serve.service.ServeSettings(model="m.onnx", gallery="g"))
except ReidExportError as e:
    assert "[serve]" in str(e)
    print("refused serve")
sys.argv = ["reid-export", "--help"]
try:
    reid_export.cli.app()
except SystemExit as e:
    assert e.code == 0
"""


def test_the_package_and_help_work_without_the_serve_extras():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "refused reid_export.serve.app" in result.stdout
    assert "refused reid_export.serve.store_milvus" in result.stdout
    assert "refused serve" in result.stdout
    assert "serve" in result.stdout and "index" in result.stdout
