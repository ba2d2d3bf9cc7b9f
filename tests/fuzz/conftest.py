"""Case counting for the schema fuzz: how many requests each operation got, printed after the run."""

from collections import Counter, defaultdict

import pytest

FUZZ_CASES = pytest.StashKey[dict[str, Counter]]()


@pytest.fixture
def fuzz_cases(request: pytest.FixtureRequest) -> dict[str, Counter]:
    """Return the session's tally: operation label -> Counter of generation modes."""
    return request.config.stash.setdefault(FUZZ_CASES, defaultdict(Counter))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    tally = config.stash.get(FUZZ_CASES, None)
    if not tally:
        return
    terminalreporter.write_sep("-", "schemathesis cases per operation")
    for label, modes in sorted(tally.items()):
        split = ", ".join(f"{mode} {count}" for mode, count in sorted(modes.items()))
        terminalreporter.write_line(f"{label}: {sum(modes.values())} cases ({split})")
