"""ATC conversion: convert/atc_all.sh and convert/atc_args.py against the stand-in tests/fake_atc/atc.

Exports come from conftest: 512 px, and 256 px with onnxslim-simplified graphs
(node names change there, so --out_nodes must be read from the graph). 1024 px
is not exported here: its export alone takes over a minute on a CPU test box.
Each test works on a private copy of an export (symlinked graphs, own
manifest.json), so the shared fixtures are never written to.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from convert.atc_args import (
    AIPP_CONFIG,
    OM_MANIFEST,
    AtcArgsError,
    Settings,
    build_jobs,
    gears_for,
    load_graphs,
)
from tests.ascend_helpers import FAKE_ATC, REPO, SOC, linked_copy

ATC_ALL = REPO / "convert" / "atc_all.sh"
SUBMODELS = ("image_encoder", "memory_attention", "memory_encoder", "mask_decoder")
SET_ENV_HINT = "source /usr/local/Ascend/ascend-toolkit/set_env.sh"
NPU_SMI_310B4 = """\
+--------------------------------------------------------------------------------------------------------+
| npu-smi 23.0.0                                   Version: 23.0.0                                       |
+-------------------------------+-----------------+------------------------------------------------------+
| NPU     Name                  | Health          | Power(W)     Temp(C)           Hugepages-Usage(page) |
| Chip    Device                | Bus-Id          | AICore(%)    Memory-Usage(MB)                        |
+===============================+=================+======================================================+
| 0       310B4                 | Alarm           | 0.0          56                15    / 15            |
| 0       0                     | NA              | 0            1835 / 15610                            |
+===============================+=================+======================================================+
"""


def make_bin(tmp_path: Path, atc: bool = True, npu_smi: str | None = None) -> Path:
    """A PATH folder with the stand-in atc and optionally an npu-smi that prints `npu_smi`."""
    folder = tmp_path / "bin"
    folder.mkdir(parents=True, exist_ok=True)
    if atc:
        (folder / "atc").symlink_to(FAKE_ATC)
    if npu_smi is not None:
        (folder / "npu-smi.txt").write_text(npu_smi)
        script = folder / "npu-smi"
        script.write_text(f"#!/bin/sh\ncat '{folder / 'npu-smi.txt'}'\n")
        script.chmod(0o755)
    return folder


def atc_all(*args: str, bin_dir: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    # The venv's bin provides python3 for the stand-in's shebang; /usr/bin:/bin the shell tools.
    path = f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin"
    full_env = {"PATH": path, "PYTHON": sys.executable, "HOME": os.environ.get("HOME", "/tmp"), **(env or {})}
    return subprocess.run(["bash", str(ATC_ALL), *args], capture_output=True, text=True, env=full_env, timeout=300)


def om(model_dir: Path, name: str) -> dict:
    return json.loads((model_dir / f"{name}.om").read_text())


@pytest.fixture
def export_256(export_256_variants, tmp_path) -> Path:
    return linked_copy(export_256_variants, tmp_path / "om256")


@pytest.mark.parametrize("export", ["export_512", "export_256_variants"])
def test_converts_every_submodel(export, request, tmp_path):
    model_dir = linked_copy(request.getfixturevalue(export), tmp_path / "models")
    result = atc_all("--soc-version", SOC, "--model-dir", str(model_dir), bin_dir=make_bin(tmp_path))
    assert result.returncode == 0, result.stderr + result.stdout
    records = json.loads((model_dir / OM_MANIFEST).read_text())["models"]
    for name in SUBMODELS:
        built = om(model_dir, name)
        assert built["soc_version"] == SOC and built["precision_mode"] == "force_fp16"
        assert records[name]["soc_version"] == SOC and records[name]["aipp"] is False
        assert "ATC run success" in (model_dir / "atc_logs" / f"{name}.log").read_text()
    # Every (memory frames M, object pointers P) the tracker can reach, each as M,M,P,P.
    gears = om(model_dir, "memory_attention")["gears"]
    assert len(gears) == 91
    assert sorted(gears) == sorted([m, m, p, p] for m in range(1, 8) for p in range(m, 17))
    assert om(model_dir, "mask_decoder")["gears"] == [[1, 1], [2, 2]]
    assert om(model_dir, "image_encoder")["gears"] == [] == om(model_dir, "memory_encoder")["gears"]


def test_dry_run_prints_the_commands_a_real_run_executes(export_256, tmp_path):
    dry = atc_all("--soc-version", SOC, "--model-dir", str(export_256), "--dry-run", bin_dir=make_bin(tmp_path, atc=False))
    assert dry.returncode == 0, dry.stderr
    commands = dry.stdout.splitlines()
    assert len(commands) == len(SUBMODELS) and all(c.startswith("atc --framework=5 ") for c in commands)
    assert not list(export_256.glob("*.om")) and not (export_256 / "atc_logs").exists()
    assert '--dynamic_dims="1,1,1,1;1,1,2,2;' in commands[1] and "--input_format=ND" in commands[1]
    assert "--input_format=NCHW" in commands[0] and f"--soc_version={SOC}" in commands[0]

    real = atc_all("--soc-version", SOC, "--model-dir", str(export_256), bin_dir=make_bin(tmp_path))
    assert real.returncode == 0, real.stderr
    executed = [(export_256 / "atc_logs" / f"{name}.log").read_text().splitlines()[0] for name in SUBMODELS]
    assert executed == commands


TAMPERING = [
    # (model, section, tensor index, field, new value, text both sides must show)
    ("memory_attention", "inputs", 0, ("shape", 2), 99, ("vision_feat", "99")),
    ("memory_attention", "inputs", 2, ("shape", 0), 3, ("memory", "3", "num_mem_frames")),
    ("image_encoder", "inputs", 0, ("name",), "pixels", ("pixels", "image")),
    ("mask_decoder", "inputs", 4, ("dtype",), "int64", ("point_labels", "int64", "int32")),
    ("memory_encoder", "outputs", 0, ("shape", 1), 63, ("maskmem_feat", "63", "64")),
]


@pytest.mark.parametrize("model, section, index, field, value, shown", TAMPERING)
def test_refuses_a_manifest_that_disagrees_with_the_graph(export_256, tmp_path, model, section, index, field, value, shown):
    manifest_path = export_256 / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    tensor = manifest["models"][model][section][index]
    if field[0] == "shape":
        tensor["shape"][field[1]] = value
    else:
        tensor[field[0]] = value
    manifest_path.write_text(json.dumps(manifest))
    result = atc_all("--soc-version", SOC, "--model-dir", str(export_256), bin_dir=make_bin(tmp_path))
    assert result.returncode != 0
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and model in message
    assert all(text in message for text in shown), message
    assert not list(export_256.glob("*.om"))


def test_refuses_an_unknown_soc(export_256, tmp_path):
    result = atc_all("--soc-version", "Ascend999", "--model-dir", str(export_256), bin_dir=make_bin(tmp_path))
    assert result.returncode != 0
    assert "Ascend999" in result.stderr and "Ascend310B4" in result.stderr and "Ascend310P3" in result.stderr
    with pytest.raises(AtcArgsError, match="Ascend999"):
        Settings("Ascend999")


def test_unknown_precision_is_refused():
    with pytest.raises(AtcArgsError, match="fp8"):
        Settings(SOC, precision_mode="fp8")


def test_missing_atc_says_to_source_set_env(export_256, tmp_path):
    result = atc_all("--soc-version", SOC, "--model-dir", str(export_256), bin_dir=make_bin(tmp_path, atc=False))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [f"atc_all.sh: atc not found on PATH; run: {SET_ENV_HINT}"]


def test_soc_comes_from_npu_smi(export_256, tmp_path):
    detected = atc_all("--model-dir", str(export_256), "--dry-run", bin_dir=make_bin(tmp_path, npu_smi=NPU_SMI_310B4))
    assert detected.returncode == 0, detected.stderr
    assert "npu-smi reports Ascend310B4" in detected.stdout
    assert all("--soc_version=Ascend310B4" in line for line in detected.stdout.splitlines()[1:])

    other = atc_all("--model-dir", str(export_256), "--dry-run", "--soc-version", "Ascend310P3", bin_dir=tmp_path / "bin")
    assert other.returncode == 0 and "npu-smi reports Ascend310B4" in other.stderr

    nothing = atc_all("--model-dir", str(export_256), "--dry-run", bin_dir=make_bin(tmp_path / "plain", atc=False))
    assert nothing.returncode != 0 and "--soc-version" in nothing.stderr


def test_skips_what_is_up_to_date(export_256, tmp_path):
    bin_dir = make_bin(tmp_path)
    args = ("--soc-version", SOC, "--model-dir", str(export_256))
    assert atc_all(*args, bin_dir=bin_dir).returncode == 0
    built = {name: (export_256 / f"{name}.om").stat().st_mtime_ns for name in SUBMODELS}

    again = atc_all(*args, bin_dir=bin_dir)
    assert again.returncode == 0 and again.stdout.count(": skip (up to date") == len(SUBMODELS)
    assert built == {name: (export_256 / f"{name}.om").stat().st_mtime_ns for name in SUBMODELS}

    # A re-exported graph (a real file, newer than its .om) is converted again, alone.
    graph = export_256 / "memory_encoder.onnx"
    real = graph.resolve()
    graph.unlink()
    shutil.copy(real, graph)
    newer = atc_all(*args, bin_dir=bin_dir)
    assert "memory_encoder: converting" in newer.stdout and newer.stdout.count(": skip (") == 3

    # Other build settings are not "up to date"; --force rebuilds everything.
    precision = atc_all(*args, "--precision", "allow_mix_precision", bin_dir=bin_dir)
    assert precision.stdout.count("precision_mode=force_fp16") == len(SUBMODELS)
    forced = atc_all(*args, "--precision", "allow_mix_precision", "--force", bin_dir=bin_dir)
    assert forced.stdout.count("(--force)") == len(SUBMODELS)


def test_aipp_config_and_encoder_only(export_256, tmp_path):
    result = atc_all("--soc-version", SOC, "--model-dir", str(export_256), "--aipp", bin_dir=make_bin(tmp_path))
    assert result.returncode == 0, result.stderr
    config = (export_256 / AIPP_CONFIG).read_text()
    assert "input_format : RGB888_U8" in config and "src_image_size_w : 256" in config
    aipp = om(export_256, "image_encoder")["aipp"]
    for channel, (mean, std) in enumerate(zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))):
        assert aipp[f"mean_chn_{channel}"] == 0
        assert aipp[f"min_chn_{channel}"] == pytest.approx(mean * 255)
        assert aipp[f"var_reci_chn_{channel}"] == pytest.approx(1 / (std * 255))
    records = json.loads((export_256 / OM_MANIFEST).read_text())["models"]
    assert {name: r["aipp"] for name, r in records.items()} == {name: name == "image_encoder" for name in SUBMODELS}
    assert all(om(export_256, name)["aipp"] is None for name in SUBMODELS[1:])


def test_first_failure_stops_and_names_its_log(export_256, tmp_path):
    result = atc_all(
        "--soc-version", SOC, "--model-dir", str(export_256),
        bin_dir=make_bin(tmp_path), env={"FAKE_ATC_FAIL_MODEL": "memory_attention"},
    )
    assert result.returncode != 0
    assert str(export_256 / "atc_logs" / "memory_attention.log") in result.stderr and "E19010" in result.stderr
    assert (export_256 / "image_encoder.om").is_file()
    assert not (export_256 / "memory_attention.om").exists() and not (export_256 / "mask_decoder.om").exists()


def test_gears_cover_every_reachable_pair_and_respect_the_limit(export_256, tmp_path):
    manifest, graphs = load_graphs(export_256)
    attention = next(g for g in graphs if g.name == "memory_attention")
    gears = gears_for(attention, manifest["hyper"])
    assert len(set(gears)) == len(gears) == 91
    assert all(1 <= m <= p <= 16 and m <= 7 and (m, p) == (m2, p2) for m, m2, p, p2 in gears)

    with pytest.raises(AtcArgsError, match=r"memory_attention: 108 gears .*outside 2\.\.100; export with other"):
        gears_for(attention, {**manifest["hyper"], "num_maskmem": 8, "max_obj_ptrs_in_encoder": 17})
    result = atc_all("--soc-version", SOC, "--model-dir", str(export_256), "--gears", "50", bin_dir=make_bin(tmp_path))
    assert result.returncode != 0 and "91 gears" in result.stderr and "2..50; raise --gears" in result.stderr


def _memory_attention_argv(model_dir: Path) -> list[str]:
    job = next(j for j in build_jobs(model_dir, Settings(SOC)) if j.model == "memory_attention")
    return list(job.argv[1:])


def _replace(argv: list[str], key: str, value: str) -> list[str]:
    return [f"{key}={value}" if arg.startswith(f"{key}=") else arg for arg in argv]


def _shape_with(argv: list[str], old: str, new: str) -> list[str]:
    shape = next(a for a in argv if a.startswith("--input_shape=")).split("=", 1)[1]
    return _replace(argv, "--input_shape", shape.replace(old, new))


BROKEN_COMMANDS = [
    # (what is wrong, how to break the generated argv, what the stand-in says)
    ("same input twice", lambda a: _shape_with(a, "vision_pos:", "vision_feat:"), "twice"),
    ("wrong static dim", lambda a: _shape_with(a, "vision_feat:1,256,16,16", "vision_feat:1,256,16,17"), "axis 3"),
    ("gear arity", lambda a: _replace(a, "--dynamic_dims", "1,1,1;2,2,2"), "has 3 values"),
    ("one gear", lambda a: _replace(a, "--dynamic_dims", "1,1,1,1"), "1 gears"),
    ("101 gears", lambda a: _replace(a, "--dynamic_dims", ";".join(f"{i},{i},1,1" for i in range(1, 102))), "101 gears"),
    ("unknown node", lambda a: _replace(a, "--out_nodes", "/NoSuchNode:0"), "names no node"),
    ("unknown soc", lambda a: _replace(a, "--soc_version", "Ascend320"), "Ascend320"),
    ("gears need ND", lambda a: _replace(a, "--input_format", "NCHW"), "ND"),
]


@pytest.mark.parametrize("case, breaks, says", BROKEN_COMMANDS, ids=[c[0] for c in BROKEN_COMMANDS])
def test_stand_in_atc_rejects_what_atc_rejects(export_256, case, breaks, says):
    argv = breaks(_memory_attention_argv(export_256))
    result = subprocess.run([sys.executable, str(FAKE_ATC), *argv], capture_output=True, text=True)
    assert result.returncode != 0 and says in result.stdout, result.stdout
    assert not (export_256 / "memory_attention.om").exists()
