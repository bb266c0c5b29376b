"""Write an output folder: nothing changes unless the whole compile succeeded, and a file whose
content is unchanged is not rewritten, so build systems see a second identical compile as a no-op."""

from __future__ import annotations

import filecmp
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_directory(out_dir: Path) -> Iterator[Path]:
    """Yield a fresh folder beside out_dir; on success its content is synced into out_dir, on error it vanishes."""
    out_dir = out_dir.resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        yield tmp
        if out_dir.exists():
            _sync(tmp, out_dir)
        else:
            tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _sync(src: Path, dest: Path) -> None:
    """Make dest's files equal src's: replace changed files one by one (os.replace is atomic), drop stale ones."""
    new = {p.relative_to(src) for p in src.rglob("*") if p.is_file()}
    for rel in sorted(new):
        target = dest / rel
        if target.is_file() and filecmp.cmp(src / rel, target, shallow=False):
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src / rel, target)
    for path in sorted(dest.rglob("*"), reverse=True):
        rel = path.relative_to(dest)
        if path.is_file() and rel not in new:
            path.unlink()
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()


def write_deps(deps_file: Path, targets: list[Path], prerequisites: list[Path]) -> None:
    """A Makefile-format dependency file: every output depends on every input of the compile."""

    def escape(p: Path) -> str:
        return str(p).replace(" ", "\\ ")

    lines = [" ".join(escape(t) for t in targets) + ": \\"]
    lines += [f"  {escape(p)} \\" for p in prerequisites[:-1]] + [f"  {escape(prerequisites[-1])}"]
    lines += [f"{escape(p)}:" for p in prerequisites]  # phony rules: a deleted input does not break make
    deps_file.parent.mkdir(parents=True, exist_ok=True)
    deps_file.write_text("\n".join(lines) + "\n")
