"""The README as a newcomer uses it: its two commands, its tour sweep copied as it is, its links."""

import re

from conftest import REPO, ganbench

README = (REPO / "README.md").read_text()


def test_the_readme_opens_with_the_two_commands_and_ci_runs_the_second():
    block = re.search(r"```bash\n(.*?)```", README, re.S).group(1).strip().splitlines()
    assert len(block) == 2
    assert block[0].endswith("ganbench sweep sweeps/quickstart.yaml --executor local --workers 2")
    ci = (REPO / ".ci/run").read_text()
    assert block[1] in ci


def test_the_tour_sweep_runs_when_copied(tmp_path):
    tour = README.split("## A tour", 1)[1]
    yaml_text = re.search(r"```yaml\n(.*?)```", tour, re.S).group(1)
    (tmp_path / "tour.yaml").write_text(yaml_text)
    proc = ganbench("plan", "tour.yaml", cwd=tmp_path, check=0)
    assert proc.stdout.strip().splitlines()[-1] == "30 cells in sweep 'tour'"


def test_every_link_and_named_file_exists():
    for link in re.findall(r"\]\(([^)#:]+)\)", README):
        assert (REPO / link).exists(), link
    for doc in (REPO / "docs").glob("*.md"):
        text = doc.read_text()
        for link in re.findall(r"\]\(([^)#:]+)\)", text):
            assert (doc.parent / link).exists() or (REPO / link).exists(), f"{doc.name}: {link}"
        assert not re.search(r"\bissue \d+", text, re.I) or doc.name == "ARCHITECTURE.md", f"{doc.name} cites an issue"
