"""The rules the Jenkinsfile and the JCasC job must keep, checked on groovy's AST (as JSON).

Each function returns the problems it found, in words naming the stage, command or field, so a
failing test says what to fix; an empty list means the file keeps the rules.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

# Targets the pipeline must run: lint, the tests, `onering airflow export --check`, compose
# validation and the benchmarks.
REQUIRED_TARGETS = ("lint", "test", "airflow-check", "compose-check", "bench")
MAX_MINUTES = 90
MAKE = re.compile(r"make ([A-Za-z0-9][A-Za-z0-9_.-]*)")
TARGET_LINE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9_.-]*)\s*:(?!=)", re.MULTILINE)
MINUTES = {"SECONDS": 1 / 60, "MINUTES": 1, "HOURS": 60}
SECRET_KEY = re.compile(r"password|secret|token|credential|apikey|api_key|private", re.I)
ENV_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}")
SECRET_REFERENCE = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")  # no literal default


def makefile_targets(makefile: str) -> set[str]:
    """The explicit targets of a Makefile (``name:`` at a line start; not ``:=`` assignments)."""
    return set(TARGET_LINE.findall(makefile))


def leaf_stages(stages: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Stages that run steps (a stage holding ``stages``/``parallel`` is walked into)."""
    for stage in stages:
        if stage["nested"]:
            yield from leaf_stages(stage["nested"])
        else:
            yield stage


def stage_targets(stage: dict[str, Any]) -> list[str]:
    return [m.group(1) for sh in stage["sh"] if (m := MAKE.fullmatch(sh["command"] or ""))]


def stage_problems(stage: dict[str, Any], targets: set[str]) -> list[str]:
    name = stage["name"]
    problems = [
        f"stage {name!r}: step {step!r} is not sh" for step in stage["steps"] if step != "sh"
    ]
    if not stage["sh"]:
        problems.append(f"stage {name!r} runs no sh step")
    for sh in stage["sh"]:
        match = MAKE.fullmatch(sh["command"] or "")
        if match is None or not sh["literal"]:
            problems.append(f"stage {name!r}: sh {sh['command']!r} is not `make <target>`")
        elif match.group(1) not in targets:
            problems.append(f"stage {name!r}: make {match.group(1)}: no such Makefile target")
    return problems


def timeout_problems(options: dict[str, Any]) -> list[str]:
    timeout = options.get("timeout")
    if timeout is None:
        return ["no timeout option"]
    try:
        minutes = float(timeout["time"]) * MINUTES[timeout.get("unit", "MINUTES")]
    except (KeyError, ValueError):
        return [f"timeout {timeout!r} is not a literal time and unit"]
    return [] if minutes <= MAX_MINUTES else [f"timeout {minutes:g} min exceeds {MAX_MINUTES}"]


def pipeline_problems(parsed: dict[str, Any], targets: set[str]) -> list[str]:
    """A declarative ``pipeline { agent ...; stages { ... } }`` whose every stage runs only
    ``make <target>`` with targets the Makefile has; lint, test, airflow-check, compose-check
    and bench among them; bench on an agent label; a timeout within 90 minutes."""
    if parsed["error"] is not None:
        return [f"groovy syntax error: {parsed['error']}"]
    if parsed["top_level"] != ["pipeline"] or parsed["pipeline"] is None:
        return [f"not one declarative pipeline {{ }}: top level is {parsed['top_level']}"]
    pipeline = parsed["pipeline"]
    problems = [
        f"pipeline has no {s}" for s in ("agent", "stages") if s not in pipeline["sections"]
    ]
    stages = list(leaf_stages(pipeline["stages"]))
    if not stages:
        problems.append("pipeline has no stage")
    for stage in stages:
        problems += stage_problems(stage, targets)
    run = {target: stage for stage in stages for target in stage_targets(stage)}
    problems += [f"no stage runs make {t}" for t in REQUIRED_TARGETS if t not in run]
    bench = run.get("bench")
    if bench is not None and not (bench["agent"] or {}).get("label"):
        problems.append(f"stage {bench['name']!r} runs make bench without agent {{ label ... }}")
    return problems + anywhere_problems(parsed, targets) + timeout_problems(pipeline["options"])


CONTAINER_AGENTS = ("docker", "dockerfile", "kubernetes")


def anywhere_problems(parsed: dict[str, Any], targets: set[str]) -> list[str]:
    """Outside the stages too (``post``, ``environment``, ``when``): every ``sh`` is a literal
    ``make <target>`` the Makefile has, and no agent runs in an image the file names."""
    problems = []
    for found in parsed["calls"]:
        where = " > ".join(found["within"]) or "top level"
        if found["name"] == "sh" and "stage" not in found["within"]:
            command = found["args"][0] if found["args"] else found["named"].get("script")
            match = MAKE.fullmatch(command or "")
            if match is None or "$" in (command or "") or match.group(1) not in targets:
                problems.append(f"{where}: sh {command!r} is not `make <target>`")
        if found["name"] in CONTAINER_AGENTS and "agent" in found["within"]:
            problems.append(f"{where}: agent {found['name']} runs in an image, not on a label")
    return problems


def call(parsed: dict[str, Any], name: str, within: tuple[str, ...]) -> dict[str, Any] | None:
    """The first call ``name`` nested in exactly the calls ``within`` (outermost first)."""
    for found in parsed["calls"]:
        if found["name"] == name and tuple(found["within"]) == within:
            return found
    return None


def job_problems(parsed: dict[str, Any], job: str = "onering") -> list[str]:
    """The job-dsl script creates ``pipelineJob(job)`` reading the root Jenkinsfile from git."""
    if parsed["error"] is not None:
        return [f"groovy syntax error: {parsed['error']}"]
    problems = []
    top = call(parsed, "pipelineJob", ())
    if top is None or top["args"] != [job]:
        problems.append(f"no top-level pipelineJob({job!r})")
    scm = ("pipelineJob", "definition", "cpsScm")
    path = call(parsed, "scriptPath", scm)
    if path is None or path["args"] != ["Jenkinsfile"]:
        problems.append(f"cpsScm scriptPath is {path and path['args']}, not 'Jenkinsfile'")
    url = call(parsed, "url", (*scm, "scm", "git", "remote"))
    if url is None or not ENV_REFERENCE.fullmatch(url["args"][0] if url["args"] else ""):
        problems.append(f"git remote url is {url and url['args']}, not a ${{VAR}}")
    if call(parsed, "branch", (*scm, "scm", "git")) is None:
        problems.append("git branch not set")
    return problems


def secret_problems(node: Any, path: str = "") -> list[str]:
    """Every value under a password-like key (or of a ``{key: SECRET_NAME, value: …}`` pair)
    is a ``${VAR}`` JCasC resolves, with no literal default: never a literal."""
    problems: list[str] = []
    if isinstance(node, dict):
        named = SECRET_KEY.search(str(node.get("key", ""))) is not None
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            literal = isinstance(value, (str, int, float)) and not isinstance(value, bool)
            secret = SECRET_KEY.search(str(key)) or (named and key == "value")
            if secret and literal and not SECRET_REFERENCE.fullmatch(str(value)):
                problems.append(f"{where} is a literal, not a ${{VAR}}")
            problems += secret_problems(value, where)
    elif isinstance(node, list):
        for i, item in enumerate(node):
            problems += secret_problems(item, f"{path}[{i}]")
    return problems
