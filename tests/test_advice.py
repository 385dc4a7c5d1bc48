"""The recommendations knowledge base: coverage, scan-specific text, safe templates."""

from __future__ import annotations

import re

import pytest

from lcid.advice import ACQUISITION_PREFIX, attach_advice, load_knowledge
from lcid.advice.template import format_indices, render
from lcid.dwi.finding import Finding, Findings
from lcid.dwi.vocabulary import PROBLEM_IDS, SEVERITIES
from lcid.errors import InputError
from tests.conftest import make_scan

AFFECTED = {"volumes": [3, 4, 5, 9], "slices": [7], "pairs": [[3, 7], [4, 7], [5, 7], [9, 7]]}
#: Problems whose explanation names the affected volumes when they are known.
NAMES_VOLUMES = ("motion", "eddy_current", "missing_slices", "spikes", "gradient_table")
#: Problems whose explanation names the phase-encoding axis.
NAMES_PE_AXIS = ("eddy_current", "ghosting")


@pytest.fixture(scope="module")
def scan():
    return make_scan(shape=(16, 16, 10), n_dirs=12, pe="j-")


def _findings(severity: str, *, where=None, metrics=None, **input_extra) -> Findings:
    return Findings(
        input={"phase_encoding_axis": "j-", "orientation": "LAS", **input_extra},
        findings=tuple(
            Finding(problem=p, severity=severity, confidence=0.8, where=dict(where or {}), metrics=dict(metrics or {}))
            for p in PROBLEM_IDS
        ),
    )


def _sentences(text: str) -> int:
    return len(re.findall(r"[a-z0-9)\]%][.!?](?:\s|$)", text.replace("e.g.", "eg")))


def test_knowledge_covers_every_problem_and_severity():
    kb = load_knowledge()
    assert set(kb) == set(PROBLEM_IDS)
    for problem, advice in kb.items():
        assert set(advice.explanation) == set(SEVERITIES), problem
        for severity in ("mild", "moderate", "severe"):
            kinds = {r.kind for r in advice.remedies if severity in r.severities}
            assert kinds == {"processing", "acquisition"}, (problem, severity)
        assert all(r.reference for r in advice.remedies), problem


@pytest.mark.parametrize("severity", SEVERITIES)
@pytest.mark.parametrize("problem", PROBLEM_IDS)
def test_every_problem_and_severity_gets_advice(scan, problem, severity):
    finding = attach_advice(_findings(severity, where=AFFECTED), scan)[problem]
    text = finding.explanation
    assert text and "{" not in text and "[[" not in text and "unknown" not in text
    assert 1 <= _sentences(text) <= 3, text
    processing = [r for r in finding.recommendations if not r.action.startswith(ACQUISITION_PREFIX)]
    if severity == "none":
        assert not processing  # reassurance, at most an acquisition tip
    else:
        assert processing and all(r.reference for r in finding.recommendations)
        assert any(r.action.startswith(ACQUISITION_PREFIX) for r in finding.recommendations)
    for r in finding.recommendations:
        assert "{" not in r.action and "{" not in r.command


@pytest.mark.parametrize("problem", NAMES_VOLUMES)
def test_explanation_names_the_affected_volumes(scan, problem):
    finding = attach_advice(_findings("moderate", where=AFFECTED), scan)[problem]
    assert "3-5 and 9" in finding.explanation


@pytest.mark.parametrize("problem", NAMES_PE_AXIS)
def test_explanation_names_the_phase_encoding_axis(scan, problem):
    finding = attach_advice(_findings("mild"), scan)[problem]
    assert "j- axis (anterior-posterior in this image)" in finding.explanation


def test_commands_use_the_scan_facts():
    scan = make_scan(shape=(16, 16, 10), n_dirs=12, pe="i").replace(
        path="/data/sub-01_dwi.nii.gz", sidecar={"PhaseEncodingDirection": "i", "TotalReadoutTime": 0.0345}
    )
    findings = Findings(
        input={"path": scan.path, "shape": list(scan.shape), "orientation": "LAS"},
        findings=(Finding(problem="motion", severity="severe", where={"volumes": [2, 3, 10]}),),
    )
    commands = "\n".join(r.command for r in attach_advice(findings, scan)["motion"].recommendations)
    assert "--imain=sub-01_dwi.nii.gz" in commands and "--bvals=sub-01_dwi.bval" in commands
    assert 'echo "1 0 0 0.0345" > acqparams.txt' in commands
    assert "$(seq 14)" in commands  # 2 b0 + 12 directions
    assert "--vol_idx 0,1,4-9,11-13" in commands  # every volume but the affected ones
    assert "--mporder" not in commands  # no SliceTiming in the sidecar
    with_timing = scan.replace(sidecar={**scan.sidecar, "SliceTiming": [0.0, 0.5, 1.0]})
    commands = "\n".join(r.command for r in attach_advice(findings, with_timing)["motion"].recommendations)
    assert "--mporder=6" in commands and "--json=sub-01_dwi.json" in commands


def test_topup_only_with_a_reverse_phase_encoding_pair(scan):
    def topup_mentioned(findings):
        advised = attach_advice(findings, scan)
        return any("topup" in r.command for p in ("motion", "eddy_current") for r in advised[p].recommendations)

    assert topup_mentioned(_findings("moderate", reverse_pe_pair=True))
    assert not topup_mentioned(_findings("moderate"))


def test_unknown_phase_encoding_says_so_and_suggests_finding_it():
    scan = make_scan(shape=(16, 16, 10), n_dirs=12).replace(sidecar={})
    findings = Findings(input={}, findings=(Finding(problem="eddy_current", severity="mild"),))
    finding = attach_advice(findings, scan)["eddy_current"]
    assert "unknown" in finding.explanation
    assert any("dcm2niix" in r.command for r in finding.recommendations)


def test_missing_everything_does_not_crash():
    bare = Findings(input={}, findings=tuple(Finding(problem=p, severity="severe") for p in PROBLEM_IDS))
    for finding in attach_advice(bare, None).findings:
        assert finding.explanation and "{" not in finding.explanation and "[[" not in finding.explanation


def test_metrics_fill_the_text_and_bad_values_are_dropped(scan):
    findings = Findings(
        input={},
        findings=(
            Finding(problem="motion", severity="mild", metrics={"max_fd_mm": 1.234}),
            Finding(problem="noise", severity="mild", metrics={"snr_b0": float("nan")}),
        ),
    )
    advised = attach_advice(findings, scan)
    assert "1.23 mm" in advised["motion"].explanation
    assert "nan" not in advised["noise"].explanation.lower() and "SNR" not in advised["noise"].explanation


def test_not_applicable_says_why(scan):
    findings = Findings(
        input={"object": "phantom"},
        findings=(
            Finding(problem="fov_cutoff", applicable=False),
            Finding(problem="noise", applicable=False, metrics={"reason": "object too small for MP-PCA"}),
        ),
    )
    advised = attach_advice(findings, scan)
    assert "does not apply" in advised["fov_cutoff"].explanation and "phantom" in advised["fov_cutoff"].explanation
    assert "object too small for MP-PCA" in advised["noise"].explanation
    assert advised["noise"].recommendations == ()


def test_findings_are_copied_not_changed(scan):
    findings = _findings("moderate")
    advised = attach_advice(findings, scan)
    assert all(f.explanation == "" for f in findings.findings)
    assert [f.problem for f in advised.findings] == list(PROBLEM_IDS)


def test_render_is_safe():
    assert render("{m[x]:.1f} mm[[, in {volumes}]]", {"m": {"x": 2.25}}) == "2.2 mm"
    assert render("{pe} {m[y]} {nope.attr}", {"m": {}}) == "unknown unknown unknown"
    assert render("{m[x]:.1f}", {"m": {"x": "text"}}) == "text"
    assert render("broken {", {}) == "broken {"
    assert render("[[a {x} ]]b", {"x": 1}) == "a 1 b"


def test_format_indices():
    assert format_indices([9, 3, 4, 5]) == "3-5 and 9"
    assert format_indices([1, 2]) == "1, 2"
    assert format_indices([]) == ""


def test_a_broken_knowledge_file_is_a_one_line_input_error(tmp_path):
    bad = tmp_path / "kb.yaml"
    bad.write_text("problems:\n  motion:\n    title: Motion\n")
    with pytest.raises(InputError, match="no advice for"):
        load_knowledge(bad)
    with pytest.raises(InputError, match="not found"):
        load_knowledge(tmp_path / "absent.yaml")
