"""Removing patient identifiers from JSON sidecars before anything else sees them.

dcm2niix writes no patient name or ID unless asked (``-ba n``), but sidecars from other
tools, or edited by hand, may carry them. The rule follows the spirit of the DICOM
basic de-identification profile (PS3.15 Annex E): every ``Patient*`` field, every date,
every UID, and the people, places and devices that point back to a person or a visit.
Acquisition parameters (timing, gradients, phase encoding) are kept: the check needs them.
"""

from __future__ import annotations

from typing import Any

#: Fields removed by exact name, beyond the prefix/suffix rules of :func:`is_identifying`.
IDENTIFYING_FIELDS = frozenset(
    {
        "AccessionNumber",
        "StudyID",
        "InstitutionName",
        "InstitutionAddress",
        "InstitutionalDepartmentName",
        "ReferringPhysicianName",
        "PerformingPhysicianName",
        "RequestingPhysician",
        "OperatorsName",
        "PhysiciansOfRecord",
        "NameOfPhysiciansReadingStudy",
        "DeviceSerialNumber",
        "StationName",
        "ImageComments",
        "StudyComments",
        "AdditionalPatientHistory",
        "OtherPatientIDs",
        "MedicalRecordLocator",
        "Occupation",
        "EthnicGroup",
        "MilitaryRank",
        "BranchOfService",
        "RequestAttributesSequence",
    }
)


def is_identifying(key: str) -> bool:
    """True for a sidecar field that may identify a patient, a visit or a site.

    Examples
    --------
    >>> is_identifying("PatientName"), is_identifying("AcquisitionDateTime")
    (True, True)
    >>> is_identifying("PhaseEncodingDirection")
    False
    """
    return (
        key in IDENTIFYING_FIELDS
        or key.startswith("Patient")
        or key.endswith(("Date", "DateTime", "UID", "UIDs"))
    )


def deidentify(sidecar: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``sidecar`` without identifying fields (nested objects cleaned too)."""
    clean: dict[str, Any] = {}
    for key, value in sidecar.items():
        if is_identifying(str(key)):
            continue
        clean[key] = deidentify(value) if isinstance(value, dict) else value
    return clean
