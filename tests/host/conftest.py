"""Fixtures of the host-level tests: the build, short temporary folders (a Unix
socket path must stay under 108 bytes), and supervisors that are always stopped,
with a check that no QEMU they started outlives them."""
import os
import shutil
import subprocess
import tempfile
import warnings

import pytest

import helpers


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    setattr(item, "rep_" + rep.when, rep)


@pytest.fixture(scope="session")
def built():
    if not os.path.exists(helpers.QEMU):
        pytest.skip(f"{helpers.QEMU} not installed")
    targets = [os.path.relpath(helpers.GUEST, helpers.ROOT)]
    if not os.environ.get("LUOINIT"):  # LUOINIT=path tests a given binary
        targets.insert(0, os.path.relpath(helpers.LUOINIT, helpers.ROOT))
    r = subprocess.run(["make", "--no-print-directory", "-C", helpers.ROOT, *targets])
    if r.returncode != 0:
        # Other work in progress may break the build for a moment; an existing
        # binary is still worth testing, but say so.
        missing = [t for t in (helpers.LUOINIT, helpers.GUEST) if not os.path.exists(t)]
        if missing:
            pytest.fail(f"make {' '.join(targets)} failed and {missing} do not exist")
        warnings.warn(f"make {' '.join(targets)} failed: testing the binaries already built")
    return helpers.LUOINIT


@pytest.fixture
def tmpdir_short(request):
    d = tempfile.mkdtemp(prefix="luoh-", dir="/tmp")
    yield d
    failed = any(getattr(request.node, "rep_" + w, None) is not None and
                 getattr(request.node, "rep_" + w).failed for w in ("setup", "call"))
    if failed or os.environ.get("LUOINIT_KEEP_TMP"):
        print(f"test files kept in {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def supervisors(built, tmpdir_short, request):
    """start(config=..., config_path=..., name=...) -> helpers.Supervisor.
    Teardown stops each one and fails when a QEMU it caused was still alive."""
    started = []
    counter = [0]

    def start(config=None, config_path=None, **kw):
        counter[0] += 1
        d = os.path.join(tmpdir_short, f"s{counter[0]}")
        os.makedirs(d, exist_ok=True)
        s = helpers.Supervisor(d, config=config, config_path=config_path, **kw)
        started.append(s)
        return s

    yield start
    survivors = []
    for s in started:
        s.stop()
        # The supervisor is gone: its QEMUs must follow (PDEATHSIG or its own
        # shutdown). Give a killed one a moment to be torn down.
        try:
            helpers.wait_for(lambda: not s.leftovers(), 10, "QEMU processes to go")
        except AssertionError:
            survivors += s.reap_leftovers()
        failed = getattr(request.node, "rep_call", None)
        if failed is not None and failed.failed:
            print(f"---- {s.log_path} (last 4000 bytes) ----\n{s.log()[-4000:]}")
    assert not survivors, f"QEMU processes survived their supervisor: {survivors}"


@pytest.fixture
def one_vm(supervisors, tmpdir_short):
    """A supervisor with one running, beating heartbeat VM 'vm0'."""
    def make(**vmkw):
        s = supervisors(config={"version": 1, "vms": [helpers.vm_config("vm0", tmpdir_short, **vmkw)]})
        s.wait_running("vm0")
        s.wait_beats_after("vm0", 0, count=2)
        return s
    return make


@pytest.fixture
def netns():
    """A network namespace of this test's own, holding `eth0`, one end of a
    veth pair whose other end, `peer0`, is up: a bridge's uplink and the
    wire behind it. The build host's own networking is never touched.
    Deleted afterwards (with every interface in it)."""
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root")
    name = f"luoh-{os.getpid()}-{os.urandom(3).hex()}"
    helpers.ip("netns", "add", name)
    try:
        helpers.ip("link", "add", "eth0", "type", "veth", "peer", "name", "peer0", ns=name)
        helpers.ip("link", "set", "peer0", "up", ns=name)
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], capture_output=True)
