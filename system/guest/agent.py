"""The system test's agent inside the booted guest (test rig only, never on a box).

Reads JSON lines from the virtio-serial port ``gatewayd.systest`` and answers each:
``{"ping": 1}`` -> ``{"hello": BOOT_ID}``; ``{"id": N, "cmd": "...", "timeout": S}`` -> the
command run by bash as root, ``{"id": N, "rc": RC, "out": "stdout+stderr"}``. It says hello
when it starts, so the host knows which boot answers. Standard library only (Debian's
python3): it runs before gatewayd is installed.
"""

import json
import os
import subprocess
import time

PORT = "/dev/virtio-ports/gatewayd.systest"


def boot_id() -> str:
    with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as handle:
        return handle.read().strip()


def send(fd: int, message: dict) -> None:
    data = (json.dumps(message) + "\n").encode()
    while data:
        try:
            data = data[os.write(fd, data):]
        except BlockingIOError:
            time.sleep(0.05)


def run(request: dict) -> dict:
    try:
        done = subprocess.run(
            ["/bin/bash", "-c", request["cmd"]], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=float(request.get("timeout", 60)), check=False,
        )
        return {"id": request["id"], "rc": done.returncode,
                "out": done.stdout.decode("utf-8", "replace")}
    except subprocess.TimeoutExpired as exc:
        out = (exc.stdout or b"").decode("utf-8", "replace")
        return {"id": request["id"], "rc": 124, "out": out + "\n[agent: timed out]"}


def main() -> None:
    for _ in range(600):
        if os.path.exists(PORT):
            break
        time.sleep(0.1)
    fd = os.open(PORT, os.O_RDWR)
    me = boot_id()
    send(fd, {"hello": me})
    buf = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:  # the host side is not connected
            time.sleep(0.2)
            continue
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            try:
                request = json.loads(line)
            except ValueError:
                continue
            if "ping" in request:
                send(fd, {"hello": me})
            elif "cmd" in request:
                send(fd, run(request))


if __name__ == "__main__":
    main()
