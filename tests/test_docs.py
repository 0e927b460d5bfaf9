"""The documentation site (mkdocs.yml, docs/): it builds with --strict (a broken link, a missing page or
anchor fails), every nav page exists, the CLI reference lists every command, and the README's two
commands are the ones .ci/run runs (and the ones Getting started shows)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def _nav_pages(nav: list) -> list[str]:
    pages: list[str] = []
    for item in nav:
        value = next(iter(item.values())) if isinstance(item, dict) else item
        if isinstance(value, list):
            pages += _nav_pages(value)
        else:
            pages.append(value)
    return pages


def _bash_blocks(text: str) -> list[str]:
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", text, flags=re.S)]


def _ci_commands() -> list[str]:
    lines = (ROOT / ".ci/run").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith(("#", "set ", "cd "))]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_site_builds_strict(site: Path) -> None:
    assert (site / "index.html").is_file()
    assert (site / "search" / "search_index.json").is_file()


def test_every_nav_page_exists() -> None:
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    pages = _nav_pages(config["nav"])
    assert len(pages) >= 15
    missing = [p for p in pages if not (ROOT / "docs" / p).is_file()]
    assert not missing, missing
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk <= set(pages), f"pages not in the nav: {sorted(on_disk - set(pages))}"


def test_cli_reference_lists_every_command(site: Path) -> None:
    from socialsim.cli.click_app import command

    html = (site / "reference" / "cli" / "index.html").read_text()

    def walk(cmd, path: list[str]) -> list[str]:
        found = ["-".join(path)]
        for name, sub in getattr(cmd, "commands", {}).items():
            if not sub.hidden:
                found += walk(sub, [*path, name])
        return found

    ids = walk(command, ["socialsim"])
    assert len(ids) > 20
    missing = [i for i in ids if f'id="{i}"' not in html]
    assert not missing, missing
    assert "--max-turns" in html  # options are rendered, not only the command names


def test_api_reference_renders_socialsim_api(site: Path) -> None:
    html = (site / "reference" / "api" / "index.html").read_text()
    assert 'id="socialsim.api"' in html


def test_readme_two_commands_are_what_ci_runs() -> None:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Two commands", 1)[1].split("\n## ", 1)[0]
    assert _bash_blocks(section)[:2] == _ci_commands()
    started = (ROOT / "docs" / "getting-started.md").read_text()
    assert _bash_blocks(started)[:2] == _ci_commands()


def test_readme_links_resolve() -> None:
    readme = (ROOT / "README.md").read_text()
    links = [link.split("#")[0] for link in re.findall(r"\]\(([^)\s]+)\)", readme)]
    local = [link for link in links if link and not re.match(r"[a-z]+:", link)]
    assert any(link.startswith("docs/") for link in local)
    missing = [link for link in local if not (ROOT / link).exists()]
    assert not missing, missing
