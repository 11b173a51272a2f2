"""The `ganbench` command line: list, plan, sweep, evaluate, status, cancel, report, compare, evalnets."""

from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
import time
from pathlib import Path

from bench.errors import UserError, is_machine_fault, os_error_line

DEFAULT_RESULTS = "results"


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:  # a bare `ganbench`: what it can do, not an error
        parser.print_help()
        return 0
    try:
        return args.func(args) or 0
    except UserError as exc:
        print(f"ganbench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:  # `ganbench plan SWEEP | head`: the reader left; stop quietly, as if by SIGPIPE
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 128 + signal.SIGPIPE
    except OSError as exc:  # the results folder: a file in its way, no permission, a full disk
        print(f"ganbench: error: {os_error_line(exc)}", file=sys.stderr)
        return 1 if is_machine_fault(exc) else 2
    except KeyboardInterrupt:
        print("ganbench: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    from bench import __version__

    parser = argparse.ArgumentParser(
        prog="ganbench", description="Benchmark GAN training methods over a declarative sweep matrix."
    )
    parser.add_argument("--version", action="version", version=f"ganbench {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    def command(name: str, func, help: str, sweep: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=help)
        if sweep:
            p.add_argument("sweep", help="the sweep YAML file")
            p.add_argument("--results", default=DEFAULT_RESULTS, help="results root folder (default: ./results)")
            p.add_argument("--budget", metavar="NAME",
                           help="merge the sweep's `budgets: {NAME: ...}` profile (e.g. paper) over its defaults")  # fmt: skip
            p.add_argument("--max-cells", type=_positive, metavar="N",
                           help="refuse a sweep of more than N cells (default: $GANBENCH_MAX_CELLS, else 100,000)")  # fmt: skip
        p.add_argument("--plugins", action="append", default=[], metavar="DIR",
                       help="an extra folder of plugin files (repeatable; also $GANBENCH_PLUGIN_PATH)")  # fmt: skip
        p.set_defaults(func=func)
        return p

    p = command("list", cmd_list, "List the registered methods, datasets, metrics or network architectures (archs).",
                sweep=False)  # fmt: skip
    p.add_argument("kind", choices=["methods", "datasets", "metrics", "archs"])

    command("plan", cmd_plan, "Show the cells a sweep expands to (ids, count) without running anything.")

    def running(p: argparse.ArgumentParser) -> None:
        p.add_argument("--executor", choices=["debug", "local", "slurm"], help="where cells run (default: the sweep's executor)")
        p.add_argument("--profile", metavar="NAME", help="SLURM cluster profile slurm/NAME.yaml (default: the sweep's executor.profile)")
        p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                       help="override one profile field, e.g. --set time_min=120 --set sbatch.constraint=a100 (repeatable)")  # fmt: skip
        p.add_argument("--no-wait", action="store_true", help="with --executor slurm: submit and return instead of following the jobs")
        p.add_argument("--workers", type=_setting("executor.workers"), help="cells running at once with --executor local")
        p.add_argument("--cells-per-job", type=_setting("executor.cells_per_job"),
                       help="cells per worker process (default: spread over 3 jobs per worker)")  # fmt: skip
        p.add_argument("--no-report", action="store_true", help="do not write the report at the end")

    p = command("sweep", cmd_sweep, "Run every cell of a sweep that has no result yet, then write the report.")
    running(p)
    p.add_argument("--retry-failed", action="store_true", help="also rerun cells whose result is 'failed'")

    p = command("evaluate", cmd_evaluate, "Score the cells whose training run has ended and that have no result yet "
                "(e.g. after adding a metric, or after an evaluation raised), training nothing.")  # fmt: skip
    running(p)
    p.set_defaults(retry_failed=False)

    p = command("status", cmd_status, "Count cells done / diverged / failed / running / pending (and queued / preempted on SLURM).")
    p.add_argument("--cells", action="store_true", help="list every cell with its status, device and stage timings")
    p.add_argument("--timings", action="store_true", help="like --cells, with the seconds of each metric too")

    command("cancel", cmd_cancel, "Cancel the SLURM jobs of the sweep's queued, running and preempted cells.")

    p = command("report", cmd_report, "Write the leaderboard tables and plots from the results that exist.")
    p.add_argument("--latex", choices=["per-metric", "combined"], default="per-metric",
                   help="leaderboard.tex: one table per metric (default) or one combined table")  # fmt: skip
    p.add_argument("--replace", action="store_true",
                   help="write the report even if it drops finished cells of the current one (their records are "
                        "absent, or they are no longer cells of the sweep)")  # fmt: skip

    p = command("compare", cmd_compare, "Print each row's difference from a baseline row, with its 95%% interval and p-value.")
    p.add_argument("--baseline", required=True, metavar="ROW", help="the row (method as written in the sweep) to compare against")

    p = command("evalnets", cmd_evalnets, "Train (once, cached) and show a dataset's evaluation networks.", sweep=False)
    p.add_argument("dataset", help="a registered dataset name")
    p.add_argument("--root", help="the dataset's data folder (its `root` option), if it reads files")
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _setting(key: str):
    """An argparse type for a flag that sets sweep setting `key`: the sweep file's range (bench.spec.RANGES)."""

    def parse(text: str) -> int:
        from bench.spec import RANGES

        allowed = RANGES[key]
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value not in allowed:
            raise argparse.ArgumentTypeError(f"must be {allowed.describe()}, got {text!r}")
        return value

    return parse


def _load(args, fresh: bool = False):
    """The sweep and its store. The expansion is read back from the cache when
    nothing it depends on changed (bench.sweepcache: no plugin, no torch);
    `fresh` expands it anew (commands that run cells)."""
    from bench import sweepcache
    from bench.store import Store

    results = Path(args.results)
    if results.exists() and not results.is_dir():
        raise UserError(f"--results {args.results}: is a file, not a folder; give a folder (it is made if missing)")
    plugin_dirs = [str(Path(p).resolve()) for p in args.plugins]
    sweep = sweepcache.load(args.sweep, plugin_dirs, budget=args.budget, max_cells=args.max_cells, fresh=fresh)
    return sweep, Store(results, sweep.name)


def cmd_list(args) -> None:
    from bench.registry import ADDONS, DATASETS, METHODS, METRICS, load_plugins

    load_plugins([Path(p) for p in args.plugins])
    if args.kind == "methods":
        for name, cls in METHODS.items():
            print(f"{name:16s} {cls.paper}")
        for name, target in sorted(METHODS.aliases.items()):
            print(f"{name:16s} alias of {target}")
        for name, cls in ADDONS.items():
            refused = [base for base, base_cls in METHODS.items() if cls.refuses(base_cls)]
            print(f"+{name:15s} [add-on] {cls.paper}; rows: <method>+{name}"
                  + (f" (not for {', '.join(refused)})" if refused else ""))  # fmt: skip
    elif args.kind == "archs":
        from bench.archs import ARCHS, DEFAULT_ARCH_NAME

        for name, cls in ARCHS.items():
            default = " (default)" if DEFAULT_ARCH_NAME[cls.kind] == name else ""
            sizes = ", ".join(f"{k} {v}" for k, v in cls.defaults.items())
            print(f"{name:16s} {cls.kind:7s} {sizes}; {cls.paper or 'harness network'}{default}")
    elif args.kind == "datasets":
        width = max(16, *(len(name) for name in DATASETS.names()))
        for name, cls in DATASETS.items():
            print(f"{name:{width}s} {cls.kind:7s} {cls.description}")
    else:
        metrics = list(METRICS.items())
        name_width = max(len(name) for name, _ in metrics)
        label_width = max(len(cls.label) for _, cls in metrics)
        for name, cls in metrics:
            arrow = "↓" if cls.direction == "lower" else "↑"
            print(f"{name:{name_width}s}  {arrow} {cls.label:{label_width}s}  {cls.requirement}".rstrip())


def cmd_plan(args) -> None:
    from bench.executors import cell_states

    sweep, store = _load(args)
    states = cell_states(store, sweep.cells)  # queued / preempted on SLURM too
    width = max(12, *(len(cell["config"]["dataset"]) for cell in sweep.cells))
    print(f"{'id':12s}  {'method':14s} {'dataset':{width}s} {'rho':>6s} {'seed':>4s}  {'steps':>6s}  status")
    lines = []
    for cell in sweep.cells:
        c = cell["config"]
        lines.append(f"{cell['id']:12s}  {c['method']:14s} {c['dataset']:{width}s} {c['imbalance']:>6g} {c['seed']:>4d}  "
                     f"{c['budget']['steps']:>6d}  {_plan_status(store, cell, *states[cell['id']])}\n")  # fmt: skip
    sys.stdout.writelines(lines)
    added = sum(1 for c in sweep.cells if c.get("added_for"))
    print(f"{len(sweep.cells)} cells in sweep {sweep.name!r}"
          + (f", {added} of them added as upstream training runs of the rows that need them" if added else ""))  # fmt: skip


def _plan_status(store, cell: dict, status: str, note: str) -> str:
    if status in ("pending", "trained") and store.is_trained(cell["training_id"]):
        status = f"{status} (trained: evaluation only)"
    elif status == "blocked":
        status = f"blocked ({note})"
    if cell.get("added_for"):
        status += f"  [upstream of {', '.join(cell['added_for'])}]"
    return status


def cmd_sweep(args) -> int:
    return _run(args, evaluate_only=False)


def cmd_evaluate(args) -> int:
    return _run(args, evaluate_only=True)


def _run(args, evaluate_only: bool) -> int:
    """Run the sweep's cells that are to run: training and evaluation, or (evaluate_only) evaluation only."""
    from bench.data import dataset_for
    from bench.executors import cell_states, counts, executor_class, to_run
    from bench.registry import METRICS

    sweep, store = _load(args, fresh=True)
    executor_name = args.executor or sweep.executor["name"]
    profile = _profile(args, sweep, executor_name)
    workers = 1 if executor_name == "debug" else args.workers or sweep.executor["workers"]
    cells_per_job = args.cells_per_job or sweep.executor["cells_per_job"]
    # `trained`: the training ended, the evaluation raised; scoring it again costs no training.
    # `corrupt`: a file of the cell cannot be read; the runner moves it aside and redoes what it held.
    todo_status = ("pending", "trained", "corrupt") + (("failed",) if args.retry_failed else ())
    states = cell_states(store, sweep.cells)  # a cell queued on SLURM is not pending
    todo = to_run(store, sweep.cells, states, todo_status)  # with the blocked cells whose upstream trains now
    scoring_only = sum(store.is_trained(c["training_id"]) for c in todo)
    untrained = 0
    if evaluate_only:
        untrained = len(todo) - scoring_only
        todo = [c for c in todo if store.is_trained(c["training_id"])]
    started = time.time()
    for cell in todo:
        cell["runtime"].update(results_root=str(store.root), retry_failed=args.retry_failed, started_at=started,
                               evaluate_only=evaluate_only)  # fmt: skip
    if todo:
        store.check_writable()  # a results folder we cannot write to is one line here, before anything runs
    store.redo([c["id"] for c in todo])  # a result being redone counts as pending/running until its new one
    before = counts(states)
    busy = before["running"] + before["queued"] + before["preempted"]
    stuck = before["blocked"] - sum(states[c["id"]][0] == "blocked" for c in todo)
    workers_or_profile = f"profile {profile['name']}" if profile else f"{workers} workers"
    print(f"sweep {sweep.name!r}: {len(sweep.cells)} cells, {len(sweep.cells) - len(todo) - busy - untrained - stuck} with a "
          f"result, {busy} running elsewhere, {len(todo)} to run on {executor_name} ({workers_or_profile}), "
          f"{scoring_only} of them trained already (evaluation only)"
          + (f", {stuck} blocked by upstream runs that did not train" if stuck else ""), file=sys.stderr)  # fmt: skip
    if untrained:
        print(f"ganbench: {untrained} cells have no finished training run; `ganbench sweep {args.sweep}` trains them",
              file=sys.stderr)  # fmt: skip
    legacy = store.legacy_checkpoints([c["id"] for c in todo])
    if legacy:
        print(f"ganbench: note: {len(legacy)} cells hold a checkpoint.pt of the layout before training runs had their "
              f"own folder ({store.runs_dir / 'train'}); it is not resumed, they train from step 0 (the old files stay)",
              file=sys.stderr)  # fmt: skip

    from bench.progress import ACTIVITY_FILE, set_activity_file

    set_activity_file(store.runs_dir / ACTIVITY_FILE)  # long preparations tell `status` what they do
    for dataset_name in sorted({c["config"]["dataset"] for c in todo}):
        dataset = dataset_for(next(c for c in todo if c["config"]["dataset"] == dataset_name))
        dataset.prepare()  # a missing data file is one error here, before any job starts
        for metric in sorted({m for c in todo if c["config"]["dataset"] == dataset_name for m in c["config"]["metrics"]}):
            METRICS.get(metric).prepare(dataset)

    kind = executor_class(executor_name)
    if executor_name == "slurm":
        executor = kind(store, sweep.cells, profile, todo_status)
    else:
        executor = kind(store, sweep.cells, workers, cells_per_job)
    job_errors = executor.run(todo, wait=not args.no_wait)
    if executor_name == "slurm" and args.no_wait:
        return 0
    for line in job_errors:
        print(f"ganbench: {line}", file=sys.stderr)
    after = cell_states(store, sweep.cells)
    final = counts(after)
    if not args.no_report:
        write_report_and_say(sweep, store, replace=True)  # the sweep's own results: its report replaces the last one
    if final["failed"]:
        print(f"ganbench: {final['failed']} cells failed; `ganbench status {args.sweep} --cells` shows why, "
              f"`--retry-failed` reruns them", file=sys.stderr)  # fmt: skip
    if final["trained"]:
        print(f"ganbench: {final['trained']} cells trained but their evaluation raised; `ganbench status {args.sweep} "
              f"--cells` shows why, `ganbench evaluate {args.sweep}` scores them again without training", file=sys.stderr)  # fmt: skip
    if final["blocked"]:
        # The store's reason (an executor's note may lead with its job): one per upstream run.
        reasons = sorted({store.state(c)[1] for c in sweep.cells if after[c["id"]][0] == "blocked"})
        print(f"ganbench: {final['blocked']} cells are blocked: {reasons[0]}"
              + (f" (and {len(reasons) - 1} other reasons)" if len(reasons) > 1 else "")
              + f"; `ganbench status {args.sweep} --cells` lists them", file=sys.stderr)  # fmt: skip
    return 1 if final["failed"] or final["trained"] or final["blocked"] or job_errors else 0


def _profile(args, sweep, executor: str) -> dict | None:
    """The validated SLURM profile for --executor slurm (before anything is written)."""
    if executor != "slurm":
        for flag, given in (("--profile", args.profile), ("--set", args.set)):
            if given:
                raise UserError(f"{flag}: cluster profiles apply to --executor slurm only (this sweep runs on {executor})")
        return None
    name = args.profile or sweep.executor.get("profile")
    if not name:
        raise UserError(f"{sweep.path}: executor.profile: --executor slurm needs a cluster profile: "
                        "pass --profile NAME (slurm/NAME.yaml) or set `executor: {profile: NAME}`")  # fmt: skip
    from bench.executors.profiles import load_profile

    return load_profile(name, args.set)


def cmd_cancel(args) -> None:
    from bench.executors.base import executor_classes

    sweep, store = _load(args)
    job_ids = [job for kind in executor_classes() for job in kind.cancel(store, sweep.cells)]
    print(f"{sweep.name}: cancelled {len(job_ids)} SLURM jobs" + (f": {' '.join(job_ids)}" if job_ids else
                                                                 " (nothing was queued or running)"))  # fmt: skip


def write_report_and_say(sweep, store, latex: str = "per-metric", replace: bool = False) -> dict:
    from bench.report import write_report

    report = write_report(sweep, store, latex=latex, replace=replace)
    print(f"leaderboard: {report['leaderboard']} (page: {report['page']})")
    return report


def cmd_status(args) -> None:
    from bench.executors import cell_states, counts
    from bench.progress import activity_line, summary

    sweep, store = _load(args)
    store.records()  # reads the record index, so that each cell's status is a stat, not a parse
    states = cell_states(store, sweep.cells)  # asks SLURM about cells with a job
    if args.cells or args.timings:
        lines = []
        for cell in sweep.cells:
            c = cell["config"]
            status, note = states[cell["id"]]
            line = f"{cell['id']}  {c['method']:14s} {c['dataset']:12s} rho={c['imbalance']:<6g} seed={c['seed']:<3d} {status}"
            if status == "corrupt":
                line += f"  ({note}; the next sweep moves it aside and reruns the cell)"
            elif note:
                line += f"  [{note}]"
            result = store.result(cell["id"]) if status != "corrupt" else None
            if result:
                line += _where_and_how_long(result, per_metric=args.timings)
            if result and result.get("error"):
                last = [ln for ln in result["error"].strip().splitlines() if ln.strip()][-1]
                line += f"  ({last.strip()})"
            lines.append(line + "\n")
        sys.stdout.writelines(lines)
    print(f"{sweep.name}: {summary(counts(states), len(sweep.cells))}")
    now = activity_line(store.runs_dir)
    if now:
        print(f"{sweep.name}: {now}")


def _where_and_how_long(result: dict, per_metric: bool) -> str:
    """'  cpu (AMD EPYC ...) train 12.1s, sample 0.2s, eval 3.4s': the device and the stages' seconds."""
    env, timings = result.get("environment", {}), result.get("timings", {})
    text = f"  {env.get('device', '?')}"
    if env.get("device_name"):
        text += f" ({env['device_name']})"
    stages = [f"{stage} {timings[f'{stage}_s']:.1f}s" for stage in ("train", "sample", "eval") if f"{stage}_s" in timings]
    if timings.get("train_reused"):
        stages[0] += " (reused)"
    text += " " + ", ".join(stages) if stages else ""
    if per_metric and timings.get("metric_s"):
        text += " [" + ", ".join(f"{name} {s:.1f}s" for name, s in timings["metric_s"].items()) + "]"
    return text


def cmd_evalnets(args) -> None:
    from bench.cache import cache_dir
    from bench.metrics.evalnet import describe_all, roles_for
    from bench.registry import DATASETS, load_plugins

    load_plugins([Path(p) for p in args.plugins])
    cls = DATASETS.get(args.dataset)
    if not roles_for(cls):
        raise UserError(f"dataset {args.dataset!r} ({cls.kind}, {cls.label_type} labels) has no evaluation networks; "
                        "they exist for image datasets with class or continuous labels")  # fmt: skip
    dataset = cls(**({"root": args.root} if args.root else {}))
    if hasattr(dataset, "prepare"):
        dataset.prepare()
    print(f"evaluation networks of {args.dataset} (cache: {cache_dir('evalnets')}):")
    for line in describe_all(dataset):
        print(f"  {line}")


def cmd_report(args) -> None:
    sweep, store = _load(args)
    report = write_report_and_say(sweep, store, latex=args.latex, replace=args.replace)
    s = report["status"]
    print(f"{report['total']} cells: {s.get('done', 0)} done, {s.get('diverged', 0)} diverged, "
          f"{s.get('failed', 0)} failed, {report['missing']} missing"
          + (f" ({report['blocked']} of them blocked)" if report["blocked"] else ""))  # fmt: skip


def cmd_compare(args) -> None:
    from bench.report.compare import compare_text
    from bench.report.frame import cells_frame, row_names

    sweep, store = _load(args)
    configs = {c["id"]: c["config"] for c in sweep.cells}
    rows = row_names(sweep.cells)
    cells = cells_frame([r for r in store.records() if r.get("id") in configs], configs, rows)
    order = [list(dict.fromkeys(x)) for x in zip(*((rows[c["id"]], c["config"]["dataset"]) for c in sweep.cells))]
    metrics = list(dict.fromkeys(m for c in configs.values() for m in c["metrics"]))
    print(compare_text(cells, args.baseline, order[0], order[1], metrics), end="")


# Commands that read a sweep's records and exit: they hold every cell's config and record at
# once, and the cyclic garbage collector's full passes walk them again and again.
READING_COMMANDS = ("plan", "status", "report", "compare")


def run() -> int:
    """The `ganbench` console script: `main`, with the garbage collector tuned for a short run.

    For the commands that only read (READING_COMMANDS), full collections are
    rarer (thresholds 10,000 / 50 / 100 instead of 700 / 10 / 10): over
    10,000 cells they took about 0.4 s of a 2 s `report`; young objects are
    still collected as often, and a report's peak memory is unchanged
    (230 MB with its figures drawn). Before exit, what is alive is frozen, so
    the exit's last collection skips it. `main` itself, which the tests call
    in-process, leaves the collector alone.
    """
    if sys.argv[1:2] and sys.argv[1] in READING_COMMANDS:
        gc.set_threshold(10_000, 50, 100)
    from bench.registry import guard_os_exit

    guard_os_exit()  # a plugin thread's os._exit says so and exits non-zero
    code = main()
    gc.freeze()
    _exit_past_plugin_threads(code)
    return code


def _exit_past_plugin_threads(code: int) -> None:
    """Exit now if threads that are not daemons still run (a plugin started one
    at import that never ends): Python would wait for them forever."""
    import threading

    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        import atexit

        atexit._run_exitfuncs()  # what a normal exit runs, then out without joining the threads
        sys.stdout.flush()
        sys.stderr.flush()
        from bench.registry import _REAL_EXIT

        _REAL_EXIT(code)


if __name__ == "__main__":
    sys.exit(run())
