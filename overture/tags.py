"""The tag list a captioner gets for one chip: plain words from Overture facts, most salient first.

Salience is one scale for everything: the share of the footprint a tag covers.
- areas (land_use, land_cover, water, land, infrastructure): their area fraction;
- buildings: the building footprint fraction;
- roads: length x a nominal width per class (ROAD_WIDTH_M) / footprint area, so 2.6 km of motorway (25 m)
  weighs like a 2.5 % area, 2.6 km of footpath (2 m) like 0.2 %.
Words come first, merged when two Overture values map to the same word (the larger share wins: land_cover
`forest` and land_use `forest` describe the same trees, so they are not added up). Named features come last,
as "Name (word)", in the order the facts hold them (largest first, places last), at most MAX_NAMED_TAGS of them.
Anything below its threshold (MIN_* constants) is left out. The full vocabulary is in overture/VOCABULARY.md
(written by `render_vocabulary_md()`; a test keeps the two in sync).
"""

from __future__ import annotations

from overture.model import Facts

# Thresholds: a word is kept only above these.
MIN_AREA_FRACTION = 0.02  # 2 % of the footprint (a 2.64 km chip: ~14 ha)
MIN_BUILDING_FRACTION = 0.005  # 0.5 % covered by building footprints ...
MIN_BUILDING_COUNT = 5  # ... or at least this many buildings
DENSE_BUILDING_FRACTION = 0.15  # above this the tag is "dense buildings"
MIN_ROAD_SALIENCE = 0.001  # road length x width / footprint (2.64 km of 2.6 m wide track)
MAX_NAMED_TAGS = 4

# Nominal carriageway widths (m) by transportation segment class, for road salience.
ROAD_WIDTH_M: dict[str, float] = {
    "motorway": 25.0, "trunk": 18.0, "primary": 12.0, "secondary": 10.0, "tertiary": 8.0,
    "residential": 6.0, "living_street": 5.0, "unclassified": 6.0, "service": 4.0, "pedestrian": 4.0,
    "track": 3.0, "cycleway": 2.0, "footway": 2.0, "path": 1.5, "steps": 2.0, "bridleway": 2.0,
}
DEFAULT_ROAD_WIDTH_M = 4.0

# Overture class/subtype values -> plain words, for any type. Type-specific meanings are in TYPE_VOCABULARY,
# which wins. A value in neither is used with "_" replaced by " ".
VOCABULARY: dict[str, str] = {
    # land_cover subtypes
    "barren": "bare ground", "crop": "cropland", "forest": "forest", "grass": "grassland",
    "mangrove": "mangroves", "moss": "moss and lichen", "shrub": "shrubland", "snow": "snow and ice",
    "urban": "built-up area", "wetland": "wetland",
    # land_use
    "residential": "residential area", "commercial": "commercial area", "retail": "shopping area",
    "industrial": "industrial area", "farmland": "farmland", "farmyard": "farmyard", "orchard": "orchard",
    "vineyard": "vineyard", "meadow": "meadow", "allotments": "allotment gardens", "greenhouse_horticulture":
    "greenhouses", "plant_nursery": "plant nursery", "aquaculture": "aquaculture ponds", "cemetery": "cemetery",
    "grave_yard": "cemetery", "construction": "construction site", "brownfield": "brownfield",
    "greenfield": "greenfield", "landfill": "landfill", "quarry": "quarry", "military": "military area",
    "park": "park", "garden": "garden", "playground": "playground", "pitch": "sports field",
    "stadium": "stadium", "sports_centre": "sports centre", "golf_course": "golf course",
    "recreation_ground": "recreation ground", "campground": "campground", "nature_reserve": "nature reserve",
    "national_park": "national park", "protected": "protected area", "school": "school", "university":
    "university", "college": "college", "hospital": "hospital", "religious": "religious site",
    "airfield": "airfield", "aerodrome": "airport", "railway": "railway land", "winter_sports": "ski area",
    "village_green": "village green", "zoo": "zoo", "theme_park": "theme park",
    # water
    "ocean": "ocean", "sea": "sea", "bay": "bay", "lake": "lake", "pond": "pond", "reservoir": "reservoir",
    "river": "river", "stream": "stream", "canal": "canal", "ditch": "ditch", "drain": "drain",
    "lagoon": "lagoon", "basin": "basin", "oxbow": "oxbow lake", "fishpond": "fish pond",
    "swimming_pool": "swimming pool", "wastewater": "wastewater basin", "water": "water",
    "moat": "moat", "spring": "spring", "waterfall": "waterfall", "dam": "dam",
    # land
    "beach": "beach", "sand": "sand", "dune": "dunes", "cliff": "cliff", "bare_rock": "bare rock",
    "rock": "rock", "scree": "scree", "glacier": "glacier", "heath": "heath", "scrub": "scrub",
    "wood": "woodland", "tree": "trees", "grassland": "grassland", "desert": "desert", "reef": "reef",
    "island": "island", "islet": "islet", "peak": "mountain peak", "volcano": "volcano", "crater": "crater",
    "valley": "valley",
    # infrastructure
    "bridge": "bridge", "pier": "pier", "runway": "runway", "taxiway": "taxiway", "apron": "airport apron",
    "helipad": "helipad", "platform": "platform", "railway_station": "railway station",
    "parking": "parking lot", "power_plant": "power plant", "plant": "power plant",
    "substation": "substation", "solar": "solar farm", "wind": "wind farm", "breakwater": "breakwater",
    "dam_wall": "dam", "tower": "tower",
    # roads (transportation segment classes)
    "motorway": "motorway", "trunk": "highway", "primary": "main road", "secondary": "secondary road",
    "tertiary": "local road", "living_street": "residential street", "unclassified": "minor road",
    "service": "service road", "pedestrian": "pedestrian street", "track": "track", "cycleway": "cycleway",
    "footway": "footpath", "path": "path", "steps": "steps", "bridleway": "bridleway",
}

# (Overture type, value) -> plain word where the type changes the meaning.
TYPE_VOCABULARY: dict[tuple[str, str], str] = {
    ("segment", "residential"): "residential street",
    ("land_use", "grass"): "grass",
    ("land_use", "forest"): "forest",
    ("land_use", "developed"): "developed land",
    ("land_use", "managed"): "managed land",
    ("land_use", "agriculture"): "farmland",
    ("land_use", "horticulture"): "horticulture",
    ("land_use", "recreation"): "recreation area",
    ("land_use", "education"): "school grounds",
    ("land_use", "medical"): "hospital grounds",
    ("land_use", "transportation"): "transport land",
    ("land_use", "resource_extraction"): "mining area",
    ("land_use", "entertainment"): "entertainment venue",
    ("land_use", "pedestrian"): "pedestrian area",
    ("land_use", "golf"): "golf course",
    ("water", "human_made"): "artificial water",
    ("water", "physical"): "water",
    ("land", "physical"): "land",
    ("land", "land"): "land",
    ("infrastructure", "airport"): "airport",
    ("infrastructure", "power"): "power infrastructure",
    ("infrastructure", "transit"): "transit",
    ("place", ""): "place",
}

# Values that are too generic to be worth a tag on their own.
STOPWORDS = frozenset({"land", "water", "unknown", "place", "building", ""})


def plain_word(type_: str, subtype: str, cls: str) -> str:
    """The plain word for an Overture (type, subtype, class): a known class, else a known subtype, else the raw
    class (or subtype) with "_" as spaces."""
    for value in (cls, subtype):
        if value and (type_, value) in TYPE_VOCABULARY:
            return TYPE_VOCABULARY[(type_, value)]
        if value and value in VOCABULARY:
            return VOCABULARY[value]
    value = cls or subtype
    return value.replace("_", " ") if value else TYPE_VOCABULARY.get((type_, ""), type_.replace("_", " "))


def _road_word(cls: str) -> str:
    return plain_word("segment", "road", cls) if cls and cls != "unknown" else "roads"


def tags_from_facts(facts: Facts, max_tags: int = 12) -> list[str]:
    """Deduplicated plain-word tags, most salient first (see the module docstring), at most `max_tags`."""
    if max_tags < 0:
        raise ValueError(f"max_tags={max_tags}: give a count >= 0")
    words: dict[str, float] = {}

    def add(word: str, salience: float) -> None:
        if word not in STOPWORDS:
            words[word] = max(words.get(word, 0.0), salience)

    for c in facts.classes:
        if c.fraction >= MIN_AREA_FRACTION:
            add(plain_word(c.type, c.subtype, c.cls), c.fraction)
    if facts.building_fraction >= MIN_BUILDING_FRACTION or facts.building_count >= MIN_BUILDING_COUNT:
        add("dense buildings" if facts.building_fraction >= DENSE_BUILDING_FRACTION else "buildings",
            facts.building_fraction)
    if facts.footprint_m2 > 0:
        for r in facts.roads:
            salience = r.length_m * ROAD_WIDTH_M.get(r.cls, DEFAULT_ROAD_WIDTH_M) / facts.footprint_m2
            if salience >= MIN_ROAD_SALIENCE:
                add(_road_word(r.cls), salience)
    ranked = [w for w, _ in sorted(words.items(), key=lambda ws: (-ws[1], ws[0]))]

    named: list[str] = []
    for n in facts.named:
        word = plain_word(n.type, n.subtype, n.cls)
        tag = f"{n.name} ({word})" if word not in STOPWORDS else n.name
        if tag not in named and n.name not in named:
            named.append(tag)
        if len(named) == MAX_NAMED_TAGS:
            break
    n_named = min(len(named), max_tags)
    n_words = max(max_tags - n_named, 0)
    out = ranked[:n_words]
    out += named[: max_tags - len(out)]
    return out


def render_vocabulary_md() -> str:
    """overture/VOCABULARY.md: the thresholds and every value -> word mapping, generated from this module."""
    lines = [
        "# Overture values -> plain words (generated by `overture.tags.render_vocabulary_md()`)",
        "",
        "Tags are ordered by the share of the footprint they cover; roads count as length x nominal width.",
        "Named features come last as `Name (word)`. Thresholds:",
        "",
        "| constant | value |",
        "|---|---|",
    ]
    for name in ("MIN_AREA_FRACTION", "MIN_BUILDING_FRACTION", "MIN_BUILDING_COUNT", "DENSE_BUILDING_FRACTION",
                 "MIN_ROAD_SALIENCE", "MAX_NAMED_TAGS", "DEFAULT_ROAD_WIDTH_M"):
        lines.append(f"| {name} | {globals()[name]} |")
    lines += ["", "## Type-specific values (checked first)", "", "| type | value | word |", "|---|---|---|"]
    lines += [f"| {t} | {v or '(none)'} | {w} |" for (t, v), w in sorted(TYPE_VOCABULARY.items())]
    lines += ["", "## Values of any type", "", "| value | word |", "|---|---|"]
    lines += [f"| {v} | {w} |" for v, w in sorted(VOCABULARY.items())]
    lines += ["", "## Road widths for salience (m)", "", "| class | width |", "|---|---|"]
    lines += [f"| {c} | {w} |" for c, w in sorted(ROAD_WIDTH_M.items())]
    lines += ["", f"Values in neither table are used with `_` replaced by a space; {sorted(STOPWORDS - {''})} "
              "never become a tag on their own.", ""]
    return "\n".join(lines)
