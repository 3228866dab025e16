#!/usr/bin/env bash
# docs/validation.md's profile table must be what `moedist plan --rules` prints from the code.
set -euo pipefail
moedist=$1 doc=$2
diff <("$moedist" plan --rules) \
     <(sed -n '/<!-- BEGIN PROFILE RULES/,/<!-- END PROFILE RULES/p' "$doc" | sed '1d;$d') \
  && echo "docs/validation.md profile rules match moedist plan --rules"
