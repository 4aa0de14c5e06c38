"""The package's shape (docs/architecture.md): the registry is data, services know nothing of
the runner, and no module-level import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "src" / "saathii_ops"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def top_level_imports(path: Path) -> set[str]:
    """The saathii_ops modules `path` imports when it is imported (not those a function
    imports when it runs, nor those only type checking reads)."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
            return
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            # `from saathii_ops.billing import charge` imports a module too
            found.update(f"{node.module}.{a.name}" for a in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name for name in found if name.startswith("saathii_ops")}


def import_graph() -> dict[str, set[str]]:
    modules = {
        module_name(path): path
        for path in PACKAGE.rglob("*.py")
        if "migrations" not in path.relative_to(PACKAGE).parts
    }
    return {name: top_level_imports(path) & set(modules) for name, path in modules.items()}


# the layers, lowest first: a module imports (at import time) only its own layer or lower ones
LAYERS = (
    {"errors", "files", "reports", "settings", "output.masking", "output.text"},
    # the database, and what a service may know of the runtime: the registry (data), the
    # run's identity, who runs
    {"db", "runtime.registry", "runtime.context", "runtime.identity"},
    {"billing", "jobs", "status", "scheduling", "demo.sample_data"},  # the services: the rules
    {"runtime"},  # running a job: runner, locks, guard, pings
    {"output"},
    {"cli", "demo"},
)


def layer_of(module: str) -> int:
    parts = module.split(".")[1:]
    for depth in (2, 1):
        name = ".".join(parts[:depth])
        for index, layer in enumerate(LAYERS):
            if name in layer:
                return index
    return -1  # the package itself, __main__


def test_every_module_belongs_to_a_layer() -> None:
    unplaced = {m for m in import_graph() if layer_of(m) < 0}
    assert unplaced == {"saathii_ops", "saathii_ops.__main__"}


def test_imports_point_down_the_layers() -> None:
    upward = [
        f"{name} -> {imported}"
        for name, imports in import_graph().items()
        for imported in imports
        if layer_of(imported) > layer_of(name) >= 0
    ]
    assert upward == []


def test_the_registry_imports_no_service() -> None:
    services = ("saathii_ops.billing", "saathii_ops.jobs", "saathii_ops.status")
    registry_imports = import_graph()["saathii_ops.runtime.registry"]
    assert not any(m.startswith(services) for m in registry_imports)


def test_no_module_level_import_cycle() -> None:
    graph = import_graph()
    assert "saathii_ops.cli.app" in graph  # the graph holds the package, not nothing
    done: set[str] = set()
    cycles: list[str] = []

    def visit(name: str, path: list[str]) -> None:
        if name in path:
            cycles.append(" -> ".join([*path[path.index(name) :], name]))
            return
        if name in done:
            return
        for imported in sorted(graph[name] - {name}):
            visit(imported, [*path, name])
        done.add(name)

    for name in sorted(graph):
        visit(name, [])
    assert cycles == []


def test_every_registered_job_is_wired_and_its_command_resolves_in_the_cli() -> None:
    """`cron install` writes `saathii-ops <job.command>` on every line: each must be a
    command of the app, running the job of that name (its service resolves)."""
    import typer

    from saathii_ops.cli.app import app
    from saathii_ops.runtime.registry import JOBS
    from saathii_ops.settings import Settings

    root = typer.main.get_command(app)
    with_redis = Settings().model_copy(update={"redis_url": "redis://127.0.0.1:6379/0"})
    for job in JOBS:
        assert callable(job.resolve_service()), job.name
        # the cache's step only when Redis is configured: a plain install has no redis
        assert (job.after_commit_step(with_redis) is not None) == job.bills
        assert job.after_commit_step(Settings()) is None
        group, name = job.command.split()
        assert name in root.commands[group].commands, job.command  # type: ignore[attr-defined]
