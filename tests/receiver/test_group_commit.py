"""Group commit: concurrent C-STOREs share one durable worklist transaction.

Each C-STORE is still answered only after its file and its worklist row are on disk; a
group whose transaction fails refuses every one of its instances.
"""

from __future__ import annotations

import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from radiolens.dicomnet import send_dataset
from radiolens.errors import DicomSendError, WorklistError
from radiolens.receiver import STATUS_OUT_OF_RESOURCES, DicomReceiver
from radiolens.receiver import ingest as ingest_module
from radiolens.receiver.ingest import GroupCommitter, instance_meta
from radiolens.worklist import (
    Instance,
    Job,
    Patient,
    list_instances,
    list_studies,
    record_instance,
)
from radiolens.worklist import intake as intake_module

from ..dicomnet.synthetic import STORESCU, free_port, make_dataset, needs_dcmtk, write_dicom

pytestmark = [pytest.mark.pacs, needs_dcmtk]


def _to(receiver: DicomReceiver) -> str:
    return f"{receiver.ae_title}@127.0.0.1:{receiver.port}"


def _count(engine: Engine, model: type) -> int:
    with Session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def _storescu(receiver: DicomReceiver, files: Sequence[Path]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(STORESCU), "-aet", "STORESCU", "-aec", receiver.ae_title, "127.0.0.1",
         str(receiver.port), *map(str, files)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


@pytest.fixture
def commits(engine: Engine) -> Iterator[list[int]]:
    """One entry per transaction committed on ``engine`` (a SQLAlchemy event)."""
    seen: list[int] = []

    def on_commit(_conn: Any) -> None:
        seen.append(1)

    event.listen(engine, "commit", on_commit)
    yield seen
    event.remove(engine, "commit", on_commit)


class _Gate:
    """Wraps ``record_instances`` (as the committer calls it): holds the first group
    until released, so that the instances sent meanwhile form one group; records the
    size of every group."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.real = ingest_module.record_instances
        self.sizes: list[int] = []
        self.release = threading.Event()
        self.on_group: dict[int, Callable[[Engine], Any]] = {}  # group index -> setup
        monkeypatch.setattr(ingest_module, "record_instances", self)

    def __call__(self, engine: Engine, records: Sequence[Any]) -> Any:
        self.sizes.append(len(records))
        index = len(self.sizes)
        if index == 1:
            assert self.release.wait(30), "the test never released the first group"
        setup = self.on_group.get(index)
        if setup is None:
            return self.real(engine, records)
        undo = setup(engine)
        try:
            return self.real(engine, records)
        finally:
            undo()


def test_burst_from_concurrent_associations_is_all_recorded_in_grouped_commits(
    tmp_path: Path, receiver: DicomReceiver, engine: Engine, commits: list[int],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = _Gate(monkeypatch)
    per_association, associations = 8, 4
    files = [[write_dicom(tmp_path / "in", f"a{a}i{i}", patient_id=f"P{(a * 10 + i) % 6}")
              for i in range(per_association)] for a in range(associations)]
    # the first association's first C-STORE is held in the committer; the other
    # associations start only then, and their first instances, queued behind it, must
    # be committed as one group
    senders = [_storescu(receiver, files[0])]
    _wait_until(lambda: gate.sizes == [1], "the first instance held")
    senders += [_storescu(receiver, chunk) for chunk in files[1:]]
    assert receiver.committer_ is not None
    committer = receiver.committer_
    _wait_until(lambda: committer.pending == associations - 1,
                "every other association's first instance queued")
    gate.release.set()
    for proc in senders:
        out, _ = proc.communicate(timeout=120)
        assert proc.returncode == 0, out
    total = per_association * associations
    assert sum(gate.sizes) == total
    assert gate.sizes[:2] == [1, associations - 1]  # those queued: one group
    assert len(commits) == len(gate.sizes) < total  # one transaction per group
    assert committer.stats["groups"] == len(gate.sizes)
    assert committer.stats["largest_group"] >= gate.sizes[1]
    assert _count(engine, Instance) == total
    assert _count(engine, Job) == total  # one-instance studies
    assert _count(engine, Patient) == 6
    assert len(list((tmp_path / "data" / "dicom").rglob("*.dcm"))) == total
    assert not list((tmp_path / "data").rglob("*.partial"))
    assert receiver.stats["received"] == total and receiver.stats["failed"] == 0


def test_a_failing_commit_refuses_every_instance_of_its_group(
    tmp_path: Path, receiver: DicomReceiver, engine: Engine, monkeypatch: pytest.MonkeyPatch,
) -> None:
    gate = _Gate(monkeypatch)

    def disk_full(engine_: Engine) -> Callable[[], None]:
        def fail(_conn: Any) -> None:  # raised where the COMMIT would reach the disk
            raise OperationalError("COMMIT", {}, sqlite3.OperationalError(
                "database or disk is full"))

        event.listen(engine_, "commit", fail)
        return lambda: event.remove(engine_, "commit", fail)

    gate.on_group[2] = disk_full
    outcomes: dict[str, BaseException | None] = {}

    def send(seed: str) -> None:
        try:
            send_dataset(make_dataset(seed=seed), _to(receiver))
            outcomes[seed] = None
        except BaseException as exc:
            outcomes[seed] = exc

    first = threading.Thread(target=send, args=("held",))
    first.start()
    assert receiver.committer_ is not None
    committer = receiver.committer_
    _wait_until(lambda: gate.sizes == [1], "the first group")
    group = [threading.Thread(target=send, args=(f"doomed{i}",)) for i in range(4)]
    for thread in group:
        thread.start()
    _wait_until(lambda: committer.pending == 4, "four queued instances")
    gate.release.set()
    for thread in (first, *group):
        thread.join(timeout=60)
    assert gate.sizes == [1, 4]
    assert outcomes.pop("held") is None
    assert len(outcomes) == 4
    for seed, exc in outcomes.items():  # no success sent for any of the group
        assert isinstance(exc, DicomSendError), (seed, exc)
        assert f"0x{STATUS_OUT_OF_RESOURCES:04X}" in str(exc)
    assert _count(engine, Instance) == 1
    assert len(list((tmp_path / "data" / "dicom").rglob("*.dcm"))) == 1  # no orphan file
    assert committer.stats["failed_groups"] == 1
    assert receiver.stats["failed"] == 4
    # the receiver keeps serving, and a resend of the refused instances succeeds
    send("doomed0")
    assert outcomes["doomed0"] is None
    assert _count(engine, Instance) == 2


def test_a_record_that_fails_alone_fails_only_its_instance(
    tmp_path: Path, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeds = ("before", "always", "once", "after")
    firsts = [instance_meta(make_dataset(seed=seed, patient_id=f"P-{seed}")) for seed in seeds]
    for i, meta in enumerate(firsts):  # the studies are on the worklist: the ORM path
        record_instance(engine, meta=meta, path=f"dicom/first{i}.dcm", size=10)
    seconds = [dict(m, sop_instance_uid=f"{m['sop_instance_uid']}.2") for m in firsts]
    real = intake_module._record_in
    conflicts = {"always": 2, "once": 1}  # attempts that hit a unique-constraint conflict

    def conflicting(session: Session, meta: Mapping[str, Any], sop: str, *args: Any) -> Any:
        seed = str(meta.get("accession_number", ""))[3:]
        if conflicts.get(seed, 0) > 0:
            conflicts[seed] -= 1
            # as if another process had just inserted this patient
            session.add(Patient(patient_id="P-before"))
            session.flush()
        return real(session, meta, sop, *args)

    monkeypatch.setattr(intake_module, "_record_in", conflicting)
    seconds.insert(2, {"sop_instance_uid": "1.2.3"})  # no study UID
    outcomes = intake_module.record_instances(
        engine, [(m, f"dicom/{i}.dcm", 10) for i, m in enumerate(seconds)])
    assert isinstance(outcomes[1], WorklistError) and "UNIQUE" in str(outcomes[1])
    assert isinstance(outcomes[2], ValueError)
    for ok in (outcomes[0], outcomes[3], outcomes[4]):
        assert isinstance(ok, tuple) and ok[1] is True, ok
    assert conflicts == {"always": 0, "once": 0}  # "once" succeeded on its retry
    assert _count(engine, Instance) == 4 + 3
    assert _count(engine, Patient) == 4


def test_a_group_follows_the_rules_of_record_instance(engine: Engine) -> None:
    """New studies (the Core inserts) and the rest (the ORM) mixed in one group."""
    on_list = instance_meta(make_dataset(seed="on-list", patient_id="P1"))
    record_instance(engine, meta=on_list, path="dicom/a.dcm", size=1)
    study = "1.2.826.0.1.3680043.8.498.77"
    pa = instance_meta(make_dataset(seed="pa", study_uid=study, patient_id="P1"))
    lat = instance_meta(make_dataset(seed="lat", study_uid=study, patient_id="P1"))
    other = instance_meta(make_dataset(seed="other", patient_id="P2"))
    moved = dict(pa, study_instance_uid="1.2.826.0.1.3680043.8.498.78")
    more = dict(on_list, sop_instance_uid=on_list["sop_instance_uid"] + ".2")
    group = [pa, on_list, lat, pa, other, moved, more]
    outcomes = intake_module.record_instances(
        engine, [(m, f"dicom/{i}.dcm", 5) for i, m in enumerate(group)])
    assert outcomes == [
        (study, True), (on_list["study_instance_uid"], False), (study, True), (study, False),
        (other["study_instance_uid"], True), (study, False),
        (on_list["study_instance_uid"], True),
    ]
    assert _count(engine, Instance) == 5
    assert _count(engine, Patient) == 2  # P1 existed, P2 is new
    assert _count(engine, Job) == 3  # one per study: nothing re-queued a pending job
    studies = {s.study_instance_uid: s for s in list_studies(engine)}
    assert studies[study].patient is not None and studies[study].patient.patient_id == "P1"
    assert studies[study].status == "queued" and studies[study].description == "CHEST PA"
    assert {i.sop_instance_uid for i in list_instances(engine, study)} == {
        pa["sop_instance_uid"], lat["sop_instance_uid"]}


def test_a_conflicting_core_insert_records_the_group_again_one_by_one(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    record_instance(engine, meta=instance_meta(make_dataset(seed="p1", patient_id="P1")),
                    path="dicom/a.dcm", size=1)
    real_init = intake_module._NewStudies.__init__

    def blind(self: Any, *args: Any) -> None:  # as if P1 were inserted after the lookup
        real_init(self, *args)
        self.patients.clear()

    monkeypatch.setattr(intake_module._NewStudies, "__init__", blind)
    metas = [instance_meta(make_dataset(seed=f"n{i}", patient_id="P1")) for i in range(3)]
    outcomes = intake_module.record_instances(engine, [(m, "dicom/x.dcm", 1) for m in metas])
    assert outcomes == [(m["study_instance_uid"], True) for m in metas]
    assert _count(engine, Instance) == 4 and _count(engine, Patient) == 1


def test_a_lone_instance_is_committed_at_once(engine: Engine) -> None:
    committer = GroupCommitter(engine)
    committer.start()
    try:
        meta = instance_meta(make_dataset(seed="lone"))
        t0 = time.perf_counter()
        assert committer.record(meta, Path("dicom/lone.dcm"), 10) == (
            meta["study_instance_uid"], True)
        elapsed = time.perf_counter() - t0
        assert committer.record(meta, Path("dicom/lone.dcm"), 10)[1] is False
    finally:
        committer.stop()
    assert committer.stats["groups"] == 2 and committer.stats["largest_group"] == 1
    assert elapsed < 5  # no waiting for company (a busy machine still fsyncs slowly)
    # stopped: records take the direct path
    other = instance_meta(make_dataset(seed="after-stop"))
    assert committer.record(other, Path("dicom/x.dcm"), 10)[1] is True
    assert committer.stats["groups"] == 2


def test_group_commit_can_be_turned_off(tmp_path: Path, engine: Engine) -> None:
    scp = DicomReceiver(tmp_path / "data", engine, host="127.0.0.1", port=free_port(),
                        max_group=0)
    with scp:
        assert scp.committer_ is None
        send_dataset(make_dataset(seed="direct"), _to(scp))
    assert len(list_studies(engine)) == 1
