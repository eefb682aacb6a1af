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

from .apps.predict import predict_course
from .apps.visualize import visualize_rankings
from .bench.drift import drift_table_lines, parse_preprocess_as
from .bench.report import compare_reports, print_comparison, print_table, write_report
from .bench.run import BenchSettings, ModelSpec, check_gates, check_report_dir, row_outcomes, run_bench, with_embeddings
from .data.synthetic import generate_market1501
from .deploy.deepstream import NETWORK_MODES, REID_TYPES, write_deepstream
from .deploy.triton import DEFAULT_MAX_BATCH, write_triton_repository
from .errors import ReidExportError
from .export.settings import DEFAULT_OPSET, ExportOptions, Int8Search, Int8Settings
from .export.tensorrt import BuildSettings, trt_command
from .export.verify import DEFAULT_MIN_COSINE
from .files import ENGINES_DIR, RUNS_DIR, remove_empty_folders
from .runtimes import parse_model_spec

# Defaults shown in --help are the library's own dataclass defaults, read from here.
_INT8, _TRT, _BENCH, _SEARCH = Int8Settings(), BuildSettings(), BenchSettings(), Int8Search()

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
    help="Train a person re-ID model on Market-1501, export it to ONNX, benchmark every runtime.",
)

Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars (for CI and logs).")]
# `--output` was the spelling of onnx/trt/visualize/predict before 0.2: still read, with a notice
OldOutput = Annotated[Optional[Path], typer.Option("--output", hidden=True, help="Old spelling of -o/--out.")]


@app.command()
def synth(
    out_dir: Annotated[Optional[Path], typer.Argument(help="Folder to create (must not hold a data set already); or -o/--out.")] = None,
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Folder to create (same as the argument).")] = None,
    train_ids: Annotated[int, typer.Option(help="Training identities.")] = 150,
    test_ids: Annotated[int, typer.Option(help="Test identities (query + gallery).")] = 100,
    seed: Annotated[int, typer.Option(help="Same seed, same images.")] = 0,
    quiet: Quiet = False,
) -> None:
    """Write a synthetic data set in the official Market-1501 layout and file naming."""
    if out_dir is not None and out is not None and out_dir != out:
        raise ReidExportError(f"two output folders given ({out_dir} and -o {out}); give one")
    out_dir = out_dir or out
    if out_dir is None:
        raise ReidExportError("missing the folder to write: reid-export synth DIR (or -o DIR)")
    s = generate_market1501(out_dir, train_ids=train_ids, test_ids=test_ids, seed=seed, progress=not quiet)
    typer.echo(f"wrote {s.total_images} images to {s.out_dir} in {s.seconds:.1f} s ({s.images_per_sec:.0f} images/s)")


@app.command()
def train(
    data: Annotated[Path, typer.Option(help="Market-1501 folder (bounding_box_train/, query/, bounding_box_test/) or a course folder (train/, test/, queries/, annotations_train.csv).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Checkpoint to write (.pt); updated atomically every epoch.")],
    recipe: Annotated[str, typer.Option(help="Recipe name in train/ (quick, seed, ...) or a .toml path.")] = "quick",
    epochs: Annotated[Optional[int], typer.Option(help="Override the recipe's epochs.")] = None,
    arch: Annotated[Optional[str], typer.Option(help="resnet18 | resnet34 | resnet50 | resnet101 | osnet_x1_0 | osnet_x0_25 | osnet_ibn_x1_0 (OSNet: random init, last_stride 2).")] = None,
    batch_size: Annotated[Optional[int], typer.Option(help="Override the recipe's batch size.")] = None,
    lr: Annotated[Optional[float], typer.Option(help="Override the recipe's learning rate.")] = None,
    init: Annotated[Optional[str], typer.Option(help="random | imagenet (ResNet only; needs network) | PATH to a backbone .pth.")] = None,
    device: Annotated[Optional[str], typer.Option(help="auto | cpu | cuda.")] = None,
    seed: Annotated[Optional[int], typer.Option(help="Random seed.")] = None,
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
    overrides.update(_parse_sets(set_ or []))
    result = training.train(training.load_recipe(recipe, overrides), resume=resume, quiet=quiet)
    if os.environ.get("RANK", "0") != "0":
        return  # under torchrun, rank 0 alone reports
    typer.echo(f"checkpoint: {result.checkpoint}")
    typer.echo("metrics: " + ", ".join(f"{k} {v:.2f}" for k, v in result.metrics.items() if isinstance(v, float)))


@app.command()
def onnx(
    artefact: Annotated[Path, typer.Argument(help="reid-export checkpoint (.pt) or backbone state dict (.pth).")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"ONNX file to write. Default: {ENGINES_DIR}/<name>[.fp16|.int8].onnx.")] = None,
    precision: Annotated[str, typer.Option(help="fp32 | fp16 | int8 (Q/DQ, calibrated on --calib-data's training images).")] = "fp32",
    data: Annotated[Optional[Path], typer.Option(help="Market-1501 folder whose images feed the parity check.")] = None,
    calib_data: Annotated[Optional[Path], typer.Option(help="INT8: Market-1501 folder; only bounding_box_train/ is used.")] = None,
    calib_method: Annotated[str, typer.Option(help="INT8 calibration: minmax | entropy | percentile.")] = _INT8.method,
    calib_images: Annotated[int, typer.Option(help="INT8: number of training images to calibrate on.")] = _INT8.num_images,
    int8_activations: Annotated[str, typer.Option(help="INT8 activations: uint8 (fastest on x86 CPUs) | int8 (symmetric, for TensorRT).")] = _INT8.activations,
    opset: Annotated[int, typer.Option(help="ONNX opset (17 or newer).")] = DEFAULT_OPSET,
    l2_normalize: Annotated[bool, typer.Option(help="L2-normalise the embedding inside the graph.")] = True,
    with_attributes: Annotated[Optional[bool], typer.Option("--with-attributes/--no-attributes", help="Also output the attribute probabilities (N x 30). Default: when the model has attribute heads.")] = None,
    embedding: Annotated[str, typer.Option(help="neck | pooled | auto (the checkpoint's choice, made on held-out training ids).")] = "auto",
    max_map_drop: Annotated[Optional[float], typer.Option(help="INT8: keep the most sensitive layers in FP32 until the mAP on held-out training ids of --calib-data is within this many points of FP32.")] = None,
    int8_max_steps: Annotated[int, typer.Option(help="With --max-map-drop: at most this many fallback steps.")] = _SEARCH.max_steps,
    int8_layers_per_step: Annotated[int, typer.Option(help="With --max-map-drop: layers moved to FP32 per step.")] = _SEARCH.layers_per_step,
    height: Annotated[Optional[int], typer.Option(help="Input height, for a bare backbone (default 128).")] = None,
    width: Annotated[Optional[int], typer.Option(help="Input width, for a bare backbone (default 64).")] = None,
    exporter: Annotated[str, typer.Option(help="dynamo | torchscript.")] = "dynamo",
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output file.")] = False,
    min_cosine: Annotated[Optional[float], typer.Option(help="Parity threshold; default " + ", ".join(f"{v} {k}" for k, v in DEFAULT_MIN_COSINE.items()) + ".")] = None,
    keep_failed: Annotated[bool, typer.Option(help="Keep an export that fails parity, as NAME.failed.onnx (default: delete it).")] = False,
    output: OldOutput = None,
    quiet: Quiet = False,
) -> None:
    """Export to ONNX (dynamic batch, contract in the metadata), then check parity against PyTorch."""
    from .export.run import export_model  # lazy: torch, so that --help stays fast

    search = None if max_map_drop is None else Int8Search(max_map_drop=max_map_drop, max_steps=int8_max_steps,
                                                          layers_per_step=int8_layers_per_step)
    options = ExportOptions(precision=precision, opset=opset, l2_normalize=l2_normalize, with_attributes=with_attributes,
                            embedding=embedding, int8_search=search,
                            exporter=exporter, overwrite=overwrite, min_cosine=min_cosine, keep_failed=keep_failed,
                            int8=Int8Settings(method=calib_method, num_images=calib_images, activations=int8_activations))
    result = export_model(artefact, _out(out, output), options, calib_data=calib_data, data=data,
                          input_size=(height, width), progress=not quiet, log=typer.echo)
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


@app.command("trt")
def trt_engine(
    model: Annotated[Path, typer.Argument(help="ONNX file written by `reid-export onnx` (fp32, fp16 or int8 graph).")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"Engine to write (.engine); NAME.engine.json goes next to it. Default: {ENGINES_DIR}/<name>.engine.")] = None,
    min_batch: Annotated[int, typer.Option(help="Smallest batch the engine accepts.")] = _TRT.min_batch,
    opt_batch: Annotated[int, typer.Option(help="Batch size TensorRT tunes its kernels for.")] = _TRT.opt_batch,
    max_batch: Annotated[int, typer.Option(help="Largest batch the engine accepts.")] = _TRT.max_batch,
    workspace: Annotated[str, typer.Option(help="Builder scratch GPU memory, e.g. 4GiB or 512MiB.")] = str(_TRT.workspace),
    timing_cache: Annotated[Optional[Path], typer.Option(help="Timing cache file: read if present, written after the build.")] = None,
    fp16_flag: Annotated[bool, typer.Option("--fp16-flag", help="TensorRT 10 only: FP16 kernels for an FP32 graph. On TensorRT 11 export with --precision fp16 instead.")] = False,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing engine and its sidecar.")] = False,
    output: OldOutput = None,
) -> None:
    """Build a TensorRT engine (+ JSON sidecar) from an ONNX export. Needs an NVIDIA GPU and TensorRT."""
    out = _out(out, output)
    typer.echo(f"building {out or ENGINES_DIR / (model.stem + '.engine')} from {model} (TensorRT builds take minutes)")
    info = trt_command(model, out, min_batch=min_batch, opt_batch=opt_batch, max_batch=max_batch,
                       workspace=workspace, timing_cache=timing_cache, fp16_flag=fp16_flag, overwrite=overwrite)
    for line in info.summary_lines():
        typer.echo(line)
    for warning in info.warnings:
        typer.echo(f"warning: {warning}", err=True)


@app.command("openvino")
def openvino_ir(
    artefact: Annotated[Path, typer.Argument(help="ONNX file written by `reid-export onnx` (fp32 or int8 Q/DQ), or a checkpoint (.pt).")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"IR to write (NAME.xml; NAME.bin goes next to it). Default: {ENGINES_DIR}/<name>.xml.")] = None,
    nncf_int8: Annotated[bool, typer.Option("--nncf-int8", help="Quantise an FP32 graph to INT8 with NNCF (the comparison for the project's own Q/DQ INT8).")] = False,
    calib_data: Annotated[Optional[Path], typer.Option(help="--nncf-int8: Market-1501 folder; only bounding_box_train/ is used.")] = None,
    calib_images: Annotated[int, typer.Option(help="--nncf-int8: number of training images to calibrate on.")] = _INT8.num_images,
    data: Annotated[Optional[Path], typer.Option(help="Market-1501 folder whose images feed the parity check (default: random tensors).")] = None,
    min_cosine: Annotated[Optional[float], typer.Option(help="Parity threshold vs ONNX Runtime; default by precision: " + ", ".join(f"{v} {k}" for k, v in DEFAULT_MIN_COSINE.items()) + ".")] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing IR.")] = False,
    quiet: Quiet = False,
) -> None:
    """Convert to OpenVINO IR with the contract and precision in its rt_info; parity against ONNX Runtime."""
    from .export.openvino import export_openvino  # lazy: openvino

    result = export_openvino(artefact, out, nncf_int8=nncf_int8, calib_data=calib_data, calib_images=calib_images,
                             data=data, min_cosine=min_cosine, overwrite=overwrite, progress=not quiet)
    typer.echo(result.summary())


@app.command()
def triton(
    artefact: Annotated[Path, typer.Argument(help="ONNX file (.onnx), TensorRT engine (.engine, with its sidecar) or OpenVINO IR (.xml).")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Model repository folder; NAME/config.pbtxt and NAME/1/model.* go in it.")],
    name: Annotated[str, typer.Option(help="Model name: its folder in the repository and the NAME clients ask for.")] = "reid",
    max_batch: Annotated[Optional[int], typer.Option(help=f"max_batch_size. Default: the engine profile's max for a TensorRT engine, else {DEFAULT_MAX_BATCH}.")] = None,
    instances: Annotated[int, typer.Option(help="Model instances (instance_group count).")] = 1,
    kind: Annotated[Optional[str], typer.Option(help="Instance kind: gpu or cpu. Default: gpu (cpu for an OpenVINO IR).")] = None,
    preferred_batch: Annotated[Optional[str], typer.Option(help="dynamic_batching preferred sizes, e.g. 16,32,64. Default: up to three, ending at max_batch_size.")] = None,
    queue_delay_us: Annotated[int, typer.Option(help="dynamic_batching max_queue_delay_microseconds.")] = 100,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing NAME folder in the repository.")] = False,
) -> None:
    """Write a Triton model repository (NAME/1/model.*, NAME/config.pbtxt checked against Triton's schema)."""
    preferred = _parse_ints(preferred_batch, "--preferred-batch") if preferred_batch else None
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
    batch_size: Annotated[int, typer.Option(help="Tracker Re-ID batchSize (crops per inference).")] = 100,
    workspace_mb: Annotated[int, typer.Option(help="TensorRT workspaceSize for DeepStream's engine build, in MB.")] = 1000,
    overwrite: Annotated[bool, typer.Option(help="Replace existing files in the folder.")] = False,
) -> None:
    """DeepStream tracker Re-ID: an embedding-only ONNX with the std folded in, and the config's ReID section."""
    files = write_deepstream(checkpoint, out, reid_type=reid_type, network_mode=network_mode, batch_size=batch_size,
                             workspace_mb=workspace_mb, overwrite=overwrite)
    typer.echo(f"wrote {files.onnx} and {files.config}; under DeepStream's netScaleFactor * (x - offsets) the folded "
               f"graph matches the model: min cosine {files.cosine_min:.6f}")


@app.command()
def bench(
    data: Annotated[Path, typer.Option(help="Market-1501 folder: query/ and bounding_box_test/ are used.")],
    model: Annotated[list[str], typer.Option(help="PATH or RUNTIME=PATH (repeatable); runtimes: torch, torch-cuda, torch-cuda-fp16, torch-bf16, onnxruntime, onnxruntime-cuda, onnxruntime-trt, tensorrt, openvino, openvino-bf16.")],
    batch_sizes: Annotated[str, typer.Option(help="Comma-separated batch sizes for throughput.")] = ",".join(map(str, _BENCH.batch_sizes)),
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"Report folder. Default: {RUNS_DIR}/bench-<time>.")] = None,
    max_map_drop: Annotated[Optional[float], typer.Option(help="Exit 1 if a row's mAP is more than this many points below the reference.")] = None,
    max_rank1_drop: Annotated[Optional[float], typer.Option(help="Exit 1 if a row's Rank-1 is more than this many points below the reference.")] = None,
    compare: Annotated[Optional[Path], typer.Option(help="An earlier report.json: print the change against it.")] = None,
    stages: Annotated[bool, typer.Option(help="Also time the whole path per batch: read, decode, resize, normalise, copies, inference.")] = True,
    preprocess_as: Annotated[Optional[str], typer.Option(help="Extra rows: query/gallery re-decoded as deployment targets resize, e.g. pil,cv2-linear,keep-aspect (also: pil-bicubic, cv2-area, cv2-nearest); from stored and from upscaled crops.")] = None,
    preprocess_upscale: Annotated[float, typer.Option(help="--preprocess-as: also from crops upscaled this many times, as detector boxes are.")] = _BENCH.preprocess_upscale,
    ov_hint: Annotated[str, typer.Option(help="OpenVINO rows: latency (one request, every thread) | throughput (streams, the batch split across them).")] = "latency",
    embedding: Annotated[str, typer.Option(help="Checkpoint rows rank with: auto (the checkpoint's choice) | neck | pooled | both (one row each, side by side).")] = "auto",
    overwrite: Annotated[bool, typer.Option(help="Replace the report and plots of an earlier run in --out.")] = False,
    quiet: Quiet = False,
) -> None:
    """Throughput, latency, Rank-1/mAP/mINP and agreement with the reference, one row per runtime.
    Exit 0: every row ok or skipped; 1: a row failed, a gate broke, or no row could run; 2: bad input."""
    if ov_hint not in ("latency", "throughput"):
        raise ReidExportError(f"--ov-hint takes latency or throughput, got {ov_hint!r}")
    specs = [ModelSpec(*spec, options=(("hint", ov_hint),) if spec[0].startswith("openvino") else ())
             for spec in map(parse_model_spec, model)]
    specs = with_embeddings(specs, embedding)
    settings = BenchSettings(batch_sizes=_parse_ints(batch_sizes, "--batch-sizes"), stages=stages, progress=not quiet,
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
    print_table(report)
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
    model: Annotated[str, typer.Option(help="PATH or RUNTIME=PATH; runtimes: torch, torch-cuda, torch-cuda-fp16, onnxruntime, onnxruntime-cuda, onnxruntime-trt, tensorrt.")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Folder for the PNGs; must be new or empty (nothing is overwritten).")] = None,
    queries: Annotated[int, typer.Option(help="Queries to draw, spread over identities.")] = 8,
    top_k: Annotated[int, typer.Option(help="Gallery images shown per query, closest first.")] = 10,
    seed: Annotated[int, typer.Option(help="Same seed, same queries.")] = 0,
    output: OldOutput = None,
    quiet: Quiet = False,
) -> None:
    """Picture each query's top-k gallery images: green match, red wrong, grey junk; attributes if the model has them."""
    files = visualize_rankings(data, model, _out(out, output, required=True), num_queries=queries, top_k=top_k, seed=seed, progress=not quiet)
    for file in files:
        typer.echo(f"wrote {file}")


@app.command()
def predict(
    data: Annotated[Path, typer.Option(help="Course layout: train/, test/, queries/, annotations_train.csv.")],
    model: Annotated[str, typer.Option(help="PATH or RUNTIME=PATH (an attribute model also writes classification_test.csv).")],
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help="Folder for reid_test.txt and classification_test.csv.")] = None,
    top_k: Annotated[int, typer.Option(help="Gallery images listed per query.")] = 100,
    output: OldOutput = None,
    quiet: Quiet = False,
) -> None:
    """Course submission files: each query's ranked test images, and the 27 attributes of every test image."""
    files = predict_course(data, model, _out(out, output, required=True), top_k=top_k, progress=not quiet)
    for file in files:
        typer.echo(f"wrote {file}")
    if len(files) == 1:
        typer.echo("the model has no attribute outputs, so classification_test.csv was not written "
                   "(train on the course folder, which adds attribute heads by default, and export without "
                   "--no-attributes)")


index_app = typer.Typer(no_args_is_help=True, help="Build and change a gallery for `reid-export serve`.")
app.add_typer(index_app, name="index")


@index_app.command("build")
def index_build(
    data: Annotated[Path, typer.Option(help="Images to index: a Market-1501 folder (its bounding_box_test/), a course folder (its test/), or any folder of crops.")],
    model: Annotated[str, typer.Option(help="PATH or RUNTIME=PATH: the artefact the gallery is built (and later served) with.")],
    out: Annotated[Path, typer.Option("-o", "--out", help="Gallery folder to write (atomically).")],
    batch_size: Annotated[int, typer.Option(help="Images per runtime call.")] = 64,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing gallery folder.")] = False,
    quiet: Quiet = False,
) -> None:
    """Embed every image of a folder into a new gallery: embeddings, crops, pid/camera, attributes, model sha256."""
    from .serve.indexing import build_gallery  # lazy: serve package (kept out of --help)

    out = build_gallery(data, model, out, overwrite=overwrite, batch_size=batch_size, progress=not quiet)
    typer.echo(f"wrote gallery {out}")


@index_app.command("add")
def index_add(
    gallery: Annotated[Path, typer.Argument(help="Gallery folder written by `reid-export index build`.")],
    images: Annotated[list[Path], typer.Argument(help="Image files or folders to add.")],
    model: Annotated[str, typer.Option(help="PATH or RUNTIME=PATH: the artefact the gallery was built with.")],
    batch_size: Annotated[int, typer.Option(help="Images per runtime call.")] = 64,
    commit_every: Annotated[int, typer.Option(help="Images per gallery commit (a killed add loses at most one commit).")] = 256,
    quiet: Quiet = False,
) -> None:
    """Add images to a gallery (refused if the model is not the one it was built with)."""
    from .serve.indexing import add_to_gallery  # lazy: serve package (kept out of --help)

    size = add_to_gallery(gallery, model, images, batch_size=batch_size, commit_every=commit_every, progress=not quiet)
    typer.echo(f"gallery {gallery}: {size} items")


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
    model: Annotated[str, typer.Option(help="PATH or RUNTIME=PATH, any runtime the bench knows (onnxruntime=..., torch=...).")],
    gallery: Annotated[Path, typer.Option(help="Gallery folder built with the same model (`reid-export index build`).")],
    host: Annotated[str, typer.Option(help="Address to bind; anything but loopback needs --token.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
    token: Annotated[Optional[str], typer.Option(help="Require 'Authorization: Bearer TOKEN' (default: $REID_EXPORT_TOKEN).")] = None,
    max_batch: Annotated[int, typer.Option(help="Dynamic batching: images per coalesced runtime call.")] = 32,
    max_delay_ms: Annotated[float, typer.Option(help="Dynamic batching: how long a request waits for others to join.")] = 5.0,
    batching: Annotated[bool, typer.Option(help="Coalesce concurrent requests (--no-batching: one runtime call per request).")] = True,
    instances: Annotated[int, typer.Option(help="Model instances under load, as Triton's instance_group: 0 = one one-thread ONNX Runtime session per core (a lone request still runs on all cores); 1 = one all-core instance.")] = 0,
    max_upload_mb: Annotated[float, typer.Option(help="Largest accepted image file, in MB.")] = 10.0,
    store: Annotated[str, typer.Option(help="Vector store: embedded | milvus.")] = "embedded",
    milvus_uri: Annotated[Optional[str], typer.Option(help="Milvus: http://HOST:19530, or a milvus-lite .db file (default GALLERY/milvus.db).")] = None,
    access_log: Annotated[bool, typer.Option(help="Log a line per request (client, method, path, status; never a body).")] = False,
) -> None:
    """Serve search over a gallery: HTTP API, a web page at /, Prometheus /metrics, OpenAPI at /docs."""
    from .serve.batching import BatchingSettings  # lazy: serve package (kept out of --help)
    from .serve.server import serve as run_server  # lazy: fastapi, uvicorn
    from .serve.service import ServeSettings  # lazy: serve package (kept out of --help)
    from .serve.uploads import UploadLimits  # lazy: serve package (kept out of --help)

    settings = ServeSettings(model=model, gallery=gallery, host=host, port=port, token=token, store=store,
                             milvus_uri=milvus_uri, limits=UploadLimits(max_bytes=int(max_upload_mb * 1024 * 1024)),
                             batching=BatchingSettings(enabled=batching, max_batch=max_batch, max_delay_ms=max_delay_ms,
                                                       instances=instances))
    run_server(settings, access_log=access_log)


@app.command()
def demo(
    out: Annotated[Optional[Path], typer.Option("-o", "--out", help=f"Folder for everything. Default: {RUNS_DIR}/demo-<time>.")] = None,
    train_ids: Annotated[int, typer.Option(help="Synthetic training identities.")] = 150,
    test_ids: Annotated[int, typer.Option(help="Synthetic test identities.")] = 100,
    epochs: Annotated[Optional[int], typer.Option(help="Override the quick recipe's epochs.")] = None,
    seed: Annotated[int, typer.Option(help="Seed for data and training.")] = 0,
    quiet: Quiet = False,
) -> None:
    """synth -> train (quick recipe) -> ONNX export -> bench torch vs onnxruntime, with stage times."""
    from .apps.demo import run_demo  # lazy: torch, so that --help stays fast

    out = out or _timestamped("demo")
    overrides = {"epochs": epochs} if epochs is not None else {}
    report = run_demo(out, train_ids=train_ids, test_ids=test_ids, seed=seed, overrides=overrides,
                      progress=not quiet, log=typer.echo)
    print_table(report, title=f"reid-export demo ({out})")
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


def _parse_ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise ReidExportError(f"{option} takes comma-separated whole numbers like 1,32; got {text!r}") from None
    if not values or min(values) < 1:
        raise ReidExportError(f"{option} needs at least one batch size of 1 or more; got {text!r}")
    return values


def _read_report(path: Path) -> dict:
    import json

    try:
        report = json.loads(Path(path).read_text())
        if not all(isinstance(r, dict) and {"runtime", "model", "status"} <= set(r) for r in report["rows"]):
            raise ValueError("its rows lack runtime/model/status")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ReidExportError(f"--compare {path}: not a report.json written by `reid-export bench` ({e})") from None
    return report


def _parse_sets(items: list[str]) -> dict:
    """`--set KEY=VALUE` pairs; VALUE is read as in a recipe file (TOML: 64, 2e-3, true, [40, 70]),
    and taken as a plain string when it is not valid TOML (--set arch=resnet50)."""
    import tomllib

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ReidExportError(f"--set takes KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
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


if __name__ == "__main__":
    main()
