#!/usr/bin/env bash
# Builds runs/brain3d-data for configs/synth/brain3d.yaml: links to the shared brain DWI series
# (no copies; the water phantom is left out, it is not a head) and six `lcid phantom` brains
# (noise seeds 0-5, b0 SNR 12-37; the phantom anatomy itself is fixed).
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
for k in 0 1 2 3 4 5; do
  if [ ! -f "$OUT/phantom_$k/dwi.nii.gz" ]; then
    lcid phantom --out "$OUT/phantom_$k" --seed "$k" --snr $((12 + 5 * k)) --shape 64,64,40
    rm -f "$OUT/phantom_$k/labels.nii.gz"  # a label map is not an image to learn
  fi
done
