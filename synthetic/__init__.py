"""A small realistic offline world for the demo, tests and benchmarks.

`world` generates Overture-style vector features on a UTM chip grid; `scene` rasterizes them and writes Earth
Search-style L2A COGs and STAC items; `overture` writes the features as an Overture GeoParquet mirror; `demo`
builds the whole offline demo region. Pixels, facts and captions agree because all derive from one vector world.
"""
