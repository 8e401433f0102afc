"""The model catalog: architecture shapes from each model's Hugging Face ``config.json``.

Only shapes live here; where real weights come from lives in :mod:`llmperf_nb.weights.sources`.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass

from .exceptions import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """A dense Llama-architecture model, described by the fields of its HF config."""

    name: str
    hf_repo: str | None
    hidden_size: int
    intermediate_size: int
    num_hidden_layers: int
    num_attention_heads: int
    num_key_value_heads: int
    vocab_size: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    max_position_embeddings: int = 4096

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.num_attention_heads

    @property
    def n_params(self) -> int:
        """Parameter count of the checkpoint (untied embeddings and lm_head)."""
        h, i, kv = self.hidden_size, self.intermediate_size, self.num_key_value_heads * self.head_dim
        per_layer = h * h * 2 + h * kv * 2 + 3 * h * i + 2 * h
        return self.num_hidden_layers * per_layer + 2 * self.vocab_size * h + h

    @property
    def n_params_per_token(self) -> int:
        """Weights read for one decoded token: everything but the embedding table."""
        return self.n_params - self.vocab_size * self.hidden_size

    def hf_config(self) -> dict:
        """A ``config.json`` for transformers' LlamaForCausalLM with these shapes."""
        cfg = asdict(self)
        del cfg["name"], cfg["hf_repo"]
        cfg.update(
            architectures=["LlamaForCausalLM"],
            model_type="llama",
            hidden_act="silu",
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=0,
            tie_word_embeddings=False,
            torch_dtype="float16",
            initializer_range=0.02,
            attention_bias=False,
            mlp_bias=False,
            use_cache=True,
        )
        return cfg


def _llama2(name, hidden, inter, layers, heads, kv_heads=None, **kw) -> ModelSpec:
    kw.setdefault("vocab_size", 32000)
    return ModelSpec(
        name=name,
        hf_repo=kw.pop("hf_repo"),
        hidden_size=hidden,
        intermediate_size=inter,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads or heads,
        **kw,
    )


_CODELLAMA = dict(vocab_size=32016, rope_theta=1_000_000.0, max_position_embeddings=16384)

MODELS: dict[str, ModelSpec] = {
    m.name: m
    for m in (
        # A tiny Llama of the same architecture for CPU quickstarts and tests; not a real model.
        _llama2("tiny-llama", 512, 1376, 4, 8, hf_repo=None, max_position_embeddings=2048),
        _llama2("Llama-2-7b-chat-hf", 4096, 11008, 32, 32, hf_repo="meta-llama/Llama-2-7b-chat-hf"),
        _llama2("Llama-2-13b-chat-hf", 5120, 13824, 40, 40, hf_repo="meta-llama/Llama-2-13b-chat-hf"),
        _llama2("Llama-2-70b-chat-hf", 8192, 28672, 80, 64, 8, hf_repo="meta-llama/Llama-2-70b-chat-hf"),
        _llama2("CodeLlama-7b-Instruct-hf", 4096, 11008, 32, 32,
                hf_repo="codellama/CodeLlama-7b-Instruct-hf", **_CODELLAMA),
        _llama2("CodeLlama-13b-Instruct-hf", 5120, 13824, 40, 40,
                hf_repo="codellama/CodeLlama-13b-Instruct-hf", **_CODELLAMA),
        _llama2("CodeLlama-34b-Instruct-hf", 8192, 22016, 48, 64, 8,
                hf_repo="codellama/CodeLlama-34b-Instruct-hf", **_CODELLAMA),
    )
}


# --- the Llama tensor layout, defined once; each weight format names the tensors its own way ---

#: the tensors of one decoder layer, in the order a Hugging Face checkpoint stores them
LAYER_ROLES = ("attn_norm", "q", "k", "v", "o", "ffn_norm", "gate", "up", "down")
#: the linear layers of a decoder layer (GPTQ quantizes these; the rest stay fp16)
LINEAR_ROLES = ("q", "k", "v", "o", "gate", "up", "down")

#: weight format -> role -> tensor name, without the ``.weight`` (or GPTQ's ``.qweight``...) suffix; ``{i}`` is
#: the layer. GPTQ checkpoints use the Hugging Face names (AutoGPTQ keeps them); GGUF's are llama.cpp's
#: (gguf-py ``TENSOR_NAMES``).
TENSOR_NAMES: dict[str, dict[str, str]] = {
    "hf": {
        "embed": "model.embed_tokens", "attn_norm": "model.layers.{i}.input_layernorm",
        "q": "model.layers.{i}.self_attn.q_proj", "k": "model.layers.{i}.self_attn.k_proj",
        "v": "model.layers.{i}.self_attn.v_proj", "o": "model.layers.{i}.self_attn.o_proj",
        "ffn_norm": "model.layers.{i}.post_attention_layernorm", "gate": "model.layers.{i}.mlp.gate_proj",
        "up": "model.layers.{i}.mlp.up_proj", "down": "model.layers.{i}.mlp.down_proj",
        "final_norm": "model.norm", "lm_head": "lm_head",
    },
    "gguf": {
        "embed": "token_embd", "attn_norm": "blk.{i}.attn_norm", "q": "blk.{i}.attn_q", "k": "blk.{i}.attn_k",
        "v": "blk.{i}.attn_v", "o": "blk.{i}.attn_output", "ffn_norm": "blk.{i}.ffn_norm",
        "gate": "blk.{i}.ffn_gate", "up": "blk.{i}.ffn_up", "down": "blk.{i}.ffn_down",
        "final_norm": "output_norm", "lm_head": "output",
    },
}
TENSOR_NAMES["gptq"] = TENSOR_NAMES["hf"]


@dataclass(frozen=True)
class LlamaTensor:
    role: str  # "embed", a LAYER_ROLES entry, "final_norm" or "lm_head"
    layer: int | None
    shape: tuple[int, ...]  # a matrix is [out, in], as torch and the HF checkpoint store it

    def name(self, fmt: str) -> str:
        """The tensor's name in weight format ``fmt`` (a key of TENSOR_NAMES), without a suffix."""
        return TENSOR_NAMES[fmt][self.role].format(i=self.layer)


def llama_tensors(spec: ModelSpec, layer_roles: tuple[str, ...] = LAYER_ROLES) -> Iterator[LlamaTensor]:
    """Every tensor of a Llama checkpoint: the embeddings, each layer's ``layer_roles`` in that order, the final
    norm and the output head."""
    h, ffn, vocab = spec.hidden_size, spec.intermediate_size, spec.vocab_size
    kv = spec.num_key_value_heads * spec.head_dim
    shapes = {"attn_norm": (h,), "q": (h, h), "k": (kv, h), "v": (kv, h), "o": (h, h), "ffn_norm": (h,),
              "gate": (ffn, h), "up": (ffn, h), "down": (h, ffn)}
    yield LlamaTensor("embed", None, (vocab, h))
    for i in range(spec.num_hidden_layers):
        for role in layer_roles:
            yield LlamaTensor(role, i, shapes[role])
    yield LlamaTensor("final_norm", None, (h,))
    yield LlamaTensor("lm_head", None, (vocab, h))


def get_model(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}") from None
