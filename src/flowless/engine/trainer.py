"""``train(cfg)``: train one stream (RGB or flow input), optionally distilled from a teacher.

Every epoch writes ``last.pt`` atomically with everything needed to continue (model,
optimiser, scheduler, grad scaler, epoch, RNG states, config, metric history); ``best.pt``
follows validation clip accuracy. The data order and augmentation are functions of
(seed, epoch), so a run killed at any point and resumed from ``last.pt`` ends with the same
weights as an uninterrupted run (bit for bit on CPU).
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from flowless.checkpoint import load_checkpoint, save_checkpoint, versions
from flowless.config import TrainConfig, save_yaml, to_dict, validate
from flowless.engine import data as rundata
from flowless.engine.distributed import DistEnv, barrier, setup, teardown
from flowless.engine.loop import Distiller, StepOptions, Taps, train_epoch, val_epoch
from flowless.engine.metrics import MetricsLog
from flowless.engine.optim import Schedule, build_optimizer, freeze_until
from flowless.engine.state import (
    BEST,
    LAST,
    load_resume,
    rng_state,
    seed_everything,
    set_rng_state,
    weights_only,
)
from flowless.errors import CheckpointError, ConfigError
from flowless.io import writable_dir, write_json

STREAM_NAMES = {"mars": "mars", "relation": "ds", "relation+mars": "ds+mars", "kd": "kd",
                "student": "student"}


def stream_name(cfg: TrainConfig) -> str:
    """Name recorded in the checkpoint: rgb / flow, or the distillation (mars, ds, ...)."""
    if cfg.name:
        return cfg.name
    return STREAM_NAMES.get(cfg.distill.mode, cfg.stream)


def amp_dtype(cfg: TrainConfig, device: torch.device) -> torch.dtype | None:
    """Autocast dtype: bf16 when supported (else fp16) on CUDA; never on CPU."""
    if cfg.amp == "off" or device.type != "cuda":
        return None
    if cfg.amp == "fp16":
        return torch.float16
    if cfg.amp == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _echo(env: DistEnv, quiet: bool | None) -> Callable[[str], None] | None:
    if not env.is_main or quiet:
        return None
    return lambda msg: print(msg, flush=True)


def _build_model(cfg: TrainConfig, num_classes: int, echo: Callable[[str], None] | None
                 ) -> nn.Module:
    from flowless.models import create_model, load_weights

    m = cfg.model
    options: dict[str, Any] = {"width": m.width}
    if m.shortcut is not None:
        options["shortcut"] = m.shortcut
    if m.cardinality is not None:
        options["cardinality"] = m.cardinality
    if m.dropout:
        options["dropout"] = m.dropout
    net = create_model(m.arch, num_classes, 3 if cfg.stream == "rgb" else 2, **options)
    if m.pretrained:
        report = load_weights(net, m.pretrained)
        if echo:
            echo(f"pretrained: {report}")
    freeze_until(net, m.freeze_until)
    return net


def _frozen(path: str, device: torch.device, what: str) -> tuple[nn.Module, str]:
    """A frozen flowless stream network on ``device`` and the input it takes (rgb or flow)."""
    from flowless.eval.streams import TorchStream, load_stream

    try:
        stream = load_stream(path, device)
    except CheckpointError as exc:
        raise CheckpointError(f"{what}: {exc}") from exc
    if not isinstance(stream, TorchStream):
        raise CheckpointError(f"{what}: {path}: the teacher must be a flowless stream "
                              "checkpoint (train it with `flowless train`, e.g. --set "
                              "stream=flow), not an ONNX model")
    return stream.module, stream.input


def _build_teacher(cfg: TrainConfig, device: torch.device) -> tuple[nn.Module, str]:
    """The frozen teacher network on ``device`` and the input it takes (rgb or flow)."""
    return _frozen(cfg.distill.teacher, device, "distill.teacher")


def _check_taps(student: nn.Module, teacher: nn.Module, cfg: TrainConfig, s_ch: int,
                t_ch: int, device: torch.device) -> None:
    """Fail early (one line) when the teacher's taps cannot be compared with the student's."""
    mode = cfg.distill.mode
    taps = {"mars": ["pool"], "kd": ["logits"], "relation": list(cfg.distill.taps),
            "relation+mars": list(cfg.distill.taps) + ["pool"],
            "student": ["logits"] + (list(cfg.distill.taps) if cfg.distill.alpha else [])}[mode]
    d = cfg.data
    was_training = student.training
    student.eval()
    with torch.no_grad():
        s = student.forward_features(torch.zeros(1, s_ch, d.clip_len, d.size, d.size,
                                                 device=device))
        t = teacher.forward_features(torch.zeros(1, t_ch, d.clip_len, d.size, d.size,
                                                 device=device))
    student.train(was_training)
    for tap in taps:
        if s[tap].shape != t[tap].shape:
            raise ConfigError(
                f"distill.teacher: {cfg.distill.teacher}: tap {tap!r} has shape "
                f"{tuple(t[tap].shape[1:])} in the teacher but {tuple(s[tap].shape[1:])} in the "
                f"student; {mode} distillation needs the same architecture and width "
                "(or set distill.taps to matching taps)")


def _check_ensemble(ensemble: list[tuple[nn.Module, str]], num_classes: int,
                    cfg: TrainConfig) -> None:
    """Each ensemble stream must name as many classes as the dataset (its logits are averaged
    with the teacher's)."""
    for (net, _), path in zip(ensemble, cfg.distill.ensemble):
        k = getattr(net, "config", {}).get("num_classes")
        if k is not None and k != num_classes:
            raise ConfigError(f"distill.ensemble: {path} has {k} classes but the dataset has "
                              f"{num_classes}; ensemble streams trained on this dataset")


DONE = "done"  # marker written by train_once when a run has finished


def train_once(cfg: TrainConfig, *, quiet: bool | None = None) -> Path:
    """Train ``cfg`` to its end exactly once (single process): a run folder holding ``last.pt``
    and the ``done`` marker is reused as it is, one holding ``last.pt`` only (a killed run)
    is resumed, else a new run starts; writes the marker at the end. Returns the folder.
    The demo, cross-fitting and the benchmark scripts train their networks through it."""
    from flowless.io import write_text

    out = Path(cfg.out)
    if (out / LAST).exists() and (out / DONE).exists():
        return out
    if (out / LAST).exists():
        cfg = dataclasses.replace(cfg, resume=str(out))
    train(cfg, quiet=quiet)
    write_text(out / DONE, "")
    return out


def warmup_ramp(epoch: int, warmup_epochs: float) -> float:
    """The distillation weight's share in ``epoch`` (1-based): epoch / warm-up, at most 1."""
    return 1.0 if warmup_epochs <= 0 else min(1.0, epoch / warmup_epochs)


def _checkpoint(cfg: TrainConfig, net: nn.Module, classes: list[str], epoch: int,
                state: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "stream",
        "model": {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()},
        "model_config": net.config,
        "stream": stream_name(cfg),
        "input": cfg.stream,
        "classes": list(classes),
        "data": rundata.data_settings(cfg.data),
        "epoch": epoch,
        "config": to_dict(cfg),
        "teacher": cfg.distill.teacher,
        **state,
    }


def train(cfg: TrainConfig, *, quiet: bool | None = None) -> Path:
    """Train a stream network as configured; returns the run folder (with best.pt, last.pt).

    ``quiet=True`` prints nothing (no progress bars, no epoch lines); ``None`` shows bars
    only on a terminal. Under ``torchrun`` each process calls this; rank 0 writes.
    """
    from flowless.distill.recipe import resolve

    validate(cfg)
    if cfg.distill.mode != "none":  # config.yaml records the weights the run used
        cfg = dataclasses.replace(cfg, distill=resolve(cfg.distill))
    env = setup(cfg.device)
    try:
        return _train(cfg, env, quiet)
    finally:
        teardown(env)


@dataclasses.dataclass
class _Data:
    """The datasets and loaders of a run, and the batch keys of student and teacher."""

    classes: list[str]
    train_ds: Any
    train_loader: Any
    val_ds: Any
    val_loader: Any
    num_val_videos: int
    student_key: str
    teacher_key: str | None
    ds_stream: str


def _data(cfg: TrainConfig, env: DistEnv, run_dir: Path, teacher_input: str | None,
          echo: Callable[[str], None] | None, others: tuple[str, ...] = ()) -> _Data:
    """Records, clip datasets and loaders (validation: the student's input, test clips)."""
    # Records first: a bad annotation file fails before the run folder exists. A dataset
    # without splits writes its hold-out to run_dir/split here.
    classes, train_recs, val_recs, skipped = rundata.load_records(
        cfg.data, run_dir if env.is_main else None, echo)
    if env.is_main:
        writable_dir(run_dir)  # an unwritable --out fails now, not after an epoch
    if echo and skipped:
        echo(f"skipped {len(skipped)} missing videos (e.g. {skipped[0].path})")
    ds_stream, s_key, t_key = rundata.dataset_stream(cfg.stream, teacher_input, others)
    train_ds = rundata.clip_dataset(train_recs, cfg.data, ds_stream, "train", cfg.seed)
    val_ds = rundata.clip_dataset(val_recs, cfg.data, cfg.stream, "test", cfg.seed) \
        if val_recs else None
    rundata.cache_videos([ds for ds in (train_ds, val_ds) if ds is not None], cfg.data, env,
                         echo)
    train_loader = rundata.make_loader(train_ds, cfg.batch_size, env, train=True, seed=cfg.seed,
                                       workers=cfg.data.workers)
    val_loader = rundata.make_loader(val_ds, cfg.batch_size, env, train=False, seed=cfg.seed,
                                     workers=cfg.data.workers) if val_ds is not None else None
    return _Data(list(classes), train_ds, train_loader, val_ds, val_loader, len(val_recs),
                 s_key, t_key, ds_stream)


def _restore(resume: dict[str, Any], net: nn.Module, optimizer: torch.optim.Optimizer,
             schedule: Schedule, scaler: torch.amp.GradScaler) -> tuple[int, dict, list]:
    """Load a resumed run's state; returns (epoch done, best so far, metric history)."""
    net.load_state_dict(resume["model"])
    optimizer.load_state_dict(resume["optimizer"])
    schedule.load_state_dict(resume["scheduler"])
    if "scaler" in resume and scaler.is_enabled():
        scaler.load_state_dict(resume["scaler"])
    set_rng_state(resume["rng"])
    return int(resume["epoch"]), dict(resume["best"]), list(resume["history"])


def _train(cfg: TrainConfig, env: DistEnv, quiet: bool | None) -> Path:
    run_dir = Path(cfg.out)
    echo = _echo(env, quiet)
    resume = load_resume(cfg.resume) if cfg.resume else None
    if resume is None and (run_dir / LAST).exists():
        raise ConfigError(f"{run_dir}: already holds a run ({LAST}); continue it with --resume "
                          f"{run_dir} or choose another --out")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    if env.device.type == "cpu":
        torch.set_flush_denormal(True)  # docs/method.md §8: denormals slow late training 20x
    seed_everything(cfg.seed)

    teacher, teacher_input = (None, None)
    ensemble = [_frozen(p, env.device, "distill.ensemble") for p in cfg.distill.ensemble]
    if cfg.distill.mode != "none":
        teacher, teacher_input = _build_teacher(cfg, env.device)
    d = _data(cfg, env, run_dir, teacher_input, echo, tuple(i for _, i in ensemble))
    torch.manual_seed(cfg.seed)
    net = _build_model(cfg, len(d.classes), echo if resume is None else None).to(env.device)
    channels_last = env.device.type == "cuda"  # cuDNN's fast 3D kernels (see docs/training.md)
    if channels_last:
        torch.backends.cudnn.benchmark = True  # fixed clip shapes: pick the fastest kernels
        net.to(memory_format=torch.channels_last_3d)
        for frozen in [teacher] + [m for m, _ in ensemble]:
            if frozen is not None:
                frozen.to(memory_format=torch.channels_last_3d)
    distiller = None
    if teacher is not None:
        dc = cfg.distill
        _check_taps(net, teacher, cfg, 3 if cfg.stream == "rgb" else 2,
                    2 if teacher_input == "flow" else 3, env.device)
        _check_ensemble(ensemble, len(d.classes), cfg)
        distiller = Distiller(teacher, dc.mode, dc.alpha, dc.taps, dc.temperature,
                              input_key=d.teacher_key or "clip",
                              ensemble=[(m, rundata.batch_key(d.ds_stream, i))
                                        for m, i in ensemble],
                              kd_weight=dc.kd_weight, normalize=dc.normalize)
    model: nn.Module = Taps(net)
    if env.distributed:
        model = nn.parallel.DistributedDataParallel(
            model, device_ids=[env.device] if env.device.type == "cuda" else None)
    optimizer = build_optimizer(net, cfg.optim)
    schedule = Schedule(optimizer, cfg.optim, cfg.epochs, len(d.train_loader))
    dtype = amp_dtype(cfg, env.device)
    scaler = torch.amp.GradScaler(env.device.type, enabled=dtype == torch.float16)

    start, best, history = 0, {"epoch": 0, "val_acc": -1.0, "metric": None}, []
    if resume is not None:
        start, best, history = _restore(resume, net, optimizer, schedule, scaler)
        if echo:
            echo(f"resumed {cfg.resume} at epoch {start}/{cfg.epochs}")
    if env.is_main:
        _prepare_run_dir(run_dir, cfg, env, resume, best)
    barrier(env)
    log = MetricsLog(run_dir, tensorboard=cfg.tensorboard, history=history, echo=echo) \
        if env.is_main else None
    opts = StepOptions(device=env.device, input_key=d.student_key, amp_dtype=dtype,
                       channels_last=channels_last, grad_clip=cfg.optim.grad_clip, quiet=quiet)
    val_opts = dataclasses.replace(opts, input_key="clip")  # val clips: the student's input only
    try:
        for epoch in range(start + 1, cfg.epochs + 1):
            t0 = time.perf_counter()
            rundata.set_epoch(d.train_loader, epoch, cfg.seed)
            if distiller is not None:
                distiller.ramp = warmup_ramp(epoch, cfg.distill.warmup_epochs)
            opts.desc = f"epoch {epoch}/{cfg.epochs}"
            record: dict[str, Any] = {"epoch": epoch, "epochs": cfg.epochs, "lr": schedule.lr}
            record.update(train_epoch(model, d.train_loader, optimizer, opts, env,
                                      schedule=schedule, scaler=scaler, distiller=distiller,
                                      total=len(d.train_ds)))
            if d.val_loader is not None and (epoch % cfg.val_every == 0 or epoch == cfg.epochs):
                record.update(val_epoch(model, d.val_loader, val_opts, env,
                                        num_videos=d.num_val_videos,
                                        num_classes=len(d.classes), total=len(d.val_ds)))
            schedule.step_epoch(record.get("val_loss", record["train_loss"])
                                if cfg.optim.schedule == "plateau" else None)
            record["time_s"] = time.perf_counter() - t0
            metric = record.get("val_acc") if d.val_loader is not None else record["train_acc"]
            improved = metric is not None and metric > best["val_acc"]
            if improved:
                best = {"epoch": epoch, "val_acc": metric,
                        "metric": "val_acc" if d.val_loader is not None else "train_acc"}
            history.append(record)
            if env.is_main:
                state = {"optimizer": optimizer.state_dict(), "scheduler": schedule.state_dict(),
                         "scaler": scaler.state_dict(), "rng": rng_state(), "best": best,
                         "history": history, "metrics": record}
                ckpt = _checkpoint(cfg, net, d.classes, epoch, state)
                save_checkpoint(run_dir / LAST, ckpt)
                if improved:
                    save_checkpoint(run_dir / BEST, weights_only(ckpt))
                log.log(record)
            barrier(env)
    finally:
        if log is not None:
            log.close()
    return run_dir


def _prepare_run_dir(run_dir: Path, cfg: TrainConfig, env: DistEnv,
                     resume: dict[str, Any] | None, best: dict[str, Any]) -> None:
    """config.yaml and run.json; on resume, repair best.pt if a kill came between the saves.

    The folder was created and checked by ``writable_dir`` when the run started."""
    save_yaml(cfg, run_dir / "config.yaml")
    write_json(run_dir / "run.json", {"seed": cfg.seed, "world_size": env.world_size,
                                      "device": str(env.device), "argv": sys.argv,
                                      "versions": versions()})
    if resume is not None and best.get("epoch") == resume["epoch"]:
        best_path = run_dir / BEST
        current = load_checkpoint(best_path) if best_path.exists() else {}
        if current.get("epoch") != resume["epoch"]:
            save_checkpoint(best_path, weights_only(resume))

