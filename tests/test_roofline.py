"""Roofline arithmetic and the report's roofline and stability marks.

These are unit tests of arithmetic on result documents constructed here (via results.build from a Cell
and a Measurement with chosen numbers), not measurements: the expected limits are computed in each test
from the formula and the model's shapes, independently of llmperf_nb.roofline.
"""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from llmperf_nb import analysis, gpus, results, roofline  # noqa: E402
from llmperf_nb.measurement import Measurement  # noqa: E402

from .conftest import ROOT, new_cell  # noqa: E402

# Llama-2-7B from its config.json: hidden 4096, intermediate 11008, 32 layers, 32 heads (no GQA), vocab 32000
H, INTER, LAYERS, VOCAB = 4096, 11008, 32, 32000
N_PARAMS = LAYERS * (4 * H * H + 3 * H * INTER + 2 * H) + 2 * VOCAB * H + H
N_PER_TOKEN = N_PARAMS - VOCAB * H  # the embedding table is looked up, not read
H200_BW, H200_FLOPS = 4800e9, 989.4e12


def make_doc(decode=(1000.0, 1001.0, 999.0), prefill=(5000.0, 5001.0, 4999.0), *, model="Llama-2-7b-chat-hf",
             gpu="h200", count=1, detected=None, engine="llama_cpp", fmt="GGUF Q4_0", size=None, prompt_tokens=8,
             status="ok", **weights_extra):
    cell = new_cell(model, gpu, engine, count=count, prompt="p", repetitions=len(decode), warmup=0)
    samples = [{"prompt_tokens": prompt_tokens, "gen_tokens": 256, "decode_tok_s": d, "prefill_tok_s": p}
               for d, p in zip(decode, prefill, strict=True)]
    m = Measurement(engine_version="test", prompt_token_ids=list(range(prompt_tokens)), samples=samples)
    hw = {"gpu": {"catalog_name": detected or gpu, "detected": []}}
    weights = {"source": "synthetic", "synthetic": True, "format": fmt, "bytes": size, **weights_extra}
    doc = results.build(cell=cell, status=status, started_at=results.now(), engine_label=engine, weights=weights,
                        hardware=hw, measurement=m if status == "ok" else None)
    results.validate(doc)
    return doc


def test_model_catalog_counts_match_the_shapes():
    from llmperf_nb import models

    m = models.MODELS["Llama-2-7b-chat-hf"]
    assert (m.n_params, m.n_params_per_token) == (N_PARAMS, N_PER_TOKEN) == (6_738_415_616, 6_607_343_616)


def test_q4_0_decode_limit_on_h200_from_the_format():
    doc = make_doc(size=None)  # no file size recorded (e.g. weights made on the device)
    per_token = N_PER_TOKEN * 18 / 32  # Q4_0: 32 weights in 16 bytes of nibbles + an fp16 scale
    limit = H200_BW / per_token
    assert limit == pytest.approx(1291.5, abs=0.1)  # 4.8e12 / 3.7166e9, checked by hand
    r = roofline.of(doc)
    assert r.gpu == "h200" and r.bytes_from == "format"
    assert r.bytes_per_token == pytest.approx(per_token)
    assert r.decode_limit_tok_s == pytest.approx(limit)
    assert r.decode_fraction == pytest.approx(1000.0 / limit)
    assert analysis.bandwidth_fraction(doc) == r.decode_fraction


def test_file_size_is_scaled_to_the_weights_one_token_reads():
    size = 3_800_000_000  # a made-up GGUF file size near a real Q4_0 7B
    r = roofline.of(make_doc(size=size))
    per_token = size * N_PER_TOKEN / N_PARAMS
    assert r.bytes_from == "file" and r.bytes_per_token == pytest.approx(per_token)
    assert r.decode_limit_tok_s == pytest.approx(H200_BW / per_token)
    assert r.decode_limit_tok_s == pytest.approx(1288.2, abs=0.1)


def test_a_file_that_is_not_the_weights_as_run_falls_back_to_the_format():
    # a folder holding config.json and a tokenizer only: the weights are made on the GPU
    assert roofline.of(make_doc(fmt="safetensors fp16", size=2_000_000)).bytes_from == "format"
    # fp16 files quantized to nf4 while loading: the file is 4x what is read
    r = roofline.of(make_doc(fmt="bitsandbytes 4-bit (nf4)", size=13_476_831_232, quantized_at_load="bitsandbytes nf4"))
    head = VOCAB * H
    assert r.bytes_from == "format"
    assert r.bytes_per_token == pytest.approx((N_PER_TOKEN - head) * (0.5 + 4 / 64) + head * 2)


@pytest.mark.parametrize(("fmt", "linear", "head"), [
    ("GPTQ 4-bit g128", 0.5 + 2.5 / 128, 2.0),  # fp16 scale + 4-bit zero per 128; lm_head fp16
    ("AWQ 4-bit", 0.5 + 2.5 / 128, 2.0),
    ("MLC q4f16_1", 0.5 + 2 / 32, 0.5 + 2 / 32),
    ("safetensors fp16", 2.0, 2.0),
    ("GGUF F16", 2.0, 2.0),
    ("MLC q0f16", 2.0, 2.0),
])
def test_bytes_per_parameter_of_each_format(fmt, linear, head):
    r = roofline.of(make_doc(fmt=fmt))
    assert r.bytes_per_token == pytest.approx((N_PER_TOKEN - VOCAB * H) * linear + VOCAB * H * head)


def test_prefill_limit_is_memory_for_a_short_prompt_and_compute_for_a_long_one():
    compute = H200_FLOPS / (2 * N_PER_TOKEN)
    assert compute == pytest.approx(74_871, abs=1)  # 989.4e12 / 13.21e9
    decode_limit = H200_BW / (N_PER_TOKEN * 18 / 32)

    short = roofline.of(make_doc(prompt_tokens=8))
    assert short.prefill_compute_limit_tok_s == pytest.approx(compute)
    assert short.prefill_compute_fraction == pytest.approx(5000.0 / compute)
    assert short.prefill_bound == "memory" and short.prefill_limit_tok_s == pytest.approx(8 * decode_limit)
    assert short.prefill_fraction == pytest.approx(5000.0 / (8 * decode_limit))

    long = roofline.of(make_doc(prompt_tokens=512))
    assert long.prefill_bound == "compute" and long.prefill_limit_tok_s == pytest.approx(compute)


def test_limits_scale_with_the_gpu_count():
    one, two = roofline.of(make_doc(count=1)), roofline.of(make_doc(count=2))
    assert two.decode_limit_tok_s == pytest.approx(2 * one.decode_limit_tok_s)
    assert two.prefill_compute_limit_tok_s == pytest.approx(2 * one.prefill_compute_limit_tok_s)


def test_the_detected_gpu_wins_over_the_one_asked_for():
    r = roofline.of(make_doc(gpu="auto", detected="h100-sxm"))
    assert r.gpu == "h100-sxm"
    assert r.decode_limit_tok_s == pytest.approx(gpus.GPUS["h100-sxm"].bandwidth_gb_s * 1e9 / (N_PER_TOKEN * 18 / 32))


def test_cpu_and_unknown_things_have_no_limit():
    cpu = roofline.of(make_doc(gpu="cpu"))
    assert cpu.decode_limit_tok_s is None and cpu.decode_fraction is None and cpu.prefill_limit_tok_s is None
    assert cpu.note == "CPU: no datasheet limit"
    assert roofline.of(make_doc(gpu="unknown")).note.startswith("GPU 'unknown'")
    assert roofline.of(make_doc(fmt="EXL2 4.0 bpw (as given)")).decode_limit_tok_s is None


def test_every_gpu_names_its_datasheet():
    for g in gpus.GPUS.values():
        assert g.vendor == "cpu" or (g.url or "").startswith("https://"), g.name


def test_plot_roofline_shows_gpu_cells_and_names_cpu_ones():
    docs = [make_doc(), make_doc(gpu="cpu", decode=(50.0, 51.0, 49.0))]
    ax = analysis.plot_roofline(docs)
    assert len(ax.patches) == 2  # the limit bar and the measured bar of the one GPU cell
    assert any("CPU: no datasheet limit" in t.get_text() for t in ax.figure.texts + ax.texts)
    plt.close("all")
    ax = analysis.plot_roofline([make_doc(gpu="cpu")])
    assert "no cell has a roofline limit" in ax.texts[0].get_text()
    plt.close("all")


def test_tables_mark_unstable_cells_and_list_why():
    stable = make_doc(decode=(100.0, 100.5, 99.7, 100.2, 99.9), prefill=(1.0,) * 5)
    noisy = make_doc(decode=(100.0, 80.0, 120.0, 90.0, 110.0), prefill=(1.0,) * 5, engine="vllm")
    assert analysis.UNSTABLE not in analysis.cell_text(stable)
    assert analysis.cell_text(noisy).endswith(analysis.UNSTABLE)
    assert "95% CI" in analysis.cell_text(stable, ci=True)
    table = analysis.markdown_table([stable, noisy])
    footnotes = [line for line in table.splitlines() if line.startswith(f"- {analysis.UNSTABLE}")]
    assert len(footnotes) == 1 and "vllm" in footnotes[0] and "CV 15.8% > 5%" in footnotes[0]
    assert analysis.stability_footnote([stable]) == ""


def test_decode_plot_draws_one_bar_per_cell_each_a_measured_mean():
    """The published int4 report has HF transformers int4 and fp16 for the same model and GPU: two
    bars, each its cell's mean, never an average of the two."""
    docs, df = analysis.load(ROOT / "reports" / "int4-single-gpu" / "results")
    ok = df[df.status == "ok"]
    ax = analysis.plot_decode(df)
    heights = sorted(round(p.get_height(), 6) for p in ax.patches if p.get_height() > 0)  # NaN bars: no cell
    assert heights == sorted(round(v, 6) for v in ok.decode_tok_s)


def test_main_table_orders_by_size_shows_roofline_energy_and_marks_reference_rows():
    big = make_doc(model="Llama-2-13b-chat-hf", decode=(100.0, 80.0, 120.0, 90.0, 110.0), prefill=(1.0,) * 5)
    small = make_doc()
    small["energy"] = {"decode_j_per_token": 0.5, "decode_mean_w": 500.0, "source": "test"}
    table = analysis.main_table([big, small])
    rows = [line for line in table.splitlines() if line.startswith("| Llama2-")]
    assert [r.split(" | ")[0] for r in rows] == ["| Llama2-7B", "| Llama2-13B"]  # 7B first, not alphabetical
    fraction = f"{roofline.of(small).decode_fraction:.0%}"
    assert rows[0].endswith(f"| {fraction} | 0.500 |")
    refs = [line for line in table.splitlines() if "reference†" in line]
    assert "| *Llama2-7B* | *RTX 4090* | *int4* | *MLC LLM* | *reference†* | *204.80* | | |" in refs
    assert not any("fp16" in r for r in refs)  # only the quantization these results have
    assert "github.com/mlc-ai/llm-perf-bench" in table
    assert f"- {analysis.UNSTABLE} Llama2-13B, H200 141GB, int4, llama_cpp:" in table  # the ⚠ list names the quantization


def test_engine_column_comes_from_the_result():
    doc = make_doc(engine="llama_cpp")
    doc["engine_config"] = {"crosscheck": True, "split_mode": "row"}
    doc["build"] = {"crosscheck": {"difference": -0.01}}
    assert analysis.engine_column(doc) == "llama_cpp (split_mode=row)"  # a file from before `configuration`
    doc["configuration"] = "llama.cpp (split_mode=row)"
    assert analysis.engine_column(doc) == "llama.cpp (split_mode=row)"
