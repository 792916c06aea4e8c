"""The peer in the ingest benchmark: rsyslog reads the same corpus file and writes parsed fields to a file.

rsyslogd runs in the foreground on its own configuration and work directory (nothing of the system's syslog is
touched): an ``imptcp`` listener on 127.0.0.1 receives the corpus file (sent with ``sendfile`` from another CPU),
every line goes through rsyslog's RFC 3164 parser, and ``omfile`` writes one JSON object a line with what that
parser found (timestamp, host, program, pid, facility, severity, message), via the property replacer. (``imfile``
would read the file itself, but rsyslog treats file lines as local and does not take the host name from them.)

That is syslog *header* parsing only: rsyslog does not look inside the messages (no sshd / netfilter / access-log
fields), builds no ECS document and does no register enrichment or PII masking, so it does far less work per line
than Yunshu's pipeline. The nginx lines are not syslog at all: rsyslog passes them through as messages.

The clock runs from the first byte sent until the output file holds one line per input line.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

CONFIG = """\
global(workDirectory="{work}" maxMessageSize="64k")
module(load="imptcp")
main_queue(queue.type="FixedArray" queue.size="200000" queue.dequeueBatchSize="1024")

template(name="fields" type="list") {{
    constant(value="{{")
    property(outname="timestamp" name="timereported" dateFormat="rfc3339" format="jsonf")
    constant(value=",")
    property(outname="host" name="hostname" format="jsonf")
    constant(value=",")
    property(outname="program" name="programname" format="jsonf")
    constant(value=",")
    property(outname="pid" name="procid" format="jsonf")
    constant(value=",")
    property(outname="facility" name="syslogfacility-text" format="jsonf")
    constant(value=",")
    property(outname="severity" name="syslogseverity-text" format="jsonf")
    constant(value=",")
    property(outname="message" name="msg" format="jsonf")
    constant(value="}}\\n")
}}

ruleset(name="bench" parser=["rsyslog.rfc3164"]) {{
    action(type="omfile" file="{output}" template="fields" asyncWriting="on" ioBufferSize="1m"
           flushOnTXEnd="off" flushInterval="1")
}}

input(type="imptcp" address="127.0.0.1" port="{port}" ruleset="bench" supportOctetCountedFraming="off")
"""


@dataclass
class RsyslogResult:
    """One rsyslog run: how many lines came out, how long it took, on which CPUs; or why it did not run."""

    ran: bool
    cpus: list[int] = field(default_factory=list)
    lines_in: int = 0
    lines_out: int = 0
    seconds: float = 0.0
    lines_per_s: float = 0.0
    version: str = ""
    error: str = ""
    sample_output: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["seconds"] = round(self.seconds, 3)
        data["lines_per_s"] = round(self.lines_per_s)
        return data


def rsyslogd_path() -> str | None:
    """The rsyslogd binary, if installed (Debian puts it in /usr/sbin, which may be off PATH)."""
    return shutil.which("rsyslogd") or next((p for p in ("/usr/sbin/rsyslogd",) if os.access(p, os.X_OK)), None)


def rsyslog_version(binary: str) -> str:
    """``rsyslogd 8.2302.0 (aka 2023.02)`` — the first line of ``rsyslogd -v``."""
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=30)
    return out.stdout.splitlines()[0].strip() if out.stdout else ""


def _count_lines(path: Path, offset: int, counted: int) -> tuple[int, int]:
    """Newlines in ``path`` after ``offset`` added to ``counted``; returns (new offset, new count)."""
    try:
        with path.open("rb") as fh:
            fh.seek(offset)
            chunk = fh.read()
    except FileNotFoundError:
        return offset, counted
    return offset + len(chunk), counted + chunk.count(b"\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _connect(port: int, proc: subprocess.Popen[bytes], wait_s: float = 20.0) -> socket.socket:
    """A connection to rsyslogd's listener, once it is up."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=5)
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def run_rsyslog(corpus: Path, lines: int, workdir: Path, cpus: set[int] | None, timeout_s: float) -> RsyslogResult:
    """Run rsyslogd (pinned to ``cpus`` when given), send it ``corpus``, wait for ``lines`` parsed lines."""
    binary = rsyslogd_path()
    if binary is None:
        return RsyslogResult(False, error="rsyslogd is not installed (Debian package 'rsyslog')")
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "work").mkdir(parents=True)
    output = workdir / "parsed.jsonl"
    config = workdir / "rsyslog.conf"
    port = _free_port()
    config.write_text(CONFIG.format(work=workdir / "work", output=output, port=port), encoding="utf-8")
    check = subprocess.run([binary, "-N1", "-f", str(config)], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        return RsyslogResult(False, error=f"rsyslogd -N1 rejected the configuration: {check.stderr.strip()[-500:]}")
    result = RsyslogResult(True, cpus=sorted(cpus or os.sched_getaffinity(0)), lines_in=lines,
                           version=rsyslog_version(binary))

    def pin() -> None:
        if cpus:
            os.sched_setaffinity(0, cpus)

    mine = os.sched_getaffinity(0)
    log = (workdir / "rsyslogd.log").open("wb")
    proc = subprocess.Popen([binary, "-n", "-f", str(config), "-i", str(workdir / "rsyslogd.pid")],
                            stdout=log, stderr=subprocess.STDOUT, preexec_fn=pin)
    try:
        if cpus and mine - cpus:  # send and poll from the other CPU(s), off the one being measured
            os.sched_setaffinity(0, mine - cpus)
        with _connect(port, proc) as sock, corpus.open("rb") as fh:
            started = time.perf_counter()
            sock.sendfile(fh)
            sock.shutdown(socket.SHUT_WR)
        offset = counted = 0
        while counted < lines:
            if proc.poll() is not None:
                result.error = f"rsyslogd exited with status {proc.returncode}; see {workdir / 'rsyslogd.log'}"
                break
            if time.perf_counter() - started > timeout_s:
                result.error = f"timed out after {timeout_s:.0f} s with {counted} of {lines} lines written"
                break
            time.sleep(0.01)
            offset, counted = _count_lines(output, offset, counted)
        result.seconds = time.perf_counter() - started
    except OSError as exc:
        result.error = f"could not feed rsyslogd: {exc}"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log.close()
        os.sched_setaffinity(0, mine)
    result.lines_out = _count_lines(output, 0, 0)[1]
    result.ran = not result.error
    if result.ran:
        result.lines_per_s = lines / result.seconds
    if output.exists():
        with output.open(encoding="utf-8", errors="replace") as fh:
            result.sample_output = [fh.readline().rstrip("\n") for _ in range(3)]
    return result
