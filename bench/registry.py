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
     `ganbench.methods` / `ganbench.addons` / `ganbench.datasets` /
     `ganbench.metrics`.

A method name may compose a base method with add-ons, "lsgan+icr" or
"sngan+pa+adaptivemix" (see `MethodRegistry`); aliases such as "gm-gan"
name a composition and keep their own name as the row.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.util
import os
import sys
import threading
import traceback
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterable

from bench.errors import UserError, shown

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parent
# The built-in plugin folders and cluster profiles sit beside bench/ in a source
# checkout (or an editable install); a wheel carries them as bench/_builtin/ (setup.py).
BUILTIN_ROOT = PACKAGE_DIR / "_builtin" if (PACKAGE_DIR / "_builtin").is_dir() else REPO_ROOT
BUILTIN_PLUGIN_DIRS = (BUILTIN_ROOT / "methods", BUILTIN_ROOT / "datasets")
PLUGIN_PATH_ENV = "GANBENCH_PLUGIN_PATH"


class Registry:
    """Name -> object table with close-match errors."""

    def __init__(self, kind: str, entry_point_group: str, fact_names: tuple[str, ...] = ()):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._items: dict[str, Any] = {}
        # Class attributes that reading results needs (the report): kept with a
        # cached sweep (bench.sweepcache) and primed from it, so no plugin is imported.
        self.fact_names = fact_names
        self._primed: dict[str, dict[str, Any]] = {}

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

    def facts(self, name: str) -> dict[str, Any]:
        """{attribute: value} of the registered object for each of `fact_names`."""
        if name in self._primed:
            return self._primed[name]
        obj = self.get(name)
        return {attr: getattr(obj, attr) for attr in self.fact_names}

    def fact(self, name: str, attr: str) -> Any:
        """One of `fact_names` of `name`, without importing a plugin when it was primed."""
        return self.facts(name)[attr]

    def prime(self, facts: dict[str, dict[str, Any]]) -> None:
        """Facts read from metadata (bench.sweepcache): name -> {attribute: value}."""
        self._primed.update({name: f for name, f in facts.items() if set(f) == set(self.fact_names)})

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self.names(), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else f"known: {', '.join(self.names())}"
        return f"unknown {self.kind} {shown(name)}; {hint}"

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


class MethodRegistry(Registry):
    """Methods, plus rows composed as "base+addon[+addon]" and aliases for them.

    `get`, `in` and `unknown_message` accept composed names: each part is
    checked (close matches suggested), an add-on that does not apply to the
    base or to another add-on is refused with the add-on's reason, and the
    row class (bench.method.compose) merges the parts' hyperparameters.
    """

    def __init__(self, kind: str, entry_point_group: str, addons: Registry):
        super().__init__(kind, entry_point_group)
        self.addons = addons
        self.aliases: dict[str, str] = {}
        self._composed: dict[str, Any] = {}

    def alias(self, name: str, target: str) -> None:
        """Let `name` stand for the composition `target` (e.g. "gm-gan" -> "gan+gm")."""
        if self.aliases.get(name, target) != target or name in self._items:
            raise UserError(f"method alias {name!r} is defined twice; rename one")
        self.aliases[name] = target

    def names(self) -> list[str]:
        """Base methods and aliases (composed rows are not enumerated)."""
        return sorted([*super().names(), *self.aliases])

    def get(self, name: str, where: str = "") -> Any:
        load_plugins()
        cls, problem = self._resolve(name)
        if cls is None:
            raise UserError(f"{where}{problem}")
        return cls

    def __contains__(self, name: str) -> bool:
        load_plugins()
        return self._resolve(name)[0] is not None

    def unknown_message(self, name: str) -> str:
        load_plugins()
        problem = self._resolve(name)[1] if isinstance(name, str) else None
        return problem or super().unknown_message(name)

    def _resolve(self, name: str) -> tuple[Any, str | None]:
        if not isinstance(name, str):
            return None, super().unknown_message(name)
        if name in self._items:
            return self._items[name], None
        if name in self._composed:
            return self._composed[name], None
        written = self.aliases.get(name, name)
        base_name, *addon_names = written.split("+")
        if base_name not in self._items:
            return None, _within(super().unknown_message(base_name), base_name, name)
        base = self._items[base_name]
        addons = []
        for part in addon_names:
            if part not in self.addons._items:
                return None, _within(self.addons.unknown_message(part), part, name)
            if part in (a.name for a in addons):
                return None, f"method {name!r} names add-on {part!r} twice"
            addon = self.addons._items[part]
            reason = addon.refuses(base)
            if reason:
                return None, f"add-on {part!r} does not apply to {base_name!r}: {reason}"
            for other in addons:
                clash = addon.conflicts.get(other.name) or other.conflicts.get(part)
                if clash:
                    return None, f"add-ons {other.name!r} and {part!r} cannot be combined: {clash}"
            addons.append(addon)
        from bench.method import compose

        try:
            self._composed[name] = compose(name, base, addons)
        except ValueError as exc:
            return None, f"method {name!r}: {exc}"
        return self._composed[name], None


def _within(message: str, part: str, name: str) -> str:
    """"unknown add-on 'icrr'; ..." -> "unknown add-on 'icrr' in method 'lsgan+icrr'; ..."."""
    return message if part == name else message.replace(f"{part!r};", f"{part!r} in method {name!r};", 1)


ADDONS = Registry("add-on", "ganbench.addons")
METHODS = MethodRegistry("method", "ganbench.methods", ADDONS)
DATASETS = Registry("dataset", "ganbench.datasets", fact_names=("kind",))
METRICS = Registry("metric", "ganbench.metrics", fact_names=("label", "direction", "bounds"))
_ALL = (METHODS, ADDONS, DATASETS, METRICS)
FACTS = {"metrics": METRICS, "datasets": DATASETS}  # what bench.sweepcache keeps of each

_loaded_dirs: set[Path] = set()
_entry_points_loaded = False
_done_calls: set[tuple] = set()


def plugin_dirs_from_env() -> list[Path]:
    raw = os.environ.get(PLUGIN_PATH_ENV, "")
    return [Path(p).expanduser().resolve() for p in raw.split(os.pathsep) if p]


def load_plugins(extra_dirs: Iterable[str | Path] = ()) -> None:
    """Import every plugin once. Safe to call often: it only does new work."""
    global _entry_points_loaded
    import bench.metrics  # noqa: F401  (the shared metrics register themselves)

    extra_dirs = tuple(extra_dirs)
    # Every registry lookup lands here: skip resolving the same folders again
    # (a 100,000-cell sweep makes hundreds of thousands of lookups).
    try:
        cwd = os.getcwd()  # relative plugin folders depend on it
    except OSError:  # the working folder was removed: resolve everything again
        cwd = None
    calls_key = (cwd, os.environ.get(PLUGIN_PATH_ENV, ""), tuple(map(str, extra_dirs)))
    if calls_key in _done_calls:
        return
    for folder in (*BUILTIN_PLUGIN_DIRS, *plugin_dirs_from_env(), *map(Path, extra_dirs)):
        folder = folder.resolve()
        if folder in _loaded_dirs:
            continue
        if not os.path.isdir(folder):  # False, not an OSError, for a name too long for the filesystem
            raise UserError(f"plugin folder {shown(str(folder), 200, quote=False)} does not exist; give a folder of *.py plugin files")
        for path in sorted(folder.glob("*.py")):
            if not path.name.startswith("_"):
                _import_file(path)
        _loaded_dirs.add(folder)  # only once every file imported: a failed one fails again next time
    if not _entry_points_loaded:
        for registry in _ALL:
            for ep in entry_points(group=registry.entry_point_group):
                obj = _guarded(ep.load, f"entry point {ep.name!r} = {ep.value} (group {ep.group})")
                if isinstance(obj, type) and ep.name not in registry._items:
                    registry.register(ep.name)(obj)
        _entry_points_loaded = True
    if cwd is not None:
        _done_calls.add(calls_key)


def plugin_module(path: str | Path):
    """The module of a plugin file, importing it once: lets one plugin build
    on another (`methods/cn_lsgan.py` subclasses the LSGAN of `lsgan.py`)."""
    path = Path(path).resolve()
    _import_file(path)
    return sys.modules[_module_name(path)]


def _module_name(path: Path) -> str:
    # A unique module name per file keeps two folders' `gan.py` apart.
    tag = hashlib.sha1(str(path.parent).encode()).hexdigest()[:8]
    return f"ganbench_plugins.p{tag}.{path.stem}"


def _import_file(path: Path) -> None:
    module_name = _module_name(path)
    if module_name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        _guarded(lambda: spec.loader.exec_module(module), f"plugin {path}", str(path))
    except BaseException:  # a UserError from _guarded, or Ctrl-C: the file is imported afresh next time
        del sys.modules[module_name]
        raise


def _guarded(load: Callable[[], Any], what: str, origin: str | None = None) -> Any:
    """Run a plugin's import. Whatever it raises, sys.exit included (Ctrl-C aside),
    becomes one UserError line naming `what`, the line of file `origin` that raised, and the error."""
    try:
        return load()
    except (KeyboardInterrupt, UserError):
        raise
    except BaseException as exc:  # noqa: BLE001 (a plugin must never end ganbench silently)
        lines = [f.lineno for f in traceback.extract_tb(exc.__traceback__) if f.filename == origin]
        at = f" (line {lines[-1]})" if lines else ""
        if isinstance(exc, SystemExit):
            error = f"it called {exc}" if isinstance(exc, OsExitCalled) else f"it called sys.exit({exc.code!r})"
        else:
            text = str(exc).strip().splitlines()
            error = f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__
        error = error if len(error) <= 300 else f"{error[:300]}..."
        raise UserError(f"{what} failed to import{at}: {error}") from exc


class OsExitCalled(SystemExit):
    """`os._exit(code)` called by plugin code in the thread that runs it (see
    `guard_os_exit`): raised instead, so the caller records what happened."""

    def __str__(self) -> str:
        return f"os._exit({self.code!r})"


_REAL_EXIT = os._exit
_GUARD_PID: int | None = None


def guard_os_exit() -> None:
    """Make `os._exit` in this process (plugin code: a method's `train_step`, a
    thread started at import) say so instead of ending ganbench silently.

    In the main thread it raises `OsExitCalled` (a SystemExit): the runner
    records the cell as failed, the plugin loader names the file. In another
    thread, which cannot be stopped from outside, it writes one line naming
    the thread and exits non-zero (1 for os._exit(0): cells may be pending).
    Processes forked from this one exit as asked.
    """
    global _GUARD_PID
    _GUARD_PID = os.getpid()
    os._exit = _guarded_exit


def _guarded_exit(code: int) -> None:
    if os.getpid() != _GUARD_PID:
        _REAL_EXIT(code)
    thread = threading.current_thread()
    if thread is threading.main_thread():
        raise OsExitCalled(code)
    message = (f"ganbench: error: thread {thread.name!r} (plugin code) called os._exit({code!r}); ganbench stopped "
               "with it; rerun the same command to resume the cells left pending\n")  # fmt: skip
    try:
        sys.stdout.flush()
        os.write(2, message.encode(errors="replace"))
    finally:
        _REAL_EXIT(code if isinstance(code, int) and code else 1)
