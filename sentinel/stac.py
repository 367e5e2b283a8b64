"""STAC search for Sentinel-2 L2A scenes: one search per season and shard, candidate scenes per chip.

Earth Search (`sentinel-2-l2a`, `sentinel-2-c1-l2a`) names band assets by common name (red, nir08, ...) and
Planetary Computer by ESA name (B04, B8A, ...); `SceneRef` hides the difference behind ESA band names. Cloud
cover is filtered client-side because not every STAC API implements `query=` (rustac silently ignores it).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pystac
import shapely
from pystac_client import Client
from pystac_client.exceptions import APIError
from pystac_client.stac_api_io import StacApiIO
from shapely.geometry import box, shape
from shapely.geometry.base import BaseGeometry

from sentinel.bands import BAND_NAMES, SCL_ASSET, asset_key
from sentinel.footprint import ChipLocation
from sentinel.seasons import Season

PROVIDERS = ("auto", "earth-search", "planetary-computer")


class StacUnavailableError(RuntimeError):
    """The STAC API cannot be used (unreachable, 5xx, timeouts, not a STAC API): fatal for the whole run."""


class MissingBandError(ValueError):
    """An item lacks an asset the chip needs."""

    def __init__(self, item_id: str, asset: str, detail: str = "") -> None:
        self.item_id = item_id
        self.asset = asset
        super().__init__(f"STAC item {item_id!r} has no asset {asset!r}{detail}; the scene cannot give a 12-band chip")


@dataclass
class StacConfig:
    url: str
    collection: str = "sentinel-2-l2a"
    provider: str = "auto"  # earth-search, planetary-computer, or auto: inferred per item from its asset keys
    max_cloud_cover: float = 20.0  # scene-level eo:cloud_cover (%), SSL4EO-S12 uses < 20 %
    timeout_s: float = 30.0
    retries: int = 3
    max_items: int = 500
    page_size: int = 100
    backoff_s: float = 1.0  # first retry delay; doubles each retry

    def __post_init__(self) -> None:
        if not re.match(r"^https?://[^/\s]+", self.url or ""):
            raise ValueError(f"STAC url {self.url!r}: give the API root, e.g. https://earth-search.aws.element84.com/v1")
        if self.provider not in PROVIDERS:
            raise ValueError(f"STAC provider {self.provider!r}: use one of {', '.join(PROVIDERS)}")
        if not self.collection:
            raise ValueError("STAC collection is empty: use e.g. sentinel-2-l2a or sentinel-2-c1-l2a")
        if not 0 <= self.max_cloud_cover <= 100:
            raise ValueError(f"max_cloud_cover {self.max_cloud_cover}: must be a percentage in [0, 100]")
        if not self.timeout_s > 0:
            raise ValueError(f"STAC timeout_s {self.timeout_s}: must be positive seconds")
        if self.retries < 0:
            raise ValueError(f"STAC retries {self.retries}: must be >= 0")
        if self.max_items < 1 or self.page_size < 1:
            raise ValueError(f"STAC max_items {self.max_items} / page_size {self.page_size}: must be >= 1")
        if self.backoff_s < 0:
            raise ValueError(f"STAC backoff_s {self.backoff_s}: must be >= 0")


@dataclass
class SceneRef:
    item_id: str
    collection: str
    provider: str  # earth-search or planetary-computer
    datetime: str  # acquisition, ISO 8601
    epsg: int  # 0 when the item does not say; the reader then uses the COG's own CRS
    processing_baseline: str | None
    boa_offset_applied: bool
    cloud_cover: float | None
    nodata_pct: float | None
    band_hrefs: dict[str, str]  # ESA band name -> href, the 12 chip bands
    scl_href: str
    geometry: BaseGeometry  # lon/lat footprint of the valid data

    @property
    def rank(self) -> tuple[float, float, str, str]:
        """Sort key, best first: scene cloud cover, then nodata share; unknowns last; ties by date and id."""
        cloud = self.cloud_cover if self.cloud_cover is not None else 101.0
        nodata = self.nodata_pct if self.nodata_pct is not None else 101.0
        return (cloud, nodata, self.datetime, self.item_id)


def infer_provider(assets: dict[str, Any]) -> str:
    """earth-search when band assets use common names, planetary-computer when they use ESA names."""
    if "B04" in assets or "B02" in assets:
        return "planetary-computer"
    if "red" in assets or "blue" in assets:
        return "earth-search"
    raise ValueError(f"cannot tell the STAC provider from asset keys {sorted(assets)[:12]}: expected Earth Search "
                     "(red, nir, ...) or Planetary Computer (B04, B08, ...) keys; set provider explicitly")


def _epsg(props: dict[str, Any], assets: dict[str, Any]) -> int:
    for src in (props, *(a for a in assets.values() if isinstance(a, dict))):
        if src.get("proj:epsg"):
            return int(src["proj:epsg"])
        code = str(src.get("proj:code") or "")
        if code.upper().startswith("EPSG:"):
            return int(code.split(":")[1])
    zone, band = props.get("mgrs:utm_zone"), props.get("mgrs:latitude_band")
    tile = str(props.get("s2:mgrs_tile") or "")
    if zone is None and re.match(r"^\d{2}[C-X][A-Z]{2}$", tile):
        zone, band = int(tile[:2]), tile[2]
    if zone is not None and band:
        return (32600 if str(band).upper() >= "N" else 32700) + int(zone)
    return 0


def _baseline(props: dict[str, Any]) -> str | None:
    for key in ("s2:processing_baseline", "processing:version"):
        if props.get(key):
            return str(props[key])
    m = re.search(r"_N(\d{2})(\d{2})_", str(props.get("s2:product_uri") or ""))
    return f"{m.group(1)}.{m.group(2)}" if m else None


def scene_from_item(item: pystac.Item | dict[str, Any], provider: str = "auto") -> SceneRef:
    """The chip-relevant facts of one STAC item; MissingBandError when a band or SCL asset is absent."""
    d = item.to_dict(include_self_link=False, transform_hrefs=False) if isinstance(item, pystac.Item) else item
    item_id = str(d.get("id", "?"))
    props = d.get("properties") or {}
    assets = d.get("assets") or {}
    prov = infer_provider(assets) if provider == "auto" else provider
    if prov not in PROVIDERS[1:]:
        raise ValueError(f"STAC provider {prov!r}: use one of {', '.join(PROVIDERS)}")
    hrefs = {}
    for name in BAND_NAMES:
        key = asset_key(name, prov)
        href = (assets.get(key) or {}).get("href")
        if not href:
            raise MissingBandError(item_id, key, f" (band {name}, {prov} naming)")
        hrefs[name] = href
    scl = (assets.get(SCL_ASSET[prov]) or {}).get("href")
    if not scl:
        raise MissingBandError(item_id, SCL_ASSET[prov], " (scene classification, used as the cloud mask)")
    geom = d.get("geometry")
    geometry = shape(geom) if geom else box(*d["bbox"]) if d.get("bbox") else None
    if geometry is None:
        raise ValueError(f"STAC item {item_id!r} has neither geometry nor bbox; it cannot be matched to chips")
    cloud, nodata = props.get("eo:cloud_cover"), props.get("s2:nodata_pixel_percentage")
    return SceneRef(
        item_id=item_id,
        collection=str(d.get("collection") or ""),
        provider=prov,
        datetime=str(props.get("datetime") or props.get("start_datetime") or ""),
        epsg=_epsg(props, assets),
        processing_baseline=_baseline(props),
        boa_offset_applied=bool(props.get("earthsearch:boa_offset_applied", False)),
        cloud_cover=float(cloud) if cloud is not None else None,
        nodata_pct=float(nodata) if nodata is not None else None,
        band_hrefs=hrefs,
        scl_href=scl,
        geometry=geometry,
    )


class SceneSearch(dict[str, list[SceneRef]]):
    """location_id -> candidate scenes, best first; `problems` keeps per-location reasons for skipped items."""

    def __init__(self) -> None:
        super().__init__()
        self.problems: dict[str, list[str]] = {}
        self.n_items = 0


def _transient(exc: APIError) -> bool:
    code = getattr(exc, "status_code", None)
    return code is None or code >= 500 or code == 429


def _needs_signing(cfg: StacConfig) -> bool:
    """Planetary Computer blob hrefs need a SAS token; `auto` recognises the PC API by its host."""
    return cfg.provider == "planetary-computer" or (
        cfg.provider == "auto" and "planetarycomputer.microsoft.com" in cfg.url)


def _modifier(cfg: StacConfig) -> Callable[[Any], None] | None:
    if not _needs_signing(cfg):
        return None
    try:
        import planetary_computer
    except ImportError as exc:  # pragma: no cover - a declared dependency
        raise StacUnavailableError("Planetary Computer hrefs must be signed: pip install planetary-computer") from exc
    return planetary_computer.sign_inplace


def _fetch_items(cfg: StacConfig, bbox: tuple[float, float, float, float], season: Season) -> list[dict[str, Any]]:
    """All items of the search, paging through results; retried with backoff on transient faults."""
    delay, last = cfg.backoff_s, ""
    for attempt in range(cfg.retries + 1):
        try:
            io = StacApiIO(timeout=cfg.timeout_s, max_retries=None)
            client = Client.open(cfg.url, stac_io=io, modifier=_modifier(cfg), timeout=cfg.timeout_s)
            search = client.search(collections=[cfg.collection], bbox=bbox, datetime=season.datetime_range,
                                   max_items=cfg.max_items, limit=min(cfg.page_size, cfg.max_items))
            return list(search.items_as_dicts())
        except APIError as exc:
            if not _transient(exc):
                raise StacUnavailableError(_one_line(cfg, f"HTTP {exc.status_code}: {_short(exc)}",
                                                     "check the URL and the collection name")) from None
            code = getattr(exc, "status_code", None)
            last = f"HTTP {code}: {_short(exc)}" if code else _short(exc)
        except Exception as exc:  # noqa: BLE001 - pystac-client raises many types for a non-STAC answer
            raise StacUnavailableError(_one_line(cfg, f"{type(exc).__name__}: {_short(exc)}",
                                                 "check that the URL is a STAC API root with item search")) from None
        if attempt < cfg.retries:
            time.sleep(delay)
            delay *= 2
    raise StacUnavailableError(_one_line(cfg, f"still failing after {cfg.retries + 1} attempts: {last}",
                                         "check the network or the API status, or raise --stac timeout/retries"))


def _short(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text[:200] + ("..." if len(text) > 200 else "")


def _one_line(cfg: StacConfig, what: str, fix: str) -> str:
    return f"STAC API {cfg.url} (collection {cfg.collection}) is unusable: {what}; {fix}"


def search_scenes(cfg: StacConfig, locations: Sequence[ChipLocation], season: Season) -> SceneSearch:
    """One search for the union bbox of `locations` in `season`; per location the scenes covering its chip.

    Items above `cfg.max_cloud_cover` are dropped here; items lacking a band are skipped and recorded in
    `result.problems[location_id]` for the locations they would have covered.
    """
    result = SceneSearch()
    if not locations:
        return result
    bounds = [loc.lonlat_bounds for loc in locations]
    union = (min(b[0] for b in bounds), min(b[1] for b in bounds), max(b[2] for b in bounds),
             max(b[3] for b in bounds))
    items = _fetch_items(cfg, union, season)
    result.n_items = len(items)
    scenes: list[SceneRef] = []
    broken: list[tuple[BaseGeometry | None, str]] = []
    seen: set[str] = set()
    for d in items:
        if d.get("id") in seen:
            continue
        seen.add(str(d.get("id")))
        cloud = (d.get("properties") or {}).get("eo:cloud_cover")
        if cloud is not None and float(cloud) > cfg.max_cloud_cover:
            continue
        try:
            scenes.append(scene_from_item(d, cfg.provider))
        except (MissingBandError, ValueError) as exc:
            geom = shape(d["geometry"]) if d.get("geometry") else None
            broken.append((geom, str(exc)))
    scenes.sort(key=lambda s: s.rank)
    # a hair of tolerance so a chip whose edge lies on the footprint's edge still counts as covered
    footprints = [s.geometry.buffer(1e-9) for s in scenes]
    for fp in footprints:
        shapely.prepare(fp)
    for loc in locations:
        chip = loc.lonlat_polygon
        result[loc.location_id] = [s for s, fp in zip(scenes, footprints, strict=True) if fp.covers(chip)]
        reasons = [why for geom, why in broken if geom is None or geom.intersects(chip)]
        if reasons:
            result.problems[loc.location_id] = reasons
    return result


def iter_item_dicts(items: Iterable[pystac.Item | dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for it in items:
        yield it.to_dict(include_self_link=False, transform_hrefs=False) if isinstance(it, pystac.Item) else it


