"""The training loop shared by the vision-language model and the generative models."""

from lcid.train.config import TrainConfig
from lcid.train.loop import fit

__all__ = ["TrainConfig", "fit"]
