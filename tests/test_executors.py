"""Executors without a cluster: which node a cell may run on and which one takes it next (executors/placement.py,
pure), the options checked up front, and the Ray task's check that its node sees the run's results folder."""

import re

import pytest

from llmperf_nb.exceptions import ConfigError
from llmperf_nb.executors import get_executor
from llmperf_nb.executors.placement import Node, Slots, demand, fits, unschedulable

from .conftest import new_cell


def node(name: str, host: str = "10.0.0.1", **resources) -> Node:
    return Node(f"{name}-id", host, name, resources)


H200X2 = node("h200-box", **{"GPU": 2, "llmperf-nb:h200": 2})
RTX = node("rtx-box", "10.0.0.2", **{"GPU": 1, "llmperf-nb:rtx-4090": 1, "llmperf-nb:cpu": 1})
HEAD = node("head", "10.0.0.3", CPU=4)


def test_a_cell_asks_for_its_gpu_model_and_count_or_the_cpu_resource():
    assert demand(new_cell(gpu="h200", count=2)) == {"GPU": 2, "llmperf-nb:h200": 2}
    assert demand(new_cell(gpu="cpu")) == {"llmperf-nb:cpu": 1}


def test_a_cell_fits_only_a_node_with_its_model_and_enough_of_them():
    assert fits(new_cell(gpu="h200", count=2), H200X2)
    assert not fits(new_cell(gpu="h200", count=4), H200X2)
    assert not fits(new_cell(gpu="rtx-4090"), H200X2)
    assert fits(new_cell(gpu="cpu"), RTX) and not fits(new_cell(gpu="cpu"), H200X2)


def test_unschedulable_says_what_the_nodes_offer_and_how_to_start_one_that_fits():
    nodes = [H200X2, RTX, HEAD]
    assert unschedulable(new_cell(gpu="h200", count=2), nodes) is None
    why = unschedulable(new_cell(gpu="a100-80gb", count=4), nodes)
    assert why.startswith("no node of the Ray cluster has a100-80gbx4")
    assert """--num-gpus 4 --resources '{"llmperf-nb:a100-80gb": 4}'""" in why
    assert "cpu×1, h200×2, rtx-4090×1" in why
    assert "(the nodes offer nothing: none declares a llmperf-nb:* resource)" in unschedulable(
        new_cell(gpu="cpu"), [HEAD]
    )
    assert "name the GPU model" in unschedulable(new_cell(gpu="auto"), nodes)


def test_one_cell_at_a_time_per_host_unless_more_are_allowed():
    a = node("a", "10.0.0.9", **{"llmperf-nb:cpu": 1})
    b = node("b", "10.0.0.9", **{"llmperf-nb:cpu": 1})  # a second Ray node on the same machine
    cpu1, cpu2 = new_cell(gpu="cpu"), new_cell(gpu="cpu", seed=1)
    slots = Slots(per_host=1)
    assert slots.pick(cpu1, [a, b]) == a
    slots.take(cpu1, a)
    assert slots.pick(cpu2, [a, b]) is None  # b is free, but on the busy host
    slots.give_back(cpu1, a)
    assert slots.pick(cpu2, [a, b]) == a
    two = Slots(per_host=2)
    two.take(cpu1, a)
    assert two.pick(cpu2, [a, b]) == b  # a's one CPU slot is taken


def test_gpus_of_a_node_go_to_one_cell_at_a_time():
    box = node("box", **{"GPU": 2, "llmperf-nb:h200": 2})
    slots = Slots(per_host=4)
    two, one = new_cell(gpu="h200", count=2), new_cell(gpu="h200")
    slots.take(two, box)
    assert slots.pick(one, [box]) is None
    slots.give_back(two, box)
    assert slots.pick(one, [box]) == box


@pytest.mark.parametrize(
    ("name", "options", "said"),
    [
        ("local", {"address": "10.0.0.1:6379"}, "--address is an option of --executor ray"),
        ("slurm", {}, "unknown executor 'slurm'; valid executors: local, ray"),
        ("ray", {"per_host": 0}, "--per-host must be a whole number of at least 1"),
        ("ray", {"address": "head-without-port"}, "give the head as HOST:PORT"),
    ],
)
def test_executor_options_are_checked_before_anything_runs(name, options, said):
    with pytest.raises(ConfigError, match=re.escape(said)):
        get_executor(name, **options)


def test_a_node_that_does_not_see_the_results_folder_runs_nothing_and_says_why(tmp_path):
    from llmperf_nb.exceptions import LlmPerfError
    from llmperf_nb.executors.ray import MARK_FILE, run_on_node

    cell = new_cell()
    (tmp_path / MARK_FILE).write_text('{"run": "another run"}')
    where = {"executor": "ray", "node_id": "n" * 56, "ip": "10.0.0.7", "hostname": "gpu-7"}
    with pytest.raises(LlmPerfError, match=r"gpu-7 \(10.0.0.7\) does not see the results folder .* every node reaches"):
        run_on_node(cell.to_dict(), str(tmp_path), None, "local", "this run", where)
    assert list(tmp_path.iterdir()) == [tmp_path / MARK_FILE]  # no cell folder was started
