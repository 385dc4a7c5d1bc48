"""The generative model: a stage-1 autoencoder, an optional latent-diffusion UNet, and their latent scale.

Saved and loaded with Hugging Face conventions (``save_pretrained(dir)`` writes
``model.safetensors`` + ``config.json``; ``from_pretrained(dir)``) through
``huggingface_hub.PyTorchModelHubMixin``; loading a local folder never touches the network.
"""

from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import PyTorchModelHubMixin

from lcid.errors import InputError
from lcid.synth.networks import build_autoencoder, build_scheduler, build_unet
from lcid.synth.spec import AutoencoderSpec, DiffusionSpec, spec_from_dict, spec_to_dict


class SynthModel(torch.nn.Module, PyTorchModelHubMixin):
    """Autoencoder (+ latent diffusion UNet) for images of shape ``(channels, *image_shape)``.

    Parameters
    ----------
    image_shape
        Spatial shape in voxels/pixels, 2 or 3 numbers, each divisible by the autoencoder's
        downsampling factor.
    autoencoder
        :class:`AutoencoderSpec` fields.
    diffusion
        :class:`DiffusionSpec` fields, or ``None`` for a stage-1-only model.
    channels
        Image channels (1 for one contrast).
    meta
        Free-form provenance (data, command, seed) kept in ``config.json``.
    """

    def __init__(
        self,
        *,
        image_shape: list[int],
        autoencoder: dict[str, Any],
        diffusion: dict[str, Any] | None = None,
        channels: int = 1,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.image_shape = tuple(int(s) for s in image_shape)
        self.ae_spec: AutoencoderSpec = spec_from_dict(AutoencoderSpec, autoencoder)
        if self.ae_spec.spatial_dims != len(self.image_shape):
            raise InputError(f"image_shape {list(self.image_shape)} does not match spatial_dims {self.ae_spec.spatial_dims}")
        factor = 2 ** (len(self.ae_spec.channels) - 1)
        if any(s % factor for s in self.image_shape):
            raise InputError(f"image shape {list(self.image_shape)} must be divisible by {factor}")
        self.channels = int(channels)
        self.meta = dict(meta or {})
        self.autoencoder = build_autoencoder(self.ae_spec, in_channels=self.channels)
        self.diffusion_spec: DiffusionSpec | None = None
        self.unet: torch.nn.Module | None = None
        if diffusion is not None:
            self.diffusion_spec = spec_from_dict(DiffusionSpec, diffusion)
            self.unet = build_unet(self.diffusion_spec, spatial_dims=len(self.image_shape), latent_channels=self.ae_spec.latent_channels)
        # 1 / std of the latents, set before stage-2 training (see lcid.synth.latents).
        self.register_buffer("scale_factor", torch.tensor(1.0))

    # -- configuration -----------------------------------------------------------------
    def config_dict(self) -> dict[str, Any]:
        """The constructor arguments (what ``config.json`` holds)."""
        return {
            "image_shape": list(self.image_shape),
            "autoencoder": spec_to_dict(self.ae_spec),
            "diffusion": spec_to_dict(self.diffusion_spec) if self.diffusion_spec else None,
            "channels": self.channels,
            "meta": self.meta,
        }

    def save(self, directory: str | Path) -> Path:
        """``save_pretrained`` with the current configuration (specs may change after init)."""
        self._hub_mixin_config = self.config_dict()
        self.save_pretrained(str(directory))
        return Path(directory)

    @property
    def latent_shape(self) -> tuple[int, ...]:
        """``(latent_channels, *grid)`` of the stage-1 latents."""
        factor = 2 ** (len(self.ae_spec.channels) - 1)
        return (self.ae_spec.latent_channels, *(s // factor for s in self.image_shape))

    # -- stage 1 -----------------------------------------------------------------------
    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """Images ``(B, C, *S)`` in [0, 1] -> unscaled latents ``(B, *latent_shape)`` (KL: the mean)."""
        if self.ae_spec.kind == "kl":
            mu, _ = self.autoencoder.encode(images)
            return mu
        return self.autoencoder.encode_stage_2_inputs(images)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        """Unscaled latents -> images ``(B, C, *S)`` clipped to [0, 1]."""
        return self.autoencoder.decode_stage_2_outputs(latents).clamp(0.0, 1.0)

    def reconstruct(self, images: torch.Tensor) -> torch.Tensor:
        """Encode then decode (deterministic for KL: through the latent mean)."""
        return self.decode(self.encode(images))

    # -- stage 2 -----------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self,
        n: int,
        *,
        condition: torch.Tensor | None = None,
        guidance: float = 3.0,
        sampler: str = "ddim",
        steps: int = 50,
        seed: int = 0,
        progress: bool = False,
    ) -> torch.Tensor:
        """Draw ``n`` images ``(n, C, *S)`` in [0, 1].

        Parameters
        ----------
        condition
            Raw condition per sample: class indices ``(n,)`` or covariates ``(n, k)``
            (see :func:`lcid.synth.conditioning.parse_condition`); ``None`` when unconditional.
        guidance
            Classifier-free guidance scale (1 = plain conditional; ignored when unconditional).
        sampler, steps
            ``"ddim"`` with ``steps`` steps, or ``"ddpm"`` (``steps`` of the training schedule).
        seed
            Seeds the starting noise (and DDPM's per-step noise).
        """
        from monai.inferers import LatentDiffusionInferer

        from lcid.synth.conditioning import context_for

        if self.unet is None or self.diffusion_spec is None:
            raise InputError("this model has no diffusion stage: train it with 'lcid train ldm'")
        self.eval()
        device = self.scale_factor.device
        generator = torch.Generator().manual_seed(int(seed))
        noise = torch.randn((n, *self.latent_shape), generator=generator).to(device)
        context = context_for(self.diffusion_spec, condition)
        scheduler = build_scheduler(self.diffusion_spec, sampler=sampler, steps=steps)
        inferer = LatentDiffusionInferer(scheduler, scale_factor=float(self.scale_factor))
        fork = torch.random.fork_rng(devices=[])
        with fork:
            torch.manual_seed(int(seed))
            images = inferer.sample(
                input_noise=noise,
                autoencoder_model=self.autoencoder,
                diffusion_model=self.unet,
                scheduler=scheduler,
                conditioning=None if context is None else context.to(device),
                mode="crossattn",
                verbose=progress,
                cfg=float(guidance) if context is not None and guidance != 1.0 else None,
            )
        return images.clamp(0.0, 1.0)


def load_model(name_or_dir: str | Path) -> SynthModel:
    """A built-in model by name (``pneumoniamnist``) or a folder written by ``save``."""
    path = Path(name_or_dir)
    if not path.is_dir():
        builtin = Path(__file__).resolve().parents[1] / "models" / str(name_or_dir)
        if not builtin.is_dir():
            raise InputError(f"no model folder or built-in model named {name_or_dir!r}")
        path = builtin
    if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
        raise InputError(f"{path} is not a saved lcid model (needs config.json and model.safetensors)")
    # huggingface_hub prints "Loading weights from local directory" to stdout on every local
    # load, which would corrupt the JSON that ``lcid eval synth --json`` prints there.
    with contextlib.redirect_stdout(io.StringIO()):
        return SynthModel.from_pretrained(str(path))
