"""The offline HTML report, its figures and the terminal summary."""

from __future__ import annotations

import base64
import re
from html.parser import HTMLParser

import numpy as np
import pytest
from rich.console import Console

from lcid.dwi.context import build_context
from lcid.dwi.finding import Finding, Findings
from lcid.dwi.vocabulary import PROBLEM_IDS
from lcid.report import figures
from lcid.report.html import render_report
from lcid.report.summary import terminal_summary
from tests.conftest import make_scan

PNG = b"\x89PNG\r\n\x1a\n"
IDENTIFIERS = {"PatientName": "Doe^Johnathan", "PatientID": "ID-99887766", "PatientBirthDate": "19700101",
               "AcquisitionDateTime": "2024-05-06T07:08:09"}  # fmt: skip


@pytest.fixture(scope="module")
def scan():
    return make_scan(shape=(24, 24, 14), n_dirs=12).replace(
        sidecar={"PhaseEncodingDirection": "j-", "Manufacturer": "Siemens", **IDENTIFIERS}, path="/x/sub-01_dwi.nii.gz"
    )


@pytest.fixture(scope="module")
def context(scan):
    return build_context(scan)


def _findings(scan, *, evidence: bool) -> Findings:
    n = scan.n_volumes
    fd = np.linspace(0, 0.5, n)
    fd[5] = 2.6
    loss = np.zeros((n, scan.shape[2]))
    loss[7, 6] = 0.9
    made = {
        "motion": Finding(problem="motion", severity="moderate", confidence=0.9, metrics={"max_fd_mm": 2.6},
                          where={"volumes": [5], "slices": []},
                          evidence={"fd_mm": fd, "translation_mm": np.zeros((n, 3))} if evidence else {}),
        "missing_slices": Finding(problem="missing_slices", severity="severe", confidence=0.99,
                                  metrics={"max_signal_loss": 0.9},
                                  where={"volumes": [7], "slices": [6], "pairs": [[7, 6]]},
                                  evidence={"signal_loss": loss, "z_scores": -loss * 10} if evidence else {}),
        "fov_cutoff": Finding(problem="fov_cutoff", severity="mild", confidence=0.6,
                              metrics={"superior_cut_mm": 4.0, "inferior_cut_mm": 0.0, "cut_edges": ["superior"]},
                              evidence={"weird_key": "not an array", "short": np.ones(3)} if evidence else {}),
        "gradient_table": Finding(problem="gradient_table", evidence={"coherence_by_transform": {"x,y,z": 0.8, "-x,y,z": 0.5}}
                                  if evidence else {}),
        "ghosting": Finding(problem="ghosting", applicable=False, metrics={"reason": "object fills the field of view"}),
    }  # fmt: skip
    return Findings(
        input={"path": scan.path, "shape": list(scan.shape), "voxel_size_mm": [2, 2, 2], "phase_encoding_axis": "j-",
               "orientation": scan.orientation, "shells": [{"bval": 0, "count": 2},
               {"bval": 1000, "count": 12, "unique_directions": 12}], "PatientName": IDENTIFIERS["PatientName"]},
        findings=tuple(made.get(p, Finding(problem=p)) for p in PROBLEM_IDS),
        warnings=("sidecar field TotalReadoutTime missing <check>",),
    )  # fmt: skip


class _Collector(HTMLParser):
    def __init__(self):
        super().__init__()
        self.stack, self.urls, self.tags, self.errors = [], [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag not in ("meta", "img", "br", "link", "input"):
            self.stack.append(tag)
        self.urls += [v for k, v in attrs if k in ("src", "href", "action", "data") and v]

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1] == tag:
            self.stack.pop()
        else:
            self.errors.append(tag)


@pytest.fixture(scope="module")
def report_with_evidence(scan, context):
    return render_report(_findings(scan, evidence=True), scan, context=context, title="check <sub-01>")


def test_report_is_valid_self_contained_html(report_with_evidence):
    html = report_with_evidence
    parser = _Collector()
    parser.feed(html)
    assert html.startswith("<!DOCTYPE html>") and not parser.errors and not parser.stack
    assert 'class="summary"' in html and "<table" in html
    for url in parser.urls:  # only inline images and in-page anchors
        assert url.startswith(("data:image/png;base64,", "#")), url[:60]
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", html)
    assert "@import" not in html and "url(" not in html
    assert "check &lt;sub-01&gt;" in html and "&lt;check&gt;" in html  # title and warnings escaped


def test_summary_has_a_traffic_light_per_problem(report_with_evidence):
    summary = report_with_evidence.split('class="summary"')[1].split("</table>")[0]
    assert summary.count("<tr>") == len(PROBLEM_IDS) + 1
    for colour in ("#d62728", "#f28e2b", "#f2c200", "#2e9d49", "#9e9e9e"):  # severe, moderate, mild, none, n/a
        assert colour in summary
    assert "90%" in summary  # motion confidence


def test_evidence_figures_are_embedded(report_with_evidence, scan, context):
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', report_with_evidence)
    assert all(base64.b64decode(i).startswith(PNG) for i in images)
    # overview: b0 + DWI mosaics + sphere; motion trace; dropout map + worst volume; sagittal; gradient bars
    assert len(images) == 8
    # without evidence: the overview, the flagged volume (from where.pairs) and the sagittal view (from context)
    plain = render_report(_findings(scan, evidence=False), scan, context=context)
    assert len(re.findall(r"data:image/png;base64,", plain)) == 5
    assert "framewise displacement (mm)" in report_with_evidence.lower()


def test_no_patient_identifiers(report_with_evidence):
    for value in IDENTIFIERS.values():
        assert value not in report_with_evidence
    for key in IDENTIFIERS:
        assert key not in report_with_evidence
    assert "Siemens" in report_with_evidence and "sub-01_dwi.nii.gz" in report_with_evidence
    assert "/x/" not in report_with_evidence  # only the file name, never the folder


def test_advice_is_rendered_with_commands_and_references(report_with_evidence):
    assert "<pre><code>" in report_with_evidence and "--repol" in report_with_evidence
    assert "<cite>Andersson JLR" in report_with_evidence
    assert "does not apply to this scan: object fills the field of view" in report_with_evidence
    assert "the j- axis" in report_with_evidence or "j-" in report_with_evidence


def test_report_without_context_still_renders(scan):
    html = render_report(_findings(scan, evidence=True), scan)
    assert "data:image/png;base64," in html and "Summary" in html


def test_figures_return_png():
    rng = np.random.default_rng(0)
    assert figures.mosaic(rng.random((8, 8, 5)), title="t", highlight=[9, 2]).startswith(PNG)
    assert figures.volume_trace(rng.random(6), title="t", ylabel="y", flagged=[1, 99]).startswith(PNG)
    assert figures.slice_map(np.full((4, 3), np.nan), title="t", colorbar_label="c").startswith(PNG)
    assert figures.gradient_sphere(np.zeros(3), np.zeros((3, 3))).startswith(PNG)
    assert figures.sagittal_fov(rng.random((6, 5)), None).startswith(PNG)


def test_display_plane_puts_anterior_up_and_right_right():
    plane = np.zeros((4, 6))
    plane[3, 5] = 1  # largest x (left in LAS, x flipped) and largest y (anterior)
    las = np.diag([-2.0, 2.0, 2.0, 1.0])
    shown = figures.display_plane(plane, las)
    assert shown.shape == (6, 4) and shown[5, 0] == 1  # top row (origin lower), left column


def test_terminal_summary(scan):
    table = terminal_summary(_findings(scan, evidence=False))
    console = Console(record=True, width=120)
    console.print(table)
    text = console.export_text()
    assert table.row_count == len(PROBLEM_IDS)
    assert "severe" in text and "not applicable" in text and "1 volumes" in text
