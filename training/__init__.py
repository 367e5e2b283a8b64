"""Fine-tune a multispectral CLIP (OpenCLIP, patch embedding widened to the Sentinel-2 bands) on s2cap shards.

torch, torchvision and open_clip come from the optional `train` extra: `pip install -e '.[train]'`. Entry
points: `training.train.train(config) -> checkpoint path`, `training.data.compute_band_stats`,
`training.evaluate.zero_shot` / `retrieval_map` / `compare_checkpoints`,
`training.webdataset.export_webdataset`.
"""

from __future__ import annotations
