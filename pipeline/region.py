"""The region a run covers: a lon/lat bbox or a GeoJSON file, validated with messages that name the fix."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from pipeline.errors import InputError
from sentinel.footprint import ChipLocation


@dataclass(frozen=True)
class Region:
    geometry: BaseGeometry  # lon/lat (EPSG:4326)
    label: str

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        return tuple(float(v) for v in self.geometry.bounds)  # type: ignore[return-value]


def check_bbox(bbox: tuple[float, float, float, float], what: str = "--bbox") -> tuple[float, float, float, float]:
    w, s, e, n = bbox
    if not (-180 <= w <= 180 and -180 <= e <= 180):
        raise InputError(f"{what} {w},{s},{e},{n}: longitudes must lie in [-180, 180]")
    if not (-90 <= s <= 90 and -90 <= n <= 90):
        raise InputError(f"{what} {w},{s},{e},{n}: latitudes must lie in [-90, 90] (is the order W,S,E,N?)")
    if w >= e:
        raise InputError(f"{what} {w},{s},{e},{n}: west ({w}) must be less than east ({e}); the order is W,S,E,N")
    if s >= n:
        raise InputError(f"{what} {w},{s},{e},{n}: south ({s}) must be less than north ({n}); the order is W,S,E,N")
    return (w, s, e, n)


def parse_bbox(text: str) -> Region:
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 4:
        raise InputError(f"--bbox {text!r}: give four numbers W,S,E,N in degrees, e.g. --bbox 10.9,47.38,11.0,47.43")
    try:
        w, s, e, n = (float(p) for p in parts)
    except ValueError:
        raise InputError(
            f"--bbox {text!r}: not four numbers; give W,S,E,N in degrees, e.g. 10.9,47.38,11.0,47.43"
        ) from None
    check_bbox((w, s, e, n))
    return Region(box(w, s, e, n), f"bbox {w},{s},{e},{n}")


def load_geojson(path: Path) -> Region:
    if not path.exists():
        raise InputError(f"--geojson {path}: file not found; give the path of a GeoJSON Feature/FeatureCollection")
    try:
        doc = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"--geojson {path}: not valid JSON ({exc.__class__.__name__}: {exc})") from None
    kind = doc.get("type") if isinstance(doc, dict) else None
    if kind == "FeatureCollection":
        geoms = [f.get("geometry") for f in doc.get("features") or []]
    elif kind == "Feature":
        geoms = [doc.get("geometry")]
    elif kind in ("Polygon", "MultiPolygon"):
        geoms = [doc]
    else:
        raise InputError(f"--geojson {path}: expected a FeatureCollection, Feature, Polygon or MultiPolygon, "
                         f"got type {kind!r}")
    try:
        shapes = [shape(g) for g in geoms if g]
    except (ValueError, TypeError, AttributeError, KeyError) as exc:
        raise InputError(f"--geojson {path}: a geometry could not be read ({exc})") from None
    polys = [g for g in shapes if g.geom_type in ("Polygon", "MultiPolygon") and not g.is_empty]
    if not polys:
        raise InputError(f"--geojson {path}: no polygon found; the region must be a Polygon or MultiPolygon")
    geom = unary_union(polys)
    check_bbox(tuple(geom.bounds), what=f"--geojson {path}")  # type: ignore[arg-type]
    return Region(geom, f"geojson {path.name}")


def locations_region(locations: list[ChipLocation], label: str) -> Region:
    """The lon/lat envelope of a stored plan's chips (the region label of a run that executes a plan)."""
    bounds = [loc.lonlat_bounds for loc in locations]
    return Region(box(min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds),
                      max(b[3] for b in bounds)), label)
