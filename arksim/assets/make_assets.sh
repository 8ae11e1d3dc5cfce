#!/usr/bin/env bash
# How the sample outputs were made (run once; the files are committed).
# One 2-second H.264 clip per aspect ratio Ark offers and its last frame as PNG (media.py
# stretches the clip's timing to the requested duration). The simulator
# appends a per-task `free` box to the mp4 and a tEXt chunk to the png, so every task
# gets distinct but still valid files.
set -euo pipefail
cd "$(dirname "$0")"
for spec in "16x9 480x270" "9x16 270x480" "1x1 360x360" "4x3 360x270" "3x4 270x360" "21x9 504x216"; do
  set -- $spec
  ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=$2:rate=24:duration=2" \
    -c:v libx264 -profile:v main -preset veryslow -crf 32 -pix_fmt yuv420p \
    -movflags +faststart -map_metadata -1 -fflags +bitexact -flags:v +bitexact "video_$1.mp4"
  ffmpeg -hide_banner -loglevel error -y -sseof -0.05 -i "video_$1.mp4" -frames:v 1 -update 1 "last_frame_$1.png"
done
