"""Read a rendered systemd unit the way systemd would, enough to run its command outside systemd in a test.

Only what the SkyWatch units use: continuation lines, Environment=, and in commands the specifiers %i, %I,
%H, %n, %p, %% and ${NAME} (one word) or $NAME (split into words). Anything else fails loudly.
"""

import re
import shlex
import socket
from pathlib import Path


class UnitFile:
    """A unit file's settings by section, each key with every value it was given, in order."""

    def __init__(self, path: Path, instance: str = "") -> None:
        self.path = path
        self.name = path.name
        if instance:
            prefix, _, suffix = self.name.partition("@")
            self.name = f"{prefix}@{instance}{suffix}"
        self.instance = instance
        self.sections: dict[str, dict[str, list[str]]] = {}
        section = None
        logical = ""
        for raw in path.read_text().splitlines():
            line = raw.strip()
            if not logical and (not line or line.startswith(("#", ";"))):
                continue
            if line.endswith("\\"):
                logical += line[:-1] + " "
                continue
            line, logical = logical + line, ""
            if line.startswith("[") and line.endswith("]"):
                section = self.sections.setdefault(line[1:-1], {})
                continue
            key, _, value = line.partition("=")
            section.setdefault(key.strip(), []).append(value.strip())

    def values(self, section: str, key: str) -> list[str]:
        return self.sections.get(section, {}).get(key, [])

    def value(self, section: str, key: str) -> str:
        """Return the one value of a key (the last, as systemd does for single-valued keys)."""
        found = self.values(section, key)
        assert found, f"{self.name}: no {key}= in [{section}]"
        return found[-1]

    def default_environment(self) -> dict[str, str]:
        """Return what Environment= sets (an EnvironmentFile= overrides it)."""
        env = {}
        for value in self.values("Service", "Environment"):
            for word in shlex.split(value):
                name, _, val = word.partition("=")
                env[name] = val
        return env

    def specifiers(self, text: str) -> str:
        prefix = self.name.split("@")[0].rsplit(".", 1)[0]
        host = socket.gethostname()
        table = {"i": self.instance, "I": self.instance, "H": host, "n": self.name, "p": prefix}

        def replace(match: re.Match[str]) -> str:
            letter = match.group(1)
            if letter == "%":
                return "%"
            if letter not in table:
                raise ValueError(f"{self.name}: specifier %{letter} is not handled by this reader")
            return table[letter]

        return re.sub(r"%(.)", replace, text)

    def command(self, key: str, env: dict[str, str]) -> list[str]:
        """Return the argv of ExecStart= (or another Exec key) with specifiers and variables expanded."""
        argv = []
        for word in shlex.split(self.specifiers(self.value("Service", key))):
            whole = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", word)
            if whole:
                argv.extend(env.get(whole.group(1), "").split())
                continue
            argv.append(re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", lambda m: env.get(m.group(1), ""), word))
        return argv


def seconds(value: str) -> float:
    """Return a systemd or nginx time span ("140s", "2min", "1h", "30") in seconds."""
    units = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units[unit]
    return total
