"""Grounding: does a caption name things the chip's facts and pixels contradict?

The rules form one small table. Each rule has a reason (its filter name), a word list or a parser, and a
predicate on the evidence. Evidence comes from two places that must agree before a claim is called wrong:

- the scene: class fractions of the chip itself, from the L2A scene classification (SCL) or from an external
  land-cover raster (ESRI 10 m LULC) via `landcover_evidence`;
- the Overture facts of the footprint (optional: when a sample has no facts only the scene decides).

Class rules (water, urban, snow, farmland) never fire without scene evidence for their class: Overture
coverage is uneven (unmapped ponds, missing buildings), so the pixels must agree that the class is absent.

| reason                 | fires when the caption says ...            | ... and the evidence shows                  |
|------------------------|--------------------------------------------|---------------------------------------------|
| grounding_water        | lake, river, sea, pond, body of water, ... | scene water ~0 and no Overture water        |
| grounding_urban        | city, town, buildings, streets, ...        | no buildings/residential/roads in the facts |
|                        |                                            | and built ~0 (land cover) or snow+water     |
|                        |                                            | >= 90 % (SCL)                               |
| grounding_snow         | snow, ice, glacier, frozen, ...            | scene snow ~0 and no Overture glacier/snow  |
| grounding_farmland     | farmland, crops, agricultural, orchard,... | no Overture agriculture, and crops ~0 (land |
|                        |                                            | cover) or SCL vegetation < 10 %             |
| grounding_name         | a capitalised proper name ("Lake Geneva")  | the name is not among facts.named or tags   |
| grounding_count        | "two bodies of water", "three lakes"       | fewer water bodies (SCL/land-cover connected|
|                        |                                            | components, named Overture water features)  |
| grounding_measure      | "500 kilometers long", "20 square km"      | larger than the chip can show               |
| grounding_speculative  | plant health ("healthy and dying plants"), | always: neither a 10 m chip nor the facts   |
|                        | people, cars, animals                      | can support it                              |

"Healthy and dying plants" (a seed-study failure) is `grounding_speculative`, not a class contradiction:
nothing says the plants are absent, but no evidence we hold can support a claim about plant health. It is a
separate reason so a dataset can keep such captions by disabling that one rule.

Words preceded in the same clause by a negation ("no lakes", "without any buildings") are not claims.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from overture.model import Facts
from pipeline.errors import InputError
from sentinel.bands import SCL_CLOUD, SCL_NODATA

if TYPE_CHECKING:
    from pipeline.record import Sample

Evidence = dict[str, float]

GROUNDING_REASONS: tuple[str, ...] = (
    "grounding_water",
    "grounding_urban",
    "grounding_snow",
    "grounding_farmland",
    "grounding_name",
    "grounding_count",
    "grounding_measure",
    "grounding_speculative",
)

# ESRI 10 m LULC as remapped by TerraMesh (the classes of ../shared/data/s2/lulc/*.tif).
LULC_CLASSES: dict[int, str] = {
    1: "water",
    2: "trees",
    3: "flooded_vegetation",
    4: "crops",
    5: "built",
    6: "bare",
    7: "snow",
    8: "cloud",
    9: "rangeland",
}
_LULC_VEGETATION = ("trees", "flooded_vegetation", "crops", "rangeland")


@dataclass(frozen=True, slots=True)
class GroundingConfig:
    rules: tuple[str, ...] = GROUNDING_REASONS  # enabled rules
    absent_max: float = 0.005  # a scene class under this fraction of the chip counts as absent
    urban_cover_min: float = 0.90  # snow + water share (SCL) that rules out a settlement
    urban_max_road_m: float = 1000.0  # a track through a snowfield is not a town
    farmland_vegetation_max: float = 0.10  # SCL vegetation share under which farmland is contradicted
    measure_tolerance: float = 1.05  # lengths up to diagonal x this, areas up to chip area x this
    water_body_min_pixels: int = 20  # connected water pixels that count as one water body
    chip_size_m: float = 2640.0  # fallback edge length when a sample has no UTM bounds
    negation_window: int = 4  # words before a match searched for "no", "without", ...

    def __post_init__(self) -> None:
        unknown = sorted(set(self.rules) - set(GROUNDING_REASONS))
        if unknown:
            raise InputError(f"grounding rules {unknown} unknown: use some of {', '.join(GROUNDING_REASONS)}")
        for name in ("absent_max", "urban_cover_min", "farmland_vegetation_max"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise InputError(f"grounding {name}={value} must be a fraction between 0 and 1")
        if self.measure_tolerance < 1.0:
            raise InputError(f"grounding measure_tolerance={self.measure_tolerance} must be >= 1")
        if self.chip_size_m <= 0 or self.urban_max_road_m < 0:
            raise InputError("grounding chip_size_m must be > 0 and urban_max_road_m >= 0")
        if self.water_body_min_pixels < 1 or self.negation_window < 0:
            raise InputError("grounding water_body_min_pixels must be >= 1 and negation_window >= 0")


@dataclass(frozen=True, slots=True)
class GroundingIssue:
    reason: str
    words: tuple[str, ...]  # the offending words or phrases, as written in the caption

    @property
    def detail(self) -> str:
        return ", ".join(self.words)


@dataclass(slots=True)
class GroundingContext:
    """Everything a rule may look at besides the caption."""

    facts: Facts | None
    evidence: Evidence
    cfg: GroundingConfig
    chip_m: tuple[float, float]  # chip width, height in metres
    names: tuple[str, ...] = ()  # known names (facts.named, tags), lowercase


# --- scene evidence -----------------------------------------------------------------------------------------


def count_components(mask: np.ndarray, min_pixels: int = 1) -> int:
    """Number of 4-connected True regions of at least `min_pixels` pixels (run-length union-find)."""
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 2 or not mask.any():
        return 0
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)  # row-major order: runs sorted by row, then column
    ends = np.nonzero(edges == -1)[1]
    parent = list(range(len(starts)))
    sizes = (ends - starts).tolist()

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    row_first = np.searchsorted(rows, np.arange(mask.shape[0] + 1)).tolist()
    starts_l, ends_l = starts.tolist(), ends.tolist()
    for r in range(1, mask.shape[0]):
        j, prev_end = row_first[r - 1], row_first[r]
        for run in range(row_first[r], row_first[r + 1]):
            s, e = starts_l[run], ends_l[run]
            while j < prev_end and ends_l[j] <= s:
                j += 1
            k = j
            while k < prev_end and starts_l[k] < e:
                a, b = find(k), find(run)
                if a != b:
                    parent[b] = a
                    sizes[a] += sizes[b]
                k += 1
    return sum(1 for i in range(len(parent)) if parent[i] == i and sizes[i] >= min_pixels)


def scl_evidence(scl: np.ndarray, water_body_min_pixels: int = 20) -> Evidence:
    """Fractions of the chip per SCL group, plus the number of connected water bodies."""
    scl = np.asarray(scl)
    if scl.ndim != 2 or scl.size == 0:
        raise InputError(f"SCL array has shape {scl.shape}: pass the (H, W) scene classification of one chip")
    counts = np.bincount(scl.ravel().astype(np.int64), minlength=12)[:12] / scl.size
    return {
        "water": float(counts[6]),
        "snow": float(counts[11]),
        "vegetation": float(counts[4]),
        "not_vegetated": float(counts[5]),
        "cloud": float(sum(counts[c] for c in SCL_CLOUD)),
        "nodata": float(sum(counts[c] for c in SCL_NODATA)),
        "water_bodies": float(count_components(scl == 6, water_body_min_pixels)),
    }


def landcover_evidence(source: str | Path | np.ndarray, water_body_min_pixels: int = 20) -> Evidence:
    """Evidence from a land-cover raster (a path to a 1-band GeoTIFF or an array) with `LULC_CLASSES` codes.

    Keys: the LULC classes, `vegetation` (trees + flooded vegetation + crops + rangeland), `not_vegetated`
    (built + bare) and `water_bodies` (connected water regions).
    """
    if isinstance(source, np.ndarray):
        lulc = source
    else:
        path = Path(source)
        if not path.is_file():
            raise InputError(f"land-cover raster {path} not found: pass an existing 1-band GeoTIFF")
        import rasterio

        with rasterio.open(path) as ds:
            lulc = ds.read(1)
    lulc = np.asarray(lulc)
    if lulc.ndim != 2 or lulc.size == 0:
        raise InputError(f"land-cover array has shape {lulc.shape}: pass one (H, W) band")
    counts = np.bincount(lulc.ravel().astype(np.int64), minlength=16) / lulc.size
    ev: Evidence = {name: float(counts[code]) for code, name in LULC_CLASSES.items()}
    ev["vegetation"] = sum(ev[k] for k in _LULC_VEGETATION)
    ev["not_vegetated"] = ev["built"] + ev["bare"]
    ev["water_bodies"] = float(count_components(lulc == 1, water_body_min_pixels))
    return ev


# Names a future `scene_fractions` record field may use, mapped onto evidence keys.
_STORED_KEYS = {"snow_ice": "snow", "water": "water", "vegetation": "vegetation", "not_vegetated": "not_vegetated"}


def scene_evidence(sample: Sample, water_body_min_pixels: int = 20) -> Evidence:
    """Scene evidence of one sample: from `sample.scl` when present, else from stored fractions.

    Without the SCL array only what the record keeps is known (cloud fraction, and `scene_fractions` when the
    record has it); class rules then stay silent for lack of evidence.
    """
    if sample.scl is not None:
        return scl_evidence(sample.scl, water_body_min_pixels)
    ev: Evidence = {}
    stored = getattr(sample, "scene_fractions", None) or {}
    for key, value in stored.items():
        ev[_STORED_KEYS.get(key, key)] = float(value)
    if sample.cloud_fraction is not None:
        ev.setdefault("cloud", float(sample.cloud_fraction))
    return ev


# --- word matching ------------------------------------------------------------------------------------------

_NEGATIONS = frozenset({"no", "not", "without", "nor", "never", "none", "absent", "lacks", "lacking", "devoid"})
# A negation reaches over a list ("no lakes, rivers or other water") but not over a clause break or a comma
# that opens a new noun phrase ("no trees, a large lake").
_CLAUSE_BREAK = re.compile(r"[.;:!?()\n]|\b(?:but|while|whereas|except|although|however|yet)\b", re.IGNORECASE)
_NEW_PHRASE = re.compile(r",\s*(?:a|an|the|with|there|it|its|and\s+(?:a|an|the))\b", re.IGNORECASE)
_LIST_WORDS = frozenset({"or", "nor", "and", "other", "any", "of", "sign", "signs", "evidence", "visible"})
_WORD = re.compile(r"[A-Za-z]+")


def _compile(words: Iterable[str]) -> re.Pattern[str]:
    alternatives = sorted(words, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(alternatives) + r")\b", re.IGNORECASE)


def _negated(text: str, start: int, window: int) -> bool:
    clause = _NEW_PHRASE.split(_CLAUSE_BREAK.split(text[:start])[-1])[-1]
    tokens = [w.lower() for w in _WORD.findall(clause)]
    for i in range(len(tokens) - 1, -1, -1):
        if tokens[i] in _NEGATIONS:
            between = [t for t in tokens[i + 1 :] if t not in _LIST_WORDS]
            return len(between) <= window
    return False


def find_claims(pattern: re.Pattern[str], text: str, negation_window: int = 4) -> list[str]:
    """Matches of `pattern` in `text` that are not negated, in order, without repeats."""
    found: list[str] = []
    for m in pattern.finditer(text):
        word = m.group(0)
        if not _negated(text, m.start(), negation_window) and word.lower() not in (f.lower() for f in found):
            found.append(word)
    return found


# --- facts predicates ---------------------------------------------------------------------------------------

_AGRICULTURE = frozenset(
    """
    agriculture farmland farmyard orchard vineyard plantation allotments crop greenhouse_horticulture
    animal_keeping aquaculture meadow
    """.split()
)
_DEVELOPED = frozenset(
    {"residential", "developed", "urban", "industrial", "commercial", "retail", "built_up", "construction"}
)
_SNOW = frozenset({"snow", "glacier", "ice", "ice_shelf", "permafrost"})


def _facts_has(facts: Facts | None, values: frozenset[str]) -> bool:
    """Does any Overture class with area in the chip have a subtype or class among `values`?"""
    if facts is None:
        return False
    for c in facts.classes:
        if c.fraction > 0 and (c.subtype in values or c.cls in values):
            return True
    return False


def _facts_water(facts: Facts | None) -> bool:
    if facts is None:
        return False
    return facts.fraction("water") > 0 or any(n.type == "water" for n in facts.named)


def _absent(ev: Evidence, keys: Sequence[str], cfg: GroundingConfig) -> bool | None:
    """True when every key is present and under `absent_max`; None when the scene says nothing."""
    if not all(k in ev for k in keys):
        return None
    return sum(ev[k] for k in keys) < cfg.absent_max


def _water_contradicted(facts: Facts | None, ev: Evidence, cfg: GroundingConfig) -> bool:
    keys = ["water", "flooded_vegetation"] if "flooded_vegetation" in ev else ["water"]
    return bool(_absent(ev, keys, cfg)) and not _facts_water(facts)


def _urban_contradicted(facts: Facts | None, ev: Evidence, cfg: GroundingConfig) -> bool:
    if facts is not None:
        roads_m = sum(r.length_m for r in facts.roads)
        if facts.building_count > 0 or roads_m > cfg.urban_max_road_m or _facts_has(facts, _DEVELOPED):
            return False
    if "built" in ev:  # land cover has a built class: use it directly
        return ev["built"] < cfg.absent_max
    if "snow" in ev and "water" in ev:
        return ev["snow"] + ev["water"] >= cfg.urban_cover_min
    return False


def _snow_contradicted(facts: Facts | None, ev: Evidence, cfg: GroundingConfig) -> bool:
    return bool(_absent(ev, ["snow"], cfg)) and not _facts_has(facts, _SNOW)


def _farmland_contradicted(facts: Facts | None, ev: Evidence, cfg: GroundingConfig) -> bool:
    if _facts_has(facts, _AGRICULTURE):
        return False
    if "crops" in ev:
        return ev["crops"] < cfg.absent_max
    # SCL cannot tell crops from forest; little vegetation at all is the best it can say. Ploughed winter
    # fields are "not vegetated" too, so facts showing farmland always win (checked above).
    if "vegetation" in ev:
        return ev["vegetation"] < cfg.farmland_vegetation_max
    return False


# --- the rule table -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ClassRule:
    """Words naming a feature class, and when the evidence contradicts that class being in the chip."""

    reason: str
    words: tuple[str, ...]  # regular-expression fragments matched as whole words, case-insensitive
    contradicted: Callable[[Facts | None, Evidence, GroundingConfig], bool]
    pattern: re.Pattern[str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _compile(self.words))

    def check(self, text: str, ctx: GroundingContext) -> list[str]:
        claims = find_claims(self.pattern, text, ctx.cfg.negation_window)
        if claims and self.contradicted(ctx.facts, ctx.evidence, ctx.cfg):
            return claims
        return []


WATER_WORDS = tuple(
    r"""
    lakes? rivers? riverbanks? seas? oceans? ponds? reservoirs? bays? bod(?:y|ies)\s+of\s+water
    water\s*bod(?:y|ies) streams? creeks? lagoons? estuar(?:y|ies) coast(?:s|line|lines|al)?
    shore(?:s|line|lines)? canals? harbou?rs? waterways? waterfront fjords? inlets? water
    """.split()
)
URBAN_WORDS = tuple(
    r"""
    city cities towns? township urban(?:ized|ised)? villages? hamlets? buildings? houses? housing
    streets? downtown suburbs? suburban residential skyscrapers? settlements? neighbou?rhoods?
    built[-\s]up rooftops? industrial factor(?:y|ies) warehouses?
    """.split()
)
SNOW_WORDS = tuple(
    r"""
    snow(?:y|s)? snow[-\s]covered snowfields? ice icy ice[-\s]covered glaciers? glacial frozen
    frost(?:y)? ice\s+sheets? ice\s+caps? permafrost
    """.split()
)
FARMLAND_WORDS = tuple(
    r"""
    farmlands? farms? farming croplands? crops? agricultur(?:e|al) cultivated cultivation
    plantations? orchards? vineyards? padd(?:y|ies) rice\s+fields? harvest(?:ed)? ploughed plowed
    """.split()
)
SPECULATIVE_WORDS = tuple(
    # plant health (a 10 m true-colour chip and map facts cannot support it), then things below a 10 m pixel
    r"""
    healthy unhealthy dying dead diseased? stressed wilt(?:ing|ed) withered thriving decaying
    people persons? pedestrians? crowds? cars? vehicles? traffic animals? cattle cows? sheep livestock
    wildlife birds?
    """.split()
)

CLASS_RULES: tuple[ClassRule, ...] = (
    ClassRule("grounding_water", WATER_WORDS, _water_contradicted),
    ClassRule("grounding_urban", URBAN_WORDS, _urban_contradicted),
    ClassRule("grounding_snow", SNOW_WORDS, _snow_contradicted),
    ClassRule("grounding_farmland", FARMLAND_WORDS, _farmland_contradicted),
    ClassRule("grounding_speculative", SPECULATIVE_WORDS, lambda facts, ev, cfg: True),
)

# --- proper names -------------------------------------------------------------------------------------------

# Capitalised words that are not place names even mid-sentence.
_NOT_NAMES = frozenset(
    """
    i sentinel sentinel-2 rgb ndvi ndwi nir swir utm earth copernicus esa overture openstreetmap osm l2a
    scl january february march april may june july august september october november december monday
    tuesday wednesday thursday friday saturday sunday spring summer autumn fall winter north south east
    west northern southern eastern western km image overall
    """.split()
)
# Sentence-initial words that a name run starts after ("The Danube" -> "Danube").
_LEADING = frozenset(
    """
    the a an this that these those in on at near along it its there here overall also and but several
    some most many two three to from of with by between across beside
    """.split()
)
_CONNECTORS = frozenset({"of", "de", "la", "le", "del", "du", "van", "von", "da", "di", "des"})
_NAME_TOKEN = re.compile(r"[A-Za-zÀ-ÖØ-öø-ÿ][\wÀ-ÖØ-öø-ÿ'’\-]*")
_SENTENCE = re.compile(r"(?<=[.!?;:])\s+|\n+|[\"“”]")


def find_names(text: str) -> list[str]:
    """Capitalised name runs ("Lake Geneva", "Gulf of Mexico", "Danube") outside sentence-initial position."""
    content = [
        m.group(0)
        for sentence in _SENTENCE.split(text)
        for k, m in enumerate(_NAME_TOKEN.finditer(sentence))
        if k > 0 and len(m.group(0)) > 3
    ]
    if len(content) >= 4 and sum(t[0].isupper() for t in content) >= 0.8 * len(content):
        return []  # Title Case text: capitals carry no signal
    names: list[str] = []
    for sentence in _SENTENCE.split(text):
        tokens = list(_NAME_TOKEN.finditer(sentence))
        i = 0
        while i < len(tokens):
            if not tokens[i].group(0)[0].isupper():
                i += 1
                continue
            run = [tokens[i]]
            j = i + 1
            while j < len(tokens) and sentence[run[-1].end() : tokens[j].start()].strip() == "":
                word = tokens[j].group(0)
                nxt = tokens[j + 1].group(0) if j + 1 < len(tokens) else ""
                if word[0].isupper():
                    run.append(tokens[j])
                elif word.lower() in _CONNECTORS and (nxt[:1].isupper() or nxt.lower() in _CONNECTORS):
                    run.append(tokens[j])
                else:
                    break
                j += 1
            words = [t.group(0) for t in run]
            if i == 0:  # sentence start: the first word is capitalised by grammar
                while words and words[0].lower() in _LEADING:
                    words = words[1:]
                if len(run) == 1:
                    words = []
            while words and (words[0].lower() in _NOT_NAMES or words[0].lower() in _CONNECTORS):
                words = words[1:]
            while words and (words[-1].lower() in _NOT_NAMES or words[-1].lower() in _CONNECTORS):
                words = words[:-1]
            if words and not (len(words) == 1 and words[0].isupper() and words[0].lower() in _NOT_NAMES):
                name = re.sub(r"['’]s?$", "", " ".join(words))
                if name not in names:
                    names.append(name)
            i = j
    return names


def known_names(facts: Facts | None, tags: Iterable[str] = ()) -> tuple[str, ...]:
    names = [n.name for n in facts.named] if facts is not None else []
    return tuple(sorted({n.strip().lower() for n in [*names, *tags] if n and n.strip()}))


def _name_known(name: str, known: Sequence[str]) -> bool:
    n = name.lower()
    for k in known:
        if len(k) >= 3 and (re.search(rf"\b{re.escape(k)}\b", n) or re.search(rf"\b{re.escape(n)}\b", k)):
            return True
    return False


def _check_names(text: str, ctx: GroundingContext) -> list[str]:
    return [n for n in find_names(text) if not _name_known(n, ctx.names)]


# --- counts -------------------------------------------------------------------------------------------------

_NUMBER_WORDS = {
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "a couple of": 2,
    "a pair of": 2,
    "several": 2,
    "multiple": 2,
    "numerous": 2,
    "many": 2,
    "both": 2,
}
_WATER_NOUNS = tuple(
    r"""
    bod(?:ies)\s+of\s+water water\s*bodies lakes ponds rivers reservoirs lagoons streams canals
    """.split()
)
_COUNT = re.compile(
    r"\b(?P<num>" + "|".join(sorted(map(re.escape, _NUMBER_WORDS), key=len, reverse=True)) + r"|\d{1,3})\s+"
    r"(?:[a-z-]+,?\s+){0,3}?(?P<noun>" + "|".join(_WATER_NOUNS) + r")\b",
    re.IGNORECASE,
)


def known_water_bodies(facts: Facts | None, ev: Evidence) -> int | None:
    """The most water bodies any evidence supports; None when nothing is known."""
    counts: list[int] = []
    if "water_bodies" in ev:
        counts.append(int(ev["water_bodies"]))
    if facts is not None:
        named = {n.name.lower() for n in facts.named if n.type == "water"}
        counts.append(max(len(named), 1 if facts.fraction("water") > 0 else 0))
    return max(counts) if counts else None


def _check_counts(text: str, ctx: GroundingContext) -> list[str]:
    known = known_water_bodies(ctx.facts, ctx.evidence)
    if not known:  # unknown, or no water at all (the water rule speaks then)
        return []
    found = []
    for m in _COUNT.finditer(text):
        num = m.group("num").lower()
        claimed = int(num) if num.isdigit() else _NUMBER_WORDS[num]
        if claimed > known and not _negated(text, m.start(), ctx.cfg.negation_window):
            found.append(m.group(0))
    return found


# --- measurements -------------------------------------------------------------------------------------------

_LENGTH_UNITS = {
    r"kilomet(?:er|re)s?|km": 1000.0,
    r"met(?:er|re)s?|m": 1.0,
    r"miles?|mi": 1609.344,
    r"feet|foot|ft": 0.3048,
    r"yards?|yd": 0.9144,
}
_AREA_UNITS = {
    r"square\s+kilomet(?:er|re)s?|sq\.?\s*km|km2|km²": 1e6,
    r"square\s+met(?:er|re)s?|sq\.?\s*m|m2|m²": 1.0,
    r"square\s+miles?|sq\.?\s*mi": 2.589988e6,
    r"hectares?|ha": 1e4,
    r"acres?": 4046.856,
}
_UNIT_ALTERNATIVES = "|".join(f"(?:{u})" for u in [*_AREA_UNITS, *_LENGTH_UNITS])
_MEASURE = re.compile(
    r"(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?)\s*(?:-\s*)?(?P<unit>" + _UNIT_ALTERNATIVES + r")(?![\w²])",
    re.IGNORECASE,
)


def parse_measure(num: str, unit: str) -> tuple[str, float]:
    """('length', metres) or ('area', square metres) of a number and unit as written."""
    value = float(num.replace(",", ""))
    for pattern, scale in _AREA_UNITS.items():
        if re.fullmatch(pattern, unit, re.IGNORECASE):
            return "area", value * scale
    for pattern, scale in _LENGTH_UNITS.items():
        if re.fullmatch(pattern, unit, re.IGNORECASE):
            return "length", value * scale
    raise ValueError(f"unknown unit {unit!r}")


def _check_measures(text: str, ctx: GroundingContext) -> list[str]:
    w, h = ctx.chip_m
    max_length = float(np.hypot(w, h)) * ctx.cfg.measure_tolerance
    max_area = w * h * ctx.cfg.measure_tolerance
    found = []
    for m in _MEASURE.finditer(text):
        kind, value = parse_measure(m.group("num"), m.group("unit"))
        if (kind == "length" and value > max_length) or (kind == "area" and value > max_area):
            found.append(m.group(0))
    return found


# --- entry points -------------------------------------------------------------------------------------------

CHECKS: dict[str, Callable[[str, GroundingContext], list[str]]] = {
    **{rule.reason: rule.check for rule in CLASS_RULES},
    "grounding_name": _check_names,
    "grounding_count": _check_counts,
    "grounding_measure": _check_measures,
}


def chip_size_m(sample: Sample, cfg: GroundingConfig) -> tuple[float, float]:
    """Chip width and height in metres: UTM bounds, else the facts footprint, else the configured size."""
    xmin, ymin, xmax, ymax = sample.utm_bounds
    if xmax > xmin and ymax > ymin:
        return float(xmax - xmin), float(ymax - ymin)
    if sample.facts is not None and sample.facts.footprint_m2 > 0:
        side = float(np.sqrt(sample.facts.footprint_m2))
        return side, side
    return cfg.chip_size_m, cfg.chip_size_m


def check_grounding(
    caption: str,
    *,
    facts: Facts | None,
    evidence: Evidence,
    cfg: GroundingConfig | None = None,
    tags: Iterable[str] = (),
    chip_m: tuple[float, float] | None = None,
    rules: Iterable[str] | None = None,
) -> list[GroundingIssue]:
    """All grounding issues of one caption, in rule-table order (one issue per failing rule)."""
    cfg = cfg or GroundingConfig()
    ctx = GroundingContext(
        facts=facts,
        evidence=evidence,
        cfg=cfg,
        chip_m=chip_m or (cfg.chip_size_m, cfg.chip_size_m),
        names=known_names(facts, tags),
    )
    wanted = set(cfg.rules if rules is None else rules)
    issues = []
    for reason in GROUNDING_REASONS:
        if reason in wanted:
            words = CHECKS[reason](caption, ctx)
            if words:
                issues.append(GroundingIssue(reason, tuple(words)))
    return issues


def ground_sample(
    sample: Sample, cfg: GroundingConfig | None = None, evidence: Evidence | None = None
) -> list[GroundingIssue]:
    """Grounding issues of a sample's caption against its facts and scene (or the evidence given)."""
    cfg = cfg or GroundingConfig()
    if not sample.caption:
        return []
    ev = scene_evidence(sample, cfg.water_body_min_pixels) if evidence is None else evidence
    return check_grounding(
        sample.caption, facts=sample.facts, evidence=ev, cfg=cfg, tags=sample.tags, chip_m=chip_size_m(sample, cfg)
    )
