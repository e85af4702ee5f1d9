"""Stand-in for the `torchvision` names that `timm` imports (never used in a forward pass): tests and benchmark only.

PyPI's torchvision wheels are CUDA builds whose compiled operators do not load
beside this project's CPU torch, and `timm` imports a handful of torchvision
names at import time (FrozenBatchNorm2d, transforms, datasets, the FX feature
extractor). The official EdgeTAM code builds RepViT-M1 through `timm` and only
runs plain `torch` layers, so every `torchvision.*` module here is an empty
module whose attributes are inert placeholders. Anything that really calls one
fails loudly instead of computing something wrong.

It is put on the path of the official EdgeTAM environment's Python only
(scripts/setup_official_edgetam.sh): by the tests that compare with the official
code (tests/official_edgetam.py) and by `scripts/bench.py --official` on an
EdgeTAM export (app/benchmarks/speed/official.py). Nothing in app/, acl_models/
or convert/ imports it, and export and tracking never need it.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import sys
import types

__version__ = "0.0+standin"


class _PlaceholderMeta(type):
    """Attribute access gives one distinct placeholder per name, so enum members used as dict keys stay apart."""

    def __getattr__(cls, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        member = _PlaceholderMeta(f"{cls.__name__}.{name}", (cls,), {})
        setattr(cls, name, member)
        return member


class Placeholder(metaclass=_PlaceholderMeta):
    """Stands for any torchvision class, function or enum; calling it is an error."""

    def __init__(self, *args, **kwargs):
        raise RuntimeError("the torchvision stand-in was used in a computation; install real torchvision")


class _StandInModule(types.ModuleType):
    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return Placeholder


class _Finder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes every `torchvision.<anything>` submodule importable as a stand-in module."""

    def find_spec(self, fullname, path, target=None):
        if fullname.startswith(__name__ + "."):
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec):
        module = _StandInModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module):
        return None


sys.meta_path.insert(0, _Finder())


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    return Placeholder
