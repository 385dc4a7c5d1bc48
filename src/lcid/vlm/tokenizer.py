"""Text tokenizer of the model: byte-level BPE learned from the project's own text.

Built with Hugging Face ``tokenizers`` (the same byte-level BPE as GPT-2, so every string
round-trips), saved as ``tokenizer.json`` beside the weights. When a pretrained language
model is used instead, its own fast tokenizer is wrapped the same way.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

from lcid.errors import InputError

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
SPECIAL_TOKENS: tuple[str, ...] = (PAD, BOS, EOS, UNK)
TOKENIZER_FILE = "tokenizer.json"


class VLMTokenizer:
    """A ``tokenizers.Tokenizer`` with the four special tokens the model relies on.

    Parameters
    ----------
    tokenizer
        A tokenizer that already knows ``<pad>``, ``<bos>``, ``<eos>`` (and ``<unk>``).
    """

    def __init__(self, tokenizer: Tokenizer) -> None:
        missing = [t for t in (PAD, BOS, EOS) if tokenizer.token_to_id(t) is None]
        if missing:
            tokenizer.add_special_tokens([t for t in missing])
        self.backend = tokenizer
        self.pad_id = int(tokenizer.token_to_id(PAD))
        self.bos_id = int(tokenizer.token_to_id(BOS))
        self.eos_id = int(tokenizer.token_to_id(EOS))

    @classmethod
    def train(cls, texts: Iterable[str], *, vocab_size: int = 1024, min_frequency: int = 2) -> VLMTokenizer:
        """Learn a lower-casing byte-level BPE of at most ``vocab_size`` tokens from ``texts``."""
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        tok.train_from_iterator(list(texts), trainer=trainer)
        return cls(tok)

    @classmethod
    def from_hf(cls, name_or_path: str) -> VLMTokenizer:
        """Wrap the fast tokenizer of a Hugging Face language model (adds missing special tokens)."""
        from transformers import AutoTokenizer

        try:
            hf = AutoTokenizer.from_pretrained(name_or_path)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot load the tokenizer of {name_or_path} ({exc.__class__.__name__})") from exc
        backend = getattr(hf, "backend_tokenizer", None)
        if backend is None:
            raise InputError(f"{name_or_path} has no fast tokenizer (tokenizer.json)")
        return cls(Tokenizer.from_str(backend.to_str()))

    @classmethod
    def load(cls, folder: str | Path) -> VLMTokenizer:
        """Read ``tokenizer.json`` from ``folder``."""
        path = Path(folder) / TOKENIZER_FILE
        if not path.is_file():
            raise InputError(f"no {TOKENIZER_FILE} in {folder}")
        return cls(Tokenizer.from_file(str(path)))

    def save(self, folder: str | Path) -> Path:
        """Write ``tokenizer.json`` into ``folder``."""
        path = Path(folder) / TOKENIZER_FILE
        self.backend.save(str(path))
        return path

    @property
    def vocab_size(self) -> int:
        """Number of token ids, special tokens included."""
        return int(self.backend.get_vocab_size(with_added_tokens=True))

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no special tokens added)."""
        return list(self.backend.encode(text, add_special_tokens=False).ids)

    def decode(self, ids: Iterable[int]) -> str:
        """Text of ``ids``, special tokens dropped."""
        return self.backend.decode([int(i) for i in ids], skip_special_tokens=True)
