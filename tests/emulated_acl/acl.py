"""In-process emulation of pyACL (`import acl`) for tests on machines without CANN.

A test puts this folder first on sys.path, so `import acl` in product code finds
this module. Models are the JSON `.om` files tests/fake_atc/atc writes; execute
runs the ONNX graph they name with ONNX Runtime.

What it enforces, as the real runtime does:
- call order: acl.init before anything, rt.set_device before rt.create_context,
  a current context before streams, memory and models; init twice answers
  ACL_ERROR_REPEAT_INITIALIZE, finalize twice ACL_ERROR_REPEAT_FINALIZE;
- memory: rt.malloc hands out addresses that are never reused, filled with 0xFF
  (NaN as float) so a skipped copy shows; rt.memcpy checks count <= dst_max,
  that device ranges lie inside a live allocation (freed memory is refused) and,
  in ACL_HOST run mode, that the kind matches which side is device memory (on a
  board, ACL_DEVICE mode, host kinds are done as device-to-device, as the docs
  say); host memory is real process memory, read and written through ctypes;
- models: dataset buffer counts must equal the model's input/output counts,
  each buffer must point into live memory and be at least the size
  get_*_size_by_index reports; a model with gears must have had
  mdl.set_input_dynamic_dims called on that input dataset (it writes the gear
  into the `ascend_mbatch_shape_data` buffer, which execute reads back) with
  dims that equal one of its gears; AIPP models take uint8 NHWC and normalise
  with the config's mean/min/var_reci; fp16 inputs/outputs are converted;
- streams: mdl.execute_async only queues the execution on its stream; it runs
  (reading its input buffers then, writing its output buffers) when
  rt.synchronize_stream is called on that stream, whose return code is then the
  execution's, as a real device reports a failed asynchronous task.

STRICTER than the real runtime, so that a wrong teardown order fails a test:
rt.destroy_context refuses while streams, memory or models of that context are
alive; rt.reset_device refuses while contexts of that device are alive; finalize
refuses while a device is set or buffers, datasets or descriptions are alive
(all with ACL_ERROR_RELATIVE_RESOURCE_NOT_CLEARED). Where the real device would
race, it fails the test: touching a buffer of a queued execution (rt.memcpy from
its outputs or into its inputs, mdl.set_input_dynamic_dims on its dataset,
mdl.get_cur_output_dims of its model) before its stream synchronised raises
UnsynchronisedAccess; rt.free, mdl.unload and rt.destroy_stream of what a queued
execution uses answer ACL_ERROR_RELATIVE_RESOURCE_NOT_CLEARED.

Test controls: reset(run_mode), fail(call, code, after), live(), memcpy_kinds(), executed_gears(),
async_executions().
"""

from __future__ import annotations

import ctypes
import functools
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import onnxruntime as ort

# Return codes (acl_base.h, ge_error_codes.h, rt_error_codes.h).
ACL_SUCCESS = 0
ACL_ERROR_INVALID_PARAM = 100000
ACL_ERROR_UNINITIALIZE = 100001
ACL_ERROR_REPEAT_INITIALIZE = 100002
ACL_ERROR_INVALID_FILE = 100003
ACL_ERROR_INVALID_MODEL_ID = 100011
ACL_ERROR_REPEAT_FINALIZE = 100037
ACL_ERROR_RELATIVE_RESOURCE_NOT_CLEARED = 148051
ACL_ERROR_GE_EXEC_MODEL_DATA_SIZE_INVALID = 145006
ACL_ERROR_GE_DYNAMIC_BATCH_SIZE_INVALID = 145013
ACL_ERROR_RT_INVALID_DEVICEID = 107001
ACL_ERROR_RT_CONTEXT_NULL = 107002
ACL_ERROR_RT_MODEL_EXECUTE = 507011
ACL_ERROR_RT_DRV_INTERNAL_ERROR = 507899

# aclrtRunMode
ACL_DEVICE = 0
ACL_HOST = 1
# aclrtMemcpyKind
ACL_MEMCPY_HOST_TO_HOST = 0
ACL_MEMCPY_HOST_TO_DEVICE = 1
ACL_MEMCPY_DEVICE_TO_HOST = 2
ACL_MEMCPY_DEVICE_TO_DEVICE = 3
# aclrtMemMallocPolicy: HUGE_FIRST, HUGE_ONLY, NORMAL_ONLY
MALLOC_POLICIES = (0, 1, 2)
# aclDataType
DTYPE_CODES = {"float32": 0, "float16": 1, "int32": 3, "uint8": 4, "int64": 9}
ACL_DT_UNDEFINED = -1

MBATCH_NAME = "ascend_mbatch_shape_data"
DEVICE_COUNT = 1
# Device addresses sit in the x86-64/arm64 kernel half, where no host pointer can be.
DEVICE_BASE = 0xFFFF_9000_0000_0000
DEVICE_ALIGN = 64
FRESH_MEMORY_BYTE = 0xFF
_ORT_TYPES = {"tensor(float)": np.float32, "tensor(int32)": np.int32, "tensor(int64)": np.int64}


class UnsynchronisedAccess(AssertionError):
    """Memory of an asynchronous execution used before its stream synchronised (the real device would race)."""


@dataclass(frozen=True)
class _Queued:
    """An execution waiting on its stream."""

    model_id: int
    inputs: int
    outputs: int

    def buffers(self) -> list[int]:
        return _state.datasets.get(self.inputs, []) + _state.datasets.get(self.outputs, [])


@dataclass
class _Allocation:
    addr: int
    size: int
    context: int
    data: bytearray


@dataclass
class _Model:
    context: int
    session: ort.InferenceSession
    inputs: list[dict]  # name, dims (-1 dynamic), dtype as the .om takes it
    outputs: list[dict]  # node ("name:index"), tensor, dims at the largest gear, dtype
    gears: list[list[int]]
    aipp: dict | None
    cur_output_dims: list[list[int]]

    @property
    def dynamic(self) -> bool:
        return bool(self.gears)

    def input_dims(self, index: int) -> list[int]:
        if index == len(self.inputs):
            return [len(self.gears[0])]
        dims = self.inputs[index]["dims"]
        if self.aipp:
            n, c, h, w = dims
            return [n, h, w, c]
        return dims

    def input_dtype(self, index: int) -> str:
        if index == len(self.inputs):
            return "int64"
        return "uint8" if self.aipp else self.inputs[index]["dtype"]

    def concrete(self, index: int, gear: list[int]) -> list[int]:
        """Input `index`'s dims with the gear's values in place of -1."""
        offset = sum(d == -1 for item in self.inputs[:index] for d in item["dims"])
        values = iter(gear[offset:])
        return [next(values) if d == -1 else d for d in self.input_dims(index)]

    def input_size(self, index: int) -> int:
        itemsize = np.dtype(self.input_dtype(index)).itemsize
        if index == len(self.inputs) or not self.dynamic:
            return int(np.prod(self.input_dims(index))) * itemsize
        return max(int(np.prod(self.concrete(index, gear))) * itemsize for gear in self.gears)

    def output_size(self, index: int) -> int:
        output = self.outputs[index]
        return int(np.prod(output["dims"])) * np.dtype(output["dtype"]).itemsize

    def full_dims(self, gear: list[int]) -> list[int]:
        """One gear as get_input_dynamic_dims reports it: every data input's dims, concatenated."""
        return [d for index in range(len(self.inputs)) for d in self.concrete(index, gear)]

    @property
    def num_inputs(self) -> int:
        return len(self.inputs) + (1 if self.dynamic else 0)

    def input_name(self, index: int) -> str:
        return MBATCH_NAME if index == len(self.inputs) else self.inputs[index]["name"]


@dataclass
class _State:
    run_mode: int = ACL_HOST
    initialized: bool = False
    devices: dict[int, int] = field(default_factory=dict)  # device id -> set_device count
    contexts: dict[int, int] = field(default_factory=dict)  # context -> device id
    current_context: int | None = None
    streams: dict[int, int] = field(default_factory=dict)  # stream -> context
    allocations: dict[int, _Allocation] = field(default_factory=dict)
    freed: list[tuple[int, int]] = field(default_factory=list)
    data_buffers: dict[int, tuple[int, int]] = field(default_factory=dict)  # handle -> (addr, size)
    datasets: dict[int, list[int]] = field(default_factory=dict)
    descs: dict[int, _Model | None] = field(default_factory=dict)
    models: dict[int, _Model] = field(default_factory=dict)
    failures: dict[str, list[list[int]]] = field(default_factory=dict)  # call -> [[calls to let pass, code]]
    memcpy_kinds: list[int] = field(default_factory=list)
    executed_gears: list[list[int]] = field(default_factory=list)
    queued: dict[int, list[_Queued]] = field(default_factory=dict)  # stream -> executions not yet synchronised
    async_executions: int = 0  # executions run by rt.synchronize_stream
    handles: itertools.count = field(default_factory=lambda: itertools.count(0x1000, 0x10))
    next_addr: int = DEVICE_BASE

    def take_failure(self, call: str) -> int | None:
        pending = self.failures.get(call, [])
        for entry in pending:
            if entry[0] == 0:
                pending.remove(entry)
                return entry[1]
            entry[0] -= 1
        return None

    def allocation_at(self, addr: int, count: int) -> _Allocation | None:
        for block in self.allocations.values():
            if block.addr <= addr and addr + count <= block.addr + block.size:
                return block
        return None

    def is_freed(self, addr: int) -> bool:
        return any(start <= addr < start + size for start, size in self.freed)

    def all_queued(self) -> list[_Queued]:
        return [item for items in self.queued.values() for item in items]

    def queued_touching(self, addr: int, count: int) -> _Queued | None:
        """The queued execution one of whose buffers overlaps [addr, addr + count), if any."""
        for item in self.all_queued():
            for buffer in item.buffers():
                start, size = self.data_buffers.get(buffer, (0, 0))
                if start < addr + count and addr < start + size:
                    return item
        return None


_state = _State()


# -- test controls -----------------------------------------------------------------


def reset(run_mode: int = ACL_HOST) -> None:
    """Forget everything: a fresh process. ACL_HOST: server with a PCIe card; ACL_DEVICE: a board."""
    global _state
    _state = _State(run_mode=run_mode)


def fail(call: str, code: int = ACL_ERROR_RT_DRV_INTERNAL_ERROR, after: int = 0) -> None:
    """Make the (after+1)-th next call of `call` (e.g. "acl.rt.malloc") fail with `code`."""
    _state.failures.setdefault(call, []).append([after, code])


def live() -> dict[str, int]:
    """What has not been released, by kind; {} once everything was torn down."""
    counts = {
        "initialized": int(_state.initialized),
        "devices": len(_state.devices),
        "contexts": len(_state.contexts),
        "streams": len(_state.streams),
        "allocations": len(_state.allocations),
        "data_buffers": len(_state.data_buffers),
        "datasets": len(_state.datasets),
        "descs": len(_state.descs),
        "models": len(_state.models),
        "queued": len(_state.all_queued()),
    }
    return {kind: count for kind, count in counts.items() if count}


def memcpy_kinds() -> list[int]:
    return list(_state.memcpy_kinds)


def async_executions() -> int:
    """How many executions ran through mdl.execute_async and rt.synchronize_stream."""
    return _state.async_executions


def executed_gears() -> list[list[int]]:
    """The gear of every successful execute of a model with gears, in order."""
    return [list(gear) for gear in _state.executed_gears]


# -- call wrapper --------------------------------------------------------------------

_RET, _PAIR, _HANDLE, _SENTINEL = "ret", "pair", "handle", "sentinel"


def _api(name: str, returns: str, sentinel: int = 0):
    """Register a pyACL call: forced failures answer the way that call reports failure."""

    def wrap(function):
        @functools.wraps(function)
        def call(*args):
            code = _state.take_failure(name)
            if code is None:
                return function(*args)
            if returns == _PAIR:
                return None, code
            if returns == _RET:
                return code
            return sentinel if returns == _SENTINEL else 0

        return call

    return wrap


def _handle() -> int:
    return next(_state.handles)


# -- acl -----------------------------------------------------------------------------


@_api("acl.init", _RET)
def _init(config_path: str | None = None) -> int:
    if _state.initialized:
        return ACL_ERROR_REPEAT_INITIALIZE
    _state.initialized = True
    return ACL_SUCCESS


@_api("acl.finalize", _RET)
def _finalize() -> int:
    if not _state.initialized:
        return ACL_ERROR_REPEAT_FINALIZE
    if _state.devices or _state.data_buffers or _state.datasets or _state.descs:
        return ACL_ERROR_RELATIVE_RESOURCE_NOT_CLEARED
    _state.initialized = False
    return ACL_SUCCESS


@_api("acl.create_data_buffer", _HANDLE)
def _create_data_buffer(addr: int, size: int) -> int:
    if not _state.initialized:
        return 0
    handle = _handle()
    _state.data_buffers[handle] = (addr, size)
    return handle


@_api("acl.destroy_data_buffer", _RET)
def _destroy_data_buffer(handle: int) -> int:
    if _state.data_buffers.pop(handle, None) is None:
        return ACL_ERROR_INVALID_PARAM
    return ACL_SUCCESS


# -- acl.rt --------------------------------------------------------------------------


@_api("acl.rt.set_device", _RET)
def _set_device(device_id: int) -> int:
    if not _state.initialized:
        return ACL_ERROR_UNINITIALIZE
    if not 0 <= device_id < DEVICE_COUNT:
        return ACL_ERROR_RT_INVALID_DEVICEID
    _state.devices[device_id] = _state.devices.get(device_id, 0) + 1
    return ACL_SUCCESS


@_api("acl.rt.reset_device", _RET)
def _reset_device(device_id: int) -> int:
    if device_id not in _state.devices:
        return ACL_ERROR_RT_INVALID_DEVICEID
    if _state.devices[device_id] == 1:
        if device_id in _state.contexts.values():
            return ACL_ERROR_RELATIVE_RESOURCE_NOT_CLEARED
        del _state.devices[device_id]
    else:
        _state.devices[device_id] -= 1
    return ACL_SUCCESS


@_api("acl.rt.create_context", _PAIR)
def _create_context(device_id: int):
    if not _state.initialized:
        return None, ACL_ERROR_UNINITIALIZE
    if device_id not in _state.devices:
        return None, ACL_ERROR_RT_INVALID_DEVICEID
    context = _handle()
    _state.contexts[context] = device_id
    _state.current_context = context
    return context, ACL_SUCCESS


@_api("acl.rt.set_context", _RET)
def _set_context(context: int) -> int:
    if context not in _state.contexts:
        return ACL_ERROR_INVALID_PARAM
    _state.current_context = context
    return ACL_SUCCESS


@_api("acl.rt.destroy_context", _RET)
def _destroy_context(context: int) -> int:
    if context not in _state.contexts:
        return ACL_ERROR_INVALID_PARAM
    owned = [
        *(s for s, c in _state.streams.items() if c == context),
        *(a for a, block in _state.allocations.items() if block.context == context),
        *(m for m, model in _state.models.items() if model.context == context),
    ]
    if owned:
        return ACL_ERROR_RELATIVE_RESOURCE_NOT_CLEARED
    del _state.contexts[context]
    if _state.current_context == context:
        _state.current_context = None
    return ACL_SUCCESS


@_api("acl.rt.create_stream", _PAIR)
def _create_stream():
    if _state.current_context is None:
        return None, ACL_ERROR_RT_CONTEXT_NULL
    stream = _handle()
    _state.streams[stream] = _state.current_context
    return stream, ACL_SUCCESS


@_api("acl.rt.destroy_stream", _RET)
def _destroy_stream(stream: int) -> int:
    if stream not in _state.streams:
        return ACL_ERROR_INVALID_PARAM
    if _state.queued.get(stream):
        return ACL_ERROR_RELATIVE_RESOURCE_NOT_CLEARED
    del _state.streams[stream]
    return ACL_SUCCESS


def _synchronize_stream(stream: int) -> int:
    """Run what execute_async queued on `stream`, in order; the first failure's code is returned.

    A forced failure (fail("acl.rt.synchronize_stream")) is a failed task: its executions are dropped.
    """
    if stream not in _state.streams:
        return ACL_ERROR_INVALID_PARAM
    code = _state.take_failure("acl.rt.synchronize_stream")
    if code is not None:
        _state.queued.pop(stream, None)
        return code
    code = ACL_SUCCESS
    while _state.queued.get(stream):
        item = _state.queued[stream].pop(0)
        ret = _run_model(item.model_id, item.inputs, item.outputs)
        _state.async_executions += 1
        code = code or ret
    _state.queued.pop(stream, None)
    return code


@_api("acl.rt.get_run_mode", _PAIR)
def _get_run_mode():
    if not _state.initialized:
        return None, ACL_ERROR_UNINITIALIZE
    return _state.run_mode, ACL_SUCCESS


@_api("acl.rt.malloc", _PAIR)
def _malloc(size: int, policy: int):
    if _state.current_context is None:
        return None, ACL_ERROR_RT_CONTEXT_NULL
    if size <= 0 or policy not in MALLOC_POLICIES:
        return None, ACL_ERROR_INVALID_PARAM
    addr = _state.next_addr
    _state.next_addr += (size + 2 * DEVICE_ALIGN - 1) // DEVICE_ALIGN * DEVICE_ALIGN  # plus a guard gap
    data = bytearray([FRESH_MEMORY_BYTE]) * size
    _state.allocations[addr] = _Allocation(addr, size, _state.current_context, data)
    return addr, ACL_SUCCESS


@_api("acl.rt.free", _RET)
def _free(addr: int) -> int:
    block = _state.allocations.get(addr)
    if block is None:
        return ACL_ERROR_INVALID_PARAM
    if _state.queued_touching(block.addr, block.size):
        return ACL_ERROR_RELATIVE_RESOURCE_NOT_CLEARED
    del _state.allocations[addr]
    _state.freed.append((block.addr, block.size))
    return ACL_SUCCESS


def _device_view(addr: int, count: int) -> memoryview | None:
    block = _state.allocation_at(addr, count)
    if block is None:
        return None
    start = addr - block.addr
    return memoryview(block.data)[start : start + count]


@_api("acl.rt.memcpy", _RET)
def _memcpy(dst: int, dst_max: int, src: int, count: int, kind: int) -> int:
    if not _state.initialized or count < 0 or count > dst_max or kind not in range(4):
        return ACL_ERROR_INVALID_PARAM
    if _state.is_freed(dst) or _state.is_freed(src):
        return ACL_ERROR_INVALID_PARAM
    for addr, what in ((src, "read from"), (dst, "written to")):
        queued = _state.queued_touching(addr, count)
        if queued is not None:
            raise UnsynchronisedAccess(
                f"rt.memcpy {what} a buffer of model {queued.model_id}'s asynchronous execution "
                "before rt.synchronize_stream of its stream"
            )
    dst_device, src_device = _device_view(dst, count), _device_view(src, count)
    dst_on_device = dst >= DEVICE_BASE
    src_on_device = src >= DEVICE_BASE
    if (dst_on_device and dst_device is None) or (src_on_device and src_device is None):
        return ACL_ERROR_INVALID_PARAM  # outside any live allocation
    if _state.run_mode == ACL_HOST:
        expected = {
            (False, False): ACL_MEMCPY_HOST_TO_HOST,
            (False, True): ACL_MEMCPY_HOST_TO_DEVICE,
            (True, False): ACL_MEMCPY_DEVICE_TO_HOST,
            (True, True): ACL_MEMCPY_DEVICE_TO_DEVICE,
        }[(src_on_device, dst_on_device)]
        if kind != expected:
            return ACL_ERROR_INVALID_PARAM
    _state.memcpy_kinds.append(kind)
    payload = bytes(src_device) if src_on_device else ctypes.string_at(src, count)
    if dst_on_device:
        dst_device[:] = payload
    else:
        ctypes.memmove(dst, payload, count)
    return ACL_SUCCESS


# -- acl.mdl -------------------------------------------------------------------------


@_api("acl.mdl.load_from_file", _PAIR)
def _load_from_file(path: str):
    if _state.current_context is None:
        return None, ACL_ERROR_RT_CONTEXT_NULL
    try:
        om = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None, ACL_ERROR_INVALID_FILE
    if om.get("fake_om") != 1:
        return None, ACL_ERROR_INVALID_FILE
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(om["onnx"], options, providers=["CPUExecutionProvider"])
    outputs = [{key: o[key] for key in ("node", "tensor", "dims", "dtype")} for o in om["outputs"]]
    model = _Model(
        _state.current_context, session, om["inputs"], outputs, om["gears"], om["aipp"], [o["dims"] for o in outputs]
    )
    model_id = _handle()
    _state.models[model_id] = model
    return model_id, ACL_SUCCESS


@_api("acl.mdl.unload", _RET)
def _unload(model_id: int) -> int:
    if model_id not in _state.models:
        return ACL_ERROR_INVALID_MODEL_ID
    if any(item.model_id == model_id for item in _state.all_queued()):
        return ACL_ERROR_RELATIVE_RESOURCE_NOT_CLEARED
    del _state.models[model_id]
    return ACL_SUCCESS


@_api("acl.mdl.create_desc", _HANDLE)
def _create_desc() -> int:
    handle = _handle()
    _state.descs[handle] = None
    return handle


@_api("acl.mdl.destroy_desc", _RET)
def _destroy_desc(desc: int) -> int:
    if desc not in _state.descs:
        return ACL_ERROR_INVALID_PARAM
    del _state.descs[desc]
    return ACL_SUCCESS


@_api("acl.mdl.get_desc", _RET)
def _get_desc(desc: int, model_id: int) -> int:
    if desc not in _state.descs:
        return ACL_ERROR_INVALID_PARAM
    if model_id not in _state.models:
        return ACL_ERROR_INVALID_MODEL_ID
    _state.descs[desc] = _state.models[model_id]
    return ACL_SUCCESS


def _described(desc: int) -> _Model | None:
    return _state.descs.get(desc)


@_api("acl.mdl.get_num_inputs", _SENTINEL)
def _get_num_inputs(desc: int) -> int:
    model = _described(desc)
    return model.num_inputs if model else 0


@_api("acl.mdl.get_num_outputs", _SENTINEL)
def _get_num_outputs(desc: int) -> int:
    model = _described(desc)
    return len(model.outputs) if model else 0


@_api("acl.mdl.get_input_size_by_index", _SENTINEL)
def _get_input_size_by_index(desc: int, index: int) -> int:
    model = _described(desc)
    return model.input_size(index) if model and 0 <= index < model.num_inputs else 0


@_api("acl.mdl.get_output_size_by_index", _SENTINEL)
def _get_output_size_by_index(desc: int, index: int) -> int:
    model = _described(desc)
    return model.output_size(index) if model and 0 <= index < len(model.outputs) else 0


def _dims(name: str, dims: list[int]) -> dict:
    return {"name": name, "dimCount": len(dims), "dims": list(dims)}


@_api("acl.mdl.get_input_dims", _PAIR)
def _get_input_dims(desc: int, index: int):
    model = _described(desc)
    if model is None or not 0 <= index < model.num_inputs:
        return None, ACL_ERROR_INVALID_PARAM
    return _dims(model.input_name(index), model.input_dims(index)), ACL_SUCCESS


def _output_name(model: _Model, index: int) -> str:
    # An .om names an output after the node it was taken from ("node:index:tensor").
    output = model.outputs[index]
    return f"{output['node']}:{output['tensor']}" if output["node"] else output["tensor"]


@_api("acl.mdl.get_output_dims", _PAIR)
def _get_output_dims(desc: int, index: int):
    model = _described(desc)
    if model is None or not 0 <= index < len(model.outputs):
        return None, ACL_ERROR_INVALID_PARAM
    return _dims(_output_name(model, index), model.outputs[index]["dims"]), ACL_SUCCESS


@_api("acl.mdl.get_cur_output_dims", _PAIR)
def _get_cur_output_dims(desc: int, index: int):
    model = _described(desc)
    if model is None or not 0 <= index < len(model.outputs):
        return None, ACL_ERROR_INVALID_PARAM
    if any(_state.models.get(item.model_id) is model for item in _state.all_queued()):
        raise UnsynchronisedAccess("mdl.get_cur_output_dims of a model whose asynchronous execution is not synced")
    return _dims(_output_name(model, index), model.cur_output_dims[index]), ACL_SUCCESS


@_api("acl.mdl.get_input_data_type", _SENTINEL, ACL_DT_UNDEFINED)
def _get_input_data_type(desc: int, index: int) -> int:
    model = _described(desc)
    if model is None or not 0 <= index < model.num_inputs:
        return ACL_DT_UNDEFINED
    return DTYPE_CODES[model.input_dtype(index)]


@_api("acl.mdl.get_output_data_type", _SENTINEL, ACL_DT_UNDEFINED)
def _get_output_data_type(desc: int, index: int) -> int:
    model = _described(desc)
    if model is None or not 0 <= index < len(model.outputs):
        return ACL_DT_UNDEFINED
    return DTYPE_CODES[model.outputs[index]["dtype"]]


@_api("acl.mdl.get_input_index_by_name", _PAIR)
def _get_input_index_by_name(desc: int, name: str):
    model = _described(desc)
    if model is None:
        return None, ACL_ERROR_INVALID_PARAM
    names = [model.input_name(i) for i in range(model.num_inputs)]
    if name not in names:
        return None, ACL_ERROR_INVALID_PARAM
    return names.index(name), ACL_SUCCESS


@_api("acl.mdl.get_input_dynamic_gear_count", _PAIR)
def _get_input_dynamic_gear_count(desc: int, index: int):
    model = _described(desc)
    if model is None or not model.dynamic or index != -1:
        return None, ACL_ERROR_INVALID_PARAM
    return len(model.gears), ACL_SUCCESS


@_api("acl.mdl.get_input_dynamic_dims", _PAIR)
def _get_input_dynamic_dims(desc: int, index: int, gear_count: int):
    model = _described(desc)
    if model is None or not model.dynamic or index != -1 or gear_count != len(model.gears):
        return None, ACL_ERROR_INVALID_PARAM
    return [_dims("", model.full_dims(gear)) for gear in model.gears], ACL_SUCCESS


@_api("acl.mdl.create_dataset", _HANDLE)
def _create_dataset() -> int:
    handle = _handle()
    _state.datasets[handle] = []
    return handle


@_api("acl.mdl.add_dataset_buffer", _PAIR)
def _add_dataset_buffer(dataset: int, buffer: int):
    if dataset not in _state.datasets or buffer not in _state.data_buffers:
        return None, ACL_ERROR_INVALID_PARAM
    _state.datasets[dataset].append(buffer)
    return dataset, ACL_SUCCESS


@_api("acl.mdl.destroy_dataset", _RET)
def _destroy_dataset(dataset: int) -> int:
    if _state.datasets.pop(dataset, None) is None:
        return ACL_ERROR_INVALID_PARAM
    return ACL_SUCCESS


def _buffer_memory(buffer: int, needed: int) -> memoryview | None:
    addr, size = _state.data_buffers[buffer]
    if size < needed:
        return None
    return _device_view(addr, size)


@_api("acl.mdl.set_input_dynamic_dims", _RET)
def _set_input_dynamic_dims(model_id: int, dataset: int, index: int, dims: dict) -> int:
    model = _state.models.get(model_id)
    if model is None:
        return ACL_ERROR_INVALID_MODEL_ID
    buffers = _state.datasets.get(dataset)
    if not model.dynamic or buffers is None or index != len(model.inputs) or len(buffers) <= index:
        return ACL_ERROR_INVALID_PARAM
    if dims.get("dimCount") != len(dims.get("dims", [])):
        return ACL_ERROR_INVALID_PARAM
    if any(item.inputs == dataset for item in _state.all_queued()):
        raise UnsynchronisedAccess("mdl.set_input_dynamic_dims on the inputs of an execution not yet synchronised")
    gear = next((g for g in model.gears if model.full_dims(g) == list(dims["dims"])), None)
    if gear is None:
        return ACL_ERROR_GE_DYNAMIC_BATCH_SIZE_INVALID
    memory = _buffer_memory(buffers[index], model.input_size(index))
    if memory is None:
        return ACL_ERROR_INVALID_PARAM
    encoded = np.asarray(gear, dtype=np.int64).tobytes()
    memory[: len(encoded)] = encoded
    return ACL_SUCCESS


def _gear_in(model: _Model, buffers: list[int]) -> list[int] | None:
    memory = _buffer_memory(buffers[len(model.inputs)], model.input_size(len(model.inputs)))
    if memory is None:
        return None
    gear = np.frombuffer(memory, dtype=np.int64, count=len(model.gears[0])).tolist()
    return gear if gear in model.gears else None


def _aipp(model: _Model, pixels: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW: (pixel - mean_chn - min_chn) * var_reci_chn per channel."""
    config = model.aipp
    planes = [
        (pixels[..., c].astype(np.float32) - config[f"mean_chn_{c}"] - config[f"min_chn_{c}"])
        * config[f"var_reci_chn_{c}"]
        for c in range(pixels.shape[-1])
    ]
    return np.stack(planes, axis=1).astype(np.float32)


def _check_execution(model_id: int, inputs: int, outputs: int) -> int:
    """What execute and execute_async check before anything runs."""
    model = _state.models.get(model_id)
    if model is None:
        return ACL_ERROR_INVALID_MODEL_ID
    in_buffers, out_buffers = _state.datasets.get(inputs), _state.datasets.get(outputs)
    if in_buffers is None or out_buffers is None:
        return ACL_ERROR_INVALID_PARAM
    if len(in_buffers) != model.num_inputs or len(out_buffers) != len(model.outputs):
        return ACL_ERROR_INVALID_PARAM
    if any(b not in _state.data_buffers for b in in_buffers + out_buffers):
        return ACL_ERROR_INVALID_PARAM
    return ACL_SUCCESS


@_api("acl.mdl.execute", _RET)
def _execute(model_id: int, inputs: int, outputs: int) -> int:
    return _check_execution(model_id, inputs, outputs) or _run_model(model_id, inputs, outputs)


@_api("acl.mdl.execute_async", _RET)
def _execute_async(model_id: int, inputs: int, outputs: int, stream: int) -> int:
    """Queue the execution on `stream`; it runs at rt.synchronize_stream (see the module docstring)."""
    if stream not in _state.streams:
        return ACL_ERROR_INVALID_PARAM
    code = _check_execution(model_id, inputs, outputs)
    if code == ACL_SUCCESS:
        _state.queued.setdefault(stream, []).append(_Queued(model_id, inputs, outputs))
    return code


def _run_model(model_id: int, inputs: int, outputs: int) -> int:
    """Run the model's ONNX graph on what its input buffers hold now; write its output buffers."""
    if _check_execution(model_id, inputs, outputs) != ACL_SUCCESS:
        return ACL_ERROR_RT_MODEL_EXECUTE  # something it used was released meanwhile
    model = _state.models[model_id]
    in_buffers, out_buffers = _state.datasets[inputs], _state.datasets[outputs]
    if model.dynamic:
        gear = _gear_in(model, in_buffers)
        if gear is None:
            return ACL_ERROR_GE_DYNAMIC_BATCH_SIZE_INVALID  # set_input_dynamic_dims missing or stale
    else:
        gear = []
    feeds = {}
    graph_types = {i.name: _ORT_TYPES[i.type] for i in model.session.get_inputs()}
    for index, spec in enumerate(model.inputs):
        memory = _buffer_memory(in_buffers[index], model.input_size(index))
        if memory is None:
            return ACL_ERROR_GE_EXEC_MODEL_DATA_SIZE_INVALID
        dims = model.concrete(index, gear)
        dtype = np.dtype(model.input_dtype(index))
        array = np.frombuffer(memory, dtype=dtype, count=int(np.prod(dims))).reshape(dims)
        if model.aipp:
            array = _aipp(model, array)
        feeds[spec["name"]] = array.astype(graph_types[spec["name"]])
    try:
        results = dict(zip([o.name for o in model.session.get_outputs()], model.session.run(None, feeds)))
    except Exception:  # onnxruntime raises untyped errors; the device reports one code
        return ACL_ERROR_RT_MODEL_EXECUTE
    dims = []
    for index, spec in enumerate(model.outputs):
        value = results[spec["tensor"]].astype(spec["dtype"])
        memory = _buffer_memory(out_buffers[index], model.output_size(index))
        if memory is None or value.nbytes > model.output_size(index):
            return ACL_ERROR_GE_EXEC_MODEL_DATA_SIZE_INVALID
        memory[: value.nbytes] = value.tobytes()
        dims.append(list(value.shape))
    model.cur_output_dims = dims
    if gear:
        _state.executed_gears.append(gear)
    return ACL_SUCCESS


# -- the module's public face, laid out like pyACL -----------------------------------

init = _init
finalize = _finalize
create_data_buffer = _create_data_buffer
destroy_data_buffer = _destroy_data_buffer
rt = SimpleNamespace(
    set_device=_set_device,
    reset_device=_reset_device,
    create_context=_create_context,
    set_context=_set_context,
    destroy_context=_destroy_context,
    create_stream=_create_stream,
    destroy_stream=_destroy_stream,
    get_run_mode=_get_run_mode,
    malloc=_malloc,
    free=_free,
    memcpy=_memcpy,
    synchronize_stream=_synchronize_stream,
)
mdl = SimpleNamespace(
    load_from_file=_load_from_file,
    unload=_unload,
    create_desc=_create_desc,
    destroy_desc=_destroy_desc,
    get_desc=_get_desc,
    get_num_inputs=_get_num_inputs,
    get_num_outputs=_get_num_outputs,
    get_input_size_by_index=_get_input_size_by_index,
    get_output_size_by_index=_get_output_size_by_index,
    get_input_dims=_get_input_dims,
    get_output_dims=_get_output_dims,
    get_cur_output_dims=_get_cur_output_dims,
    get_input_data_type=_get_input_data_type,
    get_output_data_type=_get_output_data_type,
    get_input_index_by_name=_get_input_index_by_name,
    get_input_dynamic_gear_count=_get_input_dynamic_gear_count,
    get_input_dynamic_dims=_get_input_dynamic_dims,
    create_dataset=_create_dataset,
    add_dataset_buffer=_add_dataset_buffer,
    destroy_dataset=_destroy_dataset,
    set_input_dynamic_dims=_set_input_dynamic_dims,
    execute=_execute,
    execute_async=_execute_async,
)
