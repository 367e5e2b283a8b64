"""Pixels from the vector world: a 10 m land-cover map, then Earth Search-style L2A scenes (one COG per band).

A scene is written as `<out>/<item id>/<B01..B12>.tif` (each at its native 10/20/60 m, uint16, nodata 0) plus
`SCL.tif` (20 m), and described by a STAC Item dict in the style of Earth Search's `sentinel-2-l2a` collection.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.features import rasterize
from rasterio.transform import Affine, from_origin
from shapely.geometry import box, mapping

from sentinel.bands import BANDS, BOA_ADD_OFFSET, asset_key
from sentinel.footprint import SNAP_M, ChipLocation
from synthetic import spectra
from synthetic.spectra import COVER_CODES, COVER_NAMES, N_CODES
from synthetic.world import World

COLLECTION = "sentinel-2-l2a"
BASELINE_04_FROM = dt.date(2022, 1, 25)
PAINT_ORDER = ("grass", "forest", "crops", "bare", "snow", "water", "built")  # later classes paint over earlier
# How much a feature's own random "variant" shifts its greenness (crop fields ripen at different times).
_GREEN_SHIFT = {"crops": 0.35, "grass": 0.15, "forest": 0.05}
_SCL_OF_COVER = {"water": 6, "forest": 4, "crops": 4, "grass": 4, "built": 5, "bare": 5, "snow": 11}
_S2_EXTENSIONS = [
    "https://stac-extensions.github.io/eo/v1.1.0/schema.json",
    "https://stac-extensions.github.io/projection/v1.1.0/schema.json",
    "https://stac-extensions.github.io/raster/v1.1.0/schema.json",
    "https://stac-extensions.github.io/mgrs/v1.0.0/schema.json",
]
COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


@dataclass
class LandCoverMap:
    """The world rasterized at `res` m: a cover code per pixel plus each pixel's feature variant in [-1, 1]."""

    epsg: int
    bounds: tuple[float, float, float, float]
    res: float
    cover: np.ndarray  # (H, W) uint8 cover codes, no seasonal snow
    variant: np.ndarray  # (H, W) float32
    world: World

    @property
    def transform(self) -> Affine:
        return from_origin(self.bounds[0], self.bounds[3], self.res, self.res)

    @property
    def shape(self) -> tuple[int, int]:
        return self.cover.shape  # type: ignore[return-value]

    def window(self, loc: ChipLocation) -> tuple[slice, slice]:
        """Row/column slices of a chip inside the map (the chip must lie inside it)."""
        if loc.epsg != self.epsg:
            raise ValueError(f"chip {loc.location_id} is in EPSG:{loc.epsg}, the map in EPSG:{self.epsg}")
        col = round((loc.x0 - self.bounds[0]) / self.res)
        row = round((self.bounds[3] - loc.y0) / self.res)
        n = round(loc.size_m / self.res)
        if row < 0 or col < 0 or row + n > self.shape[0] or col + n > self.shape[1]:
            raise ValueError(f"chip {loc.location_id} lies outside the land-cover map {self.bounds}")
        return slice(row, row + n), slice(col, col + n)

    def fractions(self, loc: ChipLocation, doy: int | None = None) -> dict[str, float]:
        """Share of each land-cover class inside a chip (seasonal snow included when `doy` is given)."""
        cover = self.cover if doy is None else self.seasonal(doy)[0]
        counts = np.bincount(cover[self.window(loc)].ravel(), minlength=N_CODES)
        total = counts.sum()
        return {name: float(counts[code] / total) for code, name in COVER_NAMES.items()}

    def seasonal(self, doy: int) -> tuple[np.ndarray, np.ndarray]:
        """(cover, greenness) on day-of-year `doy`: snow spreads from the glacier in winter, crops ripen."""
        cover = self.cover
        extent = self.world.snow_extent(doy)
        if extent is not None:
            snow = rasterize([extent], out_shape=self.shape, transform=self.transform, fill=0, default_value=1,
                             dtype="uint8").astype(bool)
            snowable = np.isin(cover, [COVER_CODES["grass"], COVER_CODES["bare"], COVER_CODES["crops"]])
            cover = np.where(snow & snowable, np.uint8(COVER_CODES["snow"]), cover)
        g = spectra.greenness_table(doy)[cover]
        shift = np.zeros(N_CODES, np.float32)
        for name, s in _GREEN_SHIFT.items():
            shift[COVER_CODES[name]] = s
        g = np.clip(g + shift[cover] * self.variant, 0.0, 1.0)
        return cover, g.astype(np.float32)


def _check_bounds(bounds: tuple[float, float, float, float], res: float) -> None:
    minx, miny, maxx, maxy = bounds
    if maxx <= minx or maxy <= miny:
        raise ValueError(f"bounds {bounds} are empty: give (minx, miny, maxx, maxy) with max > min")
    for v in bounds:
        if abs(v / SNAP_M - round(v / SNAP_M)) > 1e-6:
            raise ValueError(f"bounds {bounds}: every edge must be a multiple of {SNAP_M:g} m so the 10/20/60 m "
                             f"bands align; snap them (e.g. world.bounds)")
    if res != 10.0:
        raise ValueError(f"res={res}: the land-cover map is built at 10 m (the finest Sentinel-2 resolution)")


def land_cover_map(world: World, bounds: tuple[float, float, float, float] | None = None,
                   res: float = 10.0) -> LandCoverMap:
    """Rasterize the world's painted features (pixel centres) into a land-cover map over `bounds`."""
    bounds = bounds or world.bounds
    _check_bounds(bounds, res)
    width = round((bounds[2] - bounds[0]) / res)
    height = round((bounds[3] - bounds[1]) / res)
    transform = from_origin(bounds[0], bounds[3], res, res)
    frame = box(*bounds)
    painted = [f for f in world.features if f.cover is not None and f.geometry.intersects(frame)]
    rank = {c: i for i, c in enumerate(PAINT_ORDER)}
    # Polygons by paint rank, then roads (lines) on top; index 0 is the grass background.
    painted.sort(key=lambda f: (f.geometry.geom_type.endswith("LineString"), rank[str(f.cover)]))
    codes = [COVER_CODES[str(f.cover)] for f in painted]
    cover_of = np.array([COVER_CODES["grass"], *codes], np.uint8)
    rng = np.random.default_rng([world.seed, 7])
    variant_of = np.concatenate([[0.0], rng.uniform(-1.0, 1.0, len(painted))]).astype(np.float32)
    if painted:
        idx = rasterize(((f.geometry, i + 1) for i, f in enumerate(painted)), out_shape=(height, width),
                        transform=transform, fill=0, dtype="int32")
    else:
        idx = np.zeros((height, width), np.int32)
    return LandCoverMap(world.epsg, tuple(bounds), res, cover_of[idx], variant_of[idx], world)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- scenes


def processing_baseline(date: dt.date) -> str:
    """The L2A processing baseline of an acquisition: 05.10 from 2022-01-25 (with the +1000 offset), else 02.14."""
    return "05.10" if date >= BASELINE_04_FROM else "02.14"


def mgrs_tile(lon: float, lat: float, epsg: int) -> str:
    """The MGRS 100 km tile (e.g. 32TPT) of a point, given the UTM zone it is expressed in."""
    from pyproj import Transformer

    zone = epsg % 100
    x, y = Transformer.from_crs(4326, epsg, always_xy=True).transform(lon, lat)
    band = "CDEFGHJKLMNPQRSTUVWXX"[int((lat + 80) // 8)]
    col = ("ABCDEFGH", "JKLMNPQR", "STUVWXYZ")[(zone - 1) % 3][int(x // 100000) - 1]
    row = "ABCDEFGHJKLMNPQRSTUV"[(int(y // 100000) + (5 if zone % 2 == 0 else 0)) % 20]
    return f"{zone:02d}{band}{col}{row}"


def _blob_alpha(shape: tuple[int, int], transform: Affine, cx: float, cy: float, r: float,
                rng: np.random.Generator) -> np.ndarray:
    """Soft cloud opacity 0..1: full inside ~0.75 r, fading to 0 at r, with a lumpy edge."""
    h, w = shape
    xs = transform.c + (np.arange(w) + 0.5) * transform.a
    ys = transform.f + (np.arange(h) + 0.5) * transform.e
    dx = xs[None, :] - cx
    dy = ys[:, None] - cy
    ang = np.arctan2(dy, dx)
    lump = 1.0 + sum(0.08 * np.sin(k * ang + rng.uniform(0, 2 * np.pi)) for k in (3, 5, 7))
    d = np.hypot(dx, dy) / (r * lump)
    return np.clip((1.0 - d) / 0.25, 0.0, 1.0).astype(np.float32)


def _block_mean(a: np.ndarray, k: int) -> np.ndarray:
    h, w = a.shape
    return a.reshape(h // k, k, w // k, k).mean(axis=(1, 3))


def _write_cog(path: Path, arr: np.ndarray, transform: Affine, epsg: int, overviews: bool) -> None:
    profile = {
        "driver": "COG", "width": arr.shape[1], "height": arr.shape[0], "count": 1, "dtype": arr.dtype.name,
        "crs": f"EPSG:{epsg}", "transform": transform, "nodata": 0, "compress": "DEFLATE", "level": 1,
        "predictor": 2, "blocksize": 256, "overviews": "AUTO" if overviews else "NONE",
    }
    tmp = path.with_suffix(".tmp.tif")
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(arr, 1)
    tmp.replace(path)


def _lonlat_footprint(world: World, bounds: tuple[float, float, float, float]) -> tuple[dict[str, Any], list[float]]:
    poly = world.to_lonlat(box(*bounds).segmentize((bounds[2] - bounds[0]) / 4))
    return mapping(poly), [round(float(v), 7) for v in poly.bounds]


def write_scene(world: World, date: dt.date, out_dir: Path, *, lc: LandCoverMap | None = None,
                clouds: Sequence[tuple[float, float, float]] = (), boa_offset_applied: bool = True,
                provider: str = "earth-search", overviews: bool = False, seed: int | None = None) -> dict[str, Any]:
    """Write one L2A scene of the world on `date` under `out_dir` and return its STAC Item dict.

    `clouds` are (x, y, radius_m) blobs in the world's UTM metres (each with a shadow to its north-west).
    Post-2022 DNs carry the +1000 BOA offset unless `boa_offset_applied` (Earth Search removes it; Planetary
    Computer serves raw DNs). `provider` picks the asset keys (earth-search: common names; planetary-computer:
    B01..B12, SCL). `lc` reuses a land-cover map (build it once per world with `land_cover_map`).
    """
    if provider not in ("earth-search", "planetary-computer"):
        raise ValueError(f"provider {provider!r}: use 'earth-search' or 'planetary-computer'")
    for c in clouds:
        if len(c) != 3 or c[2] <= 0:
            raise ValueError(f"cloud {c!r}: give (x, y, radius_m) in the world's UTM metres with radius_m > 0")
    lc = lc or land_cover_map(world)
    doy = date.timetuple().tm_yday
    rng = np.random.default_rng([world.seed, date.toordinal(), 11 if seed is None else seed])
    cover, green_px = lc.seasonal(doy)
    brightness = 1.0 + 0.07 * lc.variant
    refl = spectra.reflectance(cover, green_px, brightness, rng)

    cloud = np.zeros(lc.shape, np.float32)
    shadow = np.zeros(lc.shape, np.float32)
    for cx, cy, r in clouds:
        cloud = np.maximum(cloud, _blob_alpha(lc.shape, lc.transform, cx, cy, r, rng))
        # Late-morning sun from the south-south-east casts shadows to the north-north-west.
        shadow = np.maximum(shadow, _blob_alpha(lc.shape, lc.transform, cx - 0.3 * r, cy + 0.7 * r, r, rng))
    if clouds:
        shadow = np.where(cloud > 0.4, 0.0, shadow)
        refl *= 1.0 - shadow * (1.0 - spectra.SHADOW_FACTOR)
        cloud_spec = np.asarray(spectra.CLOUD, np.float32)[:, None, None]
        refl = refl * (1.0 - cloud) + cloud_spec * cloud

    baseline = processing_baseline(date)
    offset = BOA_ADD_OFFSET if baseline >= "04.00" and not boa_offset_applied else 0
    platform = "sentinel-2a" if date.toordinal() % 2 else "sentinel-2b"
    lon_c, lat_c = world.to_lonlat(box(*lc.bounds).centroid).coords[0]
    tile = mgrs_tile(lon_c, lat_c, world.epsg)
    item_id = f"S2{platform[-1].upper()}_{tile}_{date:%Y%m%d}_0_L2A"
    scene_dir = out_dir / item_id
    scene_dir.mkdir(parents=True, exist_ok=True)

    assets: dict[str, Any] = {}
    minx, _, _, maxy = lc.bounds
    for i, b in enumerate(BANDS):
        k = round(b.resolution_m / lc.res)
        band = refl[i] if k == 1 else _block_mean(refl[i], k)
        dn = np.clip(np.rint(band) + offset, 1, 65535).astype(np.uint16)
        path = scene_dir / f"{b.name}.tif"
        transform = from_origin(minx, maxy, b.resolution_m, b.resolution_m)
        _write_cog(path, dn, transform, world.epsg, overviews)
        assets[asset_key(b.name, provider)] = {
            "href": str(path.resolve()), "type": COG_TYPE, "title": f"{b.common} - {b.resolution_m}m",
            "roles": ["data", "reflectance"], "gsd": b.resolution_m,
            "eo:bands": [{"name": b.name, "common_name": b.common, "center_wavelength": b.center_nm / 1000}],
            "proj:shape": list(dn.shape), "proj:transform": list(transform)[:6],
            "raster:bands": [{"nodata": 0, "data_type": "uint16", "bits_per_sample": 15,
                              "spatial_resolution": b.resolution_m, "scale": 0.0001,
                              "offset": -0.1 if offset else 0.0}],
        }

    scl = _scl(cover[::2, ::2], green_px[::2, ::2], cloud[::2, ::2], shadow[::2, ::2])
    scl_transform = from_origin(minx, maxy, 20, 20)
    scl_path = scene_dir / "SCL.tif"
    _write_cog(scl_path, scl, scl_transform, world.epsg, overviews)
    assets["scl" if provider == "earth-search" else "SCL"] = {
        "href": str(scl_path.resolve()), "type": COG_TYPE, "title": "Scene classification map (SCL)",
        "roles": ["data"], "gsd": 20, "proj:shape": list(scl.shape), "proj:transform": list(scl_transform)[:6],
        "raster:bands": [{"nodata": 0, "data_type": "uint8", "spatial_resolution": 20}],
    }

    counts = np.bincount(scl.ravel(), minlength=12) / scl.size * 100.0
    geometry, bbox = _lonlat_footprint(world, lc.bounds)
    props: dict[str, Any] = {
        "datetime": f"{date.isoformat()}T10:20:31.024000Z",
        "created": f"{date.isoformat()}T18:00:00.000000Z",
        "platform": platform, "constellation": "sentinel-2", "instruments": ["msi"],
        "eo:cloud_cover": round(float(counts[8] + counts[9] + counts[10]), 4),
        "proj:epsg": world.epsg, "proj:code": f"EPSG:{world.epsg}",
        "mgrs:utm_zone": int(tile[:2]), "mgrs:latitude_band": tile[2], "mgrs:grid_square": tile[3:],
        "grid:code": f"MGRS-{tile}", "s2:mgrs_tile": tile,
        "s2:product_type": "S2MSI2A", "s2:processing_baseline": baseline,
        "earthsearch:boa_offset_applied": bool(boa_offset_applied and baseline >= "04.00"),
        "s2:nodata_pixel_percentage": round(float(counts[0]), 4),
        "s2:cloud_shadow_percentage": round(float(counts[3]), 4),
        "s2:vegetation_percentage": round(float(counts[4]), 4),
        "s2:not_vegetated_percentage": round(float(counts[5]), 4),
        "s2:water_percentage": round(float(counts[6]), 4),
        "s2:snow_ice_percentage": round(float(counts[11]), 4),
        "s2:high_proba_clouds_percentage": round(float(counts[9]), 4),
        "s2:medium_proba_clouds_percentage": round(float(counts[8]), 4),
        "synthetic:seed": world.seed,
    }
    return {
        "type": "Feature", "stac_version": "1.0.0", "stac_extensions": list(_S2_EXTENSIONS),
        "id": item_id, "collection": COLLECTION, "geometry": geometry, "bbox": bbox,
        "properties": props, "assets": assets, "links": [],
    }


def _scl(cover: np.ndarray, green_px: np.ndarray, cloud: np.ndarray, shadow: np.ndarray) -> np.ndarray:
    """The scene classification at 20 m (nearest 10 m pixel): land classes, then shadow and cloud on top."""
    table = np.zeros(N_CODES, np.uint8)
    for name, code in COVER_CODES.items():
        table[code] = _SCL_OF_COVER[name]
    scl = table[cover]
    bare_crops = (cover == COVER_CODES["crops"]) & (green_px < spectra.CROP_BARE_BELOW)
    scl[bare_crops] = 5
    scl[shadow > 0.5] = 3
    scl[cloud > 0.4] = 8
    scl[cloud > 0.8] = 9
    return scl


def collection_dict(bbox: Sequence[float], start: dt.date, end: dt.date) -> dict[str, Any]:
    """A STAC Collection for the synthetic `sentinel-2-l2a` items."""
    return {
        "type": "Collection", "stac_version": "1.0.0", "id": COLLECTION,
        "title": "Sentinel-2 Level-2A (synthetic)",
        "description": "Synthetic Sentinel-2 L2A scenes generated by s2cap's synthetic world (offline demo/tests), "
                       "laid out like Earth Search's sentinel-2-l2a collection.",
        "license": "proprietary", "stac_extensions": [],
        "extent": {"spatial": {"bbox": [list(bbox)]},
                   "temporal": {"interval": [[f"{start.isoformat()}T00:00:00Z", f"{end.isoformat()}T23:59:59Z"]]}},
        "links": [],
        "item_assets": {b.common: {"type": COG_TYPE, "roles": ["data", "reflectance"], "gsd": b.resolution_m}
                        for b in BANDS},
    }


def utm_chip_centre(loc: ChipLocation) -> tuple[float, float]:
    """A chip's centre in its UTM metres (handy for placing cloud blobs)."""
    half = loc.size_m / 2.0
    return (loc.x0 + half, loc.y0 - half)


__all__ = ["COLLECTION", "LandCoverMap", "collection_dict", "land_cover_map", "mgrs_tile", "processing_baseline",
           "utm_chip_centre", "write_scene"]
