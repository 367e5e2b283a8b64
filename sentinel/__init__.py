"""Sentinel-2 L2A: band table, chip footprints, STAC search, chip reading, harmonization, previews."""
