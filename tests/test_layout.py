"""The layout rules: the library never imports the command line, the bench calls the library, and an
`LLM` is built one way, with one concurrency rule for in-process models."""

import ast
import json
from pathlib import Path

import pytest

from socialsim.llm.factory import IN_PROCESS_KINDS, build_llm, call_concurrency, contender_llm, parse_contender
from socialsim.schema import BackendConfig, ExecutionConfig

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "socialsim"


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports (top level, lazy and relative imports alike), with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    inside = path.is_relative_to(PACKAGE.parent)
    here = list(path.relative_to(PACKAGE.parent).parts[:-1]) if inside else []  # the package a module is in
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return found


def _cli_imports(files: list[Path]) -> list[str]:
    return [
        f"{f.relative_to(ROOT)}:{line}: imports {name}"
        for f in files
        for line, name in _imports(f)
        if name == "socialsim.cli" or name.startswith("socialsim.cli.")
    ]


def test_the_library_never_imports_the_cli():
    library = [f for f in PACKAGE.rglob("*.py") if "cli" not in f.relative_to(PACKAGE).parts[:1]]
    assert len(library) > 50  # the walk found the package
    assert _cli_imports(library) == []


def test_the_bench_imports_no_cli_module():
    bench = sorted((ROOT / "bench").glob("*.py"))
    assert bench
    assert _cli_imports(bench) == []


def test_the_import_walk_sees_lazy_and_relative_imports(tmp_path):
    # the rule's own check must be able to fail: a lazy import inside a function, and a relative one
    probe = PACKAGE / "simulate" / "engine.py"
    lazy = _imports(probe)
    assert any(name == "socialsim.llm.factory.build_llm" for _, name in lazy)
    src = PACKAGE / "cli" / "root.py"
    assert any(name.startswith("socialsim.cli.") for _, name in _imports(src))


@pytest.fixture
def hf_folder(tmp_path):
    folder = tmp_path / "merged"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "llama"}))
    return folder


def test_in_process_models_run_one_call_at_a_time_on_every_path(hf_folder):
    """Before the factory, `simulate` gave --backend hf 8 calls in flight and every other command 1."""
    from socialsim.cli.options import make_llm
    from socialsim.simulate import engine, ray_executor, run

    assert IN_PROCESS_KINDS == {"local", "hf"}
    ex = ExecutionConfig(concurrency=8, cache=False)
    hf = BackendConfig(kind="hf", model_path=str(hf_folder))
    local = BackendConfig(kind="local", model="smollm2-135m")
    server = BackendConfig(kind="openai", base_url="http://127.0.0.1:9/v1", model="m")
    assert build_llm(hf, ex).concurrency == 1
    assert build_llm(local, ex).concurrency == 1
    assert build_llm(server, ex).concurrency == 8
    assert build_llm(server, ex.model_copy(update={"concurrency": 3})).concurrency == 3
    # the command options and the chatbot-evaluation specs take the same road
    assert make_llm("hf", model_path=hf_folder, concurrency=8).concurrency == 1
    assert make_llm("openai", base_url="http://127.0.0.1:9/v1", model="m", concurrency=5).concurrency == 5
    assert contender_llm(parse_contender(f"t=hf:{hf_folder}")[1]).concurrency == 1
    assert contender_llm(parse_contender("s=openai:http://127.0.0.1:9/v1|m")[1]).concurrency == 8
    # the simulation engine, its run entry points and the Ray actors have no builder of their own
    assert not hasattr(engine, "build_llm") or engine.build_llm is build_llm
    assert run.build_llm is build_llm
    assert "build_llm" not in vars(ray_executor) or ray_executor.build_llm is build_llm
    assert [call_concurrency(k, 6) for k in ("local", "hf", "openai")] == [1, 1, 6]


def test_simulation_defaults_live_in_the_run_config():
    from socialsim.cli.simulate import _EX, _SIM
    from socialsim.schema import SimulationConfig
    from socialsim.simulate.dialogue import DialogueConfig

    sim = SimulationConfig(personas="default", personas_sha256="x", n=1)
    assert DialogueConfig.from_simulation(sim) == DialogueConfig()
    changed = sim.model_copy(update={"max_turns": 3, "safety": False, "seeker_temperature": 0.1})
    played = DialogueConfig.from_simulation(changed)
    assert (played.max_turns, played.safety, played.seeker_temperature) == (3, False, 0.1)
    assert _SIM["max_turns"] == sim.max_turns and _EX["concurrency"] == ExecutionConfig().concurrency
