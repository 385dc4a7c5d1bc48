#!/usr/bin/env bash
# Builds runs/brain3d-data for configs/synth/brain3d.yaml: links to the shared brain DWI series
# (no copies; the water phantom is left out, it is not a head). The phantom brains of varied anatomy
# are made in Python by docs/make_synth_brain3d.py (lcid.simulate.phantom.Anatomy.random).
set -euo pipefail
DATA=${1:-/work/shared/data/dwi}
OUT=runs/brain3d-data
mkdir -p "$OUT"
for series in philips_achieva_dstream_15dir_b2000 philips_elition_16dir_b1000 siemens_prisma_xa30_ap_pa_20dir; do
  mkdir -p "$OUT/$series"
  for f in "$DATA/$series"/*.nii.gz "$DATA/$series"/*.bval "$DATA/$series"/*.bvec "$DATA/$series"/*.json; do
    ln -sf "$f" "$OUT/$series/"
  done
done
