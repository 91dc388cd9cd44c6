"""Moving stale files aside: a result whose inputs changed is never kept in place, and never silently deleted."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

from ptst.io import write_text_atomic


def supersede(root: Path, into: Path, files: Sequence[Path], why: Sequence[str]) -> Path | None:
    """Move `files` (under `root`) to `into/STAMP/<path under root>`, each with one rename, and write why.txt
    there (one line per reason). Returns the folder, or None when there was nothing to move."""
    present = [f for f in files if f.exists()]
    if not present:
        return None
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S.%fZ")
    dest = into / stamp
    for f in present:
        target = dest / f.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, target)
    write_text_atomic(dest / "why.txt", "".join(f"{line}\n" for line in why))
    return dest
