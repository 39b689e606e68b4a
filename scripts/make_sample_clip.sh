#!/usr/bin/env bash
# Rebuilds mmstream/assets/sample.mp4, the clip `mmstream demo` plays.
# Video: scikit-image's public-domain `astronaut` photo (Eileen Collins, NASA), with a slow zoom.
# Audio: two sentences spoken by espeak-ng (voice en-us), separated by a pause.
# Needs: python with scikit-image, espeak-ng, ffmpeg.
set -euo pipefail
out=${1:-mmstream/assets/sample.mp4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python -c "import skimage.data, skimage.io; skimage.io.imsave('$tmp/face.png', skimage.data.astronaut())"
espeak-ng -v en-us -s 150 -w "$tmp/s1.wav" "Hello from the kitchen camera. I am very happy today."
espeak-ng -v en-us -s 150 -w "$tmp/s2.wav" "The coffee is ready on the table."
ffmpeg -loglevel error -y -f lavfi -i anullsrc=r=22050:cl=mono -t 1.0 "$tmp/gap.wav"
ffmpeg -loglevel error -y -i "$tmp/s1.wav" -i "$tmp/gap.wav" -i "$tmp/s2.wav" -i "$tmp/gap.wav" \
  -filter_complex "[0:a][1:a][2:a][3:a]concat=n=4:v=0:a=1[a]" -map "[a]" "$tmp/speech.wav"
duration=$(ffprobe -v error -show_entries format=duration -of csv=p=0 "$tmp/speech.wav")
ffmpeg -loglevel error -y -loop 1 -framerate 10 -i "$tmp/face.png" -i "$tmp/speech.wav" \
  -vf "scale=384:384,zoompan=z='1+0.0015*on':d=1:s=320x320:fps=10,format=yuv420p" \
  -t "$duration" -c:v libx264 -preset veryslow -crf 30 -g 20 \
  -c:a aac -b:a 32k -ac 1 -ar 16000 -movflags +faststart "$out"
ls -l "$out"
