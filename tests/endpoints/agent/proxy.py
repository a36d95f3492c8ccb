"""A real TCP proxy on 127.0.0.1 that a test can cut: the agent's network path to the server.

``cut()`` closes every connection and stops listening (new connections are refused, as when a
commune's uplink is down); ``restore()`` listens again on the same port. ``blackhole()`` keeps
the connections open but silently drops every byte (a dead path nobody closes: only timeouts
find it).
"""

from __future__ import annotations

import asyncio

from mcu.peer.bounded_stop import cancel_and_wait


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target_host, self.target_port = target_host, target_port
        self.port = 0
        self.accepted = 0
        self.blackholed = False
        self._server: asyncio.base_events.Server | None = None
        self._conns: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> "TcpProxy":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.close()
            return
        self._conns |= {writer, up_writer}
        pumps = [
            asyncio.current_task().get_loop().create_task(self._pump(reader, up_writer)),
            asyncio.current_task().get_loop().create_task(self._pump(up_reader, writer)),
        ]
        self._tasks.update(pumps)
        try:
            await asyncio.wait(pumps, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in pumps:
                task.cancel()
                self._tasks.discard(task)
            for w in (writer, up_writer):
                self._conns.discard(w)
                w.close()

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.blackholed:
                    continue
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass

    def _close_all(self) -> None:
        for w in list(self._conns):
            w.transport.abort()  # RST-like: what a pulled cable looks like once the NAT forgets us
        self._conns.clear()
        for task in list(self._tasks):
            task.cancel()

    async def cut(self) -> None:
        """Drop every connection and refuse new ones until ``restore()``."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        self._close_all()
        if server is not None:
            await server.wait_closed()

    async def restore(self) -> None:
        self.blackholed = False
        if self._server is None:
            await self.start()

    def blackhole(self) -> None:
        self.blackholed = True

    async def stop(self) -> None:
        await self.cut()
        await cancel_and_wait(list(self._tasks), "the test proxy")
