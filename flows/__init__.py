"""Prefect flows over the s2cap pipeline: `caption_region` (one region, the CLI's work as tasks) and
`build_dataset` (many regions mapped onto the same shard tasks). They call the runner's stage functions and
nothing more; deployments live in flows/prefect.yaml and docs/flows.md explains how to run them."""

from flows.build import build_dataset
from flows.caption import caption_region
from flows.settings import Captioning, Execution, LocationSpec, RegionSpec, Sources

__all__ = ["Captioning", "Execution", "LocationSpec", "RegionSpec", "Sources", "build_dataset",
           "caption_region"]
