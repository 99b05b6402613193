# Shared by the shell tests: check NAME CMD... runs CMD, prints "ok: NAME" or "FAIL: NAME" and
# counts both in $checks and $fails.
fails=0 checks=0
check() {
  local name=$1
  shift
  checks=$((checks + 1))
  if "$@"; then echo "ok: $name"; else fails=$((fails + 1)); echo "FAIL: $name"; fi
}
