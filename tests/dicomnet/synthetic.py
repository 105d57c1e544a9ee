"""Tiny synthetic DICOM files and network helpers shared by the receiver and dicomnet tests."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydicom import Dataset, FileMetaDataset
from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, UID, ExplicitVRLittleEndian, generate_uid

DX = "1.2.840.10008.5.1.4.1.1.1.1"
CR = "1.2.840.10008.5.1.4.1.1.1"
SC = "1.2.840.10008.5.1.4.1.1.7"
RT_PLAN = "1.2.840.10008.5.1.4.1.1.481.5"

STORESCU = Path("/usr/bin/storescu")
ECHOSCU = Path("/usr/bin/echoscu")

#: Skip a test module unless dcmtk's storescu is installed (apt-get install dcmtk).
needs_dcmtk = pytest.mark.skipif(
    not STORESCU.exists() or not ECHOSCU.exists(),
    reason="dcmtk is not installed (/usr/bin/storescu missing): apt-get install dcmtk",
)


def orthanc_binary() -> Path | None:
    """Return the Orthanc executable, or None when Orthanc is not installed."""
    for candidate in ("/usr/sbin/Orthanc", "/usr/bin/Orthanc"):
        if Path(candidate).exists():
            return Path(candidate)
    found = shutil.which("Orthanc")
    return Path(found) if found else None


@dataclass
class OrthancServer:
    """A running Orthanc: its REST base URL and DICOM port."""

    http: str
    dicom_port: int
    log: Path

    def call(self, method: str, path: str, body: bytes | dict[str, Any] | None = None) -> Any:
        """Call the REST API; JSON in and out (DICOM bytes for uploads)."""
        data = json.dumps(body).encode() if isinstance(body, dict) else body
        request = urllib.request.Request(self.http + path, data=data, method=method)
        if isinstance(body, bytes):
            request.add_header("Content-Type", "application/dicom")
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.loads(response.read() or b"null")


@contextmanager
def run_orthanc(root: Path, modalities: dict[str, list[Any]]) -> Iterator[OrthancServer]:
    """Start Orthanc in the foreground on free ports with a config written to ``root``;
    kill it on exit."""
    orthanc = orthanc_binary()
    assert orthanc is not None
    http_port, dicom_port = free_port(), free_port()
    config = {
        "Name": "radiolens-test",
        "StorageDirectory": str(root / "storage"),
        "IndexDirectory": str(root / "storage"),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": "ORTHANC",
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "DicomModalities": modalities,
        "DicomCheckCalledAet": False,
        "DicomAlwaysAllowStore": True,
        "DicomCheckModalityHost": False,
        "Plugins": [],
        "SaveJobs": False,
        "StableAge": 2,
    }
    (root / "config.json").write_text(json.dumps(config))
    log = root / "orthanc.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(orthanc), str(root / "config.json")], stdout=out,
                                stderr=subprocess.STDOUT)
    server = OrthancServer(f"http://127.0.0.1:{http_port}", dicom_port, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                pytest.fail(f"Orthanc exited with {proc.returncode}:\n{log.read_text()[-2000:]}")
            try:
                server.call("GET", "/system")
                break
            except (urllib.error.URLError, ConnectionError):
                if time.monotonic() > deadline:
                    pytest.fail(f"Orthanc did not start:\n{log.read_text()[-2000:]}")
                time.sleep(0.1)
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def free_port() -> int:
    """Return a TCP port that is free right now on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def make_dataset(
    *,
    seed: str,
    sop_class: str = DX,
    study_uid: str | None = None,
    patient_id: str = "P001",
    size: int = 64,
    colour: bool = False,
    frames: int = 1,
    pixels: bool = True,
    truncate: bool = False,
) -> Dataset:
    """Build a small radiograph dataset; UIDs are derived from ``seed`` (deterministic)."""
    rng = np.random.default_rng(zlib.crc32(seed.encode()))
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UID(sop_class)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = generate_uid(entropy_srcs=[seed, "sop"])
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID = study_uid or generate_uid(entropy_srcs=[seed, "study"])
    ds.SeriesInstanceUID = generate_uid(entropy_srcs=[seed, "series"])
    ds.PatientID = patient_id
    ds.PatientName = "Test^Patient"
    ds.PatientSex = "F"
    ds.PatientBirthDate = "19600101"
    ds.StudyDate = "20240102"
    ds.AccessionNumber = "ACC" + seed[:10]
    ds.StudyDescription = "CHEST PA"
    ds.Modality = {DX: "DX", CR: "CR"}.get(sop_class, "OT")
    if sop_class == DX:
        ds.PresentationIntentType = "FOR PRESENTATION"
        ds.ImagerPixelSpacing = [0.2, 0.2]
    ds.PatientOrientation = ["L", "F"]
    if sop_class == SC:
        ds.ConversionType = "DI"
    if sop_class == RT_PLAN:
        return ds
    ds.Rows = ds.Columns = size
    if colour:
        ds.SamplesPerPixel = 3
        ds.PhotometricInterpretation = "RGB"
        ds.PlanarConfiguration = 0
        ds.BitsAllocated = ds.BitsStored = 8
        ds.HighBit = 7
        array = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
    else:
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 12
        ds.HighBit = 11
        shape = (frames, size, size) if frames > 1 else (size, size)
        array = rng.integers(0, 4095, shape, dtype=np.uint16)
    ds.PixelRepresentation = 0
    if frames > 1:
        ds.NumberOfFrames = frames
    if pixels:
        data = array.tobytes()
        ds.PixelData = data[: len(data) // 2] if truncate else data
    return ds


def write_dicom(directory: Path, name: str, **kwargs: object) -> Path:
    """Write :func:`make_dataset` (seeded by ``name``) to ``directory/name.dcm``."""
    directory.mkdir(parents=True, exist_ok=True)
    ds = make_dataset(seed=name, **kwargs)  # type: ignore[arg-type]
    path = directory / f"{name}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path
