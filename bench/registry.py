"""Registries for plugins: methods, datasets and metrics.

A plugin registers itself with a decorator (timm style)::

    @METHODS.register("lsgan")
    class LSGAN(Method): ...

Plugins are found three ways, all loaded by `load_plugins`:
  1. the repository's plugin folders `methods/` and `datasets/`, imported by
     path (never as top-level packages: a package called `datasets` would
     shadow Hugging Face's);
  2. extra plugin folders, from the environment variable GANBENCH_PLUGIN_PATH
     (os.pathsep-separated) or a sweep's `plugins:` list: every `*.py` file
     in them is imported;
  3. installed packages exposing entry points in the groups
     `ganbench.methods` / `ganbench.datasets` / `ganbench.metrics`.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterable

from bench.errors import UserError

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILTIN_PLUGIN_DIRS = (REPO_ROOT / "methods", REPO_ROOT / "datasets")
PLUGIN_PATH_ENV = "GANBENCH_PLUGIN_PATH"


class Registry:
    """Name -> object table with close-match errors."""

    def __init__(self, kind: str, entry_point_group: str):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._items: dict[str, Any] = {}

    def register(self, name: str) -> Callable[[Any], Any]:
        def decorator(obj: Any) -> Any:
            existing = self._items.get(name)
            if existing is not None and existing is not obj and _qualname(existing) != _qualname(obj):
                raise UserError(
                    f"{self.kind} {name!r} is registered twice: by {_origin(existing)} and by {_origin(obj)}; rename one"
                )
            obj.name = name
            self._items[name] = obj
            return obj

        return decorator

    def get(self, name: str, where: str = "") -> Any:
        load_plugins()
        if name not in self._items:
            raise UserError(f"{where}{self.unknown_message(name)}")
        return self._items[name]

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(self.names())}"
        return f"unknown {self.kind} {name!r}; {hint}"

    def __contains__(self, name: str) -> bool:
        load_plugins()
        return name in self._items

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._items)

    def items(self) -> list[tuple[str, Any]]:
        load_plugins()
        return sorted(self._items.items())


def _qualname(obj: Any) -> str:
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _origin(obj: Any) -> str:
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    return getattr(module, "__file__", None) or _qualname(obj)


METHODS = Registry("method", "ganbench.methods")
DATASETS = Registry("dataset", "ganbench.datasets")
METRICS = Registry("metric", "ganbench.metrics")
_ALL = (METHODS, DATASETS, METRICS)

_loaded_dirs: set[Path] = set()
_entry_points_loaded = False


def plugin_dirs_from_env() -> list[Path]:
    raw = os.environ.get(PLUGIN_PATH_ENV, "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p]


def load_plugins(extra_dirs: Iterable[str | Path] = ()) -> None:
    """Import every plugin once. Safe to call often: it only does new work."""
    global _entry_points_loaded
    import bench.metrics  # noqa: F401  (the shared metrics register themselves)

    for folder in (*BUILTIN_PLUGIN_DIRS, *plugin_dirs_from_env(), *map(Path, extra_dirs)):
        folder = folder.resolve()
        if folder in _loaded_dirs:
            continue
        if not folder.is_dir():
            raise UserError(f"plugin folder {folder} does not exist; give a folder of *.py plugin files")
        _loaded_dirs.add(folder)
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith("_"):
                _import_file(path)
    if not _entry_points_loaded:
        _entry_points_loaded = True
        for registry in _ALL:
            for ep in entry_points(group=registry.entry_point_group):
                obj = ep.load()
                if isinstance(obj, type) and ep.name not in registry._items:
                    registry.register(ep.name)(obj)


def _import_file(path: Path) -> None:
    # A unique module name per file keeps two folders' `gan.py` apart.
    tag = hashlib.sha1(str(path.parent).encode()).hexdigest()[:8]
    module_name = f"ganbench_plugins.p{tag}.{path.stem}"
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except UserError:
        raise
    except Exception as exc:
        del sys.modules[module_name]
        raise UserError(f"plugin {path} failed to import: {type(exc).__name__}: {exc}") from exc
