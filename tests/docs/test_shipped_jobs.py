"""The shipped Kubernetes and Airflow examples (jobs/) are well formed and run commands batchtts accepts."""

from __future__ import annotations

import ast
import py_compile
from pathlib import Path

import click
import yaml

from batchtts.cli import main

JOBS = Path(__file__).resolve().parents[2] / "jobs"


def documents(name: str) -> list[dict]:
    return [doc for doc in yaml.safe_load_all((JOBS / "kubernetes" / name).read_text(encoding="utf-8")) if doc]


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [doc for doc in docs if doc["kind"] == kind]


def parses(words: list[str]) -> click.Context:
    """The command line, parsed by batchtts' own click parser (an unknown option fails here)."""
    assert words[0] == "batchtts"
    command = main.commands[words[1]]
    return command.make_context(words[1], list(words[2:]), resilient_parsing=False)


def test_the_kubernetes_indexed_job_splits_into_as_many_shards_as_completions(monkeypatch):
    docs = documents("batchtts-shards.yaml")
    (job,) = of_kind(docs, "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["parallelism"] >= 1
    pod = spec["template"]["spec"]
    assert pod["restartPolicy"] == "Never"
    (container,) = pod["containers"]
    command = container["command"]
    last = spec["completions"] - 1
    monkeypatch.setenv("JOB_COMPLETION_INDEX", str(last))  # what Kubernetes sets in the last pod
    shard = parses(command).params["shard"]
    assert (shard.index, shard.count) == (last, spec["completions"])
    env = {item["name"]: item for item in container["env"]}
    assert "secretKeyRef" in env["SMALLEST_API_KEY"]["valueFrom"]  # the key is never in the file
    (service,) = of_kind(docs, "Service")
    port = service["spec"]["ports"][0]["port"]
    assert env["BATCHTTS_LIMITS_URL"]["value"].startswith(f"redis://{service['metadata']['name']}:{port}/")
    (claim,) = of_kind(docs, "PersistentVolumeClaim")
    assert "ReadWriteMany" in claim["spec"]["accessModes"]
    out = command[command.index("--out") + 1]
    mount = container["volumeMounts"][0]
    assert out.startswith(mount["mountPath"] + "/")
    volumes = {v["name"]: v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"]}
    assert volumes[mount["name"]] == claim["metadata"]["name"]

    (merge,) = of_kind(documents("batchtts-merge.yaml"), "Job")
    merge_pod = merge["spec"]["template"]["spec"]
    (merge_container,) = merge_pod["containers"]
    merge_command = merge_container["command"]
    parses(merge_command)
    assert merge_command[:3] == ["batchtts", "merge", out]  # the folder the shards wrote
    assert {v["persistentVolumeClaim"]["claimName"] for v in merge_pod["volumes"]} == {claim["metadata"]["name"]}


def test_the_airflow_dag_compiles_maps_over_the_shards_and_merges(tmp_path):
    path = JOBS / "airflow" / "batchtts_shards_dag.py"
    py_compile.compile(str(path), cfile=str(tmp_path / "dag.pyc"), doraise=True)
    tree = ast.parse(path.read_text(encoding="utf-8"))
    calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)]
    assert any(call.func.attr == "expand" for call in calls), "no dynamic task mapping (.expand)"
    assert any(call.func.attr == "partial" for call in calls)
    shards = next(
        node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "SHARDS"
    )
    run = ast.literal_eval(
        next(n.value for n in ast.walk(tree) if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "RUN")
    )
    command = run.replace("{shard}", "3").replace("{shards}", str(shards))
    words = command.replace("{{ var.value.batchtts_manifest }}", "m.csv").replace("{{ var.value.batchtts_out }}", "o")
    context = parses(["batchtts", *words.split()[1:]])
    assert (context.params["shard"].index, context.params["shard"].count) == (3, shards)
    source = path.read_text(encoding="utf-8")
    assert "batchtts merge {{ var.value.batchtts_out }}" in source
    assert 'trigger_rule="all_done"' in source
