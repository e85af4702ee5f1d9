"""ATC conversion: convert/atc_all.sh and convert/atc_args.py against the stand-in tests/fake_atc/atc.

Exports come from conftest: the demo checkpoint's plain graphs at 128 px, and 256 px with onnxslim-simplified
graphs (node names change there, so --out_nodes must be read from the graph). 1024 px
is not exported here: its export alone takes over a minute on a CPU test box.
Each test works on a private copy of an export (symlinked graphs, own
manifest.json), so the shared fixtures are never written to.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from convert.atc_args import (
    AIPP_CONFIG,
    DEFAULT_PRECISION,
    KEEP_SENSITIVE_FP32,
    OM_MANIFEST,
    AtcArgsError,
    Settings,
    build_jobs,
    gears_for,
    load_graphs,
)
from convert.export_onnx import MAX_PROMPT_POINTS
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


@pytest.mark.parametrize("export", ["demo_models", "export_256_variants"])
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
    # Memory attention is static: no --dynamic_dims reaches ATC for it. Only the
    # mask decoder has gears (1 to 8 points: tracking, a box, clicks): 4 models, 11 compiles.
    assert not any(arg.startswith("--dynamic_dims") for arg in om(model_dir, "memory_attention")["argv"])
    assert om(model_dir, "memory_attention")["gears"] == []
    assert om(model_dir, "mask_decoder")["gears"] == [[n, n] for n in range(1, MAX_PROMPT_POINTS + 1)]
    assert om(model_dir, "image_encoder")["gears"] == [] == om(model_dir, "memory_encoder")["gears"]
    assert sum(max(1, len(om(model_dir, name)["gears"])) for name in SUBMODELS) == 3 + MAX_PROMPT_POINTS


def test_dry_run_prints_the_commands_a_real_run_executes(export_256, tmp_path):
    dry = atc_all("--soc-version", SOC, "--model-dir", str(export_256), "--dry-run", bin_dir=make_bin(tmp_path, atc=False))
    assert dry.returncode == 0, dry.stderr
    commands = dry.stdout.splitlines()
    assert len(commands) == len(SUBMODELS) and all(c.startswith("atc --framework=5 ") for c in commands)
    assert not list(export_256.glob("*.om")) and not (export_256 / "atc_logs").exists()
    gears = ";".join(f"{n},{n}" for n in range(1, MAX_PROMPT_POINTS + 1))
    assert "--dynamic_dims" not in commands[1] and f'--dynamic_dims="{gears}"' in commands[3]
    assert "memory:7,64,16,16" in commands[1] and "obj_ptr_valid:16" in commands[1]
    assert "--input_format=NCHW" in commands[0] and f"--soc_version={SOC}" in commands[0]

    real = atc_all("--soc-version", SOC, "--model-dir", str(export_256), bin_dir=make_bin(tmp_path))
    assert real.returncode == 0, real.stderr
    executed = [(export_256 / "atc_logs" / f"{name}.log").read_text().splitlines()[0] for name in SUBMODELS]
    assert executed == commands


TAMPERING = [
    # (model, section, tensor index, field, new value, text both sides must show)
    ("memory_attention", "inputs", 0, ("shape", 2), 99, ("vision_feat", "99")),
    ("memory_attention", "inputs", 2, ("shape", 0), 3, ("memory", "3", "7")),
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
    assert precision.stdout.count(f"precision_mode={DEFAULT_PRECISION}") == len(SUBMODELS)
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


def test_gears_only_where_the_graph_is_dynamic(export_256):
    manifest, graphs = load_graphs(export_256)
    gears = {g.name: gears_for(g, manifest["hyper"]) for g in graphs}
    decoder = [(n, n) for n in range(1, MAX_PROMPT_POINTS + 1)]
    assert gears == {"image_encoder": [], "memory_attention": [], "memory_encoder": [], "mask_decoder": decoder}


def test_a_dynamic_memory_attention_is_refused(export_256):
    """A folder exported before memory attention became static cannot be converted without gears."""
    manifest, graphs = load_graphs(export_256)
    attention = next(g for g in graphs if g.name == "memory_attention")
    memory = attention.inputs[2]
    frames_axis = replace(memory, shape=("num_mem_frames", *memory.shape[1:]))
    dynamic = replace(attention, inputs=(*attention.inputs[:2], frames_axis, *attention.inputs[3:]))
    with pytest.raises(AtcArgsError, match=r"memory_attention: dynamic axes \['num_mem_frames'\] but no gear rule"):
        gears_for(dynamic, manifest["hyper"])


def _mask_decoder_argv(model_dir: Path) -> list[str]:
    job = next(j for j in build_jobs(model_dir, Settings(SOC)) if j.model == "mask_decoder")
    return list(job.argv[1:])


def _replace(argv: list[str], key: str, value: str) -> list[str]:
    return [f"{key}={value}" if arg.startswith(f"{key}=") else arg for arg in argv]


def _shape_with(argv: list[str], old: str, new: str) -> list[str]:
    shape = next(a for a in argv if a.startswith("--input_shape=")).split("=", 1)[1]
    return _replace(argv, "--input_shape", shape.replace(old, new))


BROKEN_COMMANDS = [
    # (what is wrong, how to break the generated argv, what the stand-in says)
    ("same input twice", lambda a: _shape_with(a, "high_res_feat0:", "pix_feat:"), "twice"),
    ("wrong static dim", lambda a: _shape_with(a, "pix_feat:1,256,16,16", "pix_feat:1,256,16,17"), "axis 3"),
    ("gear arity", lambda a: _replace(a, "--dynamic_dims", "1,1,1;2,2,2"), "has 3 values"),
    ("one gear", lambda a: _replace(a, "--dynamic_dims", "1,1"), "1 gears"),
    ("101 gears", lambda a: _replace(a, "--dynamic_dims", ";".join(f"{i},{i}" for i in range(1, 102))), "101 gears"),
    ("unknown node", lambda a: _replace(a, "--out_nodes", "/NoSuchNode:0"), "names no node"),
    ("unknown soc", lambda a: _replace(a, "--soc_version", "Ascend320"), "Ascend320"),
    ("gears need ND", lambda a: _replace(a, "--input_format", "NCHW"), "ND"),
]


@pytest.mark.parametrize("case, breaks, says", BROKEN_COMMANDS, ids=[c[0] for c in BROKEN_COMMANDS])
def test_stand_in_atc_rejects_what_atc_rejects(export_256, case, breaks, says):
    argv = breaks(_mask_decoder_argv(export_256))
    result = subprocess.run([sys.executable, str(FAKE_ATC), *argv], capture_output=True, text=True)
    assert result.returncode != 0 and says in result.stdout, result.stdout
    assert not (export_256 / "mask_decoder.om").exists()


# ---------------------------------------------------------------- precision


def test_sensitive_nodes_stay_float32_through_keep_dtype(export_256, tmp_path):
    import onnx

    from convert.precision import sensitive_nodes

    result = atc_all(
        "--soc-version", SOC, "--model-dir", str(export_256), "--precision", KEEP_SENSITIVE_FP32, bin_dir=make_bin(tmp_path)
    )
    assert result.returncode == 0, result.stderr
    for name in SUBMODELS:
        built = om(export_256, name)
        expected = sensitive_nodes(onnx.load(str(export_256 / f"{name}.onnx"), load_external_data=False))
        assert built["precision_mode"] == "force_fp16" and built["keep_dtype"] == expected
    kept = om(export_256, "memory_attention")["keep_dtype"]
    assert any("/rotary/" in node for node in kept) and any("Softmax" in node for node in kept)
    records = json.loads((export_256 / OM_MANIFEST).read_text())["models"]
    assert {r["precision_mode"] for r in records.values()} == {KEEP_SENSITIVE_FP32}


def test_edgetam_export_converts_with_its_rotary_arithmetic_in_float32(edgetam_export_256, tmp_path):
    """The default precision on EdgeTAM's graphs: the audit passes and every sensitive node, the rotary arithmetic
    of both the query and the key encoding of memory attention included, is kept in float32."""
    import onnx

    from convert.precision import sensitive_nodes

    models = linked_copy(edgetam_export_256, tmp_path / "edgetam")
    result = atc_all("--soc-version", SOC, "--model-dir", str(models), bin_dir=make_bin(tmp_path))
    assert result.returncode == 0, result.stderr
    for name in SUBMODELS:
        graph = onnx.load(str(models / f"{name}.onnx"), load_external_data=False)
        assert om(models, name)["keep_dtype"] == sensitive_nodes(graph)
    graph = onnx.load(str(models / "memory_attention.onnx"), load_external_data=False).graph
    rotary = {n.name for n in graph.node if "rotary" in n.name and n.op_type in ("Mul", "Sub", "Add")}
    kept = set(om(models, "memory_attention")["keep_dtype"])
    assert any("/query_rotary" in n for n in rotary) and any("/key_rotary" in n for n in rotary)
    assert rotary <= kept


DOCS = REPO / "docs" / "ascend.md"
# Cheapest first: what each --precision keeps in float32 (nothing, the sensitive nodes, everything).
COST_ORDER = ("force_fp16", KEEP_SENSITIVE_FP32, "must_keep_origin_dtype")


def _docs_precision_rows() -> list[tuple[str, str, str]]:
    """(checkpoint / clip, mode, keeps decisions) per row of the measured table in docs/ascend.md's Precision."""
    section = DOCS.read_text().split("\n## Precision\n", 1)[1].split("\n## ", 1)[0]
    rows, checkpoint = [], ""
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) > 2 and cells[1].strip("`") in COST_ORDER and cells[-1] in ("yes", "no"):
            checkpoint = cells[0] or checkpoint
            rows.append((checkpoint, cells[1].strip("`"), cells[-1]))
    return rows


def test_default_precision_is_the_one_the_docs_table_justifies(export_256, tmp_path):
    """atc_all.sh without --precision converts with the cheapest mode that kept every decision in the docs' table."""
    rows = _docs_precision_rows()
    checkpoints = {checkpoint for checkpoint, _, _ in rows}
    assert len(checkpoints) >= 3 and any("stress" in c for c in checkpoints), checkpoints
    holds = {mode: all(keeps == "yes" for _, m, keeps in rows if m == mode) for mode in COST_ORDER[:2]}
    assert all(any(m == mode for _, m, _ in rows) for mode in holds), "every float16 mode has rows"
    justified = next((mode for mode in COST_ORDER[:2] if holds[mode]), COST_ORDER[-1])
    decision = re.search(r"\*\*Decision: `([a-z0-9_]+)` is the default\*\*", DOCS.read_text())
    assert decision and decision.group(1) == justified

    result = atc_all("--soc-version", SOC, "--model-dir", str(export_256), "--dry-run", bin_dir=make_bin(tmp_path, atc=False))
    assert result.returncode == 0, result.stderr
    commands = result.stdout.splitlines()
    assert len(commands) == len(SUBMODELS)
    keep_lists = ["--keep_dtype=" in line for line in commands]
    if all("--precision_mode=force_fp16" in line for line in commands):
        generated = KEEP_SENSITIVE_FP32 if all(keep_lists) else "force_fp16" if not any(keep_lists) else "mixed"
    else:
        generated = "must_keep_origin_dtype" if all("must_keep_origin_dtype" in line for line in commands) else "other"
    assert generated == justified == DEFAULT_PRECISION


# ---------------------------------------------------------------- operator audit


def _tiny_graph(path: Path, op_type: str, domain: str = "", opset: int = 17) -> Path:
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    nodes = [helper.make_node("Relu", ["x"], ["r"], name="relu_0"), helper.make_node(op_type, ["r"], ["y"], name="act_1", domain=domain)]
    imports = [helper.make_opsetid("", opset)] + ([helper.make_opsetid(domain, 1)] if domain else [])
    onnx.save(helper.make_model(helper.make_graph(nodes, "tiny", [x], [y]), opset_imports=imports), str(path))
    return path


@pytest.mark.parametrize(
    "op_type, domain, opset, named",
    [("Gelu", "", 17, "ai.onnx::Gelu at opset 17"), ("Relu", "", 20, "ai.onnx::Relu at opset 20"),
     ("FastGelu", "com.microsoft", 17, "com.microsoft::FastGelu")],
)
def test_audit_rejects_an_op_atc_does_not_parse(tmp_path, op_type, domain, opset, named):
    from convert.op_audit import UnsupportedOpError, check

    with pytest.raises(UnsupportedOpError) as error:
        check(_tiny_graph(tmp_path / "tiny.onnx", op_type, domain, opset))
    message = str(error.value)
    assert "\n" not in message and named in message and "tiny.onnx" in message
    assert "'act_1'" in message or "'relu_0'" in message


def test_audit_table_lists_every_op_of_the_export(export_256):
    result = subprocess.run(
        [sys.executable, "-m", "convert.atc_args", "--model-dir", str(export_256), "--audit"],
        capture_output=True, text=True, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    rows = [line.split(" | ") for line in result.stdout.splitlines()[2:]]
    assert {row[0].strip("| ") for row in rows} == set(SUBMODELS)
    assert all(row[-1].strip("| ") == "yes" for row in rows)
    assert any("ai.onnx::Softmax" in row[1] for row in rows)


def test_export_stops_on_an_op_atc_does_not_parse(checkpoint, tmp_path, monkeypatch):
    from convert import op_audit
    from convert.export_onnx import ExportError, export

    table = {op: versions for op, versions in op_audit.supported_ops().items() if op != "Erf"}
    monkeypatch.setattr(op_audit, "supported_ops", lambda path=op_audit.SUPPORTED_OPS_FILE: table)
    with pytest.raises(ExportError, match=r"image_encoder\.onnx: op ai\.onnx::Erf at opset 17 \(node '[^']+'"):
        export(checkpoint, tmp_path / "out", image_size=256)


# ---------------------------------------------------------------- which Python


def test_runs_without_activating_anything(export_256, tmp_path):
    """As after `bash scripts/quickstart.sh`: a plain shell, no venv on PATH, no $PYTHON; .venv/bin/python is found."""
    assert (REPO / ".venv" / "bin" / "python").is_file(), "run bash scripts/setup.sh first"
    result = subprocess.run(
        ["bash", str(ATC_ALL), "--dry-run", "--soc-version", SOC, "--model-dir", str(export_256)],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, cwd=tmp_path, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.splitlines()) == len(SUBMODELS)


def _repo_without_venv(tmp_path: Path) -> Path:
    """The repository's folders behind symlinks in a folder that has no .venv."""
    root = tmp_path / "checkout"
    root.mkdir()
    for folder in ("convert", "scripts", "app", "acl_models"):
        (root / folder).symlink_to(REPO / folder)
    return root


def test_python_without_the_modules_gives_one_line(export_256, tmp_path):
    bare = tmp_path / "bare-python"
    bare.write_text(f"#!/bin/sh\nexec {sys.executable} -S \"$@\"\n")  # no site-packages: no loguru, no onnx
    bare.chmod(0o755)
    root = _repo_without_venv(tmp_path)
    result = subprocess.run(
        ["bash", str(root / "convert" / "atc_all.sh"), "--dry-run", "--soc-version", SOC, "--model-dir", str(export_256)],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHON": str(bare), "HOME": str(tmp_path)},
    )
    assert result.returncode != 0 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert str(bare) in lines[0] and "No module named" in lines[0] and "bash scripts/setup.sh" in lines[0]

    with_modules = subprocess.run(
        ["bash", str(root / "convert" / "atc_all.sh"), "--dry-run", "--soc-version", SOC, "--model-dir", str(export_256)],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable, "HOME": str(tmp_path)},
    )
    assert with_modules.returncode == 0, with_modules.stderr
