"""`make run` loads the demo into an empty database: scripts/run.sh seeds after migrating, before serving."""

from tests.conftest import REPO


def test_run_sh_seeds_an_empty_database_after_migrate_and_before_the_server():
    script = (REPO / "scripts" / "run.sh").read_text()
    lines = [line.strip() for line in script.splitlines() if not line.lstrip().startswith("#")]
    where = {
        name: next(i for i, line in enumerate(lines) if f"manage.py {name}" in line)
        for name in ("migrate", "seed_demo", "portal_key", "runserver")
    }

    assert "$PY manage.py seed_demo --if-empty" in lines
    assert where["migrate"] < where["seed_demo"] < where["runserver"]
    # Seeded before the portal starts shipping its own log lines, which make the database non-empty.
    assert where["seed_demo"] < where["portal_key"]


def test_the_readme_says_what_make_run_loads():
    readme = " ".join((REPO / "README.md").read_text().split())

    assert "loads demo traffic into an empty database (`seed_demo --if-empty`" in readme
    assert "python manage.py seed_demo [--seed N]" in readme
