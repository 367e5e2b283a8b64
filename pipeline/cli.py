"""The `s2cap` command line. It only parses options into typed configs and calls the pipeline."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from pipeline.errors import InputError, RunAborted

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Build multispectral Sentinel-2 image-caption datasets (STAC + Overture + a VLM).")
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])


def _fatal_errors() -> tuple[type[BaseException], ...]:
    """Errors that end a command with one line instead of a traceback."""
    from overture.source import OvertureSourceError
    from pipeline.captioners.base import CaptionerError
    from sentinel.stac import StacUnavailableError

    return (RunAborted, StacUnavailableError, OvertureSourceError, CaptionerError)


def one_line_errors(fn: F) -> F:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except InputError as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None
        except _fatal_errors() as exc:
            err.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _date(text: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option} {text!r}: not a date; use YYYY-MM-DD, e.g. {option} 2024-01-01") from None


@app.command("caption-region")
@one_line_errors
def caption_region(
    bbox: str | None = typer.Option(None, help="Region as W,S,E,N in degrees (lon/lat)."),
    geojson: Path | None = typer.Option(None, help="Region as a GeoJSON (Multi)Polygon file."),
    start: str = typer.Option("2024-01-01", help="Start of the time range (YYYY-MM-DD)."),
    end: str = typer.Option("2024-12-31", help="End of the time range (YYYY-MM-DD), inclusive."),
    seasons: str = typer.Option("quarters", help="Season windows: quarters, meteorological or whole."),
    out: Path = typer.Option(Path("outputs/run"), help="Run folder (created; rerun the same command to resume)."),
    stac_url: str = typer.Option("https://earth-search.aws.element84.com/v1", help="STAC API root."),
    collection: str = typer.Option("sentinel-2-l2a", help="STAC collection of L2A items."),
    provider: str = typer.Option("auto", help="earth-search, planetary-computer or auto (from asset keys)."),
    max_cloud: float = typer.Option(20.0, help="Largest scene cloud cover (%) to consider."),
    max_bad_fraction: float = typer.Option(0.10, help="Largest cloud+shadow+nodata share of the chip's own SCL."),
    overture_release: str | None = typer.Option(None, help="Overture release on S3 (default: the pinned one)."),
    overture_path: Path | None = typer.Option(None, help="Local Overture mirror (theme=*/type=*/*.parquet)."),
    captioner: str = typer.Option("vllm", help="facts, vllm, vllm-offline or transformers."),
    vllm_url: list[str] = typer.Option(["http://127.0.0.1:8000/v1"], help="vLLM server URL(s); repeat for several."),
    model: str = typer.Option("llava-hf/llama3-llava-next-8b-hf", help="Model name (served name or local path)."),
    prompt_version: str = typer.Option("v1", help="Prompt template version (folder under prompts/)."),
    max_in_flight: int = typer.Option(32, help="Caption requests in flight across all servers."),
    no_cache: bool = typer.Option(False, "--no-cache", help="Do not reuse cached model calls."),
    publish: str | None = typer.Option(None, help="Also copy each written shard (then the run's files) to this "
                                       "fsspec URL, e.g. s3://bucket/prefix (needs s2cap[s3])."),
    shard_size: int = typer.Option(64, help="Samples per Parquet shard."),
    spacing: float = typer.Option(2640.0, help="Metres between chip centres on the grid."),
    stretch: str = typer.Option("fixed", help="Preview stretch: fixed or percentile."),
    quiet: bool = typer.Option(False, help="No progress bar."),
) -> None:
    """Caption one region: chips from STAC, Overture facts, previews, captions, filters, Parquet shards."""

    from overture.source import DEFAULT_RELEASE, OvertureSource
    from pipeline.config import CaptionerConfig, RunConfig
    from pipeline.execute import execute
    from pipeline.plan import load_plan
    from pipeline.region import load_geojson, locations_region, parse_bbox
    from sentinel.preview import PreviewConfig
    from sentinel.read import ReadConfig
    from sentinel.stac import StacConfig

    stored = None
    if bbox is None and geojson is None and (out / "plan.json").exists():
        stored = load_plan(out)  # a plan written by `s2cap plan` (or an earlier run): execute / resume it
        region = locations_region(stored.locations, f"stored plan {stored.fingerprint()}")
        start, end = stored.seasons[0].start.isoformat(), stored.seasons[-1].end.isoformat()
    elif (bbox is None) == (geojson is None):
        raise InputError("give the region as exactly one of --bbox W,S,E,N or --geojson FILE (or an --out "
                         "folder holding a plan.json written by `s2cap plan`)")
    else:
        region = parse_bbox(bbox) if bbox is not None else load_geojson(geojson)  # type: ignore[arg-type]
    if overture_path is not None:
        source = OvertureSource.local(overture_path, overture_release or f"local:{overture_path.name}")
    else:
        source = OvertureSource.s3(overture_release or DEFAULT_RELEASE)
    try:
        cfg = RunConfig(
            region=region, start=_date(start, "--start"), end=_date(end, "--end"), out=out,
            stac=StacConfig(url=stac_url, collection=collection, provider=provider, max_cloud_cover=max_cloud),
            overture=source, season_rule=seasons, spacing_m=spacing,
            read=ReadConfig(max_bad_fraction=max_bad_fraction), preview=PreviewConfig(stretch=stretch),
            captioner=CaptionerConfig(kind=captioner, urls=list(vllm_url), model=model,
                                      prompt_version=prompt_version, max_in_flight=max_in_flight,
                                      cache=not no_cache),
            shard_size=stored.shard_size if stored else shard_size, plan=stored, publish=publish,
        )
    except ValueError as exc:  # the configs validate themselves with messages that name the option
        raise InputError(str(exc)) from None
    execute(cfg, err, progress=not quiet)


@app.command()
@one_line_errors
def plan(
    spec: Path = typer.Option(..., help="Sampling spec (YAML/JSON): gaussian around cities or a grid."),
    out: Path = typer.Option(..., help="Run folder to write plan.json and estimate.json into."),
    captions_per_gpu_hour: float = typer.Option(5600.0, help="Caption chains per GPU-hour (docs/gpu-throughput.md)."),
    gpus: int = typer.Option(1, help="GPUs serving the captioner."),
    cores: int = typer.Option(16, help="CPU cores for search, read and preview."),
    read_mb: float = typer.Option(6.1, help="MB read per sample (bench_sentinel measures it)."),
) -> None:
    """Write a deterministic work plan (locations x seasons in shards) and print what it will cost.
    Then run it with `s2cap caption-region --out RUN ...` (no region: the stored plan is the region)."""
    from rich.table import Table

    from pipeline.planning import CostModel, load_spec, write_plan

    est = write_plan(load_spec(spec), out, CostModel(captions_per_gpu_hour=captions_per_gpu_hour, gpus=gpus,
                                                      cores=cores, read_mb_per_sample=read_mb))
    table = Table(title=f"plan {out}")
    table.add_column("")
    table.add_column("estimate", justify="right")
    for key in ("samples", "locations", "shards", "read_gb", "overture_rows", "model_calls", "prompt_tokens",
                "completion_tokens", "gpu_hours", "wall_hours_on_gpus", "cpu_hours_chip_work",
                "wall_hours_cpu_on_cores"):
        table.add_row(key.replace("_", " "), f"{est[key]:,}")
    Console().print(table)


@app.command()
@one_line_errors
def demo(
    out: Path = typer.Option(Path("outputs/demo"), help="Run folder for the demo (its synthetic world goes in "
                                                          "OUT/world)."),
    chips_x: int = typer.Option(3, help="Chips across the synthetic region."),
    chips_y: int = typer.Option(2, help="Chips down the synthetic region."),
    seed: int = typer.Option(0, help="Seed of the synthetic world."),
    quiet: bool = typer.Option(False, help="No progress bar."),
    publish: str | None = typer.Option(None, help="Also copy the run to this fsspec URL (s3://bucket/prefix)."),
) -> None:
    """Offline end-to-end demo: a synthetic region served by a real local STAC API, Overture-schema GeoParquet,
    the `facts` captioner, and the real pipeline to the end."""
    from pipeline.demo import run_demo

    run_demo(out, chips_x=chips_x, chips_y=chips_y, seed=seed, console=err, progress=not quiet,
             publish=publish)


@app.command()
@one_line_errors
def stats(run: Path = typer.Argument(..., help="A run folder.")) -> None:
    """Counts by status and filter reason, caption length and vocabulary statistics of a run."""
    from pipeline.stats import print_stats

    if not (run / "shards").is_dir():
        raise InputError(f"{run}: no shards/ folder; give a run folder written by `s2cap caption-region`")
    print_stats(run)


@app.command("export-validation")
@one_line_errors
def export_validation_cmd(
    run: Path = typer.Argument(..., help="A run folder (shards/ and manifest.json)."),
    out: Path | None = typer.Option(None, help="Folder to create (default: RUN-validation beside the run)."),
    n: int = typer.Option(200, help="Samples to export."),
    strata: str = typer.Option("landcover,season,region,outcome",
                               help="Comma list of landcover, season, region, location, outcome."),
    seed: int = typer.Option(0, help="Seed of the draw (same seed, same sample)."),
) -> None:
    """Export a reproducible stratified sample of ok rows (previews, false colour, captions, Q&A) for rating."""
    from validation.export import export_validation

    folder = export_validation(run, out or run.with_name(run.name + "-validation"), n=n, strata=strata, seed=seed)
    err.print(f"exported to {folder}; rate with: s2cap rate {folder} --rater NAME")


@app.command("rate")
@one_line_errors
def rate(
    folder: Path = typer.Argument(..., help="A folder written by `s2cap export-validation`."),
    rater: str = typer.Option(..., help="Your name; answers go to FOLDER/ratings/<rater>.json."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (keep it local)."),
    port: int = typer.Option(8765, help="Port to listen on."),
) -> None:
    """Serve the rating page: completeness, hallucinated words, comments; every answer saved at once."""
    from validation.server import serve_rating

    serve_rating(folder, host=host, port=port, rater=rater)


@app.command("validation-report")
@one_line_errors
def validation_report_cmd(
    folder: Path = typer.Argument(..., help="A rated validation folder."),
    out: Path | None = typer.Option(None, help="Report folder (default: FOLDER/report)."),
) -> None:
    """Distributions, inter-rater agreement and filters vs experts as report.md with PNG charts."""
    from validation.report import validation_report

    err.print(f"report: {validation_report(folder, out)}")


clip_app = typer.Typer(help="Fine-tune and evaluate a multispectral CLIP (needs the `train` extra).",
                       no_args_is_help=True)
app.add_typer(clip_app, name="clip")


def _training_cli() -> Any:
    try:
        import training.cli as tc
    except ImportError as e:
        raise InputError(f"training needs torch and open_clip ({e}): pip install -e '.[train]'") from None
    return tc


@clip_app.command("band-stats")
@one_line_errors
def clip_band_stats(runs: list[Path] = typer.Argument(..., help="Run folders."),
                    out: Path | None = typer.Option(None, help="JSON file (default RUN/band_stats.json)."),
                    all_rows: bool = typer.Option(False, help="Also rows the filters dropped.")) -> None:
    """Per-band mean/std over valid pixels of the kept chips."""
    typer.echo(_training_cli().band_stats_command(runs, out, all_rows))


@clip_app.command("train")
@one_line_errors
def clip_train(runs: list[Path] = typer.Argument(..., help="Run folders with shards/."),
               out: Path = typer.Option(..., help="Training folder (checkpoints, loss.jsonl)."),
               model: str = typer.Option("ViT-B-16", help="OpenCLIP model name, or 'tiny'."),
               pretrained: str | None = typer.Option(None, help="OpenCLIP tag (online), local .pt, or checkpoint."),
               bands: str = typer.Option("seed10", help="'seed10', 'all12' or comma-separated band names."),
               stats: Path | None = typer.Option(None, help="Band statistics JSON (computed when absent)."),
               batch_size: int = typer.Option(32), accum_steps: int = typer.Option(1),
               max_steps: int = typer.Option(1000), lr: float = typer.Option(1e-5),
               patch_lr: float = typer.Option(1e-4), warmup_steps: int = typer.Option(100),
               weight_decay: float = typer.Option(0.1), num_workers: int = typer.Option(0),
               seed: int = typer.Option(0), device: str = typer.Option("auto"),
               precision: str = typer.Option("auto", help="auto (bf16 on CUDA), bf16 or fp32."),
               checkpoint_every: int = typer.Option(100), keep_every: int = typer.Option(0),
               resume: bool = typer.Option(True, help="Continue from OUT/last.pt when present."),
               quiet: bool = typer.Option(False, help="No progress bar.")) -> None:
    """Fine-tune a CLIP with the patch embedding widened to the Sentinel-2 bands."""
    typer.echo(_training_cli().train_command(
        runs, out, model, pretrained, bands, stats, batch_size, accum_steps, max_steps, lr, patch_lr,
        warmup_steps, weight_decay, num_workers, seed, device, precision, checkpoint_every, keep_every,
        resume, not quiet))


@clip_app.command("evaluate")
@one_line_errors
def clip_evaluate(checkpoints: list[Path] = typer.Argument(..., help="Checkpoints (.pt) to compare."),
                  out: Path = typer.Option(Path("clip-report.md"), help="Markdown report (.json beside it)."),
                  image_folder: Path | None = typer.Option(None, help="ROOT/<class>/*.tif for zero-shot."),
                  run: list[Path] = typer.Option([], help="Run folder(s) for retrieval mAP@k."),
                  k: int = typer.Option(100),
                  band_order: str | None = typer.Option(
                      None, help="Band names of the ImageFolder files, comma-separated (default: by band count).")
                  ) -> None:
    """Zero-shot accuracy and retrieval mAP@k of checkpoints, as a Markdown report."""
    _training_cli().evaluate_command(checkpoints, out, image_folder, run, k, band_order)
    typer.echo(out)


@clip_app.command("export-webdataset")
@one_line_errors
def clip_export_webdataset(runs: list[Path] = typer.Argument(...), out: Path = typer.Option(...),
                           samples_per_tar: int = typer.Option(1000), fmt: str = typer.Option("tif"),
                           bands: str = typer.Option("all12")) -> None:
    """WebDataset tars (<key>.tif|.npy + .txt) for open_clip's own trainer."""
    tc = _training_cli()
    typer.echo(tc.describe(tc.export_webdataset_command(runs, out, samples_per_tar, fmt, bands)))


@clip_app.command("check-widening")
@one_line_errors
def clip_check_widening(model: str = typer.Option("tiny"), bands: str = typer.Option("seed10")) -> None:
    """Prove the widened model equals the RGB model on RGB-only input."""
    tc = _training_cli()
    typer.echo(tc.describe(tc.check_widening_command(model, bands)))


def main() -> None:  # pragma: no cover - console entry
    app(prog_name="s2cap")


if __name__ == "__main__":  # pragma: no cover
    main()
