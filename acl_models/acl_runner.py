"""pyACL backend: runs ATC-converted `.om` sub-models on an Ascend NPU (310B boards, 310P cards).

The device, its context and stream, and the status checks are `acl_device.py`'s
(`AclResource`, shared by every runner of a process); this module loads one
model onto it. Device buffers and datasets are built once
per model and reused every frame. A model converted with gears
(`--dynamic_dims`) gets, before each execute, the gear equal to the shapes of
the inputs it is given; there is no padding and no nearest gear.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from loguru import logger

from acl_models.acl_device import (
    ACL_SUCCESS,
    AclResource,
    Teardown,
    check_handle,
    check_status,
    close_on_exit,
    raise_release_errors,
    release_error,
)
from acl_models.base import BackendError, ModelRunner, Pending
from acl_models.manifest import MANIFEST_FILE, load_manifest

# aclrtMemMallocPolicy: huge pages when there are any, normal pages otherwise
ACL_MEM_MALLOC_HUGE_FIRST = 0
# The input ATC adds to a model built with --dynamic_dims; set_input_dynamic_dims fills it.
DYNAMIC_DIMS_INPUT = "ascend_mbatch_shape_data"
# get_input_dynamic_gear_count / get_input_dynamic_dims take a reserved index that must be -1.
DYNAMIC_DIMS_INDEX = -1
# aclDataType (acl_base.h) -> numpy
ACL_DTYPES: dict[int, np.dtype] = {
    0: np.dtype(np.float32),
    1: np.dtype(np.float16),
    2: np.dtype(np.int8),
    3: np.dtype(np.int32),
    4: np.dtype(np.uint8),
    6: np.dtype(np.int16),
    7: np.dtype(np.uint16),
    8: np.dtype(np.uint32),
    9: np.dtype(np.int64),
    10: np.dtype(np.uint64),
    11: np.dtype(np.float64),
    12: np.dtype(np.bool_),
}


@dataclass(frozen=True)
class _Binding:
    """One model input or output and the device buffer behind it."""

    index: int
    name: str
    dims: tuple[int, ...]  # -1 where the gear decides
    dtype: np.dtype
    size: int  # bytes at the largest gear
    device_ptr: int = 0  # set once the buffer is allocated


def _manifest_entry(om_path: Path) -> dict:
    manifest = om_path.parent / MANIFEST_FILE
    if not manifest.is_file():
        raise BackendError(f"{manifest} not found; keep the .om files in the folder convert/export_onnx.py wrote")
    entry = load_manifest(om_path.parent).models.get(om_path.stem)
    if entry is None:
        raise BackendError(f"{manifest} lists no model '{om_path.stem}'; re-export and reconvert")
    return entry


class _OnStream(Pending):
    """An execution started with acl.mdl.execute_async on the resource's stream."""

    def __init__(self, runner: AclRunner):
        self._runner = runner

    def _collect(self) -> dict[str, np.ndarray]:
        return self._runner._finish()


class AclRunner(ModelRunner):
    """One `.om` sub-model on the NPU; stateless about the video.

    run() takes and returns arrays by graph name. Inputs are cast to the
    model's input dtype (an AIPP image encoder takes uint8 RGB pixels, NHWC);
    outputs come back as float32 whatever precision the .om computes in.
    Output names come from manifest.json, in the order ATC was given them
    (--out_nodes), since an .om names outputs after their producing nodes.
    submit() executes asynchronously on the resource's stream (run() uses the
    default stream, so the other models' runs go on meanwhile); the outputs are
    copied only after acl.rt.synchronize_stream. A run or submit while an
    execution is in flight first finishes it: both use the same device buffers.
    """

    def __init__(self, path: Path, resource: AclResource):
        super().__init__(path)
        if not self.path.is_file():
            raise BackendError(f"{self.path} not found; convert it with convert/atc_all.sh --model-dir {self.path.parent}")
        entry = _manifest_entry(self.path)
        self._resource = resource
        self._acl = resource.acl
        self._teardown = Teardown()
        self._closed = False
        self._gears: set[tuple[int, ...]] = set()
        self._gear_index = -1
        self._in_flight: _OnStream | None = None
        resource.attach(self)
        try:
            self._load([i["name"] for i in entry["inputs"]], [o["name"] for o in entry["outputs"]])
        except BackendError:
            self._closed = True
            errors = self._release()
            if errors:
                logger.warning("after the failed load of {}: {}", self.path.name, "; ".join(errors))
            raise

    # -- loading -------------------------------------------------------------------

    def _describe(self, kind: str, index: int) -> _Binding:
        mdl = self._acl.mdl
        doing = f"describing {kind} {index} of {self.path.name}"
        get_dims, get_type, get_size = {
            "input": (mdl.get_input_dims, mdl.get_input_data_type, mdl.get_input_size_by_index),
            "output": (mdl.get_output_dims, mdl.get_output_data_type, mdl.get_output_size_by_index),
        }[kind]
        dims, ret = get_dims(self._desc, index)
        check_status(f"acl.mdl.get_{kind}_dims", ret, doing)
        code = get_type(self._desc, index)
        if code not in ACL_DTYPES:
            raise BackendError(f"acl.mdl.get_{kind}_data_type returned {code} while {doing}: not a known aclDataType")
        size = get_size(self._desc, index)
        if size <= 0:
            raise BackendError(f"acl.mdl.get_{kind}_size_by_index returned {size} while {doing}: the .om looks broken")
        return _Binding(index, dims["name"], tuple(dims["dims"]), ACL_DTYPES[code], size)

    def _count(self, kind: str) -> int:
        call = f"get_num_{kind}s"
        count = getattr(self._acl.mdl, call)(self._desc)
        if count <= 0:
            raise BackendError(f"acl.mdl.{call} returned {count} for {self.path.name}: the .om looks broken")
        return count

    def _dataset(self, sizes: list[int], kind: str) -> tuple[int, list[int]]:
        """A dataset of one device buffer per size, allocated once for the runner's life."""
        acl = self._acl
        doing = f"allocating {kind} buffers of {self.path.name}"
        dataset = check_handle("acl.mdl.create_dataset", acl.mdl.create_dataset(), doing)
        self._teardown.push("acl.mdl.destroy_dataset", lambda: acl.mdl.destroy_dataset(dataset))
        pointers = []
        for size in sizes:
            pointer, ret = acl.rt.malloc(size, ACL_MEM_MALLOC_HUGE_FIRST)
            check_status("acl.rt.malloc", ret, f"{doing} ({size} bytes)")
            self._teardown.push("acl.rt.free", lambda p=pointer: acl.rt.free(p))
            buffer = check_handle("acl.create_data_buffer", acl.create_data_buffer(pointer, size), doing)
            self._teardown.push("acl.destroy_data_buffer", lambda b=buffer: acl.destroy_data_buffer(b))
            _, ret = acl.mdl.add_dataset_buffer(dataset, buffer)
            check_status("acl.mdl.add_dataset_buffer", ret, doing)
            pointers.append(pointer)
        return dataset, pointers

    def _load(self, manifest_inputs: list[str], manifest_outputs: list[str]) -> None:
        acl = self._acl
        name = self.path.name
        doing = f"loading {name}"
        model_id, ret = acl.mdl.load_from_file(str(self.path))
        check_status("acl.mdl.load_from_file", ret, doing)
        self._teardown.push("acl.mdl.unload", lambda: acl.mdl.unload(model_id))
        self._model_id = model_id
        desc = check_handle("acl.mdl.create_desc", acl.mdl.create_desc(), doing)
        self._teardown.push("acl.mdl.destroy_desc", lambda: acl.mdl.destroy_desc(desc))
        self._desc = desc
        check_status("acl.mdl.get_desc", acl.mdl.get_desc(desc, model_id), doing)

        inputs = [self._describe("input", i) for i in range(self._count("input"))]
        outputs = [self._describe("output", i) for i in range(self._count("output"))]
        data_inputs = [b.name for b in inputs if b.name != DYNAMIC_DIMS_INPUT]
        if sorted(data_inputs) != sorted(manifest_inputs):
            raise BackendError(
                f"{name} takes {data_inputs} but manifest.json lists {manifest_inputs}; "
                "reconvert with convert/atc_all.sh --force"
            )
        if len(outputs) != len(manifest_outputs):
            raise BackendError(
                f"{name} has {len(outputs)} outputs but manifest.json lists {manifest_outputs}; "
                "reconvert with convert/atc_all.sh --force"
            )
        if len(data_inputs) < len(inputs):
            self._load_gears()

        self._input_dataset, input_pointers = self._dataset([b.size for b in inputs], "input")
        self._output_dataset, output_pointers = self._dataset([b.size for b in outputs], "output")
        self._inputs = [
            replace(b, device_ptr=ptr) for b, ptr in zip(inputs, input_pointers) if b.name != DYNAMIC_DIMS_INPUT
        ]
        # ATC's AIPP turns a float image input into uint8 pixels: the tracker must then skip normalising.
        self.takes_pixels = any(b.dtype == np.uint8 for b in self._inputs)
        # An .om names outputs after their producing nodes; the graph names are the manifest's, in --out_nodes order.
        self._outputs = [
            replace(b, name=graph_name, device_ptr=ptr)
            for b, graph_name, ptr in zip(outputs, manifest_outputs, output_pointers)
        ]
        gears = f", {len(self._gears)} gears" if self._gears else ""
        logger.info("loaded {}: {} inputs, {} outputs{}", name, len(self._inputs), len(self._outputs), gears)

    def _load_gears(self) -> None:
        mdl = self._acl.mdl
        doing = f"reading the gears of {self.path.name}"
        index, ret = mdl.get_input_index_by_name(self._desc, DYNAMIC_DIMS_INPUT)
        check_status("acl.mdl.get_input_index_by_name", ret, doing)
        count, ret = mdl.get_input_dynamic_gear_count(self._desc, DYNAMIC_DIMS_INDEX)
        check_status("acl.mdl.get_input_dynamic_gear_count", ret, doing)
        gears, ret = mdl.get_input_dynamic_dims(self._desc, DYNAMIC_DIMS_INDEX, count)
        check_status("acl.mdl.get_input_dynamic_dims", ret, doing)
        self._gear_index = index
        self._gears = {tuple(gear["dims"]) for gear in gears}

    # -- running -------------------------------------------------------------------

    @property
    def input_names(self) -> list[str]:
        return [b.name for b in self._inputs]

    @property
    def output_names(self) -> list[str]:
        return [b.name for b in self._outputs]

    def _prepare(self, binding: _Binding, value: np.ndarray) -> np.ndarray:
        """`value` as the contiguous array of the model's dtype that the device buffer receives."""
        array = np.asarray(value)
        if array.dtype != binding.dtype:
            if not np.can_cast(array.dtype, binding.dtype, casting="same_kind"):
                aipp = " (an AIPP encoder takes uint8 RGB pixels, NHWC)" if binding.dtype == np.uint8 else ""
                raise BackendError(
                    f"{self.path.name}: input '{binding.name}' is {array.dtype} but the model takes {binding.dtype}{aipp}"
                )
            array = array.astype(binding.dtype)
        if len(array.shape) != len(binding.dims) or any(
            want not in (-1, got) for want, got in zip(binding.dims, array.shape)
        ):
            wanted = tuple("?" if d == -1 else d for d in binding.dims)
            raise BackendError(f"{self.path.name}: input '{binding.name}' has shape {array.shape}, the model takes {wanted}")
        return np.ascontiguousarray(array)

    def _set_gear(self, arrays: list[np.ndarray]) -> None:
        dims = [int(d) for array in arrays for d in array.shape]
        if tuple(dims) not in self._gears:
            shapes = {b.name: a.shape for b, a in zip(self._inputs, arrays) if -1 in b.dims}
            raise BackendError(
                f"{self.path.name}: no gear for input shapes {shapes} among its {len(self._gears)} gears; "
                "reconvert with convert/atc_all.sh --force if the tracker's memory sizes changed"
            )
        ret = self._acl.mdl.set_input_dynamic_dims(
            self._model_id, self._input_dataset, self._gear_index, {"name": "", "dimCount": len(dims), "dims": dims}
        )
        check_status("acl.mdl.set_input_dynamic_dims", ret, f"selecting the gear of {self.path.name}")

    def _copy_inputs(self, inputs: dict[str, np.ndarray]) -> None:
        """Check `inputs`, select their gear and copy them into the device buffers."""
        if self._closed:
            raise BackendError(f"{self.path.name} was closed")
        names = set(self.input_names)
        if set(inputs) != names:
            raise BackendError(f"{self.path.name}: got inputs {sorted(inputs)}, it takes {sorted(names)}")
        if self._in_flight is not None:
            self._in_flight.wait()  # its execution reads the same device buffers
        acl = self._acl
        arrays = [self._prepare(b, inputs[b.name]) for b in self._inputs]
        if self._gears:
            self._set_gear(arrays)
        to_device, _ = self._resource.copy_kinds
        for binding, array in zip(self._inputs, arrays):
            ret = acl.rt.memcpy(binding.device_ptr, binding.size, array.ctypes.data, array.nbytes, to_device)
            check_status("acl.rt.memcpy", ret, f"copying input '{binding.name}' of {self.path.name} to the device")

    def _copy_outputs(self) -> dict[str, np.ndarray]:
        acl = self._acl
        _, to_host = self._resource.copy_kinds
        results = {}
        for binding in self._outputs:
            dims = binding.dims
            if self._gears:
                current, ret = acl.mdl.get_cur_output_dims(self._desc, binding.index)
                check_status("acl.mdl.get_cur_output_dims", ret, f"reading the shape of output '{binding.name}'")
                dims = tuple(current["dims"])
            host = np.empty(dims, dtype=binding.dtype)
            if host.nbytes > binding.size:
                raise BackendError(
                    f"{self.path.name}: output '{binding.name}' of shape {dims} exceeds its {binding.size}-byte buffer"
                )
            ret = acl.rt.memcpy(host.ctypes.data, host.nbytes, binding.device_ptr, host.nbytes, to_host)
            check_status("acl.rt.memcpy", ret, f"copying output '{binding.name}' of {self.path.name} to the host")
            floating = np.issubdtype(host.dtype, np.floating)
            results[binding.name] = host.astype(np.float32, copy=False) if floating else host
        return results

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._copy_inputs(inputs)
        ret = self._acl.mdl.execute(self._model_id, self._input_dataset, self._output_dataset)
        check_status("acl.mdl.execute", ret, f"running {self.path.name}")
        return self._copy_outputs()

    def submit(self, inputs: dict[str, np.ndarray]) -> Pending:
        """Execute on the resource's stream and return at once; `wait()` synchronises the stream, then copies out."""
        self._copy_inputs(inputs)
        stream = self._resource.stream
        ret = self._acl.mdl.execute_async(self._model_id, self._input_dataset, self._output_dataset, stream)
        check_status("acl.mdl.execute_async", ret, f"starting {self.path.name} on stream {stream}")
        self._in_flight = _OnStream(self)
        return self._in_flight

    def _finish(self) -> dict[str, np.ndarray]:
        """Outputs of the execution in flight: only after its stream has synchronised are they on the device."""
        self._in_flight = None
        ret = self._acl.rt.synchronize_stream(self._resource.stream)
        check_status("acl.rt.synchronize_stream", ret, f"waiting for {self.path.name}")
        return self._copy_outputs()

    def _release(self) -> list[str]:
        """Free this model's device objects, then leave the resource (which may close with it)."""
        errors = self._teardown.run()
        try:
            self._resource.detach(self)
        except BackendError as exc:
            errors.append(str(exc))
        return errors

    def close(self) -> None:
        if self._closed:
            return
        errors = []
        if self._in_flight is not None:
            ret = self._acl.rt.synchronize_stream(self._resource.stream)  # the device must be done with the buffers
            if ret != ACL_SUCCESS:
                errors.append(release_error("acl.rt.synchronize_stream", ret))
            self._in_flight = None
        self._closed = True
        raise_release_errors(errors + self._release(), f"closing {self.path.name}")

    def __exit__(self, exc_type, exc, tb) -> None:
        close_on_exit(self, exc_type)
