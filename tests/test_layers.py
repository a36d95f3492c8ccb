"""The guard of the unit layer (tests/support/layers.py): what a unit test starts fails it, named."""

from __future__ import annotations

import asyncio
import ctypes.util
import socket
import subprocess

import pytest
import uvloop

from tests.support.layers import StartedSomething, start_nothing


def test_a_bound_or_connected_socket_and_a_process_are_refused_by_name():
    with start_nothing("tests/x.py::test_y") as offences:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            with pytest.raises(
                StartedSomething, match=r"test_y is a unit test but called socket.bind\(\('127.0.0.1', 0\)"
            ):
                sock.bind(("127.0.0.1", 0))
            with pytest.raises(StartedSomething, match="mark it integration"):
                sock.connect(("127.0.0.1", 9))
        with pytest.raises(StartedSomething, match=r"subprocess.Popen\(\['true'\]\)"):
            subprocess.run(["true"])
        assert ctypes.util.find_library("c")  # a library lookup runs ldconfig: allowed
    assert len(offences) == 3  # also recorded, for code that catches the error


@pytest.mark.parametrize("new_loop", [asyncio.new_event_loop, uvloop.new_event_loop], ids=["asyncio", "uvloop"])
def test_servers_endpoints_and_processes_of_either_loop_are_refused(new_loop):
    loop = new_loop()
    try:
        with start_nothing("t") as offences:
            with pytest.raises(StartedSomething, match="loop.create_datagram_endpoint"):
                loop.create_datagram_endpoint(asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0))
            with pytest.raises(StartedSomething, match="loop.create_server"):
                loop.run_until_complete(asyncio.start_server(lambda r, w: None, "127.0.0.1", 0))
            with pytest.raises(StartedSomething, match="loop.subprocess_exec"):
                loop.run_until_complete(asyncio.create_subprocess_exec("true"))
        assert len(offences) == 3
    finally:
        loop.close()
