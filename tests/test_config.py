"""Run configuration files: --config for simulate, evaluate and train; --dump-config; precedence
command line > file > environment (OPENAI_BASE_URL) > defaults; unknown keys are one-line errors."""

import json
import os

import yaml

from conftest import one_line_error, run_cli


def _dump(*args, env=None):
    r = run_cli(*args, "--dump-config", env=env)
    assert r.returncode == 0, r.stderr
    return yaml.safe_load(r.stdout)


def _clean_env():
    return {k: v for k, v in os.environ.items() if k != "OPENAI_BASE_URL"}


def test_precedence_command_line_over_file_over_environment_over_defaults(tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    cfg = tmp_path / "run.yaml"
    cfg.write_text("n: 5\nmax-turns: 3\nbackend: openai\nmodel: qwen\nseed: 7\nbase_url: http://file:1/v1\n")
    d = _dump("simulate", "--config", cfg)
    assert (d["n"], d["max_turns"], d["backend"], d["model"], d["seed"]) == (5, 3, "openai", "qwen", 7)
    assert d["base_url"] == "http://file:1/v1" and d["concurrency"] == 8  # the rest: defaults
    d = _dump("simulate", "--seed", "9", "--config", cfg, "--n", "6")  # wherever --config stands
    assert (d["seed"], d["n"], d["max_turns"]) == (9, 6, 3)
    env = {"OPENAI_BASE_URL": "http://env:2/v1"}
    assert _dump("simulate", "--config", cfg, env=env)["base_url"] == "http://file:1/v1"  # the file wins
    cfg.write_text("n: 5\n")
    assert _dump("simulate", "--config", cfg, env=env)["base_url"] == "http://env:2/v1"  # then the environment
    assert _dump("simulate", "--base-url", "http://cli:3/v1", env=env)["base_url"] == "http://cli:3/v1"
    assert _dump("simulate")["base_url"] is None
    assert _dump("simulate")["api_key_env"] == "OPENAI_API_KEY"


def test_dump_config_round_trips_through_config(tmp_path):
    d = _dump("simulate", "--n", "4", "--max-turns", "2", "--no-cache", "--out", tmp_path / "r")
    f = tmp_path / "dumped.yaml"
    f.write_text(yaml.safe_dump(d))
    assert _dump("simulate", "--config", f) == d


def test_unknown_keys_and_bad_files_are_one_line_errors(tmp_path):
    f = tmp_path / "run.yaml"
    f.write_text("n: 5\nmax_turns: 3\nturbo: true\n")
    line = one_line_error(run_cli("simulate", "--config", f), str(f), ":3:", "unknown key 'turbo'")
    assert "max_turns" in line  # names the keys this command takes
    f.write_text("config: other.yaml\n")
    one_line_error(run_cli("simulate", "--config", f), "unknown key 'config'")
    f.write_text("n: [1\n")
    one_line_error(run_cli("simulate", "--config", f), str(f), "not valid YAML")
    f.write_text("- n\n- 5\n")
    one_line_error(run_cli("simulate", "--config", f), "expected a mapping")
    one_line_error(run_cli("train", "--config", tmp_path / "missing.yaml"), "missing.yaml", "not found")
    f.write_text("n: lots\n")
    one_line_error(run_cli("simulate", "--config", f), "--n")


def test_a_run_from_a_config_file(tmp_path, persona_file, load_target):
    t = load_target("--latency", "0.01")
    out = tmp_path / "run"
    cfg = tmp_path / "run.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "personas": str(persona_file),
                "n": 2,
                "max-turns": 2,
                "backend": "openai",
                "model": "m",
                "out": str(out),
                "cache": False,
                "quiet": True,
            }
        )
    )
    r = run_cli("simulate", "--config", cfg, env={"OPENAI_BASE_URL": t.base_url})
    assert r.returncode == 0, r.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["config"]["n"] == 2 and m["config"]["max_turns"] == 2 and m["config"]["backend"]["base_url"] == t.base_url


def test_evaluate_and_train_take_config_files(tmp_path):
    e = tmp_path / "eval.yaml"
    e.write_text("path: corpus.jsonl\ndiversity: none\nreference: [a.json, b.tsv]\n")
    d = _dump("evaluate", "--config", e)
    assert (d["path"], d["diversity"], d["reference"]) == ("corpus.jsonl", "none", ["a.json", "b.tsv"])
    t = tmp_path / "train.yaml"
    t.write_text("data: sft\nout: runs/lora\nmax-steps: 60\nbase_model: /models/Qwen2.5-7B-Instruct\nbf16: true\n")
    d = _dump("train", "--config", t, "--max-steps", "70")
    assert (d["data"], d["max_steps"], d["bf16"], d["base_model"]) == ("sft", 70, True, "/models/Qwen2.5-7B-Instruct")
    t.write_text("data: sft\nout: o\nlearning-rat: 0.1\n")
    one_line_error(run_cli("train", "--config", t), "unknown key 'learning-rat'")
