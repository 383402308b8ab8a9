#!/usr/bin/env bash
# Regenerate the example clips: three synthetic voices made with espeak-ng, three clips each,
# 16 kHz, 16-bit mono WAV. Needs espeak-ng and sox (Debian: apt-get install espeak-ng sox).
#
# The voices differ in espeak-ng voice, variant and pitch, so a speaker encoder tells them apart:
#   alice: en-us, female variant f2, pitch 60
#   bob:   en-us, male variant m3, pitch 35
#   carol: en-gb, female variant f4, pitch 70
# The output is generated from text alone and dedicated to the public domain (CC0-1.0).
set -euo pipefail
cd "$(dirname "$0")"

make_clip() {  # name voice pitch speed text
  local name=$1 voice=$2 pitch=$3 speed=$4 text=$5
  espeak-ng -v "$voice" -p "$pitch" -s "$speed" -w "$name.tmp.wav" "$text"
  # Resample to 16 kHz and add 0.2 s of silence at each end (trimming removes it again).
  sox "$name.tmp.wav" -r 16000 -b 16 -c 1 "$name.wav" pad 0.2 0.2
  rm -f "$name.tmp.wav"
}

make_clip alice_1 en-us+f2 60 150 "The quick brown fox jumps over the lazy dog."
make_clip alice_2 en-us+f2 60 150 "Please call Stella and ask her to bring these things."
make_clip alice_3 en-us+f2 60 150 "A voice becomes a single vector of numbers."

make_clip bob_1 en-us+m3 35 140 "Six spoons of fresh snow peas and a thick slab of cheese."
make_clip bob_2 en-us+m3 35 140 "The rainbow is a division of white light into colours."
make_clip bob_3 en-us+m3 35 140 "We will meet at the station at half past nine."

make_clip carol_1 en-gb+f4 70 160 "When sunlight strikes raindrops, they act as a prism."
make_clip carol_2 en-gb+f4 70 160 "She sells sea shells by the sea shore every summer."
make_clip carol_3 en-gb+f4 70 160 "Every morning the old clock in the hall strikes seven."
