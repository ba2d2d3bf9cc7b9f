"""The systemd units: `systemd-analyze verify` clean, hardened, stop budgets above the task time limits, and
their commands run: two worker instances side by side (warm shutdown on SIGTERM), gunicorn ready by sd_notify.
"""

import ast
import os
import re
import signal
import socket
import subprocess

import pytest
import requests

from tests.conftest import REPO, free_port, wait_for

from .conftest import (
    ensure_tool,
    read_env_file,
    render,
    render_into,
    service_overrides,
    start_unit,
    stop_main_process,
    unit_environment,
)
from .unitfile import UnitFile, seconds

SERVICES = [
    "skywatch-migrate.service",
    "skywatch-web.service",
    "skywatch-worker@.service",
    "skywatch-beat.service",
]
HARDENING = {
    "NoNewPrivileges": "yes",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "CapabilityBoundingSet": "",
    "RestrictSUIDSGID": "yes",
}


def verify(*paths) -> subprocess.CompletedProcess:
    systemd_analyze = ensure_tool("systemd-analyze", "systemd")
    return subprocess.run(
        [systemd_analyze, "verify", "--man=no", *map(str, paths)], capture_output=True, text=True, timeout=120
    )


def task_time_limits() -> dict[str, int]:
    """Return every Celery task's hard time limit, by task name, read from apps/*/tasks.py."""
    limits = {}
    for path in sorted(REPO.glob("apps/*/tasks.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "shared_task":
                keywords = {k.arg: k.value for k in node.keywords}
                name = ast.literal_eval(keywords["name"])
                limits[name] = ast.literal_eval(keywords["time_limit"]) if "time_limit" in keywords else None
    return limits


def test_systemd_analyze_verify_is_clean_with_two_worker_instances(rendered):
    units = rendered["skywatch-web.service"].parent
    result = verify(
        *(units / name for name in render.SYSTEMD_UNITS),
        units / "skywatch-worker@1.service",
        units / "skywatch-worker@2.service",
    )
    assert result.returncode == 0, result.stderr
    # verify exits 0 on a setting it ignores (a typo, a bad value): any message at all is a failure here.
    assert result.stdout + result.stderr == ""


def test_verify_does_catch_a_broken_unit(rendered):
    units = rendered["skywatch-web.service"].parent
    broken = units / "skywatch-broken.service"
    text = rendered["skywatch-web.service"].read_text()
    broken.write_text(
        text.replace("KillMode=mixed", "KillMode=gently").replace("/.venv/bin/gunicorn", "/nope")
    )
    result = verify(broken)
    assert "ignoring: gently" in result.stderr
    assert result.returncode != 0 and "/nope" in result.stderr


@pytest.mark.parametrize("name", SERVICES)
def test_services_run_unprivileged_and_hardened(rendered, name):
    unit = UnitFile(rendered[name])
    assert unit.value("Service", "User") == "skywatch"
    assert unit.value("Service", "EnvironmentFile") == str(rendered[render.ENV_FILE])
    for key, value in HARDENING.items():
        assert unit.value("Service", key) == value, key
    # Nothing is writable but beat's state directory (its schedule), the workers' archive directory (Parquet
    # before retention) and gunicorn's runtime one (its control socket), all made by systemd for the unit.
    assert not unit.values("Service", "ReadWritePaths")
    state = unit.values("Service", "StateDirectory")
    writable = {"skywatch-beat.service": ["skywatch"], "skywatch-worker@.service": ["skywatch/archive"]}
    assert state == writable.get(name, [])
    runtime = unit.values("Service", "RuntimeDirectory")
    assert runtime == (["skywatch-web"] if name == "skywatch-web.service" else [])
    if name != "skywatch-migrate.service":
        assert unit.value("Service", "Restart") == "on-failure"
        assert unit.value("Install", "WantedBy") == "skywatch.target"
        assert unit.value("Unit", "PartOf") == "skywatch.target"


@pytest.mark.parametrize(
    "name", ["skywatch-web.service", "skywatch-worker@1.service", "skywatch-beat.service"]
)
def test_systemds_own_exposure_score_is_ok(rendered, name):
    systemd_analyze = ensure_tool("systemd-analyze", "systemd")
    result = subprocess.run(
        [systemd_analyze, "security", "--offline=true", "--no-pager", name],
        cwd=rendered["skywatch-web.service"].parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    exposure = re.search(r"Overall exposure level for \S+: (\d+\.\d)", result.stdout)
    assert exposure, result.stdout + result.stderr
    assert float(exposure.group(1)) <= 2.0, result.stdout


def test_migrations_run_in_their_own_unit_before_web_workers_and_beat(rendered):
    migrate = UnitFile(rendered["skywatch-migrate.service"])
    assert migrate.value("Service", "Type") == "oneshot"
    assert migrate.value("Service", "ExecStart").endswith("/.venv/bin/python manage.py migrate --noinput")
    web = UnitFile(rendered["skywatch-web.service"])
    assert "skywatch-migrate.service" in web.values("Unit", "Requires")
    for name in ("skywatch-web.service", "skywatch-worker@.service", "skywatch-beat.service"):
        after = " ".join(UnitFile(rendered[name]).values("Unit", "After")).split()
        assert "skywatch-migrate.service" in after, name


def test_stop_budgets_outlast_the_work_they_wait_for(rendered):
    limits = task_time_limits()
    assert limits["pipeline.process_events"] == 300  # the parser reads what tasks.py says
    assert None not in limits.values(), f"a task without a time limit: {limits}"
    worker = UnitFile(rendered["skywatch-worker@.service"], instance="1")
    assert worker.value("Service", "KillMode") == "mixed"
    assert worker.value("Service", "KillSignal") == "SIGTERM"  # Celery's warm shutdown
    assert seconds(worker.value("Service", "TimeoutStopSec")) > max(limits.values())

    web = UnitFile(rendered["skywatch-web.service"])
    argv = web.command("ExecStart", {"WEB_CONCURRENCY": "3"})
    timeout = int(argv[argv.index("--timeout") + 1])
    graceful = int(argv[argv.index("--graceful-timeout") + 1])
    site = rendered[render.NGINX_SITE].read_text()
    longest_read = max(seconds(v) for v in re.findall(r"proxy_read_timeout (\S+);", site))
    assert longest_read < timeout <= graceful < seconds(web.value("Service", "TimeoutStopSec"))
    # PostgreSQL cancels a page's statement before nginx stops waiting, so the page is the portal's 503; the
    # gunicorn --env wins over the env file's no-limit, which the workers keep.
    statement = argv[argv.index("--env") + 1]
    assert statement.startswith("DATABASE_STATEMENT_TIMEOUT=")
    assert 0 < int(statement.split("=")[1]) < longest_read
    assert read_env_file(rendered[render.ENV_FILE])["DATABASE_STATEMENT_TIMEOUT"] == "0"
    assert web.value("Service", "KillMode") == "mixed"
    assert web.value("Service", "ExecReload") == "/bin/kill -s HUP $MAINPID"


def test_beat_keeps_its_schedule_in_its_state_directory(rendered):
    beat = UnitFile(rendered["skywatch-beat.service"])
    argv = beat.command("ExecStart", {"LOG_LEVEL": "INFO"})
    assert argv[argv.index("--schedule") + 1] == "/var/lib/skywatch/celerybeat-schedule"


def test_the_worker_template_runs_twice_side_by_side(rendered, broker_url, tmp_path):
    """skywatch-worker@1 and @2 as their ExecStart= runs them: two nodes answer, and each stops warm on
    SIGTERM (the main process only, as KillMode=mixed sends it) with exit code 0."""
    import redis

    from skywatch_portal.celery import app

    redis.Redis.from_url(broker_url).flushdb()  # no message left by another test for these workers
    processes = {}
    try:
        for instance in ("1", "2"):
            unit = UnitFile(rendered["skywatch-worker@.service"], instance=instance)
            env = unit_environment(
                unit, rendered[render.ENV_FILE], **service_overrides(CELERY_WORKER_CONCURRENCY="1")
            )
            argv = unit.command("ExecStart", env)
            assert argv[argv.index("--hostname") + 1] == f"worker{instance}@{socket.gethostname()}"
            processes[instance] = start_unit(unit, env, tmp_path / f"worker{instance}.log")

        expected = {f"worker{i}@{socket.gethostname()}" for i in processes}
        answered: set[str] = set()

        def both_answer() -> bool:
            for instance, process in processes.items():
                if process.poll() is not None:
                    pytest.fail(
                        f"worker {instance} exited:\n" + (tmp_path / f"worker{instance}.log").read_text()
                    )
            answered.update(name for reply in app.control.ping(timeout=1.0) for name in reply)
            return expected <= answered

        wait_for(both_answer, timeout=60, interval=0.5, message=f"{sorted(expected)} to answer a ping")
        for instance, process in processes.items():
            assert stop_main_process(process, timeout=60) == 0
            log = (tmp_path / f"worker{instance}.log").read_text()
            assert "Warm shutdown" in log, log[-2000:]
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)


def test_the_web_unit_serves_and_tells_systemd_it_is_ready(tmp_path):
    """gunicorn as skywatch-web.service runs it (Type=notify): READY=1 on $NOTIFY_SOCKET, the probe answers,
    a reload (SIGHUP) keeps it serving, SIGTERM stops it cleanly."""
    port = free_port()
    files = render_into(tmp_path / "rendered", bind=f"127.0.0.1:{port}", upstream=f"127.0.0.1:{port}")
    unit = UnitFile(files["skywatch-web.service"])
    assert unit.value("Service", "Type") == "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(60)
    env = unit_environment(
        unit,
        files[render.ENV_FILE],
        **service_overrides(WEB_CONCURRENCY="2", NOTIFY_SOCKET=str(tmp_path / "notify")),
    )
    process = start_unit(unit, env, tmp_path / "web.log")
    try:
        try:
            message = notify.recv(4096).decode()
        except TimeoutError:
            pytest.fail("no sd_notify message:\n" + (tmp_path / "web.log").read_text())
        assert "READY=1" in message
        control = tmp_path / "run" / "skywatch-web" / "gunicorn.ctl"
        wait_for(control.exists, timeout=10, message="gunicorn's control socket in its RuntimeDirectory")
        url = f"http://127.0.0.1:{port}/healthz"
        assert requests.get(url, headers={"Host": "portal.example.com"}, timeout=10).status_code == 200

        process.send_signal(signal.SIGHUP)  # what `systemctl reload skywatch-web` sends
        wait_for(
            lambda: requests.get(url, headers={"Host": "portal.example.com"}, timeout=10).status_code == 200,
            timeout=30,
            message="gunicorn to answer after a reload",
        )
        assert process.poll() is None
        assert stop_main_process(process, timeout=seconds(unit.value("Service", "TimeoutStopSec"))) == 0
    finally:
        notify.close()
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
