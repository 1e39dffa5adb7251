#!/usr/bin/env bash
# test/install/readme-config.sh - prints the example config of README.md: the ```json block that
# follows the line "<!-- example-config -->". The install test (test/install/run.sh) and the image
# test (test/image/run.sh) check this very text, so the README and the tests cannot drift.
set -euo pipefail
readme=${1:-$(dirname "$0")/../../README.md}
out=$(awk '/<!-- example-config -->/ {m = 1; next}
           m == 1 && /^```json$/ {m = 2; next}
           m == 2 && /^```$/ {exit}
           m == 2 {print}' "$readme")
[[ -n $out ]] || { echo "readme-config: no \`\`\`json block after <!-- example-config --> in $readme" >&2; exit 1; }
printf '%s\n' "$out"
