"""`reid-export` command line: parses arguments, calls library functions, prints results. Nothing else."""

from __future__ import annotations

import os

# Idle OpenMP threads yield instead of spinning: with spinning, 2-thread torch drops from ~80 to
# ~15 img/s whenever another process wants a core; passive waiting costs nothing when idle.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Annotated, Optional

import typer

from .bench.settings import BenchSettings
from .deploy.settings import DEFAULT_MAX_BATCH, NETWORK_MODES, REID_TYPES
from .errors import ReidExportError
from .export.settings import DEFAULT_MIN_COSINE, DEFAULT_OPSET, BuildSettings, ExportOptions, Int8Search, Int8Settings
from .files import ENGINES_DIR, RUNS_DIR, remove_empty_folders
from .options import MAX_SEED, number_option, parse_ints, parse_sets, whole_option
from .runtimes.registry import capabilities, runtime_names

# Defaults shown in --help are the library's own dataclass defaults, read from here.
_INT8, _TRT, _BENCH, _SEARCH = Int8Settings(), BuildSettings(), BenchSettings(), Int8Search()
# The runtimes --model takes, listed in --help as the registry declares them (a server's as NAME=http://HOST:PORT/MODEL).
_RUNTIMES = ", ".join(runtime_names()) + "; " + ", ".join(f"{name}=http://HOST:PORT/MODEL"
                                                          for name in runtime_names(needs_server=True))

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Train a person re-ID model on Market-1501, export it to ONNX, benchmark every runtime.",
)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars (for CI and logs).")]
Wide = Annotated[bool, typer.Option(help="Print every column of the bench table (as report.md has them), not the 120-column one.")]
# `--output` was the spelling of onnx/trt/visualize/predict before 0.2: still read, with a notice
OldOutput = Annotated[Optional[Path], typer.Option("--output", hidden=True, help="Old spelling of -o/--out.")]


@app.command()
def synth(
    out_dir: Annotated[Optional[Path], typer.Argument(help="Folder to create (must not hold a data set already); or -o/--out.")] = None,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Folder to create (same as the argument).")] = None,
    train_ids: Annotated[int, typer.Option(parser=whole_option("--train-ids"), help="Training identities.")] = 150,
    test_ids: Annotated[int, typer.Option(parser=whole_option("--test-ids"), help="Test identities (query + gallery).")] = 100,
    seed: Annotated[int, typer.Option(parser=whole_option("--seed", low=0, high=MAX_SEED), help="Same seed, same images.")] = 0,
    quiet: Quiet = False,
) -> None:
    """Write a synthetic data set in the official Market-1501 layout and file naming."""
    from .data.synthetic import generate_market1501  # lazy: Pillow, numpy (kept out of --help)

    if out_dir is not None and out is not None and out_dir != out:
        raise ReidExportError(f"two output folders given ({out_dir} and -o {out}); give one")
    out_dir = out_dir or out
    if out_dir is None:
        raise ReidExportError("missing the folder to write: reid-export synth DIR (or -o DIR)")
    s = generate_market1501(out_dir, train_ids=train_ids, test_ids=test_ids, seed=seed, progress=not quiet)
    typer.echo(f"wrote {s.total_images} images to {s.out_dir} in {s.seconds:.1f} s ({s.images_per_sec:.0f} images/s)")


@app.command("synth-video")
def synth_video(
    out_dir: Annotated[Path, typer.Argument(help="Folder for the sequences, one per camera (synth<seed>-c1, -c2, ...), MOTChallenge layout.")],
    seed: Annotated[int, typer.Option(parser=whole_option("--seed", low=0, high=MAX_SEED), help="Same seed, same frames and detections.")] = 0,
    cameras: Annotated[int, typer.Option(parser=whole_option("--cameras", low=1, high=9), help="Cameras looking at the same scene (people shared).")] = 2,
    frames: Annotated[Optional[int], typer.Option(parser=whole_option("--frames", low=10, high=100_000), help="Frames per camera. Default: 300 (small), 1500 (large).")] = None,
    people: Annotated[Optional[int], typer.Option(parser=whole_option("--people", low=1, high=999), help="Identities in the scene. Default: 12 (small), 24 (large).")] = None,
    size: Annotated[str, typer.Option(help="small (640x360, the benchmark default) or large (1280x720).")] = "small",
    quiet: Quiet = False,
) -> None:
    """Render synthetic multi-camera video with ground truth and noisy detections (MOTChallenge layout)."""
    from .data.synthetic.video import generate_sequences, video_settings  # lazy: only this command renders video

    s = generate_sequences(out_dir, video_settings(size, cameras=cameras, frames=frames, people=people), seed=seed,
                           progress=not quiet)
    typer.echo(f"wrote {len(s.sequences)} sequences ({', '.join(q.name for q in s.sequences)}) to {s.out_dir}: "
               f"{s.boxes} ground-truth boxes, {s.detections} detections, in {s.seconds:.1f} s")


@app.command("track-bench")
def track_bench(
    data: Annotated[Path, typer.Option(help="MOTChallenge folder: one sequence, or a folder of them (synth-video's, MOT17/train, MOT20/train, DanceTrack/train).")],
    model: Annotated[Optional[list[str]], typer.Option(help="PATH or RUNTIME=PATH (repeatable), as for bench. A `none` row (motion only) always runs.")] = None,
    tracker: Annotated[str, typer.Option(help="Comma-separated boxmot trackers: botsort, deepocsort, strongsort.")] = "botsort,deepocsort",
    det: Annotated[Optional[str], typer.Option(help="Detections per sequence: a path relative to each sequence folder, or with {seq} for its name. Default: det/det.txt.")] = None,
    sequences: Annotated[str, typer.Option(help="Only sequences whose name matches this pattern, e.g. '*FRCNN'.")] = "*",
    handover_threshold: Annotated[Optional[float], typer.Option(parser=number_option("--handover-threshold", high=2), help="Cross-camera hand-over: largest average cosine distance at which tracklets join. Default: chosen per row on --tune-data.")] = None,
    tune_data: Annotated[Optional[Path], typer.Option(help="Sequences of another seed (synth-video --seed 1) on which each row's hand-over threshold is chosen; never the --data ones.")] = None,
    embedding: Annotated[Optional[str], typer.Option(help="Checkpoint rows embed with: auto (the checkpoint's choice) | neck (BNNeck output, centred; what trackers weigh best, docs/tracking.md) | pooled | both. Exports carry their own.")] = None,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"Report folder. Default: {RUNS_DIR}/track-bench-<time>.")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace the report of an earlier run in --out.")] = False,
    quiet: Quiet = False,
) -> None:
    """HOTA, IDF1, ID switches and cross-camera IDF1 of trackers fed each runtime's embeddings, against `none`.
    Exit 0: every row ran; 1: a row failed; 2: bad input."""
    from .bench.tracking import TrackBenchSettings, run_track_bench  # lazy: boxmot and TrackEval, seconds to import
    from .bench.tracking_report import table_lines, write_track_report  # lazy: matplotlib
    from .bench.tracking_trackers import check_trackers  # lazy: with the rest of track-bench
    from .bench.run import ModelSpec, with_embeddings  # lazy: kept out of --help, as for bench
    from .runtimes import parse_model_spec  # lazy: kept out of --help, as for bench

    settings = TrackBenchSettings(trackers=tuple(check_trackers([t.strip() for t in tracker.split(",") if t.strip()])),
                                  det_file=det, sequences=sequences, handover_threshold=handover_threshold,
                                  tune_data=None if tune_data is None else str(tune_data), progress=not quiet)
    specs = with_embeddings([ModelSpec(*parse_model_spec(spec)) for spec in model or []], embedding)
    out = Path(out or _timestamped("track-bench"))
    if (out / "report.json").exists() and not overwrite:
        raise ReidExportError(f"{out / 'report.json'} already exists (an earlier track-bench run); pass --overwrite "
                              "to replace it, or choose another --out folder")
    report = run_track_bench(data, specs, settings, out_dir=out, log=typer.echo)
    for line in table_lines(report):
        typer.echo(line)
    written = write_track_report(report, out)
    typer.echo(f"wrote {', '.join(str(p) for p in written)} (wall time {report['wall_s']} s)")
    if any(row["status"] != "ok" for row in report["rows"]):
        raise typer.Exit(1)


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Market-1501 folder (bounding_box_train/, query/, bounding_box_test/) or a course folder (train/, test/, queries/, annotations_train.csv).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Checkpoint to write (.pt); updated atomically every epoch.")],
    recipe: Annotated[str, typer.Option(help="Recipe name in train/ (quick, seed, ...) or a .toml path.")] = "quick",
    epochs: Annotated[Optional[int], typer.Option(parser=whole_option("--epochs"), help="Override the recipe's epochs.")] = None,
    arch: Annotated[Optional[str], typer.Option(help="resnet18 | resnet34 | resnet50 | resnet101 | osnet_x1_0 | osnet_x0_25 | osnet_ibn_x1_0 (OSNet: random init, last_stride 2).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(parser=whole_option("--batch-size"), help="Override the recipe's batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option(parser=number_option("--lr", above=True), help="Override the recipe's learning rate.")] = None,
    init: Annotated[Optional[str], typer.Option(help="random | imagenet (ResNet only; needs network) | PATH to a backbone .pth, or a torchreid / fast-reid checkpoint (converted; the classifier is new).")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda.")] = None,
    seed: Annotated[Optional[int], typer.Option(parser=whole_option("--seed", low=0, high=MAX_SEED), help="Random seed.")] = None,
    set_: Annotated[Optional[list[str]], typer.Option("--set", help="Any recipe field: --set KEY=VALUE (repeatable).")] = None,
    resume: Annotated[bool, typer.Option(help="Continue from the checkpoint at --out.")] = False,
    quiet: Quiet = False,
) -> None:
    """Train a re-ID model with a recipe from train/."""
    from . import training  # lazy: torch, so that --help stays fast

    overrides = {"data": str(data), "out": str(out)}
    for key, value in (("epochs", epochs), ("arch", arch), ("batch_size", batch_size), ("lr", lr),
                       ("init", init), ("device", device), ("seed", seed)):
        if value is not None:
            overrides[key] = value
    overrides.update(parse_sets(set_ or []))
    result = training.train(training.load_recipe(recipe, overrides), resume=resume, quiet=quiet)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 alone reports
    typer.echo(f"checkpoint: {result.checkpoint}")
    typer.echo("metrics: " + ", ".join(f"{k} {v:.2f}" for k, v in result.metrics.items() if isinstance(v, float)))


@app.command()
def onnx(
    artefact: Annotated[Optional[Path], typer.Argument(help="reid-export checkpoint (.pt) or backbone state dict (.pth); or none with --model-factory.")] = None,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"ONNX file to write. Default: {ENGINES_DIR}/<name>[.fp16|.int8].onnx.")] = None,
    precision: Annotated[str, typer.Option(help="fp32 | fp16 | int8 (Q/DQ, calibrated on --calib-data's training images).")] = "fp32",
    data: Annotated[Optional[Path], typer.Option(help="Market-1501 folder whose images feed the parity check.")] = None,
    calib_data: Annotated[Optional[Path], typer.Option(help="INT8: Market-1501 folder; only bounding_box_train/ is used.")] = None,
    calib_method: Annotated[str, typer.Option(help="INT8 calibration: minmax | entropy | percentile.")] = _INT8.method,
    calib_images: Annotated[int, typer.Option(parser=whole_option("--calib-images"), help="INT8: number of training images to calibrate on.")] = _INT8.num_images,
    int8_activations: Annotated[str, typer.Option(help="INT8 activations: uint8 (fastest on x86 CPUs) | int8 (symmetric, for TensorRT).")] = _INT8.activations,
    opset: Annotated[int, typer.Option(parser=whole_option("--opset"), help="ONNX opset (17 or newer).")] = DEFAULT_OPSET,
    l2_normalize: Annotated[bool, typer.Option(help="L2-normalise the embedding inside the graph.")] = True,
    with_attributes: Annotated[Optional[bool], typer.Option("--with-attributes/--no-attributes", help="Also output the attribute probabilities (N x 30). Default: when the model has attribute heads.")] = None,
    embedding: Annotated[str, typer.Option(help="neck | pooled | auto (the checkpoint's choice, made on held-out training ids).")] = "auto",
    max_map_drop: Annotated[Optional[float], typer.Option(parser=number_option("--max-map-drop", high=100), help="INT8: keep the most sensitive layers in FP32 until the mAP on held-out training ids of --calib-data is within this many points of FP32.")] = None,
    int8_max_steps: Annotated[int, typer.Option(parser=whole_option("--int8-max-steps"), help="With --max-map-drop: at most this many fallback steps.")] = _SEARCH.max_steps,
    int8_layers_per_step: Annotated[int, typer.Option(parser=whole_option("--int8-layers-per-step"), help="With --max-map-drop: layers moved to FP32 per step.")] = _SEARCH.layers_per_step,
    height: Annotated[Optional[int], typer.Option(parser=whole_option("--height", low=8, high=4096), help="Input height the model was trained at: a bare backbone's is 128 by default, torchreid/fast-reid weights' 256 (with a warning).")] = None,
    width: Annotated[Optional[int], typer.Option(parser=whole_option("--width", low=8, high=4096), help="Input width the model was trained at: a bare backbone's is 64 by default, torchreid/fast-reid weights' 128 (with a warning).")] = None,
    exporter: Annotated[str, typer.Option(help="dynamo | torchscript.")] = "dynamo",
    model_factory: Annotated[Optional[str], typer.Option(help="Your own PyTorch model instead of ARTEFACT: package.module:function returning an nn.Module (N,3,H,W) -> (N,D); its contract from --height/--width/--mean/--std/--color or its `preprocess` attribute.")] = None,
    weights: Annotated[Optional[Path], typer.Option(help="--model-factory: a state dict for the module (read with weights_only=True).")] = None,
    mean: Annotated[Optional[str], typer.Option(help="Per-channel mean the model was trained with (torchreid/fast-reid weights: ImageNet's by default, with a warning; --model-factory), e.g. 0.485,0.456,0.406 (0-1 units) or 123.7,116.3,103.5 (0-255).")] = None,
    std: Annotated[Optional[str], typer.Option(help="Per-channel std, in the units of --mean.")] = None,
    color: Annotated[Optional[str], typer.Option(help="--model-factory: channel order the model takes: rgb | bgr.")] = None,
    input_scale: Annotated[Optional[str], typer.Option(help="--model-factory: pixel range the model takes: 255 | 1 (default: read from the units of --mean/--std).")] = None,
    config: Annotated[Optional[Path], typer.Option(help="fast-reid weights: the config.yaml they were trained with (last stride, pooling, input size, mean/std; its _BASE_ files are read too).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    min_cosine: Annotated[Optional[float], typer.Option(parser=number_option("--min-cosine", low=-1, high=1), help="Parity threshold; default " + ", ".join(f"{v} {k}" for k, v in DEFAULT_MIN_COSINE.items()) + ".")] = None,
    keep_failed: Annotated[bool, typer.Option(help="Keep an export that fails parity, as NAME.failed.onnx (default: delete it).")] = False,
    output: OldOutput = None,
    quiet: Quiet = False,
) -> None:
    """Export to ONNX (dynamic batch, contract in the metadata), then check parity against PyTorch."""
    from .verified.run import export_model  # lazy: torch, so that --help stays fast

    search = None if max_map_drop is None else Int8Search(max_map_drop=max_map_drop, max_steps=int8_max_steps,
                                                          layers_per_step=int8_layers_per_step)
    options = ExportOptions(precision=precision, opset=opset, l2_normalize=l2_normalize, with_attributes=with_attributes,
                            embedding=embedding, int8_search=search,
                            exporter=exporter, overwrite=overwrite, min_cosine=min_cosine, keep_failed=keep_failed,
                            int8=Int8Settings(method=calib_method, num_images=calib_images, activations=int8_activations))
    if model_factory is not None:
        from .export.factory import ModelFactory  # lazy: torch
        from .verified.factory import export_factory  # lazy: torch

        if artefact is not None:
            raise ReidExportError(f"give either ARTEFACT ({artefact}) or --model-factory ({model_factory}), not both")
        factory = ModelFactory.parse(model_factory, weights=weights, height=height, width=width, mean=mean, std=std,
                                     color=color, input_scale=input_scale)
        result = export_factory(factory, _out(out, output), options, calib_data=calib_data, data=data,
                                progress=not quiet, log=typer.echo)
    elif artefact is None or any(v is not None for v in (weights, color, input_scale)):
        raise ReidExportError("missing the model: give ARTEFACT (a checkpoint or backbone .pth), or --model-factory "
                              "package.module:function (which --weights, --color and --input-scale go with)")
    else:
        from .models.fastreid import read_fastreid_config  # lazy: torch

        result = export_model(artefact, _out(out, output), options, calib_data=calib_data, data=data,
                              input_size=(height, width), **_normalisation(mean, std), progress=not quiet,
                              config=read_fastreid_config(config) if config is not None else None, log=typer.echo)
    parity = result.parity
    if parity.passed:
        c = result.info.contract
        typer.echo(f"wrote {result.path} ({result.info.precision}, opset {result.info.opset}, input {c.height}x{c.width}, "
                   f"embedding {result.embedding} {result.embedding_dim}-D"
                   f"{', with attributes' if result.with_attributes else ''})")
    typer.echo(parity.summary())
    found = result.int8_search
    if found is not None:
        for s in found.steps:
            typer.echo(f"  step {s['step']}: {len(s['fp32_nodes'])} FP32 layer(s), mAP {s['mAP']:.2f} "
                       f"(drop {s['map_drop']:.2f}), Rank-1 {s['rank1']:.2f}")
        speed = found.speed
        typer.echo(f"INT8 accuracy control {'met' if found.met else 'NOT met'}: {found.reason}; FP32 layers: "
                   f"{', '.join(found.fp32_nodes) or 'none'}; img/s @32: fp32 {speed['fp32']}, all-int8 "
                   f"{speed['int8_all']}, this file {speed['int8_result']}")
    if not parity.passed:
        typer.echo(f"error: {parity.failure()}", err=True)
        raise typer.Exit(1)
    if found is not None and not found.met:
        typer.echo(f"error: the INT8 file misses --max-map-drop {max_map_drop}: {found.reason} (the file written is the "
                   "step with the smallest drop; its metadata says so)", err=True)
        raise typer.Exit(1)


@app.command()
def adopt(
    model: Annotated[Path, typer.Argument(help="An ONNX exported elsewhere (boxmot, torch.onnx, a colleague's); never modified.")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"The adopted copy to write. Default: {ENGINES_DIR}/<name>.adopted.onnx.")] = None,
    height: Annotated[Optional[int], typer.Option(parser=whole_option("--height", low=8, high=4096), help="Input height the model was trained at.")] = None,
    width: Annotated[Optional[int], typer.Option(parser=whole_option("--width", low=8, high=4096), help="Input width the model was trained at.")] = None,
    mean: Annotated[Optional[str], typer.Option(help="Per-channel mean, e.g. 0.485,0.456,0.406 (0-1 units) or 123.7,116.3,103.5 (0-255).")] = None,
    std: Annotated[Optional[str], typer.Option(help="Per-channel std, in the units of --mean.")] = None,
    color: Annotated[Optional[str], typer.Option(help="Channel order the model takes: rgb | bgr.")] = None,
    input_scale: Annotated[Optional[str], typer.Option(help="Pixel range the model takes: 255 | 1 (default: read from the units of --mean/--std).")] = None,
    layout: Annotated[Optional[str], typer.Option(help="Input layout: nchw (the only one the runtimes feed).")] = None,
    resize_method: Annotated[Optional[str], typer.Option(help="Resize the model was trained with, e.g. cv2-linear, pil-bilinear-antialias (default: a boxmot sidecar's cv2-linear, else Pillow bilinear).")] = None,
    embedding_output: Annotated[Optional[str], typer.Option(help="The output that is the embedding, when the graph has several (the others are dropped).")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
) -> None:
    """Give an ONNX from elsewhere the project's contract (flags, else the NAME.onnx.metadata.json beside it), checked against the graph."""
    from .export.adopt import adopt_onnx  # lazy: onnx, onnxruntime

    result = adopt_onnx(model, out, height=height, width=width, mean=mean, std=std, color=color, input_scale=input_scale,
                        layout=layout, resize_method=resize_method, embedding_output=embedding_output,
                        overwrite=overwrite)
    typer.echo(result.summary())
    for note in result.notes:
        typer.echo(f"note: {note}")
    typer.echo(f"wrote {result.path} and {result.path.name}.metadata.json; bench it: --model {result.path}")


@app.command("trt")
def trt_engine(
    model: Annotated[Path, typer.Argument(help="ONNX file written by `reid-export onnx` (fp32, fp16 or int8 graph).")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"Engine to write (.engine); NAME.engine.json goes next to it. Default: {ENGINES_DIR}/<name>.engine.")] = None,
    min_batch: Annotated[int, typer.Option(parser=whole_option("--min-batch"), help="Smallest batch the engine accepts.")] = _TRT.min_batch,
    opt_batch: Annotated[int, typer.Option(parser=whole_option("--opt-batch"), help="Batch size TensorRT tunes its kernels for.")] = _TRT.opt_batch,
    max_batch: Annotated[int, typer.Option(parser=whole_option("--max-batch"), help="Largest batch the engine accepts.")] = _TRT.max_batch,
    workspace: Annotated[str, typer.Option(help="Builder scratch GPU memory, e.g. 4GiB or 512MiB.")] = str(_TRT.workspace),
    timing_cache: Annotated[Optional[Path], typer.Option(help="Timing cache file: read if present, written after the build.")] = None,
    fp16_flag: Annotated[bool, typer.Option("--fp16-flag", help="TensorRT 10 only: FP16 kernels for an FP32 graph. On TensorRT 11 export with --precision fp16 instead.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing engine and its sidecar.")] = False,
    output: OldOutput = None,
) -> None:
    """Build a TensorRT engine (+ JSON sidecar) from an ONNX export. Needs an NVIDIA GPU and TensorRT."""
    from .export.tensorrt import trt_command  # lazy: kept out of --help

    out = _out(out, output)
    typer.echo(f"building {out or ENGINES_DIR / (model.stem + '.engine')} from {model} (TensorRT builds take minutes)")
    info = trt_command(model, out, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                       workspace=workspace, timing_cache=timing_cache, fp16_flag=fp16_flag, overwrite=overwrite)
    for line in info.summary_lines():
        typer.echo(line)
    for warning in info.warnings:
        typer.echo(f"warning: {warning}", err=True)


@app.command()
def aot(
    checkpoint: Annotated[Path, typer.Argument(help="reid-export checkpoint (.pt) or backbone state dict (.pth).")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"Package to write (.pt2). Default: {ENGINES_DIR}/<name>.pt2.")] = None,
    data: Annotated[Optional[Path], typer.Option(help="Market-1501 folder whose images feed the parity check (default: random tensors).")] = None,
    embedding: Annotated[str, typer.Option(help="neck | pooled | auto (the checkpoint's choice, made on held-out training ids).")] = "auto",
    with_attributes: Annotated[Optional[bool], typer.Option("--with-attributes/--no-attributes", help="Also output the attribute probabilities (N x 30). Default: when the model has attribute heads.")] = None,
    l2_normalize: Annotated[bool, typer.Option(help="L2-normalise the embedding inside the graph.")] = True,
    min_cosine: Annotated[Optional[float], typer.Option(parser=number_option("--min-cosine", low=-1, high=1), help=f"Parity threshold against eager PyTorch; default {DEFAULT_MIN_COSINE['fp32']}.")] = None,
    keep_failed: Annotated[bool, typer.Option(help="Keep a package that fails parity, as NAME.failed.pt2 (default: delete it).")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing package.")] = False,
) -> None:
    """AOTInductor package (.pt2): torch.export with a dynamic batch, compiled ahead of time with the contract in
    its metadata, then parity against PyTorch. Bench it as torch-aot=NAME.pt2 (or just NAME.pt2)."""
    from .export.aot import MAX_BATCH  # lazy: torch
    from .verified.aot import export_aot  # lazy: torch

    typer.echo(f"compiling {checkpoint} with AOTInductor (a few minutes on a 2-core CPU)")
    result = export_aot(checkpoint, out, embedding=embedding, with_attributes=with_attributes, l2_normalize=l2_normalize,
                        data=data, min_cosine=min_cosine, keep_failed=keep_failed, overwrite=overwrite, log=typer.echo)
    parity = result.parity
    if parity.passed:
        c = result.contract
        typer.echo(f"wrote {result.path} (fp32, input {c.height}x{c.width}, batch 1-{MAX_BATCH}, embedding "
                   f"{result.embedding} {result.embedding_dim}-D{', with attributes' if result.with_attributes else ''}; "
                   f"compiled in {result.compile_seconds:.1f} s)")
    typer.echo(parity.summary())
    if not parity.passed:
        typer.echo(f"error: {parity.failure()}", err=True)
        raise typer.Exit(1)


# -- edge exports (ExecuTorch, LiteRT, Core ML): options shared by `executorch` and `litert` ---------------------
EdgeCheckpoint = Annotated[Path, typer.Argument(help="reid-export checkpoint (.pt) or backbone state dict (.pth), loaded as for `reid-export onnx`.")]
EdgeInt8 = Annotated[bool, typer.Option("--int8", help="Static INT8 (PT2E quantiser), calibrated on --calib-data's training images; kept only if it holds the INT8 parity bar.")]
EdgeCalibData = Annotated[Optional[Path], typer.Option(help="--int8: Market-1501 folder; only bounding_box_train/ is used.")]
EdgeCalibImages = Annotated[int, typer.Option(parser=whole_option("--calib-images"), help="--int8: number of training images to calibrate on.")]
EdgeData = Annotated[Optional[Path], typer.Option(help="Market-1501 folder whose images feed the parity check (default: random tensors).")]
EdgeEmbedding = Annotated[str, typer.Option(help="neck | pooled | auto (the checkpoint's choice, made on held-out training ids).")]
EdgeAttributes = Annotated[Optional[bool], typer.Option("--with-attributes/--no-attributes", help="Also output the attribute probabilities (N x 30). Default: when the model has attribute heads.")]
EdgeMinCosine = Annotated[Optional[float], typer.Option(parser=number_option("--min-cosine", low=-1, high=1), help=f"Parity threshold against eager PyTorch; default {DEFAULT_MIN_COSINE['fp32']} fp32, {DEFAULT_MIN_COSINE['int8']} int8.")]
EdgeKeepFailed = Annotated[bool, typer.Option(help="Keep an export that fails parity, as NAME.failed.<suffix> (default: delete it).")]
EdgeOverwrite = Annotated[bool, typer.Option(help="Replace an existing file of the same kind.")]


@app.command()
def executorch(
    checkpoint: EdgeCheckpoint,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"Program to write (.pte). Default: {ENGINES_DIR}/<name>[.int8].pte.")] = None,
    int8: EdgeInt8 = False, calib_data: EdgeCalibData = None, calib_images: EdgeCalibImages = _INT8.num_images,
    data: EdgeData = None, embedding: EdgeEmbedding = "auto", with_attributes: EdgeAttributes = None,
    min_cosine: EdgeMinCosine = None, keep_failed: EdgeKeepFailed = False, overwrite: EdgeOverwrite = False,
    quiet: Quiet = False,
) -> None:
    """ExecuTorch program (.pte, XNNPACK delegate) with the contract in its `reid_export_metadata` method, then parity
    against PyTorch on the executorch runtime. Bench it as executorch=NAME.pte (or just NAME.pte)."""
    _edge_export("executorch", checkpoint, out, int8=int8, calib_data=calib_data, calib_images=calib_images, data=data,
                 embedding=embedding, with_attributes=with_attributes, min_cosine=min_cosine, keep_failed=keep_failed,
                 overwrite=overwrite, quiet=quiet)


@app.command()
def litert(
    checkpoint: EdgeCheckpoint,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"Model to write (.tflite). Default: {ENGINES_DIR}/<name>[.int8].tflite.")] = None,
    int8: EdgeInt8 = False, calib_data: EdgeCalibData = None, calib_images: EdgeCalibImages = _INT8.num_images,
    data: EdgeData = None, embedding: EdgeEmbedding = "auto", with_attributes: EdgeAttributes = None,
    min_cosine: EdgeMinCosine = None, keep_failed: EdgeKeepFailed = False, overwrite: EdgeOverwrite = False,
    quiet: Quiet = False,
) -> None:
    """LiteRT model (.tflite, litert-torch) with the contract in the flatbuffer's metadata, then parity against
    PyTorch on the litert runtime (an INT8 model's int8 input is quantised by it). Bench it as litert=NAME.tflite."""
    _edge_export("litert", checkpoint, out, int8=int8, calib_data=calib_data, calib_images=calib_images, data=data,
                 embedding=embedding, with_attributes=with_attributes, min_cosine=min_cosine, keep_failed=keep_failed,
                 overwrite=overwrite, quiet=quiet)


@app.command()
def coreml(
    checkpoint: EdgeCheckpoint,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"Package to write (.mlpackage, a folder). Default: {ENGINES_DIR}/<name>.mlpackage.")] = None,
    embedding: EdgeEmbedding = "auto", with_attributes: EdgeAttributes = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing Core ML package.")] = False,
) -> None:
    """Core ML package (.mlpackage, FP32 ML program, batch 1-256) with the contract in its user_defined_metadata, then
    a spec check of the saved package. Core ML runs only on macOS/iOS: it is converted here, never run."""
    from .export.coreml import export_coreml  # lazy: torch, coremltools

    result = export_coreml(checkpoint, out, embedding=embedding, with_attributes=with_attributes, overwrite=overwrite,
                           log=typer.echo)
    typer.echo(result.summary())


def _edge_export(fmt: str, checkpoint: Path, out: Path | None, *, calib_images: int, quiet: bool, **options) -> None:
    """`executorch` and `litert`: export, parity on the format's runtime, exit 1 when it fails."""
    from .verified.edge import export_edge  # lazy: torch and the converter

    typer.echo(f"converting {checkpoint} to {fmt} (a minute or two on a 2-core CPU)")
    result = export_edge(fmt, checkpoint, out, int8_settings=Int8Settings(num_images=calib_images),
                         progress=not quiet, log=typer.echo, **options)
    if result.parity.passed:
        typer.echo(result.summary())
    typer.echo(result.parity.summary())
    if not result.parity.passed:
        bar = "the INT8 accuracy bar, so no INT8 file is kept" if result.precision == "int8" else "the parity bar"
        typer.echo(f"error: {result.parity.failure()}; the {fmt} export misses {bar}", err=True)
        raise typer.Exit(1)


@app.command("openvino")
def openvino_ir(
    artefact: Annotated[Path, typer.Argument(help="ONNX file written by `reid-export onnx` (fp32 or int8 Q/DQ), or a checkpoint (.pt).")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"IR to write (NAME.xml; NAME.bin goes next to it). Default: {ENGINES_DIR}/<name>.xml.")] = None,
    nncf_int8: Annotated[bool, typer.Option("--nncf-int8", help="Quantise an FP32 graph to INT8 with NNCF (the comparison for the project's own Q/DQ INT8).")] = False,
    calib_data: Annotated[Optional[Path], typer.Option(help="--nncf-int8: Market-1501 folder; only bounding_box_train/ is used.")] = None,
    calib_images: Annotated[int, typer.Option(parser=whole_option("--calib-images"), help="--nncf-int8: number of training images to calibrate on.")] = _INT8.num_images,
    data: Annotated[Optional[Path], typer.Option(help="Market-1501 folder whose images feed the parity check (default: random tensors).")] = None,
    min_cosine: Annotated[Optional[float], typer.Option(parser=number_option("--min-cosine", low=-1, high=1), help="Parity threshold vs ONNX Runtime; default by precision: " + ", ".join(f"{v} {k}" for k, v in DEFAULT_MIN_COSINE.items()) + ".")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing IR.")] = False,
    quiet: Quiet = False,
) -> None:
    """Convert to OpenVINO IR with the contract and precision in its rt_info; parity against ONNX Runtime."""
    from .verified.openvino import export_openvino  # lazy: openvino

    result = export_openvino(artefact, out, nncf_int8=nncf_int8, calib_data=calib_data, calib_images=calib_images,
                             data=data, min_cosine=min_cosine, overwrite=overwrite, progress=not quiet)
    typer.echo(result.summary())


@app.command()
def inspect(
    artefact: Annotated[Path, typer.Argument(help="ONNX file (.onnx), OpenVINO IR (.xml), TensorRT engine (.engine/.plan, read from its sidecar), AOTInductor package (.pt2), ExecuTorch program (.pte), LiteRT model (.tflite), Core ML package (.mlpackage) or checkpoint (.pt/.pth).")],
    json_: Annotated[bool, typer.Option("--json", help="Print everything as one JSON object instead of the table.")] = False,
) -> None:
    """Say what an artefact is: kind, contract, precision, arch, embedding size, outputs, sha256, provenance."""
    from .artefacts.info import inspect as inspect_artefact  # lazy: a checkpoint needs torch, the rest nothing heavy

    info = inspect_artefact(artefact)
    if json_:
        import json

        typer.echo(json.dumps(info.to_dict(), indent=2, sort_keys=True))
    else:
        typer.echo("\n".join(info.summary_lines()))


@app.command()
def triton(
    artefact: Annotated[Path, typer.Argument(help="ONNX file (.onnx), TensorRT engine (.engine, with its sidecar) or OpenVINO IR (.xml).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Model repository folder; NAME/config.pbtxt and NAME/1/model.* go in it.")],
    name: Annotated[str, typer.Option(help="Model name: its folder in the repository and the NAME clients ask for.")] = "reid",
    max_batch: Annotated[Optional[int], typer.Option(parser=whole_option("--max-batch"), help=f"max_batch_size. Default: the engine profile's max for a TensorRT engine, else {DEFAULT_MAX_BATCH}.")] = None,
    instances: Annotated[int, typer.Option(parser=whole_option("--instances"), help="Model instances (instance_group count).")] = 1,
    kind: Annotated[Optional[str], typer.Option(help="Instance kind: gpu or cpu. Default: gpu (cpu for an OpenVINO IR).")] = None,
    preferred_batch: Annotated[Optional[str], typer.Option(help="dynamic_batching preferred sizes, e.g. 16,32,64. Default: up to three, ending at max_batch_size.")] = None,
    queue_delay_us: Annotated[int, typer.Option(parser=whole_option("--queue-delay-us", low=0), help="dynamic_batching max_queue_delay_microseconds.")] = 100,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing NAME folder in the repository.")] = False,
) -> None:
    """Write a Triton model repository (NAME/1/model.*, NAME/config.pbtxt checked against Triton's schema)."""
    from .deploy.triton import write_triton_repository  # lazy: kept out of --help

    preferred = parse_ints(preferred_batch, "--preferred-batch") if preferred_batch else None
    model = write_triton_repository(artefact, out, name=name, max_batch=max_batch, instances=instances, kind=kind,
                                    preferred_batch_sizes=preferred, queue_delay_us=queue_delay_us, overwrite=overwrite)
    checked = "checked against" if model.checked else "NOT checked (no tritonclient) against"
    typer.echo(f"wrote {model.config} ({checked} Triton's model-config schema) and {', '.join(map(str, model.files))}")
    typer.echo(f"serve: tritonserver --model-repository {out}; bench it: --model triton=http://HOST:8000/{name}")


@app.command()
def deepstream(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint (.pt) or backbone weights (.pth) to export.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Folder for reid.onnx and config_tracker_reid.yml.")],
    reid_type: Annotated[str, typer.Option(help=f"Tracker reidType: {', '.join(f'{k} ({v})' for k, v in REID_TYPES.items())}.")] = "reassoc",
    network_mode: Annotated[str, typer.Option(help=f"Precision DeepStream builds its engine at: {', '.join(k for k in NETWORK_MODES if k != 'int8')}.")] = "fp16",
    batch_size: Annotated[int, typer.Option(parser=whole_option("--batch-size"), help="Tracker Re-ID batchSize (crops per inference).")] = 100,
    workspace_mb: Annotated[int, typer.Option(parser=whole_option("--workspace-mb"), help="TensorRT workspaceSize for DeepStream's engine build, in MB.")] = 1000,
    overwrite: Annotated[bool, typer.Option(help="Replace existing files in the folder.")] = False,
) -> None:
    """DeepStream tracker Re-ID: an embedding-only ONNX with the std folded in, and the config's ReID section."""
    from .deploy.deepstream import write_deepstream  # lazy: torch, so that --help stays fast

    files = write_deepstream(checkpoint, out, reid_type=reid_type, network_mode=network_mode, batch_size=batch_size,
                             workspace_mb=workspace_mb, overwrite=overwrite)
    typer.echo(f"wrote {files.onnx} and {files.config}; under DeepStream's netScaleFactor * (x - offsets) the folded "
               f"graph matches the model: min cosine {files.cosine_min:.6f}")


@app.command()
def bench(
    data: Annotated[Path, typer.Option(help="Market-1501 folder: query/ and bounding_box_test/ are used.")],
    model: Annotated[list[str], typer.Option(help=f"PATH or RUNTIME=PATH (repeatable); runtimes: {_RUNTIMES}; or factory=package.module:function[@weights] (a torch row of your own module, its contract from its `preprocess` attribute).")],
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes for throughput.")] = ",".join(map(str, _BENCH.batch_sizes)),
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"Report folder. Default: {RUNS_DIR}/bench-<time>.")] = None,
    max_map_drop: Annotated[Optional[float], typer.Option(parser=number_option("--max-map-drop", high=100), help="Exit 1 if a row's mAP is more than this many points below the reference.")] = None,
    max_rank1_drop: Annotated[Optional[float], typer.Option(parser=number_option("--max-rank1-drop", high=100), help="Exit 1 if a row's Rank-1 is more than this many points below the reference.")] = None,
    compare: Annotated[Optional[Path], typer.Option(help="An earlier report.json: print the change against it.")] = None,
    stages: Annotated[bool, typer.Option(help="Also time the whole path per batch: read, decode, resize, normalise, copies, inference.")] = True,
    preprocess_as: Annotated[Optional[str], typer.Option(help="Extra rows: query/gallery re-decoded as deployment targets resize, e.g. pil,cv2-linear,keep-aspect (also: pil-bicubic, cv2-area, cv2-nearest); from stored and from upscaled crops.")] = None,
    preprocess_upscale: Annotated[float, typer.Option(parser=number_option("--preprocess-upscale", above=True, high=16), help="--preprocess-as: also from crops upscaled this many times, as detector boxes are.")] = _BENCH.preprocess_upscale,
    ov_hint: Annotated[str, typer.Option(help="OpenVINO rows: latency (one request, every thread) | throughput (streams, the batch split across them).")] = "latency",
    embedding: Annotated[str, typer.Option(help="Checkpoint rows rank with: auto (the checkpoint's choice) | neck | pooled | both (one row each, side by side).")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace the report and plots of an earlier run in --out.")] = False,
    wide: Wide = False,
    quiet: Quiet = False,
) -> None:
    """Throughput, latency, Rank-1/mAP/mINP and agreement with the reference, one row per runtime.
    Exit 0: every row ok or skipped; 1: a row failed, a gate broke, or no row could run; 2: bad input."""
    from .bench.drift import drift_table_lines, parse_preprocess_as  # lazy: kept out of --help
    from .bench.report import compare_reports, print_comparison, print_table, write_report  # lazy: kept out of --help
    from .bench.run import (ModelSpec, check_gates, check_report_dir, row_outcomes,  # lazy: kept out of --help
                            run_bench, with_embeddings)
    from .verified.factory import parse_model_or_factory  # lazy: torch (factory=package.module:function specs)

    if ov_hint not in ("latency", "throughput"):
        raise ReidExportError(f"--ov-hint takes latency or throughput, got {ov_hint!r}")
    sizes = parse_ints(batch_sizes, "--batch-sizes")  # every option is checked before any file is looked at
    specs = [ModelSpec(*spec, options=(("hint", ov_hint),) if "hint" in capabilities(spec[0]).options else ())
             for spec in map(parse_model_or_factory, model)]
    specs = with_embeddings(specs, embedding)
    settings = BenchSettings(batch_sizes=sizes, stages=stages, progress=not quiet,
                             preprocess_as=parse_preprocess_as(preprocess_as) if preprocess_as else (),
                             preprocess_upscale=preprocess_upscale)
    earlier = _read_report(compare) if compare is not None else None  # checked before the sweep, not after
    out = Path(out or _timestamped("bench"))
    made = [d for d in (out, *out.parents) if not d.exists()]  # folders this run creates, deepest first
    out = check_report_dir(out, overwrite=overwrite)
    try:
        report = run_bench(data, specs, settings, log=typer.echo)
    except BaseException:  # bad input or a stop before any report: no empty folder left behind
        remove_empty_folders(made)
        raise
    print_table(report, wide=wide)
    for line in drift_table_lines(report.get("drift", [])):
        typer.echo(line)
    json_path, md_path = write_report(report, out)
    typer.echo(f"wrote {json_path} and {md_path}")
    if earlier is not None:
        print_comparison(compare_reports(earlier, report), str(compare))
    broken = check_gates(report, max_map_drop=max_map_drop, max_rank1_drop=max_rank1_drop)
    for message in broken:
        typer.echo(f"accuracy gate failed: {message}", err=True)
    outcomes = row_outcomes(report)
    if not outcomes["ok"]:
        typer.echo("error: no row could run:\n" + "\n".join(f"  {r['runtime']} {r['model']}: {r['status']}"
                                                           for r in report["rows"]), err=True)
        raise typer.Exit(1)
    for row in outcomes["failed"]:
        typer.echo(f"row failed: {row['runtime']} {row['model']}: {row['status']}", err=True)
    if broken or outcomes["failed"]:
        raise typer.Exit(1)


@app.command()
def visualize(
    data: Annotated[Path, typer.Option(help="Market-1501 folder: query/ and bounding_box_test/ are used (market_attribute.mat too, if there).")],
    model: Annotated[str, typer.Option(help=f"PATH or RUNTIME=PATH; runtimes: {_RUNTIMES}.")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Folder for the PNGs; must be new or empty (nothing is overwritten).")] = None,
    queries: Annotated[int, typer.Option(parser=whole_option("--queries"), help="Queries to draw, spread over identities.")] = 8,
    top_k: Annotated[int, typer.Option(parser=whole_option("--top-k"), help="Gallery images shown per query, closest first.")] = 10,
    seed: Annotated[int, typer.Option(parser=whole_option("--seed", low=0, high=MAX_SEED), help="Same seed, same queries.")] = 0,
    output: OldOutput = None,
    quiet: Quiet = False,
) -> None:
    """Picture each query's top-k gallery images: green match, red wrong, grey junk; attributes if the model has them."""
    from .apps.visualize import visualize_rankings  # lazy: Pillow, runtimes (kept out of --help)

    files = visualize_rankings(data, model, _out(out, output, required=True), num_queries=queries, top_k=top_k, seed=seed, progress=not quiet)
    for file in files:
        typer.echo(f"wrote {file}")


@app.command()
def predict(
    data: Annotated[Path, typer.Option(help="Course layout: train/, test/, queries/, annotations_train.csv.")],
    model: Annotated[str, typer.Option(help="PATH or RUNTIME=PATH (an attribute model also writes classification_test.csv).")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Folder for reid_test.txt and classification_test.csv.")] = None,
    top_k: Annotated[int, typer.Option(parser=whole_option("--top-k"), help="Gallery images listed per query.")] = 100,
    output: OldOutput = None,
    quiet: Quiet = False,
) -> None:
    """Course submission files: each query's ranked test images, and the 27 attributes of every test image."""
    from .apps.predict import predict_course  # lazy: numpy, data readers, runtimes (kept out of --help)

    files = predict_course(data, model, _out(out, output, required=True), top_k=top_k, progress=not quiet)
    for file in files:
        typer.echo(f"wrote {file}")
    if len(files) == 1:
        typer.echo("the model has no attribute outputs, so classification_test.csv was not written "
                   "(train on the course folder, which adds attribute heads by default, and export without "
                   "--no-attributes)")


index_app = typer.Typer(no_args_is_help=True, help="Build and change a gallery for `reid-export serve`.")
AllowDuplicates = Annotated[bool, typer.Option("--allow-duplicates", help="Also add images whose bytes are already in the gallery (default: skip and count them).")]
IndexEngine = Annotated[str, typer.Option(help="What decodes and embeds: local (this process) | ray (a Ray Data actor pool; needs the ray extra). Writes stay in this process either way.")]
RayAddress = Annotated[Optional[str], typer.Option(help="--engine ray: a running Ray cluster to join (HOST:6379, ray://HOST:10001); default: a local Ray on this machine's cores.")]
RayActors = Annotated[int, typer.Option(parser=whole_option("--actors", low=0, high=100000), help="--engine ray: embedding actors, one runtime of one thread each (0: one per CPU of the cluster).")]
app.add_typer(index_app, name="index")


@index_app.command("build")
def index_build(
    data: Annotated[Path, typer.Option(help="Images to index: a Market-1501 folder (its bounding_box_test/), a course folder (its test/), or any folder of crops.")],
    model: Annotated[str, typer.Option(help="PATH or RUNTIME=PATH: the artefact the gallery is built (and later served) with.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Gallery folder to write (atomically).")],
    batch_size: Annotated[int, typer.Option(parser=whole_option("--batch-size"), help="Images per runtime call.")] = 64,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing gallery folder (only a gallery: never another folder, nor one holding --data or --model).")] = False,
    allow_duplicates: AllowDuplicates = False,
    engine: IndexEngine = "local",
    address: RayAddress = None,
    actors: RayActors = 0,
    quiet: Quiet = False,
) -> None:
    """Embed every image of a folder into a new gallery: embeddings, crops, pid/camera, attributes, model sha256.
    Unreadable images and duplicates are skipped and counted."""
    from .serve.indexing import build_gallery  # lazy: serve package (kept out of --help)

    with _index_engine(engine, address, actors) as chosen:
        out = build_gallery(data, model, out, overwrite=overwrite, batch_size=batch_size,
                            allow_duplicates=allow_duplicates, engine=chosen, progress=not quiet, log=typer.echo)
    typer.echo(f"wrote gallery {out}")


@index_app.command("add")
def index_add(
    gallery: Annotated[Path, typer.Argument(help="Gallery folder written by `reid-export index build`.")],
    images: Annotated[list[Path], typer.Argument(help="Image files or folders to add.")],
    model: Annotated[str, typer.Option(help="PATH or RUNTIME=PATH: the artefact the gallery was built with.")],
    batch_size: Annotated[int, typer.Option(parser=whole_option("--batch-size"), help="Images per runtime call.")] = 64,
    commit_every: Annotated[int, typer.Option(parser=whole_option("--commit-every"), help="Images per gallery commit (a killed add loses at most one commit).")] = 256,
    allow_duplicates: AllowDuplicates = False,
    engine: IndexEngine = "local",
    address: RayAddress = None,
    actors: RayActors = 0,
    quiet: Quiet = False,
) -> None:
    """Add images to a gallery (refused if the model is not the one it was built with). Images already in it
    (same bytes) and unreadable ones are skipped and counted, so the same add run again adds only what is missing."""
    from .serve.indexing import add_to_gallery  # lazy: serve package (kept out of --help)

    with _index_engine(engine, address, actors) as chosen:
        add_to_gallery(gallery, model, images, batch_size=batch_size, commit_every=commit_every,
                       allow_duplicates=allow_duplicates, engine=chosen, progress=not quiet, log=typer.echo)


@index_app.command("migrate")
def index_migrate(
    gallery: Annotated[Path, typer.Argument(help="Gallery folder to move to the new model (only read).")],
    model: Annotated[str, typer.Option(help="PATH or RUNTIME=PATH: the new model every stored crop is embedded with.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="New gallery folder to write (atomically).")],
    batch_size: Annotated[int, typer.Option(parser=whole_option("--batch-size"), help="Images per runtime call.")] = 64,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing gallery folder at -o (never GALLERY itself).")] = False,
    engine: IndexEngine = "local",
    address: RayAddress = None,
    actors: RayActors = 0,
    quiet: Quiet = False,
) -> None:
    """Re-embed every stored crop of a gallery with a new model into a new gallery: ids, sources, pid/camera and
    times kept, lineage (old gallery and model) recorded. GALLERY is left as it is."""
    from .serve.migrate import migrate_gallery  # lazy: serve package (kept out of --help)

    with _index_engine(engine, address, actors) as chosen:
        out = migrate_gallery(gallery, model, out, overwrite=overwrite, batch_size=batch_size, engine=chosen,
                              progress=not quiet, log=typer.echo)
    typer.echo(f"wrote gallery {out}")



@index_app.command("remove")
def index_remove(
    gallery: Annotated[Path, typer.Argument(help="Gallery folder.")],
    ids: Annotated[list[str], typer.Argument(help="Item ids to remove (their embeddings and crops leave the disk).")],
) -> None:
    """Remove items from a gallery by id."""
    from .serve.indexing import remove_from_gallery  # lazy: serve package (kept out of --help)

    size = remove_from_gallery(gallery, ids)
    typer.echo(f"gallery {gallery}: removed {len(ids)}, {size} items left")


@app.command()
def serve(
    gallery: Annotated[Path, typer.Option(help="Gallery folder built with the same model (`reid-export index build`).")],
    model: Annotated[Optional[str], typer.Option(help=f"PATH or RUNTIME=PATH; runtimes: {_RUNTIMES}. Or --from-report.")] = None,
    from_report: Annotated[Optional[Path], typer.Option(help="A bench report.json: serve its fastest ok row (img/s at its largest batch) within the accuracy drops, on that row's runtime (instead of --model).")] = None,
    max_map_drop: Annotated[Optional[float], typer.Option(parser=number_option("--max-map-drop", high=100), help="--from-report: mAP points a row may lose against the report's reference row (default 0.5 when no drop is given).")] = None,
    max_rank1_drop: Annotated[Optional[float], typer.Option(parser=number_option("--max-rank1-drop", high=100), help="--from-report: Rank-1 points a row may lose against the report's reference row.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs a token (--token-file).")] = "127.0.0.1",
    port: Annotated[int, typer.Option(parser=whole_option("--port", low=0, high=65535), help="TCP port (0: any free one).")] = 8000,
    token: Annotated[Optional[str], typer.Option(help="Require 'Authorization: Bearer TOKEN'; other users see it in the process list: prefer --token-file or $REID_EXPORT_TOKEN.")] = None,
    token_file: Annotated[Optional[Path], typer.Option(help="Require the token on this file's first line (chmod 600 it); default: $REID_EXPORT_TOKEN.")] = None,
    allowed_hosts: Annotated[Optional[str], typer.Option(help="Host names answered besides localhost, 127.0.0.1, [::1] and the --host address, comma-separated (reid.example.com,10.0.0.5), or * for any (see docs/security.md).")] = None,
    cors_origins: Annotated[Optional[str], typer.Option(help="Origins whose web pages may call the API (CORS, and changes), comma-separated (https://dash.example.com), or * for any; default: none.")] = None,
    header_timeout_s: Annotated[float, typer.Option(parser=number_option("--header-timeout-s", above=True, high=3600), help="A request head must arrive within this many seconds, or the connection closes (slow clients).")] = 20.0,
    body_timeout_s: Annotated[float, typer.Option(parser=number_option("--body-timeout-s", above=True, high=3600), help="Longest wait, in seconds, for the next piece of a request body; then 408.")] = 30.0,
    max_connections: Annotated[int, typer.Option(parser=whole_option("--max-connections", high=1_000_000), help="Connections served at once; more get 503.")] = 200,
    max_batch: Annotated[int, typer.Option(parser=whole_option("--max-batch"), help="Dynamic batching: images per coalesced runtime call.")] = 32,
    max_delay_ms: Annotated[float, typer.Option(parser=number_option("--max-delay-ms", high=60000), help="Dynamic batching: how long a request waits for others to join.")] = 5.0,
    batching: Annotated[bool, typer.Option(help="Coalesce concurrent requests (--no-batching: one runtime call per request).")] = True,
    instances: Annotated[int, typer.Option(parser=whole_option("--instances", low=0, high=1024), help="Model instances under load, as Triton's instance_group: 0 = one one-thread instance per core for ONNX Runtime and OpenVINO (a lone request still runs on all cores), else 1; 1 = one all-core instance.")] = 0,
    max_upload_mb: Annotated[float, typer.Option(parser=number_option("--max-upload-mb", above=True, high=100000), help="Largest accepted image file, in MB.")] = 10.0,
    store: Annotated[str, typer.Option(help="Vector store: embedded | milvus.")] = "embedded",
    milvus_uri: Annotated[Optional[str], typer.Option(help="Milvus: http://HOST:19530, or a milvus-lite .db file (default GALLERY/milvus.db).")] = None,
    access_log: Annotated[bool, typer.Option(help="Log a line per request (client, method, path, status; never a body).")] = False,
) -> None:
    """Serve search over a gallery: HTTP API, a web page at /, Prometheus /metrics, OpenAPI at /docs."""
    from .serve.batching import BatchingSettings  # lazy: serve package (kept out of --help)
    from .serve.server import serve as run_server  # lazy: fastapi, uvicorn
    from .serve.service import ServeSettings  # lazy: serve package (kept out of --help)
    from .serve.uploads import UploadLimits  # lazy: serve package (kept out of --help)

    if token:
        typer.echo("warning: --token is visible to other users of this machine in the process list (ps); "
                   "use --token-file PATH (chmod 600) or $REID_EXPORT_TOKEN", err=True)
    model = _served_model(model, from_report, max_map_drop, max_rank1_drop)
    settings = ServeSettings(model=model, gallery=gallery, host=host, port=port, token=token, token_file=token_file,
                             store=store, milvus_uri=milvus_uri,
                             limits=UploadLimits(max_bytes=int(max_upload_mb * 1024 * 1024)),
                             batching=BatchingSettings(enabled=batching, max_batch=max_batch, max_delay_ms=max_delay_ms,
                                                       instances=instances),
                             allowed_hosts=allowed_hosts or (), cors_origins=cors_origins or (),
                             header_timeout_s=header_timeout_s, body_timeout_s=body_timeout_s,
                             max_connections=max_connections)
    run_server(settings, access_log=access_log)


@app.command()
def demo(
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"Folder for everything. Default: {RUNS_DIR}/demo-<time>.")] = None,
    train_ids: Annotated[int, typer.Option(parser=whole_option("--train-ids"), help="Synthetic training identities.")] = 150,
    test_ids: Annotated[int, typer.Option(parser=whole_option("--test-ids"), help="Synthetic test identities.")] = 100,
    epochs: Annotated[Optional[int], typer.Option(parser=whole_option("--epochs"), help="Override the quick recipe's epochs.")] = None,
    seed: Annotated[int, typer.Option(parser=whole_option("--seed", low=0, high=MAX_SEED), help="Seed for data and training.")] = 0,
    wide: Wide = False,
    quiet: Quiet = False,
) -> None:
    """synth -> train (quick recipe) -> ONNX export -> bench torch vs onnxruntime, with stage times."""
    from .apps.demo import run_demo  # lazy: torch, so that --help stays fast
    from .bench.report import print_table  # lazy: kept out of --help

    out = out or _timestamped("demo")
    overrides = {"epochs": epochs} if epochs is not None else {}
    report = run_demo(out, train_ids=train_ids, test_ids=test_ids, seed=seed, overrides=overrides,
                      progress=not quiet, log=typer.echo)
    print_table(report, title=f"reid-export demo ({out})", wide=wide)
    typer.echo("stage wall times: " + ", ".join(f"{k} {v:.1f} s" for k, v in report["stages_seconds"].items())
               + f"; total {sum(report['stages_seconds'].values()):.1f} s")
    typer.echo(f"embedding exported: {report['embedding']['reason']}")
    typer.echo(f"report: {out / 'report.md'}")


def main() -> None:
    """Exit codes: 0 done (bench: every row ok or skipped); 1 a bench row failed, a gate broke or no row
    ran, a parity check failed, or the machine ran out of memory; 2 bad input (file, folder, option)."""
    if any(arg in ("-q", "--quiet") for arg in sys.argv[1:]):
        _quiet_libraries()
    try:
        app()
    except ReidExportError as e:
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except OSError as e:  # a file-system error our checks did not foresee: still one line naming the path
        where = f"{e.filename}: " if e.filename else ""
        typer.echo(f"error: {where}{e.strerror or e}; check the path exists and is readable/writable", err=True)
        sys.exit(2)
    except MemoryError:
        typer.echo("error: out of memory; use smaller batch sizes (--batch-sizes) or fewer images", err=True)
        sys.exit(1)


def _quiet_libraries() -> None:
    """-q: no warnings or log lines from torch, ONNX Runtime's quantiser, onnx, ...; ours still show."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    warnings.filterwarnings("default", module=r"reid_export(\.|$)")
    logging.getLogger().setLevel(logging.ERROR)


def _served_model(model: str | None, report: Path | None, max_map_drop: float | None,
                  max_rank1_drop: float | None) -> str:
    """serve's --model, or the row --from-report picks (its start-up line printed)."""
    if report is None:
        if max_map_drop is not None or max_rank1_drop is not None:
            raise ReidExportError("--max-map-drop / --max-rank1-drop choose a row of --from-report REPORT.json; "
                                  "without a report there is nothing to choose: drop them or add --from-report")
        if model is None:
            raise ReidExportError("missing the model to serve: --model PATH (or RUNTIME=PATH), or --from-report "
                                  "REPORT.json to serve the fastest row of a bench report within the accuracy drops")
        return model
    if model is not None:
        raise ReidExportError(f"--from-report and --model both given: the report picks the model and its runtime "
                              f"(the RUNTIME= of --model {model}); give one of them")
    from .serve.from_report import pick_from_report  # lazy: serve package (kept out of --help)

    pick = pick_from_report(report, max_map_drop=max_map_drop, max_rank1_drop=max_rank1_drop)
    typer.echo(pick.line())
    return pick.model


def _read_report(path: Path) -> dict:
    import json

    try:
        report = json.loads(Path(path).read_text())
        if not all(isinstance(r, dict) and {"runtime", "model", "status"} <= set(r) for r in report["rows"]):
            raise ValueError("its rows lack runtime/model/status")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReidExportError(f"--compare {path}: not a report.json written by `reid-export bench` ({e})") from None
    return report


def _normalisation(mean: str | None, std: str | None) -> dict:
    """--mean/--std for a checkpoint or foreign weights, in 0-1 units (values over 1 are read as 0-255 units)."""
    from .export.adopt import parse_channels  # lazy: the export package pulls torch

    out = {}
    for name, text in (("mean", mean), ("std", std)):
        if text is not None:
            values = parse_channels(text, f"--{name}")
            out[name] = tuple(v / 255.0 for v in values) if max(values) > 1.0 else values
    return out


def _timestamped(kind: str) -> Path:
    return RUNS_DIR / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}"


def _out(out: Path | None, old: Path | None, *, required: bool = False) -> Path | None:
    """-o/--out, or the old `--output` spelling with a notice; both given is an error."""
    if old is not None:
        if out is not None:
            raise ReidExportError("give the output once: -o/--out (--output is its old spelling)")
        typer.echo("notice: --output is now -o/--out; the old spelling works until the next release", err=True)
        out = old
    if out is None and required:
        raise ReidExportError("missing option -o/--out: the folder to write into")
    return out


def _index_engine(engine: str, address: str | None, actors: int):
    """--engine local: None (the library's default), in a null context; --engine ray: a `RayEngine` to enter."""
    import contextlib  # lazy: as the other imports here, kept out of the start-up of every command

    if engine == "local":
        if address is not None or actors:
            raise ReidExportError("--address and --actors are for --engine ray; add --engine ray, or drop them")
        return contextlib.nullcontext(None)
    if engine == "ray":
        from .serve.ray_index import RayEngine, RaySettings  # lazy: serve package (Ray itself starts on enter)

        return RayEngine(RaySettings(address=address, actors=actors))
    raise ReidExportError(f"--engine {engine!r}: choose local or ray")

if __name__ == "__main__":
    main()
