"""Writes small synthetic DICOM series (classic MR, standard diffusion tags) for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def write_dicom_series(
    folder: Path,
    *,
    bvals: tuple[float, ...] = (0, 1000, 1000, 1000, 1000, 1000, 1000),
    shape: tuple[int, int, int] = (16, 16, 6),
    diffusion: bool = True,
) -> Path:
    """Write one series of 2D DICOM files with patient identifiers (to check they are dropped)."""
    import pydicom  # noqa: F401
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    directions = np.array([[0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 0, 1], [0, 1, 1]], float)
    directions[1:] /= np.linalg.norm(directions[1:], axis=1, keepdims=True)
    nx, ny, nz = shape
    series, study, frame = generate_uid(), generate_uid(), generate_uid()
    index = 0
    for volume, b in enumerate(bvals if diffusion else (0,)):
        for z in range(nz):
            index += 1
            meta = FileMetaDataset()
            meta.MediaStorageSOPClassUID = MRImageStorage
            meta.MediaStorageSOPInstanceUID = generate_uid()
            meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds = FileDataset(None, {}, file_meta=meta, preamble=b"\0" * 128)
            ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
            ds.PatientName, ds.PatientID, ds.PatientBirthDate = "Doe^Jane", "SECRET123", "19700101"
            ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.FrameOfReferenceUID = study, series, frame
            ds.Modality, ds.Manufacturer, ds.SeriesNumber = "MR", "GE MEDICAL SYSTEMS", 5
            ds.SeriesDescription = "DTI" if diffusion else "T1"
            ds.InstanceNumber, ds.AcquisitionNumber = index, 1
            ds.ImagePositionPatient, ds.ImageOrientationPatient = [0, 0, float(2 * z)], [1, 0, 0, 0, 1, 0]
            ds.PixelSpacing, ds.SliceThickness, ds.SpacingBetweenSlices = [2, 2], 2, 2
            ds.Rows, ds.Columns, ds.SamplesPerPixel = ny, nx, 1
            ds.PhotometricInterpretation = "MONOCHROME2"
            ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
            ds.EchoTime, ds.RepetitionTime, ds.MagneticFieldStrength = 80, 5000, 3
            ds.ScanningSequence, ds.SequenceVariant, ds.MRAcquisitionType = "EP", "SK", "2D"
            ds.PatientPosition = "HFS"
            if diffusion:
                ds.add_new((0x0018, 0x9087), "FD", float(b))
                ds.add_new((0x0018, 0x9089), "FD", [float(x) for x in directions[volume % len(directions)]])
            pixels = 200 + 800 * np.exp(-b * 8e-4) * np.ones((ny, nx)) + np.arange(nx)[None, :]
            ds.PixelData = pixels.astype(np.uint16).tobytes()
            ds.save_as(folder / f"IM{index:04d}.dcm", enforce_file_format=True)
    return folder
