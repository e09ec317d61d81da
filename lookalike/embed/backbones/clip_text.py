"""Stable Diffusion 1.x's prompt encoder without ``transformers``: CLIP's BPE tokenizer and text tower.

:class:`ClipTokenizer` reads the ``vocab.json`` / ``merges.txt`` of SD's ``tokenizer`` folder and
tokenises as ``transformers.CLIPTokenizer`` does (ftfy + whitespace clean-up + lower case, CLIP's
regex, byte-level BPE with ``</w>`` word ends, BOS/EOS, truncation to 77, padding with
``<|endoftext|>`` as SD 1.5's tokenizer config says). :class:`ClipTextEncoder` is CLIP's causal text
transformer with the parameter names of ``transformers.CLIPTextModel``, so SD's
``text_encoder/model.safetensors`` loads unchanged; it returns the last hidden state after the
final LayerNorm, which is what diffusers feeds the U-Net (``clip_skip=None``).
``tests/test_diffsim_text.py`` checks both against ``transformers`` where it is installed.
"""

from __future__ import annotations

import functools
import json
from pathlib import Path

import torch
from torch import nn

BOS, EOS = "<|startoftext|>", "<|endoftext|>"
CONTEXT = 77
_PATTERN = (r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|"""
            r"""[^\s\p{L}\p{N}]+""")


@functools.cache
def byte_alphabet() -> dict[int, str]:
    """GPT-2/CLIP's reversible map from the 256 byte values to printable unicode characters."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(keep, map(chr, chars), strict=True))


def clean(text: str) -> str:
    """``CLIPTokenizer``'s normalisation: ftfy (when installed), one space, lower case."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:  # transformers falls back to a basic clean-up too
        pass
    return " ".join(text.split()).lower()


class ClipTokenizer:
    """CLIP byte-level BPE over an explicit vocabulary and merge list."""

    def __init__(self, vocab: dict[str, int], merges: list[tuple[str, str]], context: int = CONTEXT,
                 pad_token: str = EOS) -> None:
        import regex

        self.vocab = vocab
        self.ranks = {pair: i for i, pair in enumerate(merges)}
        self.context = context
        self.bos, self.eos, self.pad = vocab[BOS], vocab[EOS], vocab[pad_token]
        self._pattern = regex.compile(_PATTERN, regex.IGNORECASE)
        self._bpe = functools.lru_cache(maxsize=4096)(self._merge)

    @classmethod
    def from_files(cls, vocab_json: str | Path, merges_txt: str | Path) -> ClipTokenizer:
        """SD's ``tokenizer/vocab.json`` and ``tokenizer/merges.txt`` (first line is a version)."""
        vocab = json.loads(Path(vocab_json).read_text(encoding="utf-8"))
        lines = Path(merges_txt).read_text(encoding="utf-8").strip().split("\n")[1:]
        merges = [tuple(line.split()) for line in lines if line and not line.startswith("#")]
        return cls(vocab, merges)  # type: ignore[arg-type]

    def _merge(self, word: str) -> tuple[str, ...]:
        parts = tuple(word[:-1]) + (word[-1] + "</w>",)
        while len(parts) > 1:
            pairs = {(a, b) for a, b in zip(parts, parts[1:])}
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            merged: list[str] = []
            i = 0
            while i < len(parts):
                if i < len(parts) - 1 and (parts[i], parts[i + 1]) == best:
                    merged.append(parts[i] + parts[i + 1])
                    i += 2
                else:
                    merged.append(parts[i])
                    i += 1
            parts = tuple(merged)
        return parts

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without BOS/EOS."""
        alphabet = byte_alphabet()
        ids: list[int] = []
        for piece in self._pattern.findall(clean(text)):
            word = "".join(alphabet[b] for b in piece.encode("utf-8"))
            ids.extend(self.vocab[t] for t in self._bpe(word))
        return ids

    def __call__(self, texts: list[str]) -> torch.Tensor:
        """``(len(texts), context)`` int64 ids: BOS, at most ``context - 2`` tokens, EOS, padding."""
        rows = []
        for text in texts:
            ids = [self.bos, *self.encode(text)[: self.context - 2], self.eos]
            rows.append(ids + [self.pad] * (self.context - len(ids)))
        return torch.tensor(rows, dtype=torch.int64)


class _Attention(nn.Module):
    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.heads = heads
        self.q_proj, self.k_proj = nn.Linear(width, width), nn.Linear(width, width)
        self.v_proj, self.out_proj = nn.Linear(width, width), nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, t, w = x.shape

        def split(y: torch.Tensor) -> torch.Tensor:
            return y.view(n, t, self.heads, w // self.heads).transpose(1, 2)

        out = nn.functional.scaled_dot_product_attention(split(self.q_proj(x)), split(self.k_proj(x)),
                                                         split(self.v_proj(x)), is_causal=True)
        return self.out_proj(out.transpose(1, 2).reshape(n, t, w))


class _Mlp(nn.Module):
    def __init__(self, width: int, hidden: int, act: str) -> None:
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(width, hidden), nn.Linear(hidden, width)
        self.act = act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.fc1(x)
        x = x * torch.sigmoid(1.702 * x) if self.act == "quick_gelu" else nn.functional.gelu(x)
        return self.fc2(x)


class _Layer(nn.Module):
    def __init__(self, width: int, heads: int, hidden: int, act: str, eps: float) -> None:
        super().__init__()
        self.self_attn = _Attention(width, heads)
        self.layer_norm1 = nn.LayerNorm(width, eps=eps)
        self.mlp = _Mlp(width, hidden, act)
        self.layer_norm2 = nn.LayerNorm(width, eps=eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x))
        return x + self.mlp(self.layer_norm2(x))


class _Embeddings(nn.Module):
    def __init__(self, vocab: int, width: int, context: int) -> None:
        super().__init__()
        self.token_embedding = nn.Embedding(vocab, width)
        self.position_embedding = nn.Embedding(context, width)


class _Encoder(nn.Module):
    def __init__(self, layers: list[_Layer]) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)


class _TextModel(nn.Module):
    def __init__(self, vocab: int, width: int, layers: int, heads: int, hidden: int, context: int,
                 act: str, eps: float) -> None:
        super().__init__()
        self.embeddings = _Embeddings(vocab, width, context)
        self.encoder = _Encoder([_Layer(width, heads, hidden, act, eps) for _ in range(layers)])
        self.final_layer_norm = nn.LayerNorm(width, eps=eps)


class ClipTextEncoder(nn.Module):
    """CLIP's text tower; ``forward(ids)`` -> ``(N, T, width)`` last hidden state (final LayerNorm).

    Sizes default to SD 1.5's ``text_encoder/config.json`` (CLIP ViT-L/14's text model).
    """

    def __init__(self, vocab_size: int = 49408, hidden_size: int = 768, num_hidden_layers: int = 12,
                 num_attention_heads: int = 12, intermediate_size: int = 3072,
                 max_position_embeddings: int = CONTEXT, hidden_act: str = "quick_gelu",
                 layer_norm_eps: float = 1e-5) -> None:
        super().__init__()
        if hidden_act not in ("quick_gelu", "gelu"):
            raise ValueError(f"unsupported CLIP activation {hidden_act!r}")
        self.text_model = _TextModel(vocab_size, hidden_size, num_hidden_layers, num_attention_heads,
                                     intermediate_size, max_position_embeddings, hidden_act, layer_norm_eps)

    @staticmethod
    def official_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """A ``CLIPTextModel`` state dict in our names: SD's files say ``text_model.*`` (transformers
        4), transformers 5 drops that prefix; the ``position_ids`` buffer is not a weight."""
        return {k if k.startswith("text_model.") else f"text_model.{k}": v for k, v in state.items()
                if not k.endswith("position_ids")}

    def load_official(self, state: dict[str, torch.Tensor]) -> None:
        self.load_state_dict(self.official_state(state), strict=True)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        m = self.text_model
        pos = torch.arange(ids.shape[1], device=ids.device)
        x = m.embeddings.token_embedding(ids) + m.embeddings.position_embedding(pos)[None]
        for layer in m.encoder.layers:
            x = layer(x)
        return m.final_layer_norm(x)
