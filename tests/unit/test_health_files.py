"""The probe files: fresh while alive, ready only while ready, and never a crash when another
process removes them (dev once gave a dozen consumers one HEALTH_FILE, and a start-up clear()
between another's create and utime killed it with FileNotFoundError)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from shared.health import ProbeFiles, check, ready_file


def test_alive_and_ready_files_say_what_the_process_is(tmp_path: Path) -> None:
    probes = ProbeFiles(str(tmp_path / "health"))
    probes.alive(at=time.time() - 120)
    assert check(probes.live, 60) == (False, f"{probes.live} is 120s old (max 60s)")
    probes.alive()
    assert check(probes.live, 60)[0]
    assert not Path(ready_file(tmp_path / "health")).exists()
    probes.set_ready(True)
    assert check(probes.ready, 5)[0]
    probes.set_ready(False)
    assert not probes.ready.exists()
    probes.clear()
    assert check(probes.live, 60) == (False, f"{probes.live} does not exist")


def test_touching_survives_the_file_being_removed_meanwhile(tmp_path: Path) -> None:
    path = tmp_path / "health"
    toucher, remover = ProbeFiles(str(path)), ProbeFiles(str(path))
    failures: list[BaseException] = []
    stop = time.monotonic() + 1.0

    def touch() -> None:
        while time.monotonic() < stop:
            try:
                toucher.alive()
                toucher.set_ready(True)
            except BaseException as exc:  # the test is that nothing is raised
                failures.append(exc)
                return

    thread = threading.Thread(target=touch)
    thread.start()
    while time.monotonic() < stop:
        remover.clear()
    thread.join()
    assert failures == []
