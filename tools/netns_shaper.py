"""Delay, jitter and loss for a host whose kernel has no ``sch_netem``: a TCP relay in the host's namespace.

``python -m tools.netns_shaper --control FILE --relay IP:PORT=127.0.0.1:PORT ...`` listens on the host's
address and relays every connection to the service listening on loopback inside the namespace.  Each chunk
that passes (both directions) is held ``delay_ms`` ± ``jitter_ms`` (order kept), and with probability
``loss_pct`` % a further 200 ms: what a lost segment costs a TCP connection (one retransmission timeout),
which is all that loss means to the HTTP and gRPC traffic between nodes and etcd.  ``FILE`` holds
``{"delay_ms", "jitter_ms", "loss_pct"}`` and is read again every 0.2 s (missing: no impairment).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
from pathlib import Path

#: what one lost segment costs a TCP connection (Linux's minimum retransmission timeout)
LOSS_PENALTY = 0.2


class Shape:
    def __init__(self, control: Path) -> None:
        self._control = control
        self.delay = self.jitter = self.loss = 0.0

    async def watch(self) -> None:
        while True:
            try:
                d = json.loads(self._control.read_text(encoding="utf-8"))
                self.delay, self.jitter = float(d["delay_ms"]) / 1000, float(d["jitter_ms"]) / 1000
                self.loss = float(d["loss_pct"]) / 100
            except (OSError, ValueError, KeyError, TypeError):
                self.delay = self.jitter = self.loss = 0.0
            await asyncio.sleep(0.2)

    def hold(self) -> float:
        if not (self.delay or self.jitter or self.loss):
            return 0.0
        held = max(0.0, self.delay + random.uniform(-self.jitter, self.jitter))
        return held + (LOSS_PENALTY if random.random() < self.loss else 0.0)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, shape: Shape) -> None:
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

    async def send() -> None:
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if not data:
                with contextlib.suppress(OSError):
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()

    sender = asyncio.create_task(send())
    last = 0.0
    try:
        while True:
            data = await reader.read(65536)
            last = max(last, loop.time() + shape.hold())  # order kept
            await queue.put((last, data))
            if not data:
                break
        await sender
    except (OSError, asyncio.IncompleteReadError):
        sender.cancel()
    finally:
        with contextlib.suppress(Exception):
            writer.close()


async def _serve(listen: tuple[str, int], target: tuple[str, int], shape: Shape) -> asyncio.Server:
    async def handle(cr: asyncio.StreamReader, cw: asyncio.StreamWriter) -> None:
        try:
            tr, tw = await asyncio.open_connection(*target)
        except OSError:
            cw.close()
            return
        await asyncio.gather(_pipe(cr, tw, shape), _pipe(tr, cw, shape), return_exceptions=True)

    return await asyncio.start_server(handle, *listen, reuse_address=True)


def _addr(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    return host, int(port)


async def _main(control: Path, relays: list[str]) -> None:
    shape = Shape(control)
    watcher = asyncio.create_task(shape.watch())
    servers = []
    for r in relays:
        listen, _, target = r.partition("=")
        servers.append(await _serve(_addr(listen), _addr(target), shape))
    print("relaying", " ".join(relays), flush=True)
    await asyncio.gather(watcher, *(s.serve_forever() for s in servers))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tools.netns_shaper")
    p.add_argument("--control", required=True)
    p.add_argument("--relay", action="append", required=True, help="LISTEN_IP:PORT=TARGET_IP:PORT")
    a = p.parse_args(argv)
    asyncio.run(_main(Path(a.control), list(a.relay)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
