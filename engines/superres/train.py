"""Training of the super-resolution network: L1 warm-up, then GAN + perceptual fine-tuning.

Stage 1 minimises L1 between the network's output and the high-resolution patch. Stage 2 (optional)
starts from stage 1 and adds a non-saturating adversarial loss against a small spectral-norm patch
discriminator and a *feature-matching perceptual loss* (L1 between the discriminator's intermediate
features of output and target): no pretrained or downloaded network (no VGG) is involved.
Each batch draws one scale pair from 1.1..4.0 in steps of 0.1 (isotropic, independent per axis, or one
axis left at 1) and one degradation. Progress goes to stdout as JSON lines (`engines.events`); a
StopRequest (SIGTERM) makes the job checkpoint and return; `resume=True` continues from the checkpoint.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from engines.devices import torch_device
from engines.errors import InputError
from engines.events import StopRequest, emit
from engines.files import created_mode
from engines.superres.data import PatchSampler, intensity_range, normalise, training_blocks
from engines.superres.model import MetaSR, PatchDiscriminator, count_parameters
from engines.superres.resample import DEGRADATIONS, upsample_bicubic
from engines.superres.weights import architecture_of, build_model, load_model, read_card, save_model

MNI152 = "mni152"
DATA_DESCRIPTION = {
    MNI152: "MNI152 2009 T1 template, 1 mm, 197x233x189 (nilearn's bundled file): patches from axial, "
            "coronal and sagittal slices outside the held-out slab",
}


# Settings a resumed run may change: its length, where and how fast it runs, how often it reports.
RESUMABLE_CHANGES = frozenset({"steps_l1", "steps_gan", "threads", "device", "log_every", "eval_every",
                               "checkpoint_every"})


@dataclass
class TrainConfig:
    """Every setting of a training run; a model card's "training" section holds exactly these."""

    name: str = "sr_light"
    # architecture
    n_resblocks: int = 16
    n_feats: int = 64
    mlp_hidden: int = 256
    res_scale: float = 1.0
    init: str | None = None  # start from this model (name or path) instead of random weights
    # data
    data: str = MNI152  # "mni152", a volume file (read_volume) or a .npy array (I, J, K)
    holdout: list[int] | None = field(default_factory=lambda: [90, 110])  # axial slab k0..k1-1 (axis 2)
    holdout_margin: int = 4
    planes: list[str] = field(default_factory=lambda: ["axial", "coronal", "sagittal"])
    degradations: list[str] = field(default_factory=lambda: ["bicubic", "kspace"])
    p_kspace: float = 0.3  # probability of k-space truncation when both degradations are listed
    scale_min: float = 1.1
    scale_max: float = 4.0
    scale_step: float = 0.1
    p_independent: float = 0.3  # sx, sy drawn independently
    p_one_axis: float = 0.1  # one axis left at 1 (through-plane upsampling)
    # optimisation
    steps_l1: int = 2000
    steps_gan: int = 0
    batch_size: int = 16
    lr_patch: int = 24  # low-resolution patch side (adjusted so high-res sizes are whole numbers)
    lr: float = 5e-4
    lr_gan: float = 5e-5
    lr_disc: float = 1e-4
    w_l1: float = 1.0
    w_adv: float = 5e-3
    w_perceptual: float = 0.1
    disc_base: int = 32
    seed: int = 0
    threads: int = 2
    device: str = "cpu"
    log_every: int = 25
    eval_every: int = 250
    checkpoint_every: int = 250

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):  # a setting of the wrong kind, named, not a TypeError deep inside
            value, default = getattr(self, f.name), f.default
            if isinstance(default, bool) or default is dataclasses.MISSING:
                continue
            if isinstance(default, int) and isinstance(value, float) and value.is_integer():
                value = int(value)  # 16.0 in a hand-written config
                setattr(self, f.name, value)
            if isinstance(default, int) and (not isinstance(value, int) or isinstance(value, bool)):
                raise ValueError(f"{f.name} must be a whole number, got {value!r}")
            if isinstance(default, float) and (not isinstance(value, int | float) or isinstance(value, bool)):
                raise ValueError(f"{f.name} must be a number, got {value!r}")
        if not isinstance(self.name, str) or not self.name or self.name in (".", "..") or any(
                c in self.name for c in "/\\"):
            raise ValueError(f"name must be a plain file name (it names OUT/NAME.safetensors), got "
                             f"{self.name!r}")
        for key in ("log_every", "eval_every", "checkpoint_every", "disc_base", "n_resblocks", "n_feats",
                    "mlp_hidden", "threads"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("scale_step", "lr", "lr_gan", "lr_disc", "res_scale"):
            if not getattr(self, key) > 0:
                raise ValueError(f"{key} must be positive, got {getattr(self, key)}")
        for key in ("p_kspace", "p_independent", "p_one_axis"):
            if not 0 <= getattr(self, key) <= 1:
                raise ValueError(f"{key} is a probability (0..1), got {getattr(self, key)}")
        if self.p_independent + self.p_one_axis > 1:
            raise ValueError("p_independent + p_one_axis must be at most 1")
        if not self.planes or any(p not in PatchSampler.PLANE_AXIS for p in self.planes):
            raise ValueError(f"planes must be among {sorted(PatchSampler.PLANE_AXIS)}, got {self.planes}")
        bad = [d for d in self.degradations if d not in DEGRADATIONS]
        if bad or not self.degradations:
            raise ValueError(f"degradations must be among {DEGRADATIONS}, got {self.degradations}")
        if not 1.0 < self.scale_min <= self.scale_max <= 4.0:
            raise ValueError(f"training scales must lie in (1, 4], got {self.scale_min}..{self.scale_max}")
        if self.steps_l1 < 0 or self.steps_gan < 0 or self.steps_l1 + self.steps_gan == 0:
            raise ValueError("steps_l1 + steps_gan must be positive")
        if self.batch_size < 1 or self.lr_patch < 4:
            raise ValueError("batch_size must be >= 1 and lr_patch >= 4")
        if self.holdout is not None:
            if not isinstance(self.holdout, list | tuple) or len(self.holdout) != 2:
                raise ValueError(f"holdout must be [k0, k1] (an axial slab) or null, got {self.holdout!r}")
            self.holdout = [int(v) for v in self.holdout]

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        """A config from a plain dict or from a model card (its "training" and "architecture")."""
        if "training" in raw:
            arch = {k: v for k, v in raw.get("architecture", {}).items() if k in ("n_resblocks", "n_feats",
                                                                                   "mlp_hidden", "res_scale")}
            raw = {**raw["training"], **arch}
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise ValueError(f"unknown training settings {unknown}; known: {sorted(names)}")
        return cls(**raw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def scales(self) -> np.ndarray:
        n = round((self.scale_max - self.scale_min) / self.scale_step) + 1
        return np.round(self.scale_min + self.scale_step * np.arange(n), 6)


def sample_scales(cfg: TrainConfig, rng: np.random.Generator) -> tuple[float, float]:
    """One (sx, sy) pair: isotropic, independent per axis, or one axis at 1."""
    grid = cfg.scales()
    u = rng.random()
    s1, s2 = (float(v) for v in rng.choice(grid, 2))
    if u < cfg.p_one_axis:
        return (s1, 1.0) if rng.random() < 0.5 else (1.0, s1)
    if u < cfg.p_one_axis + cfg.p_independent:
        return s1, s2
    return s1, s1


def load_training_volume(data: str) -> tuple[np.ndarray, int]:
    """The volume (I, J, K) named by `data`, normalised to [0, 1] by its 0.5/99.5 percentiles, and how many
    of its voxels were NaN or infinite (read as 0)."""
    if data == MNI152:
        from engines.datasets.mni152 import load_mni152_t1

        array = np.asarray(load_mni152_t1().data, dtype=np.float32)
    elif data.endswith(".npy"):
        try:
            array = np.load(data, allow_pickle=False).astype(np.float32)
        except (OSError, ValueError) as exc:  # missing, or not a plain array (pickled objects are refused)
            raise InputError(f"cannot read the training array ({exc})", data) from exc
    else:
        from engines.io import read_volume

        array = np.asarray(read_volume(data).data, dtype=np.float32)
    if array.ndim != 3:
        raise InputError(f"training needs a 3D volume, got shape {array.shape}", data)
    non_finite = int(np.count_nonzero(~np.isfinite(array)))
    array = np.nan_to_num(array, nan=0.0, posinf=0.0, neginf=0.0)
    try:
        return normalise(array, intensity_range(array)), non_finite
    except InputError as exc:  # a constant volume: say which
        raise InputError(exc.problem, data) from None


def psnr(a: torch.Tensor, b: torch.Tensor, data_range: float = 1.0) -> float:
    """PSNR in dB of two batches on a [0, data_range] scale."""
    mse = F.mse_loss(a.clamp(0, data_range), b.clamp(0, data_range)).item()
    return 10 * math.log10(data_range**2 / max(mse, 1e-12))


class Trainer:
    """One training run in `out_dir`: weights `NAME.safetensors` (+ `NAME_gan`), cards, checkpoint/."""

    def __init__(self, cfg: TrainConfig, out_dir: str | Path, *, command: str = "",
                 stop: StopRequest | None = None, stream=None) -> None:
        self.cfg, self.out = cfg, Path(out_dir)
        self.command, self.stream = command, stream
        self.stop = stop if stop is not None else StopRequest()
        self.device = torch.device(torch_device(cfg.device))
        torch.set_num_threads(max(1, cfg.threads))
        torch.manual_seed(cfg.seed)
        self.rng = np.random.default_rng(cfg.seed)
        volume, self.non_finite = load_training_volume(cfg.data)
        try:
            blocks = training_blocks(volume, tuple(cfg.holdout) if cfg.holdout else None, cfg.holdout_margin)
        except ValueError as exc:
            raise InputError(str(exc), cfg.data) from exc
        self.sampler = PatchSampler(blocks, cfg.planes, seed=cfg.seed + 1)
        self.model = (load_model(cfg.init) if cfg.init else
                      MetaSR(1, cfg.n_feats, cfg.n_resblocks, cfg.mlp_hidden, cfg.res_scale)).to(self.device)
        if cfg.init:  # the architecture comes from the initial model's card
            arch = architecture_of(self.model)
            for key in ("n_feats", "n_resblocks", "mlp_hidden", "res_scale"):
                setattr(cfg, key, arch[key])
        self.disc = PatchDiscriminator(1, cfg.disc_base).to(self.device) if cfg.steps_gan else None
        self.opt = torch.optim.Adam(self.model.parameters(), lr=cfg.lr)
        self.opt_gan = (torch.optim.Adam(self.model.parameters(), lr=cfg.lr_gan, betas=(0.9, 0.99))
                        if cfg.steps_gan else None)
        self.opt_disc = (torch.optim.Adam(self.disc.parameters(), lr=cfg.lr_disc, betas=(0.9, 0.99))
                         if cfg.steps_gan else None)
        self.step, self.elapsed = 0, 0.0
        val_rng = np.random.default_rng(cfg.seed + 2)
        val_sampler = PatchSampler(blocks, cfg.planes, seed=cfg.seed + 3)
        try:
            self.val = [val_sampler.batch(8, cfg.lr_patch, s, s, str(val_rng.choice(cfg.degradations)))
                        for s in (2.0, 4.0)]
        except InputError as exc:  # slices too small for the patches: say which volume, and what to change
            raise InputError(f"{exc.problem} at --lr-patch {cfg.lr_patch}; give a smaller --lr-patch",
                             cfg.data) from None

    # -- one step of each stage ---------------------------------------------------------------------
    def _next_batch(self):
        cfg = self.cfg
        sx, sy = sample_scales(cfg, self.rng)
        if len(cfg.degradations) == 1:
            kind = cfg.degradations[0]
        else:
            kind = "kspace" if self.rng.random() < cfg.p_kspace else "bicubic"
        b = self.sampler.batch(cfg.batch_size, cfg.lr_patch, sx, sy, kind)
        return b.lr.to(self.device), b.hr.to(self.device), sx, sy

    def _l1_step(self) -> dict[str, float]:
        lr_img, hr, sx, sy = self._next_batch()
        self._set_lr(self.opt, self.cfg.lr, self.step, self.cfg.steps_l1)
        loss = F.l1_loss(self.model(lr_img, sx, sy), hr)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        return {"loss": loss.item(), "l1": loss.item()}

    def _gan_step(self) -> dict[str, float]:
        cfg = self.cfg
        lr_img, hr, sx, sy = self._next_batch()
        sr = self.model(lr_img, sx, sy)
        # discriminator: real high-res patches vs the network's output
        real_logits, _ = self.disc(hr)
        fake_logits, _ = self.disc(sr.detach())
        d_loss = F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()
        self.opt_disc.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_disc.step()
        # generator: L1 + adversarial + feature matching on the discriminator's features
        fake_logits, fake_feats = self.disc(sr)
        with torch.no_grad():
            _, real_feats = self.disc(hr)
        l1 = F.l1_loss(sr, hr)
        adv = F.softplus(-fake_logits).mean()
        pairs = zip(fake_feats, real_feats, strict=True)
        perceptual = sum(F.l1_loss(f, r) for f, r in pairs) / len(fake_feats)
        loss = cfg.w_l1 * l1 + cfg.w_adv * adv + cfg.w_perceptual * perceptual
        self.opt_gan.zero_grad(set_to_none=True)
        loss.backward()
        self.opt_gan.step()
        return {"loss": loss.item(), "l1": l1.item(), "adv": adv.item(), "perceptual": perceptual.item(),
                "disc": d_loss.item()}

    @staticmethod
    def _set_lr(opt: torch.optim.Optimizer, base: float, step: int, total: int) -> None:
        """Linear warm-up over the first 5% of the stage, then cosine decay to base/10."""
        warm = max(1, total // 20)
        t = min(1.0, step / max(1, total))
        factor = min(1.0, (step + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * t)))
        for group in opt.param_groups:
            group["lr"] = base * factor

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """PSNR of the model and of bicubic on fixed training-region patches at x2 and x4."""
        self.model.eval()
        out = {}
        for b in self.val:
            lr_img, hr = b.lr.to(self.device), b.hr.to(self.device)
            out[f"psnr_x{b.sx:g}"] = round(psnr(self.model(lr_img, b.sx, b.sy), hr), 3)
            out[f"psnr_bicubic_x{b.sx:g}"] = round(psnr(upsample_bicubic(lr_img, b.sx, b.sy), hr), 3)
        self.model.train()
        return out

    # -- checkpoints ----------------------------------------------------------------------------------
    @property
    def ckpt_dir(self) -> Path:
        return self.out / "checkpoint"

    def save_checkpoint(self) -> None:
        self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        save_file({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()},
                  str(self.ckpt_dir / "model.safetensors"))
        os.chmod(self.ckpt_dir / "model.safetensors", created_mode())  # safetensors makes it owner-only
        optim = {"opt": self.opt.state_dict()}
        if self.disc is not None:
            save_file({k: v.detach().cpu().contiguous() for k, v in self.disc.state_dict().items()},
                      str(self.ckpt_dir / "disc.safetensors"))
            os.chmod(self.ckpt_dir / "disc.safetensors", created_mode())
            optim.update(opt_gan=self.opt_gan.state_dict(), opt_disc=self.opt_disc.state_dict())
        torch.save(optim, self.ckpt_dir / "optim.pt")
        state = {"step": self.step, "elapsed_s": self.elapsed, "config": self.cfg.to_dict(),
                 "rng": self.rng.bit_generator.state, "sampler_rng": self.sampler.rng.bit_generator.state}
        (self.ckpt_dir / "state.json").write_text(json.dumps(state))
        emit("checkpoint", self.stream, step=self.step, path=str(self.ckpt_dir))

    def load_checkpoint(self) -> None:
        """Continue from OUT/checkpoint: InputError when there is none, when it was trained with other
        settings than RESUMABLE_CHANGES allow, or when one of its files cannot be read (named)."""
        state_path = self.ckpt_dir / "state.json"
        if not state_path.exists():
            raise InputError("nothing to resume: this folder has no checkpoint/state.json", self.out)
        state = json.loads(state_path.read_text())
        saved, now = state.get("config", {}), self.cfg.to_dict()
        changed = [f"{k} {saved.get(k)!r} (now {now[k]!r})" for k in now
                   if k not in RESUMABLE_CHANGES and saved.get(k) != now[k]]
        if changed:
            raise InputError("the checkpoint was trained with other settings: " + ", ".join(changed)
                             + "; resume with the same ones (leave out --config to take them from the "
                             "checkpoint) or train into another --out", state_path)
        device = str(self.device)
        path = self.ckpt_dir / "model.safetensors"
        try:
            self.model.load_state_dict(load_file(str(path), device=device))
            path = self.ckpt_dir / "optim.pt"
            optim = torch.load(path, weights_only=True, map_location=self.device)
            self.opt.load_state_dict(optim["opt"])
            if self.disc is not None and (self.ckpt_dir / "disc.safetensors").exists():
                path = self.ckpt_dir / "disc.safetensors"
                self.disc.load_state_dict(load_file(str(path), device=device))
                path = self.ckpt_dir / "optim.pt"
                self.opt_gan.load_state_dict(optim["opt_gan"])
                self.opt_disc.load_state_dict(optim["opt_disc"])
        except Exception as exc:  # safetensors', torch's (weights_only refuses pickled code) or a key error
            raise InputError(f"cannot be read as this run's checkpoint ({type(exc).__name__}: "
                             f"{str(exc).splitlines()[0] if str(exc) else ''})", path) from exc
        self.step, self.elapsed = int(state["step"]), float(state["elapsed_s"])
        self.rng.bit_generator.state = state["rng"]
        self.sampler.rng.bit_generator.state = state["sampler_rng"]
        return True

    # -- outputs --------------------------------------------------------------------------------------
    def card(self, stage: str, steps_done: int) -> dict[str, Any]:
        cfg = self.cfg
        degr = {"bicubic": "antialiased bicubic downsampling (torch F.interpolate bicubic, antialias=True)",
                "kspace": "k-space truncation: central frequencies |k| < n/2 of the low-res grid kept, "
                          "phase-shifted to the centre-aligned grid"}
        return {
            "task": "arbitrary-scale super-resolution of grey slices (meta-upscale, MIASSR-style)",
            "stage": stage,
            "input": {"channels": 1, "normalisation": "intensities mapped linearly so the volume's 0.5th "
                      "and 99.5th percentiles become 0 and 1 (not clipped); the output is mapped back",
                      "scales": "sx, sy in [1, 4] per axis, at least one above 1",
                      "sampling": "centre-aligned cells: output pixel i sits at input (i + 0.5)/s - 0.5"},
            "data": DATA_DESCRIPTION.get(cfg.data, f"patches from the volume {cfg.data}") + (
                f"; held out: axial slices k {cfg.holdout[0]}..{cfg.holdout[1] - 1} plus "
                f"{cfg.holdout_margin} slices either side, removed before sampling in every plane"
                if cfg.holdout else ""),
            "degradation": {"default": "bicubic", "training": {d: degr[d] for d in cfg.degradations},
                            "p_kspace": cfg.p_kspace if len(cfg.degradations) > 1 else None},
            "losses": ("L1" if stage == "l1" else
                       f"L1 warm-up ({cfg.steps_l1} steps), then {cfg.w_l1} * L1 + {cfg.w_adv} * adversarial"
                       " (non-saturating, spectral-norm patch discriminator) + "
                       f"{cfg.w_perceptual} * perceptual (feature matching on the discriminator's features; "
                       "no pretrained network)"),
            "training": cfg.to_dict(),
            "steps_done": steps_done,
            "elapsed_s": round(self.elapsed, 1),
            "device": str(self.device) + (f" ({torch.cuda.get_device_name()})" if self.device.type == "cuda"
                                          else f" ({cfg.threads} threads)"),
            "torch": torch.__version__,
            "seed": cfg.seed,
            "command": self.command,
            "metrics": {},
        }

    def _write_model(self, stage: str) -> Path:
        name = self.cfg.name if stage == "l1" else f"{self.cfg.name}_gan"
        path = self.out / f"{name}.safetensors"
        save_model(self.model, path, self.card(stage, self.step))
        return path

    # -- the run ----------------------------------------------------------------------------------------
    def run(self, resume: bool = False) -> dict[str, Any]:
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        if resume:
            self.load_checkpoint()
            emit("log", self.stream, message=f"resumed from step {self.step}")
        total = cfg.steps_l1 + cfg.steps_gan
        emit("start", self.stream, total=total, name=cfg.name, parameters=count_parameters(self.model),
             device=str(self.device), config=cfg.to_dict())
        if self.non_finite:
            emit("log", self.stream, message=f"{self.non_finite} NaN or infinite voxels of {cfg.data} are "
                 "trained on as 0")
        if cfg.holdout and cfg.data != MNI152:  # the default slab is the MNI152's: say what it keeps out
            k0, k1 = cfg.holdout
            emit("log", self.stream, message=f"holding out axial slices {k0}..{k1 - 1} (and "
                 f"{cfg.holdout_margin} either side) of {cfg.data}, as the settings say; set holdout to null "
                 "to train on every slice")
        self.model.train()
        outputs: list[str] = []
        if self.step >= cfg.steps_l1 and cfg.steps_l1 and not (self.out / f"{cfg.name}.safetensors").exists():
            outputs.append(str(self._write_model("l1")))
        t0, running = time.perf_counter() - self.elapsed, {}
        while self.step < total:
            if self.stop:
                self.elapsed = time.perf_counter() - t0
                self.save_checkpoint()
                emit("done", self.stream, stopped=True, step=self.step, total=total, outputs=outputs)
                return {"stopped": True, "step": self.step, "outputs": outputs}
            gan = self.step >= cfg.steps_l1
            if gan:
                self._set_lr(self.opt_gan, cfg.lr_gan, self.step - cfg.steps_l1, cfg.steps_gan)
            losses = self._gan_step() if gan else self._l1_step()
            self.step += 1
            for k, v in losses.items():
                running[k] = running.get(k, 0.0) + v
            if self.step % cfg.log_every == 0 or self.step == total:
                n = cfg.log_every if self.step % cfg.log_every == 0 else self.step % cfg.log_every
                self.elapsed = time.perf_counter() - t0
                rate = self.step / max(self.elapsed, 1e-9)
                emit("progress", self.stream, step=self.step, total=total, stage="gan" if gan else "l1",
                     **{k: round(v / n, 5) for k, v in running.items()},
                     elapsed_s=round(self.elapsed, 1), eta_s=round((total - self.step) / rate, 1))
                running = {}
            if self.step % cfg.eval_every == 0 or self.step == total:
                emit("metric", self.stream, step=self.step, **self.validate())
            if self.step == cfg.steps_l1:
                self.elapsed = time.perf_counter() - t0
                outputs.append(str(self._write_model("l1")))
            if self.step % cfg.checkpoint_every == 0 and self.step < total:
                self.elapsed = time.perf_counter() - t0
                self.save_checkpoint()
        self.elapsed = time.perf_counter() - t0
        if cfg.steps_gan:
            outputs.append(str(self._write_model("gan")))
        self.save_checkpoint()
        emit("done", self.stream, stopped=False, step=self.step, total=total, outputs=outputs,
             elapsed_s=round(self.elapsed, 1))
        return {"stopped": False, "step": self.step, "outputs": outputs}


def train(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, command: str = "",
          stop: StopRequest | None = None, stream=None) -> dict[str, Any]:
    """Run (or resume) a training job; returns {"stopped", "step", "outputs": [weights paths]}."""
    return Trainer(cfg, out_dir, command=command, stop=stop, stream=stream).run(resume=resume)


def saved_config(out_dir: str | Path) -> dict[str, Any] | None:
    """The settings a run in `out_dir` checkpointed with (None without a checkpoint)."""
    path = Path(out_dir) / "checkpoint" / "state.json"
    try:
        return json.loads(path.read_text()).get("config")
    except (OSError, ValueError):
        return None


def config_from_card(name_or_path: str) -> TrainConfig:
    """The training settings recorded in a model's card (to reproduce it)."""
    return TrainConfig.from_dict(read_card(name_or_path))


__all__ = ["TrainConfig", "Trainer", "build_model", "config_from_card", "load_training_volume",
           "sample_scales", "train"]
