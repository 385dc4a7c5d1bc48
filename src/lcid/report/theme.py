"""Colours and inline stylesheet of the report (no external fonts or files)."""

from __future__ import annotations

#: Traffic-light colour of each severity; grey for "not applicable".
LIGHTS = {
    "none": "#2e9d49",
    "mild": "#f2c200",
    "moderate": "#f28e2b",
    "severe": "#d62728",
    "not applicable": "#9e9e9e",
}
#: Words shown to a beginner for each state.
LABELS = {
    "none": "OK",
    "mild": "mild",
    "moderate": "moderate",
    "severe": "severe",
    "not applicable": "not applicable",
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif;
       max-width: 1080px; margin: 0 auto; padding: 1.5em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
.sub { color: #666; margin-top: 0; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ddd; padding: 0.35em 0.7em; text-align: left; vertical-align: top; }
th { background: #f5f5f5; }
.light { display: inline-block; width: 0.95em; height: 0.95em; border-radius: 50%;
         vertical-align: -0.1em; margin-right: 0.4em; border: 1px solid rgba(0,0,0,0.25); }
.sev { font-weight: 600; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #eee; }
figcaption { color: #555; font-size: 0.92em; max-width: 820px; }
pre { background: #f6f8fa; border: 1px solid #e1e4e8; border-radius: 4px; padding: 0.6em 0.8em;
      overflow-x: auto; font-size: 0.85em; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.advice li { margin-bottom: 0.8em; } cite { color: #555; font-size: 0.9em; display: block; }
.warnings { background: #fff8e1; border-left: 4px solid #f2c200; padding: 0.5em 1em; }
.explanation { font-size: 1.05em; }
.metrics td:first-child { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 0.9em; }
.legend span { margin-right: 1.2em; white-space: nowrap; }
footer { margin-top: 3em; color: #777; font-size: 0.85em; }
"""
