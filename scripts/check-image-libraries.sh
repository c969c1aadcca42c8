#!/usr/bin/env bash
# Checks that the runtime stage of each Containerfile installs every shared
# library that the binaries it ships load, so that a missing library fails
# the tests instead of a pod. Run by ctest as `image_libraries`.
#
#   scripts/check-image-libraries.sh BIN_DIR CONTAINERFILE...
#
# For each CONTAINERFILE:
#  - the shipped binaries are the names its build stage installs into
#    /out/usr/bin/ (`install ... /out/usr/bin/NAME`);
#  - the runtime stage is the last FROM; its packages are the arguments of
#    its `apt-get install` commands;
#  - each binary (BIN_DIR/NAME, built on this Debian machine like the image's
#    build stage) is given to ldd, and every library it loads is mapped to
#    its Debian package with `dpkg -S`;
#  - a package counts as present when the runtime stage installs it, or when
#    a minimal Debian base has it: Essential and Priority: required packages,
#    apt, and everything they depend on (what debian:12-slim and
#    `mmdebstrap --variant=minbase` hold).
# Exit 0 when every library is covered, 1 with one line per missing package
# (or library ldd cannot find), 2 for bad usage.
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BIN_DIR CONTAINERFILE..." >&2
  exit 2
fi
bin_dir=$1
shift

# Every line of the file, continuation lines joined.
joined() { sed -e ':a' -e '/\\$/N; s/\\\n/ /; ta' "$1"; }

# Packages of the last stage's `apt-get install` commands.
runtime_packages() {
  joined "$1" | awk '
    /^[[:space:]]*FROM[[:space:]]/ { n = 0; delete pkgs; next }
    {
      count = split($0, word, /[[:space:]]+/)
      for (i = 1; i <= count; i++) {
        if (word[i] == "install" && i > 1 && word[i - 1] == "apt-get") {
          for (j = i + 1; j <= count; j++) {
            if (word[j] == "&&" || word[j] == ";" || word[j] == "||") break
            if (word[j] ~ /^-/ || word[j] == "") continue
            pkgs[++n] = word[j]
          }
        }
      }
    }
    END { for (i = 1; i <= n; i++) print pkgs[i] }'
}

# Names the build stage installs into /out/usr/bin/.
shipped_binaries() {
  joined "$1" | grep -o '/out/usr/bin/[A-Za-z0-9._-]\+' | sed 's|.*/||' | sort -u
}

# Installed packages and their dependencies, read once.
declare -A depends_of=()
while IFS=$'\t' read -r pkg state deps; do
  case $state in ii*) depends_of[$pkg]=$deps ;; esac
done < <(dpkg-query -W -f '${Package}\t${db:Status-Abbrev}\t${Pre-Depends}, ${Depends}\n')

# add_with_dependencies SET PACKAGE...: adds the packages and everything they
# depend on (as installed on this machine, which apt resolves alike) to the
# associative array named SET.
add_with_dependencies() {
  local -n set=$1
  shift
  local queue=("$@") pkg alt name
  while [ ${#queue[@]} -gt 0 ]; do
    pkg=${queue[0]}
    queue=("${queue[@]:1}")
    [ -n "${set[$pkg]:-}" ] && continue
    [ -n "${depends_of[$pkg]+set}" ] || continue
    set[$pkg]=1
    IFS=',' read -ra alternatives <<<"${depends_of[$pkg]}"
    for alt in "${alternatives[@]}"; do
      # "a (>= 1) | b": the first alternative that is installed.
      IFS='|' read -ra choices <<<"$alt"
      for name in "${choices[@]}"; do
        name=${name%%(*}
        name=${name%%:*}
        name=${name//[[:space:]]/}
        if [ -n "$name" ] && [ -n "${depends_of[$name]+set}" ]; then
          queue+=("$name")
          break
        fi
      done
    done
  done
}

# The minimal base: Essential and required packages, apt, and their dependencies.
declare -A base=()
mapfile -t seeds < <(dpkg-query -W -f '${Package} ${Essential} ${Priority}\n' |
  awk '$2 == "yes" || $3 == "required" { print $1 }')
add_with_dependencies base "${seeds[@]}" apt

# The paths to look a library up under: as ldd names it, its target, and
# both under the other half of /usr-merge.
candidates_of() {
  local path=$1 real candidate
  real=$(readlink -f "$path")
  echo "$path"
  echo "$real"
  for candidate in "$path" "$real"; do
    case $candidate in
      /usr/lib/*) echo "${candidate#/usr}" ;;
      /lib/*) echo "/usr$candidate" ;;
    esac
  done
}

# owner[path]: the package owning each path, from one `dpkg -S` for all.
declare -A owner=()
lookup_owners() {
  local line pkgs path
  while IFS= read -r line; do
    [[ $line == *": /"* ]] || continue
    pkgs=${line%%: /*}
    path=/${line#*: /}
    pkgs=${pkgs%%,*}
    owner[$path]=${pkgs%%:*}
  done < <(dpkg -S "$@" 2>/dev/null || true)
}

# The package owning a library, into `found`; false when none does.
package_of() {
  local candidate
  while read -r candidate; do
    if [ -n "${owner[$candidate]:-}" ]; then
      found=${owner[$candidate]}
      return 0
    fi
  done < <(candidates_of "$1")
  return 1
}

# The libraries each binary loads, as ldd lists them.
libraries_of() {
  awk '/=> \// { print $3 } /^[[:space:]]*\/[^ ]+ \(0x/ { print $1 }' <<<"$1"
}

status=0
for containerfile in "$@"; do
  name=$(basename "$containerfile")
  before=$status
  status=0
  if [ ! -f "$containerfile" ]; then
    echo "$name: no such file" >&2
    status=1
    continue
  fi
  mapfile -t installed < <(runtime_packages "$containerfile")
  mapfile -t binaries < <(shipped_binaries "$containerfile")
  if [ ${#binaries[@]} -eq 0 ]; then
    echo "$name: ships no binary (no install into /out/usr/bin/ found)" >&2
    status=1
    continue
  fi
  # What the stage installs brings its dependencies along.
  declare -A listed=()
  add_with_dependencies listed "${installed[@]}"
  for binary in "${binaries[@]}"; do
    path=$bin_dir/$binary
    if [ ! -x "$path" ]; then
      echo "$name: $binary is not built in $bin_dir" >&2
      status=1
      continue
    fi
    ldd_out=$(ldd "$path" 2>&1 || true)
    if echo "$ldd_out" | grep -q 'not found'; then
      echo "$name: $binary: ldd cannot find: $(echo "$ldd_out" | grep 'not found' | tr -s ' \t' ' ')" >&2
      status=1
    fi
    mapfile -t libraries < <(libraries_of "$ldd_out")
    [ ${#libraries[@]} -eq 0 ] && continue
    mapfile -t lookups < <(for library in "${libraries[@]}"; do candidates_of "$library"; done |
      sort -u | while read -r candidate; do [ -n "${owner[$candidate]+set}" ] || echo "$candidate"; done)
    [ ${#lookups[@]} -eq 0 ] || lookup_owners "${lookups[@]}"
    for library in "${libraries[@]}"; do
      [ -n "$library" ] || continue
      if ! package_of "$library"; then
        echo "$name: $binary loads $library, which no Debian package owns" >&2
        status=1
        continue
      fi
      pkg=$found
      if [ -z "${listed[$pkg]:-}" ] && [ -z "${base[$pkg]:-}" ]; then
        echo "$name: $binary loads $(basename "$library") from package $pkg, which the runtime stage does not install: add $pkg to its apt-get install" >&2
        status=1
      fi
    done
  done
  unset listed
  if [ "$status" = 0 ]; then
    echo "$name: ${binaries[*]}: every shared library is installed by the runtime stage or the base"
  fi
  [ "$before" = 0 ] || status=$before
done
exit "$status"
