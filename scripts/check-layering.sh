#!/bin/sh
# Checks every #include "..." of the production tree against the layers of
# ARCHITECTURE.md: a module includes its own headers and those of the layers
# below it, never above. Run by ctest as `layering`; needs no build.
#
#   include/cdi  <- common <- tls <- {sources, formats, pvc} <- importer
#                <- {manifests, pod} <- uploadserver <- cmd
#
# cmd/ (the faces) includes the public API (cdi/), the manifests/, pod/ and
# uploadserver/ libraries and its own headers: no internal header of the library's modules,
# common/ included.
set -eu
root=${1:-$(dirname "$0")/..}
cd "$root"

allowed() {
  case $1 in
    include)   echo "cdi" ;;
    common)    echo "cdi common" ;;
    tls)       echo "cdi common tls" ;;
    sources)   echo "cdi common tls sources" ;;
    formats)   echo "cdi common formats" ;;
    pvc)       echo "cdi common pvc" ;;
    importer)  echo "cdi common tls sources formats pvc importer" ;;
    manifests) echo "cdi common tls sources formats pvc importer manifests" ;;
    pod)       echo "cdi common tls sources formats pvc importer pod" ;;
    uploadserver) echo "cdi common tls sources formats pvc importer pod uploadserver" ;;
    cmd)       echo "cdi manifests pod uploadserver cmd" ;;
  esac
}

status=0
checked=0
for module in include common tls sources formats pvc importer manifests pod uploadserver cmd; do
  [ -d "$module" ] || { echo "layering: no $module/ directory" >&2; status=1; continue; }
  ok=$(allowed "$module")
  for file in $(find "$module" -name '*.h' -o -name '*.cc' | sort); do
    # Lines of the form: #include "dir/name.h"
    for target in $(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file"); do
      checked=$((checked + 1))
      top=${target%%/*}
      if [ "$top" = "$target" ]; then
        echo "$file: #include \"$target\": name the module (\"$module/...\")" >&2
        status=1
        continue
      fi
      case " $ok " in
        *" $top "*) ;;
        *)
          echo "$file: #include \"$target\": $module/ may include only: $ok" >&2
          status=1 ;;
      esac
      if [ "$top" = cdi ]; then path="include/$target"; else path="$target"; fi
      if [ ! -f "$path" ]; then
        echo "$file: #include \"$target\": no such file" >&2
        status=1
      fi
    done
  done
done
if [ "$status" = 0 ]; then
  echo "layering: $checked includes checked, all point down"
fi
exit "$status"
