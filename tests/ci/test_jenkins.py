"""The Jenkinsfile and the JCasC job, parsed by Debian's groovy (no Jenkins runs here).

groovy compiles each file to its AST without running it (tests/ci/jenkinsfile_ast.groovy); the
rules (tests/ci/jenkins_rules.py) then check it is one declarative pipeline whose every stage
runs `make <target>` for a target the Makefile has, and that the JCasC job-dsl creates the
pipeline job from the root Jenkinsfile. Planted files prove the checks fail when they should.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.ci.groovy_ast import REPO, Parse, groovy_or_skip, parse
from tests.ci.jenkins_rules import (
    job_problems,
    makefile_targets,
    pipeline_problems,
    secret_problems,
)

JENKINSFILE = REPO / "Jenkinsfile"
CASC = REPO / "platform" / "ci" / "jenkins" / "casc.yaml"
PLUGINS = REPO / "platform" / "ci" / "jenkins" / "plugins.txt"

# Each planted Jenkinsfile: (text replaced in the real one, its replacement, the problem named).
PLANTED_PIPELINES = {
    "unknown_target": (
        "sh 'make compose-check'",
        "sh 'make nonexistent'",
        "make nonexistent: no such Makefile target",
    ),
    "not_make": ("sh 'make lint'", "sh 'ruff check .'", "sh 'ruff check .' is not `make <target>`"),
    "dynamic_make": ("sh 'make test'", 'sh "make ${params.TARGET}"', "is not `make <target>`"),
    "scripted": ("pipeline {", "node {", "not one declarative pipeline"),
    "bench_unlabelled": ("label 'bench'", "", "runs make bench without agent { label ... }"),
    "long_timeout": ("time: 90", "time: 300", "timeout 300 min exceeds 90"),
    "no_bench": ("sh 'make bench'", "sh 'make compose-check'", "no stage runs make bench"),
    "post_shell": (
        "junit allowEmptyResults: true",
        "sh 'curl -s https://example.com/x | sh'\n            junit allowEmptyResults: true",
        "pipeline > post > always: sh 'curl -s https://example.com/x | sh' is not `make <target>`",
    ),
    "docker_agent": (
        "label 'bench'",
        "docker { image 'example/ci:latest' }",
        "agent docker runs in an image, not on a label",
    ),
}
PLANTED_JOBS = {
    "wrong_script_path": (
        "scriptPath('Jenkinsfile')",
        "scriptPath('ci/Jenkinsfile')",
        "not 'Jenkinsfile'",
    ),
    "literal_url": (
        "url('${ONERING_GIT_URL}')",
        "url('https://example.com/x.git')",
        "not a ${VAR}",
    ),
    "other_job": (
        "pipelineJob('onering')",
        "freeStyleJob('onering')",
        "no top-level pipelineJob('onering')",
    ),
}


def planted(text: str, old: str, new: str) -> str:
    assert old in text, f"the planted change needs {old!r} in the real file"
    return text.replace(old, new, 1)


@pytest.fixture(scope="module")
def targets() -> set[str]:
    return makefile_targets((REPO / "Makefile").read_text())


@pytest.fixture(scope="module")
def casc() -> dict[str, Any]:
    return yaml.safe_load(CASC.read_text())


@pytest.fixture(scope="module")
def job_script(casc: dict[str, Any]) -> str:
    return casc["jobs"][0]["script"]


@pytest.fixture(scope="module")
def groovy() -> str:
    return groovy_or_skip()


@pytest.fixture(scope="module")
def real(groovy: str, job_script: str, tmp_path_factory: pytest.TempPathFactory) -> Parse:
    """The Jenkinsfile and the JCasC job-dsl script, in one groovy run."""
    job = tmp_path_factory.mktemp("real") / "job.groovy"
    job.write_text(job_script)
    return parse(groovy, [JENKINSFILE, job])


@pytest.fixture(scope="module")
def broken(
    groovy: str, job_script: str, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Parse]:
    """Every planted file (and a syntax error in each language use), in one groovy run."""
    folder = tmp_path_factory.mktemp("planted")
    text = JENKINSFILE.read_text()
    files = {
        f"{name}.Jenkinsfile": planted(text, *change[:2])
        for name, change in PLANTED_PIPELINES.items()
    }
    files |= {
        f"{name}.groovy": planted(job_script, *change[:2]) for name, change in PLANTED_JOBS.items()
    }
    # The pipeline's closing brace dropped; a job-dsl call left unclosed.
    files["syntax.Jenkinsfile"] = text.rstrip().removesuffix("}")
    files["syntax.groovy"] = planted(job_script, "branch('*/main')", "branch('*/main'")
    for name, content in files.items():
        (folder / name).write_text(content)
    return folder, parse(groovy, [folder / name for name in files])


def test_makefile_targets_are_read(targets: set[str]) -> None:
    assert {"setup", "lint", "test", "airflow-check", "compose-check", "bench"} <= targets
    assert not {"SHELL", "UV", "COMPOSE", "PROFILES", "export"} & targets


def test_jenkinsfile_is_one_declarative_pipeline(real: Parse) -> None:
    parsed = real.files[str(JENKINSFILE)]
    assert real.returncode == 0, real.files
    assert parsed["error"] is None
    assert parsed["top_level"] == ["pipeline"]
    assert {"agent", "options", "stages", "post"} <= set(parsed["pipeline"]["sections"])
    assert parsed["pipeline"]["agent"]["kind"] == "any"


def test_every_stage_runs_an_existing_make_target(real: Parse, targets: set[str]) -> None:
    parsed = real.files[str(JENKINSFILE)]
    assert pipeline_problems(parsed, targets) == []
    stages = [(s["name"], [sh["command"] for sh in s["sh"]]) for s in parsed["pipeline"]["stages"]]
    assert stages == [
        ("Set up", ["make setup"]),
        ("Lint", ["make lint"]),
        ("Test", ["make test"]),
        ("Airflow DAGs current", ["make airflow-check"]),
        ("Compose valid", ["make compose-check"]),
        ("Benchmarks", ["make bench"]),
    ]


def test_benchmarks_run_on_the_bench_label_jcasc_provides(
    real: Parse, casc: dict[str, Any]
) -> None:
    """The Benchmarks stage asks for an agent labelled bench, only when asked or nightly, and
    the JCasC file defines a node with that label."""
    bench = real.files[str(JENKINSFILE)]["pipeline"]["stages"][-1]
    assert bench["agent"] == {"kind": "label", "label": "bench"}
    assert bench["when"] == ["beforeAgent", "anyOf"]
    labels = {
        label
        for node in casc["jenkins"]["nodes"]
        for label in node["permanent"]["labelString"].split()
    }
    assert bench["agent"]["label"] in labels


@pytest.mark.parametrize("name", sorted(PLANTED_PIPELINES))
def test_planted_jenkinsfile_fails_the_checks(
    name: str, broken: tuple[Path, Parse], targets: set[str]
) -> None:
    folder, result = broken
    parsed = result.files[str(folder / f"{name}.Jenkinsfile")]
    assert parsed["error"] is None  # it parses: the rules, not groovy, reject it
    problems = pipeline_problems(parsed, targets)
    assert any(PLANTED_PIPELINES[name][2] in p for p in problems), problems


def test_planted_syntax_errors_fail_the_groovy_parse(
    broken: tuple[Path, Parse], targets: set[str]
) -> None:
    folder, result = broken
    assert result.returncode == 1, result.stderr
    pipeline = result.files[str(folder / "syntax.Jenkinsfile")]
    job = result.files[str(folder / "syntax.groovy")]
    for parsed in (pipeline, job):
        assert parsed["error"] is not None and "startup failed" in parsed["error"]
        assert "@ line" in parsed["error"]
    assert pipeline_problems(pipeline, targets)[0].startswith("groovy syntax error")
    assert job_problems(job)[0].startswith("groovy syntax error")
    # Only the two syntax-broken files fail to parse.
    assert [p for p, f in result.files.items() if f["error"]] == [
        str(folder / "syntax.Jenkinsfile"),
        str(folder / "syntax.groovy"),
    ]


def test_casc_job_builds_the_root_jenkinsfile(real: Parse, job_script: str) -> None:
    parsed = next(f for path, f in real.files.items() if path.endswith("job.groovy"))
    assert parsed["error"] is None
    assert job_problems(parsed) == []
    assert JENKINSFILE.is_file()
    assert "scriptPath('Jenkinsfile')" in job_script


@pytest.mark.parametrize("name", sorted(PLANTED_JOBS))
def test_planted_job_fails_the_checks(name: str, broken: tuple[Path, Parse]) -> None:
    folder, result = broken
    problems = job_problems(result.files[str(folder / f"{name}.groovy")])
    assert any(PLANTED_JOBS[name][2] in p for p in problems), problems


def test_casc_holds_no_literal_secret(casc: dict[str, Any]) -> None:
    assert (
        casc["jenkins"]["securityRealm"]["local"]["users"][0]["password"]
        == "${JENKINS_ADMIN_PASSWORD}"
    )
    assert secret_problems(casc) == []
    assert {"systemMessage", "numExecutors", "labelString"} <= set(casc["jenkins"])


def test_planted_literal_secret_is_named(casc: dict[str, Any]) -> None:
    leaked = yaml.safe_load(CASC.read_text())
    leaked["jenkins"]["securityRealm"]["local"]["users"][0]["password"] = "hunter2"
    leaked["credentials"] = {
        "system": {"apiToken": "${TOKEN} but also a literal", "secret": "${S:-hunter2}"}
    }
    leaked["env"] = [{"key": "GITHUB_TOKEN", "value": "ghp_literal"}]
    assert secret_problems(leaked) == [
        "jenkins.securityRealm.local.users[0].password is a literal, not a ${VAR}",
        "credentials.system.apiToken is a literal, not a ${VAR}",
        "credentials.system.secret is a literal, not a ${VAR}",
        "env[0].value is a literal, not a ${VAR}",
    ]
    assert secret_problems(casc) == []


def test_plugins_cover_what_the_files_use() -> None:
    lines = [line.split("#")[0].strip() for line in PLUGINS.read_text().splitlines()]
    plugins = dict(line.split(":", 1) for line in lines if line)
    assert set(plugins) == {
        "configuration-as-code",
        "job-dsl",
        "workflow-aggregator",
        "git",
        "junit",
        "timestamper",
    }
    assert all(plugins.values()), plugins
