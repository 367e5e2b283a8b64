"""Where Overture Maps data comes from: a pinned release on S3, or a local mirror with the same layout.

Layout (both): `<root>/theme=<theme>/type=<type>/*.parquet`, GeoParquet with a WKB `geometry` column and a
`bbox` struct {xmin, ymin, xmax, ymax}. The release string travels into every output row.
"""

from __future__ import annotations

import glob as globlib
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import RunAborted

# Only the last ~2 Overture releases stay public on S3: bump this when the pinned one is removed
# (see https://docs.overturemaps.org/release/latest/). Record it with every dataset built.
DEFAULT_RELEASE = "2025-10-22.0"
S3_BUCKET = "s3://overturemaps-us-west-2/release"
S3_REGION = "us-west-2"

# The (theme, type) pairs the facts query reads.
FACT_TYPES: tuple[tuple[str, str], ...] = (
    ("base", "land_use"),
    ("base", "land_cover"),
    ("base", "water"),
    ("base", "land"),
    ("base", "infrastructure"),
    ("buildings", "building"),
    ("places", "place"),
    ("transportation", "segment"),
)


class OvertureSourceError(RunAborted):
    """The Overture source itself is unusable (missing folder, corrupt file, missing column): every chip is
    affected, so this stops the shard instead of becoming per-chip errors."""


@dataclass(frozen=True)
class OvertureSource:
    """A pinned Overture release: `root` is `s3://overturemaps-us-west-2/release/<release>` or a local folder."""

    release: str = DEFAULT_RELEASE
    root: str = f"{S3_BUCKET}/{DEFAULT_RELEASE}"

    def __post_init__(self) -> None:
        if not self.release or "/" in self.release:
            raise ValueError(f"Overture release {self.release!r} is not a release name: use e.g. {DEFAULT_RELEASE!r}")
        if not self.root:
            raise ValueError("Overture root is empty: give an s3:// release URL or a local mirror folder")
        if self.is_remote:
            if not self.root.startswith("s3://"):
                raise ValueError(f"Overture root {self.root!r}: only s3:// URLs or local folders are supported")
            return
        path = Path(self.root)
        if not path.is_dir():
            raise OvertureSourceError(
                f"Overture mirror folder {self.root} does not exist: write one with overture.extract.extract_region "
                f"(theme=<t>/type=<y>/*.parquet) or use the S3 release"
            )
        object.__setattr__(self, "root", str(path.resolve()))

    @classmethod
    def s3(cls, release: str = DEFAULT_RELEASE) -> OvertureSource:
        return cls(release=release, root=f"{S3_BUCKET}/{release}")

    @classmethod
    def local(cls, path: str | Path, release: str = DEFAULT_RELEASE) -> OvertureSource:
        return cls(release=release, root=str(path))

    @property
    def is_remote(self) -> bool:
        return "://" in self.root

    def type_dir(self, theme: str, type_: str) -> str:
        return f"{self.root.rstrip('/')}/theme={theme}/type={type_}"

    def glob(self, theme: str, type_: str) -> str:
        """The parquet glob of one theme/type (what `read_parquet` gets)."""
        return f"{self.type_dir(theme, type_)}/*.parquet"

    def files(self, theme: str, type_: str) -> list[str]:
        """The parquet files of one theme/type in a local mirror, sorted; [] when the type is absent.

        For an S3 root the glob itself is returned (DuckDB expands it remotely)."""
        if self.is_remote:
            return [self.glob(theme, type_)]
        return sorted(globlib.glob(self.glob(theme, type_)))

    def available_types(self) -> list[tuple[str, str]]:
        """(theme, type) pairs that have at least one parquet file in a local mirror (all FACT_TYPES for S3)."""
        if self.is_remote:
            return list(FACT_TYPES)
        found = []
        for d in sorted(Path(self.root).glob("theme=*/type=*")):
            if d.is_dir() and any(d.glob("*.parquet")):
                found.append((d.parent.name.split("=", 1)[1], d.name.split("=", 1)[1]))
        return found
