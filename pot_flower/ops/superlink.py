"""Run a Flower app with ``flwr run`` against a local SuperLink this process owns.

``flwr run`` would otherwise start a detached SuperLink that outlives it. Here the
SuperLink gets its own ``FLWR_HOME``, its own ports and runtime dependency
installation disabled; it is stopped by PID afterwards, whatever happens.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from pathlib import Path


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else name


@contextmanager
def local_superlink(home: Path) -> Iterator[dict[str, str]]:
    """Start a simulation SuperLink; yield the environment ``flwr run`` needs."""
    home.mkdir(parents=True, exist_ok=True)
    http, control = free_port(), free_port()
    env = dict(os.environ)
    env.update(
        FLWR_HOME=str(home),
        FLWR_LOCAL_SUPERLINK_HTTP_API_PORT=str(http),
        FLWR_LOCAL_CONTROL_API_PORT=str(control),
        FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION="1",
        FLWR_DISABLE_UPDATE_CHECK="1",
        FLWR_TELEMETRY_ENABLED="0",
        # The SuperLink spawns flower-superexec, flwr-simulation...: same venv.
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
    )
    log = open(home / "superlink.out", "ab")  # noqa: SIM115
    process = subprocess.Popen(
        [
            _bin("flower-superlink"),
            "--insecure",
            "--simulation",
            "--isolation",
            "subprocess",
            "--control-api-address",
            f"127.0.0.1:{control}",
            "--host",
            "127.0.0.1",
            "--port",
            str(http),
            "--database",
            str(home / "state.db"),
            "--disable-runtime-dependency-installation",
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its children (superexec, simulation) share the group
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{http}/health", timeout=1
                ):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(
                        f"SuperLink did not start; see {home / 'superlink.out'}"
                    ) from None
                time.sleep(0.3)
        yield env
    finally:
        # Stop by PID: the SuperLink's process group (it started a new session).
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            with suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _toml(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return "'" + value.replace("'", "") + "'"
    return str(value)


def flwr_command(
    app_dir: Path,
    run_config: Mapping[str, object] | None = None,
    num_supernodes: int = 10,
) -> list[str]:
    """``flwr run APP --stream -c … --federation-config …`` (one CPU per ClientApp)."""
    command = [_bin("flwr"), "run", str(app_dir), "--stream"]
    if run_config:
        command += ["-c", " ".join(f"{k}={_toml(v)}" for k, v in run_config.items())]
    return [
        *command,
        "--federation-config",
        f"num-supernodes={num_supernodes} client-resources-num-cpus=1",
    ]


def flwr_run(
    app_dir: Path,
    env: Mapping[str, str],
    *,
    run_config: Mapping[str, object] | None = None,
    num_supernodes: int = 10,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run :func:`flwr_command` to completion; output captured."""
    return subprocess.run(
        flwr_command(app_dir, run_config, num_supernodes),
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m pot_flower.ops.superlink APP [-c key=value]...``: stream one run."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("app", type=Path)
    parser.add_argument("--home", type=Path, required=True, help="FLWR_HOME to use")
    parser.add_argument("--nodes", type=int, default=10, help="simulated SuperNodes")
    parser.add_argument("-c", dest="config", action="append", default=[])
    args = parser.parse_args(argv)
    config: dict[str, object] = {}
    for item in args.config:
        key, _, value = item.partition("=")
        config[key] = int(value) if value.lstrip("-").isdigit() else value
    with local_superlink(args.home) as env:
        # Output goes straight to the terminal: progress shows while it runs.
        command = flwr_command(args.app, config, args.nodes)
        return subprocess.run(command, env=env).returncode


if __name__ == "__main__":
    raise SystemExit(main())
