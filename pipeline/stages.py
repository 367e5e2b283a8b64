"""The stages of one shard. Each does one job behind a typed config, acts on the samples still `ok`, records
per-sample failures on the sample, and raises only for faults that would fail every sample (RunAborted).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import duckdb

from overture.query import FactsError, chip_facts
from overture.source import OvertureSource
from overture.tags import tags_from_facts
from pipeline.captioners.base import Captioner, CaptionRequest
from pipeline.errors import RunAborted
from pipeline.filters import Filter, apply_filters
from pipeline.record import Sample
from sentinel.chipio import encode_geotiff
from sentinel.preview import PreviewConfig, png_bytes, render_rgb
from sentinel.read import ChipReadError, ReadConfig, read_best
from sentinel.scl import scl_fractions
from sentinel.seasons import Season
from sentinel.stac import StacConfig, StacUnavailableError, search_scenes


class Stage(Protocol):
    name: str

    def run(self, samples: list[Sample]) -> Counter[str]:
        """Process the `ok` samples in place; return counters for the run summary."""
        ...


def live(samples: Sequence[Sample]) -> list[Sample]:
    return [s for s in samples if s.ok]


class SearchStage:
    """One STAC search per season for the whole shard; candidate scenes per chip, best first."""

    name = "search"

    def __init__(self, cfg: StacConfig) -> None:
        self.cfg = cfg

    def run(self, samples: list[Sample]) -> Counter[str]:
        counts: Counter[str] = Counter()
        groups: dict[tuple[str, str, str], list[Sample]] = defaultdict(list)
        for s in live(samples):
            groups[(s.season, s.season_start, s.season_end)].append(s)
        for (name, start, end), group in groups.items():
            season = Season(name, dt.date.fromisoformat(start), dt.date.fromisoformat(end))
            locations = {s.location_id: s.location for s in group if s.location is not None}
            try:
                found = search_scenes(self.cfg, list(locations.values()), season)
            except StacUnavailableError as exc:
                raise RunAborted(str(exc)) from None
            problems = getattr(found, "problems", {})
            for s in group:
                s.scenes = list(found.get(s.location_id, []))
                if s.scenes:
                    counts["found"] += 1
                elif problems.get(s.location_id):  # items cover the chip but none is usable (e.g. a band missing)
                    s.fail("read_error", "; ".join(problems[s.location_id]))
                    counts["read_error"] += 1
                else:
                    s.fail("no_scene", f"no {self.cfg.collection} item with cloud cover <= "
                                       f"{self.cfg.max_cloud_cover:g} % covers the chip in {name} ({start}..{end})")
                    counts["no_scene"] += 1
        return counts


class ReadStage:
    """Windowed reads of the chip from the best candidate scene; SCL kept as the cloud mask."""

    name = "read"

    def __init__(self, cfg: ReadConfig, threads: int = 4) -> None:
        self.cfg = cfg
        self.threads = threads

    def _one(self, s: Sample) -> None:
        assert s.location is not None
        try:
            chip = read_best(s.location, s.scenes, self.cfg)
        except ChipReadError as exc:
            s.fail(exc.reason, str(exc))
            return
        scene = chip.scene
        s.stac_item_id = scene.item_id
        s.stac_collection = scene.collection
        s.stac_provider = scene.provider
        s.datetime = scene.datetime
        s.processing_baseline = scene.processing_baseline
        s.harmonize_offset = chip.offset
        s.cloud_fraction = chip.cloud_fraction
        s.nodata_fraction = chip.nodata_fraction
        s.chip, s.scl = chip.data, chip.scl
        s.scene_fractions = scl_fractions(chip.scl)
        s.chip_tiff = encode_geotiff(chip)

    def run(self, samples: list[Sample]) -> Counter[str]:
        todo = live(samples)
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            list(pool.map(self._one, todo))
        return Counter(s.status if not s.ok else "read" for s in todo)


class FactsStage:
    """One batched Overture query for all the shard's footprints."""

    name = "facts"

    def __init__(self, con: duckdb.DuckDBPyConnection, source: OvertureSource) -> None:
        self.con = con
        self.source = source

    def run(self, samples: list[Sample]) -> Counter[str]:
        todo = live(samples)
        locations = {s.location_id: s.location for s in todo if s.location is not None}
        results = chip_facts(self.con, self.source, list(locations.values())) if locations else {}
        counts: Counter[str] = Counter()
        for s in todo:
            s.overture_release = self.source.release
            got = results.get(s.location_id)
            if isinstance(got, FactsError) or got is None:
                s.fail("facts_error", str(got) if got is not None else "the Overture query returned no result")
                counts["facts_error"] += 1
                continue
            s.facts = got
            s.tags = tags_from_facts(got)
            counts["facts"] += 1
        return counts


class PreviewStage:
    """The RGB preview the captioner sees (and the shard stores)."""

    name = "preview"

    def __init__(self, cfg: PreviewConfig) -> None:
        self.cfg = cfg
        self.params = cfg.to_json()

    def run(self, samples: list[Sample]) -> Counter[str]:
        todo = live(samples)
        for s in todo:
            assert s.chip is not None
            s.preview_png = png_bytes(render_rgb(s.chip, self.cfg), self.cfg.size)
            s.preview_params = self.params
        return Counter(preview=len(todo))


class CaptionStage:
    """The prompt chain through a captioner backend, all the shard's samples in one batch."""

    name = "caption"

    def __init__(self, captioner: Captioner) -> None:
        self.captioner = captioner

    def run(self, samples: list[Sample]) -> Counter[str]:
        todo = [s for s in live(samples) if s.preview_png is not None]
        requests = [CaptionRequest(s.id, s.preview_png or b"", list(s.tags), s.facts, dict(s.scene_fractions))
                    for s in todo]
        results = self.captioner.caption_batch(requests)
        if len(results) != len(todo):
            raise RunAborted(f"captioner {self.captioner.name} returned {len(results)} results for {len(todo)} "
                             "requests; this is a bug in the backend")
        counts: Counter[str] = Counter()
        for s, r in zip(todo, results, strict=True):
            s.captioner = self.captioner.name
            s.model, s.prompt_version, s.prompt_hash = r.model, r.prompt_version, r.prompt_hash
            s.prompt_tokens, s.completion_tokens = r.prompt_tokens, r.completion_tokens
            s.questions, s.answers = list(r.questions), list(r.answers)
            if r.error or not r.caption:
                s.fail("caption_error", r.error or "empty caption")
                counts["caption_error"] += 1
            else:
                s.caption = r.caption
                counts["captioned"] += 1
        return counts


class FilterStage:
    """Every filter on every captioned sample; `keep` is a column, nothing is deleted."""

    name = "filter"

    def __init__(self, filters: list[Filter]) -> None:
        self.filters = filters

    def run(self, samples: list[Sample]) -> Counter[str]:
        counts = apply_filters(samples, self.filters)
        for s in samples:
            s.drop_arrays()
        return Counter(counts)
