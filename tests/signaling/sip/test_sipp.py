"""The SIP stack under sipp (Debian sip-tester), a load generator nobody here wrote (#14).

200 calls are set up and torn down at a bounded rate against a stack that answers with a fixed
SDP: sipp counts 200 successful calls and the stack saw 200 INVITEs, ACKs and BYEs, with no dialog
left. sipp/malformed.xml sends requests that must each be refused with the status and reason
phrase it names; the stack then still answers OPTIONS.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

import pytest

from tests.signaling.sip.conftest import audio_sdp
from tests.signaling.sip.test_stack_wire import options_ok
from tests.support.redis_server import free_port

pytestmark = pytest.mark.integration
SCENARIOS = Path(__file__).parent / "sipp"


def require_sipp() -> str:
    found = shutil.which("sipp")
    if found is None:
        pytest.skip("sipp is not installed (apt-get install sip-tester; scripts/setup.sh does)")
    return found


async def run_sipp(stack, transport: str, *args: str, tmp_path: Path, timeout: float = 60) -> tuple[int, str]:
    """sipp against the stack's ``transport`` listener; its exit code (0: every call succeeded) and screen."""
    host, port = stack.addresses[transport]
    mode = ["-t", "t1"] if transport == "tcp" else ["-t", "u1"]
    proc = await asyncio.create_subprocess_exec(
        require_sipp(), f"{host}:{port}", "-i", "127.0.0.1", "-p", str(free_port()), *mode, *args,
        "-nostdin", "-timeout", f"{int(timeout)}", "-timeout_error", "-trace_err",
        cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout + 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    errors = "".join(p.read_text(errors="replace")[-2000:] for p in tmp_path.glob("*errors.log"))
    return proc.returncode or 0, out.decode(errors="replace")[-3000:] + errors


@pytest.mark.parametrize("transport", ["udp", "tcp"])
async def test_200_calls_set_up_and_torn_down(stacks, tmp_path, transport):
    async def on_invite(call):
        await call.answer(audio_sdp())

    stack = await stacks(on_invite)
    code, screen = await run_sipp(stack, transport, "-sn", "uac", "-s", "7001", "-r", "40", "-m", "200", "-l", "60",
                                  "-d", "300", tmp_path=tmp_path)  # fmt: skip
    assert code == 0, screen
    assert "Successful call        |        0                  |      200" in screen, screen
    assert (stack.counts["INVITE"], stack.counts["ACK"], stack.counts["BYE"]) == (200, 200, 200)
    assert not stack.calls and stack.counts["error"] == 0


async def test_malformed_requests_get_the_refusals_the_scenario_names(stacks, tmp_path):
    async def on_invite(call):
        await call.answer(audio_sdp())

    stack = await stacks(on_invite)
    code, screen = await run_sipp(stack, "udp", "-sf", str(SCENARIOS / "malformed.xml"), "-s", "7001", "-m", "1",
                                  tmp_path=tmp_path, timeout=15)  # fmt: skip
    assert code == 0, screen
    assert stack.counts["refused:Content-Length Mismatch"] == 1 and stack.counts["refused:Header Too Long"] == 1
    await options_ok(stack)
    assert not stack.calls and stack.counts["error"] == 0
