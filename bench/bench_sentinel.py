"""Benchmark: Sentinel-2 chips per second per core (search + windowed read + preview + GeoTIFF) against the
baseline of reading whole scene files and cropping, and bytes read per chip against the chip's own size.

    python bench/bench_sentinel.py            # 60 chips from 2 local scenes of 30 km, well under a minute
    python bench/bench_sentinel.py --scene-km 30 --chips 100

Setup: scenes are written as one COG per band at native 10/20/60 m resolution (deflate, 512 px tiles by default,
--blocksize to change) with a textured surface, and their items are served by a real STAC API (`rustac serve`).
Everything runs on one thread (band_threads=1), so the rates are per core.

Bytes read are measured over HTTP: the same COGs are served by a small range-request HTTP server on localhost
that counts the body bytes it sends, and the chips are read through GDAL's /vsicurl/ exactly as from S3 or
Azure, with GDAL's cross-open cache disabled for that server (CPL_VSIL_CURL_NON_CACHED) so each chip pays its own
header reads (a cold-cache upper bound). The baseline downloads whole files, i.e. the sum of the 13 file sizes.
The physical floor is the chip itself: 12 bands x 264 x 264 x 2 bytes uncompressed (and its deflated GeoTIFF).
Real scenes are 109.8 km wide: the baseline's cost grows with the scene area, the windowed read's does not.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import re
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import rasterio  # noqa: E402
from affine import Affine  # noqa: E402
from pyproj import Transformer  # noqa: E402
from shapely.geometry import box, mapping  # noqa: E402

from sentinel.bands import BAND_NAMES, BANDS, asset_key  # noqa: E402
from sentinel.chipio import encode_geotiff  # noqa: E402
from sentinel.footprint import SNAP_M, ChipLocation  # noqa: E402
from sentinel.harmonize import apply_offset, harmonize_offset  # noqa: E402
from sentinel.preview import PreviewConfig, png_bytes, render_rgb  # noqa: E402
from sentinel.read import Chip, ReadConfig, read_best, scl_bad_fractions  # noqa: E402
from sentinel.seasons import Season  # noqa: E402
from sentinel.stac import SceneRef, StacConfig, search_scenes  # noqa: E402
from sentinel.stac_server import serve_stac, write_collection_json, write_items_ndjson  # noqa: E402

EPSG = 32632
SEASON = Season("2024-Q2", dt.date(2024, 4, 1), dt.date(2024, 6, 30))


def texture(rng: np.random.Generator, n: int, base: int) -> np.ndarray:
    """A land-like surface: smooth fields (upsampled noise) plus pixel noise, as uint16 DN."""
    coarse = rng.normal(0, 300, size=(n // 16 + 1, n // 16 + 1))
    smooth = np.kron(coarse, np.ones((16, 16)))[:n, :n]
    return np.clip(base + smooth + rng.normal(0, 40, size=(n, n)), 1, 15000).astype(np.uint16)


def write_scenes(root: Path, n_scenes: int, size_m: float, blocksize: int = 512,
                 seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    to_ll = Transformer.from_crs(EPSG, 4326, always_xy=True)
    items = []
    for s in range(n_scenes):
        x0, y0 = 400020.0 + s * (size_m + 6000), 5400000.0
        folder = root / f"scene{s}"
        folder.mkdir(parents=True)
        assets = {}
        layers = [(b.name, b.resolution_m, asset_key(b.name, "earth-search")) for b in BANDS]
        for name, res, key in [*layers, ("SCL", 20, "scl")]:
            n = int(size_m // res)
            data = (np.full((n, n), 4, np.uint8) if name == "SCL"
                    else texture(rng, n, 400 + 150 * BAND_NAMES.index(name)))
            path = folder / f"{name}.tif"
            with rasterio.open(path, "w", driver="COG", width=n, height=n, count=1, dtype=data.dtype.name,
                               crs=f"EPSG:{EPSG}", transform=Affine(res, 0, x0, 0, -res, y0), nodata=0,
                               compress="deflate", blocksize=blocksize, overviews="NONE") as dst:
                dst.write(data, 1)
            assets[key] = {"href": str(path), "type": "image/tiff; application=geotiff; profile=cloud-optimized"}
        fp = box(x0, y0 - size_m, x0 + size_m, y0).segmentize(1000)
        import shapely

        ll = shapely.transform(fp, to_ll.transform, interleaved=False)
        items.append({"type": "Feature", "stac_version": "1.0.0", "id": f"scene{s}", "collection": "sentinel-2-l2a",
                      "geometry": mapping(ll), "bbox": list(ll.bounds), "links": [], "assets": assets,
                      "properties": {"datetime": "2024-05-01T10:00:00Z", "eo:cloud_cover": 1.0 + s,
                                     "s2:processing_baseline": "05.10", "earthsearch:boa_offset_applied": True,
                                     "proj:epsg": EPSG, "_x0": x0, "_y0": y0}})
    return items


def chip_locations(items: list[dict[str, Any]], n: int, size_m: float, seed: int = 1) -> list[ChipLocation]:
    rng = np.random.default_rng(seed)
    chip_m = 2640.0
    out = []
    for i in range(n):
        p = items[i % len(items)]["properties"]
        x = p["_x0"] + SNAP_M * rng.integers(1, int((size_m - chip_m) // SNAP_M))
        y = p["_y0"] - SNAP_M * rng.integers(1, int((size_m - chip_m) // SNAP_M))
        out.append(ChipLocation(f"c{i:03d}", EPSG, float(x), float(y)))
    return out


def baseline_chip(loc: ChipLocation, scene: SceneRef) -> tuple[np.ndarray, np.ndarray]:
    """Read every band file whole, crop the chip window, replicate 20/60 m pixels to 10 m."""
    bands = []
    for href in [*scene.band_hrefs.values(), scene.scl_href]:
        with rasterio.open(href) as src:
            full = src.read(1)
            res = src.transform.a
            c = int(round((loc.x0 - src.transform.c) / res))
            r = int(round((src.transform.f - loc.y0) / res))
            k = int(round(res / loc.res_m))
            n = loc.size_px // k
            crop = full[r:r + n, c:c + n]
            bands.append(np.repeat(np.repeat(crop, k, axis=0), k, axis=1))
    scl = bands.pop().astype(np.uint8)
    scl_bad_fractions(scl)
    return apply_offset(np.stack(bands), harmonize_offset(scene)), scl


class _Ranges(BaseHTTPRequestHandler):
    root: Path
    sent = [0]
    lock = threading.Lock()

    def _file(self) -> Path | None:
        p = (self.root / self.path.lstrip("/")).resolve()
        return p if p.is_file() and self.root in p.parents else None

    def do_HEAD(self) -> None:  # noqa: N802
        p = self._file()
        if p is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(p.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()

    def do_GET(self) -> None:  # noqa: N802
        p = self._file()
        if p is None:
            self.send_error(404)
            return
        size = p.stat().st_size
        m = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range", ""))
        start, end = (int(m.group(1)), min(int(m.group(2) or size - 1), size - 1)) if m else (0, size - 1)
        with p.open("rb") as f:
            f.seek(start)
            body = f.read(end - start + 1)
        self.send_response(206 if m else 200)
        if m:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)
        with self.lock:
            self.sent[0] += len(body)

    def log_message(self, *args: Any) -> None:
        pass


def over_http(scene: SceneRef, root: Path, url: str) -> SceneRef:
    def h(p: str) -> str:
        return url + "/" + str(Path(p).relative_to(root))

    return SceneRef(**{**scene.__dict__, "band_hrefs": {k: h(v) for k, v in scene.band_hrefs.items()},
                       "scl_href": h(scene.scl_href)})


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--chips", type=int, default=60)
    ap.add_argument("--scenes", type=int, default=2)
    ap.add_argument("--scene-km", type=float, default=30.0, help="scene width (real scenes: 109.8 km)")
    ap.add_argument("--baseline-chips", type=int, default=8, help="chips timed for the whole-file baseline")
    ap.add_argument("--blocksize", type=int, default=512, help="COG tile size (a window reads whole tiles)")
    ap.add_argument("--http-chips", type=int, default=10, help="chips read over HTTP to count bytes")
    args = ap.parse_args()
    size_m = round(args.scene_km * 1000 / 60) * 60
    rcfg, pcfg = ReadConfig(), PreviewConfig()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        items = write_scenes(root, args.scenes, size_m, args.blocksize)
        print(f"wrote {args.scenes} scenes of {size_m / 1000:.1f} km ({len(BANDS) + 1} COGs each) "
              f"in {time.perf_counter() - t:.1f} s")
        locs = chip_locations(items, args.chips, size_m)
        write_items_ndjson(items, root / "items.ndjson")
        write_collection_json(root / "collection.json", "sentinel-2-l2a", (-180, -90, 180, 90),
                              dt.date(2015, 1, 1), dt.date(2030, 1, 1))

        with serve_stac(root / "collection.json", root / "items.ndjson") as url:
            search_scenes(StacConfig(url), locs[:1], SEASON)  # warm up the client import path
            t0 = time.perf_counter()
            found = search_scenes(StacConfig(url), locs, SEASON)
            t_search = time.perf_counter() - t0
        assert all(found[loc.location_id] for loc in locs), "every chip must have a scene"

        def finish(chip: Chip) -> None:
            png_bytes(render_rgb(chip.data, pcfg), pcfg.size)
            encode_geotiff(chip)

        # both ways on the same chips, interleaved so that machine load hits both alike
        nb = min(args.baseline_chips, len(locs))
        chips: dict[str, Chip] = {}
        t_win = t_base = 0.0
        for i, loc in enumerate(locs):
            t0 = time.perf_counter()
            chip = read_best(loc, found[loc.location_id], rcfg)
            finish(chip)
            t1 = time.perf_counter()
            chips[loc.location_id] = chip
            t_win += t1 - t0
            if i < nb:
                if i == nb - 1:
                    t_win_nb = t_win
                t0 = time.perf_counter()
                data, scl = baseline_chip(loc, chip.scene)
                finish(dataclasses.replace(chip, data=data, scl=scl))
                t_base += time.perf_counter() - t0
                np.testing.assert_array_equal(data, chip.data)  # the same chip, both ways
        per_search = t_search / len(locs)
        windowed_rate = len(locs) / (t_search + t_win)
        win_nb_rate = nb / (per_search * nb + t_win_nb)
        base_rate = nb / (per_search * nb + t_base)

        # bytes over HTTP
        os.environ["CPL_VSIL_CURL_NON_CACHED"] = "/vsicurl/http://127.0.0.1"
        handler = type("H", (_Ranges,), {"root": root, "sent": [0]})
        srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        http_url = f"http://127.0.0.1:{srv.server_port}"
        nh = min(args.http_chips, len(locs))
        t0 = time.perf_counter()
        for loc in locs[:nh]:
            remote = over_http(found[loc.location_id][0], root, http_url)
            chip = read_best(loc, [remote], rcfg)
            np.testing.assert_array_equal(chip.data, chips[loc.location_id].data)
        t_http = time.perf_counter() - t0
        srv.shutdown()
        srv.server_close()
        http_bytes = handler.sent[0] / nh
        scene0 = found[locs[0].location_id][0]
        whole_bytes = sum(Path(h).stat().st_size for h in [*scene0.band_hrefs.values(), scene0.scl_href])
        raw_chip = 12 * 264 * 264 * 2
        tiff_chip = np.mean([len(encode_geotiff(c)) for c in list(chips.values())[:10]])

    mb = 1e6
    print(f"\nsearch: 1 STAC search for {len(locs)} chips in {t_search * 1000:.0f} ms "
          f"({found.n_items} items)")
    print(f"windowed (this pipeline): {len(locs)} chips in {t_search + t_win:.2f} s -> "
          f"{windowed_rate:.1f} chips/s/core (search + read 12 bands & SCL + preview PNG + GeoTIFF)")
    print(f"same {nb} chips: windowed {win_nb_rate:.2f} chips/s/core, baseline (whole files, crop) "
          f"{base_rate:.2f} chips/s/core")
    print(f"speed-up: {win_nb_rate / base_rate:.1f}x  (scene {size_m / 1000:.1f} km; grows with scene area)")
    print(f"\nbytes per chip over HTTP (cold cache): windowed {http_bytes / mb:.2f} MB "
          f"({nh} chips, {nh / t_http:.1f} chips/s over localhost HTTP)")
    print(f"  baseline whole files: {whole_bytes / mb:.2f} MB  ({whole_bytes / http_bytes:.1f}x the windowed read)")
    print(f"  chip's own size: {raw_chip / mb:.2f} MB raw uint16, {tiff_chip / mb:.2f} MB as deflated GeoTIFF; "
          f"windowed read = {http_bytes / tiff_chip:.2f}x the deflated chip, {http_bytes / raw_chip:.2f}x raw")
    full = 109.8 * 1000
    print(f"  extrapolated to a real 109.8 km scene: whole files ~{whole_bytes * (full / size_m) ** 2 / mb:.0f} MB "
          "per chip; windowed unchanged")


if __name__ == "__main__":
    main()
