"""Who may import whom (docs/ARCHITECTURE.md): a walk over each package's import statements.

`forbidden_imports(package_dir, forbidden_prefixes, allowed=...)` is the reusable walker: every `import` and
`from ... import` anywhere in a module (inside functions and `if TYPE_CHECKING:` blocks too; relative imports
resolved) is checked against dotted prefixes. Add a rule with one more test calling it.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BOT = REPO / "bot"

ADAPTERS = (
    "bot.store",
    "bot.serving",
    "bot.frontends",
    "bot.devstack",
    "bot.wiring",
    "bot.cli",
    "sqlalchemy",
    "alembic",
    "grpc",
    "google.protobuf",
    "slack_bolt",
    "slack_sdk",
    "cheroot",
    "fsspec",
)

# bot/devstack/demo.py is `modelbot demo`: it builds the whole bot (wiring, console, settings, store) around a
# devstack fleet, so it is the one devstack module that must import the bot. The emulator and the fleet launcher
# (everything else under bot/devstack) import only the devstack and the protos.
DEVSTACK_EXEMPT = {"demo.py": "`modelbot demo` runs the whole bot against the devstack fleet"}


def _module_name(path: Path) -> str:
    """The dotted name of the module at `path` (walking up while the directories are packages)."""
    parts = [] if path.name == "__init__.py" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists():
        parts.insert(0, folder.name)
        folder = folder.parent
    return ".".join(parts)


def imported_names(source: str, module: str, *, is_package: bool = False) -> set[str]:
    """Every dotted name `source` (the module `module`) imports: `import a.b` gives a.b, `from a import b` gives
    a.b (b may be a submodule), `from a import *` gives a; relative imports are resolved against `module`."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                names.add(base if alias.name == "*" else f"{base}.{alias.name}")
    return names


def _matches(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def forbidden_imports(
    package_dir: Path,
    forbidden_prefixes: Iterable[str],
    allowed: Iterable[str] = (),
    *,
    exempt: Mapping[str, str] | None = None,
) -> list[str]:
    """ "FILE imports NAME" for every import under `package_dir` (recursively) that falls under one of
    `forbidden_prefixes` and under none of `allowed` (prefixes too: `bot.serving.protos` allows its submodules).
    `exempt` maps a file (relative to package_dir) to the reason it is left out."""
    forbidden, allowed = tuple(forbidden_prefixes), tuple(allowed)
    exempt = exempt or {}
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        relative = path.relative_to(package_dir).as_posix()
        if relative in exempt:
            continue
        names = imported_names(
            path.read_text(encoding="utf-8"), _module_name(path), is_package=path.name == "__init__.py"
        )
        found += [
            f"{relative} imports {name}"
            for name in sorted(names)
            if _matches(name, forbidden) and not _matches(name, allowed)
        ]
    return found


def test_usecases_import_no_adapter() -> None:
    """bot/usecases reaches the store, the fleet and Slack only through ports (no adapter, driver or SDK import)."""
    assert forbidden_imports(BOT / "usecases", ADAPTERS) == []


def test_usecase_ports_mention_only_core() -> None:
    """The ports the store implements speak in bot.core values only: the standard library and bot.core."""
    path = BOT / "usecases" / "ports.py"
    names = imported_names(path.read_text(encoding="utf-8"), "bot.usecases.ports")
    allowed = {*sys.stdlib_module_names, "__future__"}
    assert sorted(n for n in names if not _matches(n, ["bot.core"]) and n.split(".")[0] not in allowed) == []


def test_devstack_imports_only_the_protos() -> None:
    """The emulator and the fleet launcher import nothing of the bot but bot.devstack and bot.serving.protos."""
    assert (
        forbidden_imports(
            BOT / "devstack", ["bot"], allowed=["bot.devstack", "bot.serving.protos"], exempt=DEVSTACK_EXEMPT
        )
        == []
    )


def test_the_walks_see_their_packages() -> None:
    """The rules above really read modules (guards against a wrong path passing vacuously), and every exemption
    names a file that exists."""
    assert len(list((BOT / "usecases").glob("*.py"))) >= 10
    assert len(list((BOT / "devstack" / "serving").glob("*.py"))) >= 5
    assert all((BOT / "devstack" / name).exists() for name in DEVSTACK_EXEMPT)


def test_the_walker_flags_an_added_forbidden_import(tmp_path: Path) -> None:
    """A forbidden import is reported wherever it hides (a function body, TYPE_CHECKING, a relative import, a
    submodule named in `from X import Y`), while allowed prefixes, exempt files and clean modules pass."""
    package = tmp_path / "bot" / "usecases"
    package.mkdir(parents=True)
    for init in (tmp_path / "bot" / "__init__.py", package / "__init__.py"):
        init.write_text("")
    (package / "clean.py").write_text("from bot.core.change_request import ChangeRequest\nimport json\n")
    (package / "sneaky.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from bot.store.unit_of_work import UnitOfWork\n"
        "def later():\n"
        "    import sqlalchemy.orm\n"
        "    from ..serving import config_proto\n"
        "    from bot import frontends\n"
        "    from bot.serving.protos import tfs_apis_pb2\n"
    )
    (package / "exempted.py").write_text("import grpc\n")
    found = forbidden_imports(package, ADAPTERS, allowed=["bot.serving.protos"], exempt={"exempted.py": "test"})
    assert found == [
        "sneaky.py imports bot.frontends",
        "sneaky.py imports bot.serving.config_proto",
        "sneaky.py imports bot.store.unit_of_work.UnitOfWork",
        "sneaky.py imports sqlalchemy.orm",
    ]
    assert forbidden_imports(package, ADAPTERS, exempt={"exempted.py": "test", "sneaky.py": "test"}) == []


# Front ends reach the bot through bot.service only. Besides their own package they import the words (bot.texts),
# the slash grammar (bot.parsing: text <-> bot.core.commands, pure, no state), the domain's values (bot.core),
# logging (bot.logging_setup), and, by name, the types the service's methods take and return (view models,
# outbox kinds): never a use case's functions, the store, the serving adapter or a driver.
FRONTEND_FORBIDDEN = ("bot", "sqlalchemy", "alembic", "grpc", "google.protobuf")
FRONTEND_ALLOWED = (
    "bot.frontends",
    "bot.service",
    "bot.texts",
    "bot.parsing",
    "bot.core",
    "bot.logging_setup",
    "bot.usecases.context.Context",
    "bot.usecases.context.Reply",
    "bot.usecases.cards.CardView",
    "bot.usecases.home.HomeView",
    "bot.usecases.alerts.AlertView",
    "bot.usecases.alerts.AlertsOutcome",
    "bot.usecases.alerts.BadAlert",
    "bot.usecases.alerts.POST_KIND",
    "bot.usecases.outbox.Delivered",
    "bot.usecases.outbox.FollowUp",
    "bot.usecases.outbox.THREAD_KIND",
)
# bot.wiring is the composition of a process: `serve` (server.py) takes the Bot it built (the service, and the
# fleet and database its /healthz and /readyz probe) and closes it; no other front-end module may reach for it.
FRONTEND_COMPOSERS = {"server.py": "`modelbot serve` runs the Bot that bot.wiring built"}


def _frontend_violations(package_dir: Path) -> list[str]:
    return forbidden_imports(
        package_dir, FRONTEND_FORBIDDEN, allowed=[*FRONTEND_ALLOWED, "bot.wiring"]
    ) + forbidden_imports(package_dir, ["bot.wiring"], exempt=FRONTEND_COMPOSERS)


def test_frontends_call_only_the_service() -> None:
    """bot/frontends imports bot.service, texts, parsing, core values, logging and the service's view-model
    types; bot.wiring only in server.py; never the store, the serving adapter or a use case's functions."""
    assert len(list((BOT / "frontends").rglob("*.py"))) >= 20
    assert all((BOT / "frontends" / name).exists() for name in FRONTEND_COMPOSERS)
    assert _frontend_violations(BOT / "frontends") == []


def test_the_frontend_rule_flags_a_side_door(tmp_path: Path) -> None:
    """A front-end module reaching past the service (the store, a use case's function or whole module, a driver,
    the wiring outside server.py) is reported; the allowed imports and server.py's wiring pass."""
    package = tmp_path / "bot" / "frontends"
    package.mkdir(parents=True)
    for init in (tmp_path / "bot" / "__init__.py", package / "__init__.py"):
        init.write_text("")
    (package / "server.py").write_text("from bot.wiring import Bot\nfrom bot.service import Service\n")
    (package / "clean.py").write_text(
        "from bot.core.outbox import OutboxMessage\nfrom bot.usecases.cards import CardView\n"
        "from bot.texts import slack\nfrom . import server\n"
    )
    (package / "sneaky.py").write_text(
        "from bot.usecases.cards import card_view\n"
        "def later():\n"
        "    from bot.store.unit_of_work import UnitOfWork\n"
        "    from bot.usecases import approval_routing\n"
        "    import sqlalchemy\n"
        "    from bot.wiring import Bot\n"
    )
    assert _frontend_violations(package) == [
        "sneaky.py imports bot.store.unit_of_work.UnitOfWork",
        "sneaky.py imports bot.usecases.approval_routing",
        "sneaky.py imports bot.usecases.cards.card_view",
        "sneaky.py imports sqlalchemy",
        "sneaky.py imports bot.wiring.Bot",
    ]
