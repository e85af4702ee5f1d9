"""The pyACL device that every `.om` runner of a process shares: set-up and release in pyACL's order, and what a
status code means.

`import acl` happens inside AclResource, so this module imports on machines
without CANN. Every pyACL status is checked and becomes a BackendError naming
the call, the code and what to do; releases run in reverse and a failing one
does not stop the rest. The runners (`acl_runner.py`) use the same checks.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Callable, Protocol

from loguru import logger

from acl_models.base import BackendError


class AttachedRunner(Protocol):
    """What the resource needs of a runner it closes: its file for messages, and close()."""

    path: Path

    def close(self) -> None: ...


SET_ENV = "/usr/local/Ascend/ascend-toolkit/set_env.sh"

ACL_SUCCESS = 0
# acl.init answers this when something else in the process (torch_npu, another
# library) initialised pyACL first; finalising is then that owner's job.
ACL_ERROR_REPEAT_INITIALIZE = 100002
# aclrtRunMode (acl_rt.h)
ACL_DEVICE = 0  # the app runs on the NPU board's own CPU (Atlas 200I DK A2, Orange Pi AIpro)
ACL_HOST = 1  # the app runs on a server CPU; the NPU card sits behind PCIe (Atlas 300I)
# aclrtMemcpyKind
ACL_MEMCPY_HOST_TO_DEVICE = 1
ACL_MEMCPY_DEVICE_TO_HOST = 2
ACL_MEMCPY_DEVICE_TO_DEVICE = 3
# What the codes seen most on boards mean (acl_base.h, ge_error_codes.h, rt_error_codes.h).
PLOG_HINT = "see the plog under ~/ascend/log and docs/ascend.md"
ACL_ERROR_HINTS: dict[int, str] = {
    100000: "invalid parameter",
    100001: "pyACL not initialised",
    100003: "not a valid .om file; reconvert with convert/atc_all.sh",
    145013: "no such gear; reconvert with convert/atc_all.sh --force",
    148051: "resources of this context are still alive; close runners before the AclResource",
    207001: "device out of memory; stop other NPU processes (npu-smi info) or export a smaller image size",
    507008: "SoC version error: the .om was built for another chip; reconvert with the chip npu-smi info shows",
    507011: f"model execution failed on the device; {PLOG_HINT}",
    507899: f"driver internal error; check npu-smi info (device busy or held by a container?) and {PLOG_HINT}",
}


def check_status(call: str, ret: int, doing: str) -> None:
    if ret != ACL_SUCCESS:
        raise BackendError(f"{call} failed with code {ret} while {doing}: {ACL_ERROR_HINTS.get(ret, PLOG_HINT)}")


def check_handle(call: str, handle: int | None, doing: str) -> int:
    if not handle:
        raise BackendError(f"{call} returned a null handle while {doing}: host out of memory or pyACL not initialised")
    return handle


def release_error(call: str, ret: int) -> str:
    """A failed release, said so that the release of everything else can go on."""
    return f"{call} failed with code {ret} ({ACL_ERROR_HINTS.get(ret, PLOG_HINT)})"


class Teardown:
    """Release steps recorded during set-up, run in reverse; a failing step does not stop the rest."""

    def __init__(self) -> None:
        self._steps: list[tuple[str, Callable[[], int]]] = []

    def push(self, call: str, release: Callable[[], int]) -> None:
        self._steps.append((call, release))

    def run(self) -> list[str]:
        errors = []
        while self._steps:
            call, release = self._steps.pop()
            ret = release()
            if ret != ACL_SUCCESS:
                errors.append(release_error(call, ret))
        return errors


def raise_release_errors(errors: list[str], doing: str) -> None:
    if errors:
        more = f" and {len(errors) - 1} more release error(s)" if len(errors) > 1 else ""
        raise BackendError(f"{errors[0]} while {doing}{more}")


class AclResource:
    """The NPU device, context and stream that every runner of a process shares.

    Synchronous executions go on the context's default stream; the created
    stream carries the asynchronous ones (AclRunner.submit in acl_runner.py), so that a
    submitted image encoder runs beside the other models' executions.

    Set-up follows pyACL's order: acl.init, rt.set_device, rt.create_context,
    rt.create_stream, rt.get_run_mode. close() closes runners still open, then
    releases in reverse; it runs after a failed set-up too and is safe twice.
    With close_with_last_runner, closing the last attached runner closes the
    resource too (for callers that only hold runners).
    """

    def __init__(self, device_id: int = 0, close_with_last_runner: bool = False):
        try:
            self.acl = importlib.import_module("acl")
        except ImportError as exc:
            raise BackendError(f"pyACL is not importable ({exc}); run `source {SET_ENV}` or use --backend onnx") from exc
        self.device_id = device_id
        self.run_mode = ACL_HOST
        self._close_with_last_runner = close_with_last_runner
        self._teardown = Teardown()
        self._runners: list[AttachedRunner] = []
        self._closed = False
        try:
            self._open()
        except BackendError:
            errors = self._teardown.run()
            if errors:
                logger.warning("after the failed set-up of NPU {}: {}", device_id, "; ".join(errors))
            self._closed = True
            raise

    def _open(self) -> None:
        acl = self.acl
        device = self.device_id
        ret = acl.init()
        if ret == ACL_ERROR_REPEAT_INITIALIZE:
            logger.info("acl.init: pyACL was already initialised in this process; its owner finalises it")
        else:
            check_status("acl.init", ret, "initialising pyACL")
            self._teardown.push("acl.finalize", acl.finalize)
        check_status("acl.rt.set_device", acl.rt.set_device(device), f"opening NPU {device}")
        self._teardown.push("acl.rt.reset_device", lambda: acl.rt.reset_device(device))
        context, ret = acl.rt.create_context(device)
        check_status("acl.rt.create_context", ret, f"creating a context on NPU {device}")
        self._teardown.push("acl.rt.destroy_context", lambda: acl.rt.destroy_context(context))
        stream, ret = acl.rt.create_stream()
        check_status("acl.rt.create_stream", ret, f"creating a stream on NPU {device}")
        self._teardown.push("acl.rt.destroy_stream", lambda: acl.rt.destroy_stream(stream))
        run_mode, ret = acl.rt.get_run_mode()
        check_status("acl.rt.get_run_mode", ret, f"querying the run mode of NPU {device}")
        if run_mode not in (ACL_DEVICE, ACL_HOST):
            raise BackendError(f"acl.rt.get_run_mode returned unknown mode {run_mode}; update acl_models/acl_device.py")
        self.context, self.stream, self.run_mode = context, stream, run_mode
        where = "on the board's own CPU (ACL_DEVICE)" if run_mode == ACL_DEVICE else "on the host, NPU over PCIe (ACL_HOST)"
        logger.info("NPU {} ready; running {}", device, where)

    @property
    def copy_kinds(self) -> tuple[int, int]:
        """memcpy kinds (host to device, device to host) for this run mode.

        On a board (ACL_DEVICE) host and device memory are the same memory: ACL
        performs host kinds as device-to-device anyway, and acllite asks for
        that directly; so do we.
        """
        if self.run_mode == ACL_DEVICE:
            return ACL_MEMCPY_DEVICE_TO_DEVICE, ACL_MEMCPY_DEVICE_TO_DEVICE
        return ACL_MEMCPY_HOST_TO_DEVICE, ACL_MEMCPY_DEVICE_TO_HOST

    def attach(self, runner: AttachedRunner) -> None:
        if self._closed:
            raise BackendError(f"AclResource for NPU {self.device_id} is closed; create a new one before {runner.path.name}")
        self._runners.append(runner)

    def detach(self, runner: AttachedRunner) -> None:
        """Forget a closed runner; may close the resource (close_with_last_runner)."""
        if runner in self._runners:
            self._runners.remove(runner)
        if self._close_with_last_runner and not self._runners:
            self.close()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        errors = []
        for runner in reversed(list(self._runners)):
            try:
                runner.close()
            except BackendError as exc:
                errors.append(str(exc))
        errors += self._teardown.run()
        raise_release_errors(errors, f"releasing NPU {self.device_id}")

    def __enter__(self) -> AclResource:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        close_on_exit(self, exc_type)


def close_on_exit(owner: AclResource | AttachedRunner, exc_type) -> None:
    """Close; while another error propagates, log a release error instead of replacing it."""
    if exc_type is None:
        owner.close()
        return
    try:
        owner.close()
    except BackendError as exc:
        logger.warning("while unwinding: {}", exc)
