"""Where real weights of each catalog model come from, per weight format.

Revisions are pinned commits of the Hugging Face repositories. A model/format pair missing here
has no known real source: use synthetic weights or ``local_weights`` in the params file.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..exceptions import ConfigError


@dataclass(frozen=True)
class HubSource:
    repo: str
    revision: str
    files: tuple[str, ...]


# Format "hf": the fp16 safetensors checkpoint every converter (GGUF, MLC) starts from.
_HF_FILES = ("*.json", "*.safetensors", "tokenizer.model")

# Each SHA is a commit of the repository seen verbatim in public files (docs/weights.md says where:
# a blob/<sha> link in vLLM's tests for Llama-2-7b-chat-hf; Hugging Face cache snapshot folders,
# which are named after the commit, for the others). None could be re-checked against the Hub from
# the machine that wrote this; `huggingface_hub.HfApi().list_repo_commits(repo)` confirms one.
_PINNED = {
    "Llama-2-7b-chat-hf": "f5db02db724555f92da89c216ac04704f23d4590",
    "Llama-2-13b-chat-hf": "a2cb7a712bb6e5e736ca7f8cd98167f81a0b5bd8",
    "Llama-2-70b-chat-hf": "e9149a12809580e8602995856f8098ce973d1080",
    "CodeLlama-7b-Instruct-hf": "22cb240e0292b0b5ab4c17ccd97aa3a2f799cbed",
    "CodeLlama-13b-Instruct-hf": "745795438019e47e4dad1347a0093e11deee4c68",
    "CodeLlama-34b-Instruct-hf": "d4c1c474abcacd32d2a6eda45f9811d38c83e93d",
}


def _hf_sources() -> dict[tuple[str, str], HubSource]:
    from ..models import MODELS

    return {(name, "hf"): HubSource(MODELS[name].hf_repo, sha, _HF_FILES) for name, sha in _PINNED.items()}


SOURCES: dict[tuple[str, str], HubSource] = _hf_sources()


def source_for(model: str, fmt: str) -> HubSource:
    try:
        return SOURCES[(model, fmt)]
    except KeyError:
        known = ", ".join(f"{m} ({f})" for m, f in SOURCES) or "none yet"
        raise ConfigError(
            f"no pinned Hugging Face source for {model} in format {fmt!r}; known: {known}. "
            "Use weights: synthetic, or local_weights: {model: PATH}"
        ) from None
