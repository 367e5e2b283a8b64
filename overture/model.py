"""The structured facts one chip gets from Overture Maps (stored as struct columns in the shards)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(slots=True)
class ClassArea:
    """Area of one Overture (theme/type, subtype, class) inside a chip footprint."""

    type: str  # Overture type: land_use, land_cover, water, land, infrastructure
    subtype: str
    cls: str  # Overture `class`
    area_m2: float
    fraction: float  # of the footprint area, 0..1 (overlaps between features are unioned per class)


@dataclass(slots=True)
class RoadLength:
    cls: str  # transportation segment class (motorway, primary, residential, ...)
    length_m: float


@dataclass(slots=True)
class NamedFeature:
    name: str
    type: str  # Overture type: water, land_use, place, ...
    subtype: str
    cls: str


@dataclass(slots=True)
class Facts:
    """What Overture says about one footprint. Empty lists mean 'queried, nothing there'."""

    footprint_m2: float
    classes: list[ClassArea] = field(default_factory=list)
    building_count: int = 0
    building_fraction: float = 0.0
    roads: list[RoadLength] = field(default_factory=list)
    named: list[NamedFeature] = field(default_factory=list)
    place_count: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Facts:
        return cls(
            footprint_m2=float(d["footprint_m2"]),
            classes=[ClassArea(**c) for c in d.get("classes") or []],
            building_count=int(d.get("building_count") or 0),
            building_fraction=float(d.get("building_fraction") or 0.0),
            roads=[RoadLength(**r) for r in d.get("roads") or []],
            named=[NamedFeature(**n) for n in d.get("named") or []],
            place_count=int(d.get("place_count") or 0),
        )

    def fraction(self, type_: str, cls: str | None = None) -> float:
        """Summed footprint fraction of one Overture type (optionally one class), capped at 1."""
        total = sum(c.fraction for c in self.classes if c.type == type_ and (cls is None or c.cls == cls))
        return min(total, 1.0)
