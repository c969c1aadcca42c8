#!/bin/sh
# Prepares CDI's own programs for the overlay image (Containerfile.cdi-overlay):
#
#   scripts/cdi-overlay-launchers.sh CDI_ROOT OUT
#
# CDI_ROOT is the root filesystem of CDI's importer image (CentOS Stream, its
# own C library); OUT becomes /usr/libexec/cdi of the overlay image:
#   OUT/bin/NAME   CDI's binary, as it is in CDI_ROOT/usr/bin/NAME
#   OUT/lib/       the C library, the dynamic loader and every shared library
#                  those binaries load, copied from CDI_ROOT (found with CDI's
#                  own loader, `ld.so --list`), never Debian's
#   OUT/NAME       the launcher that the overlay runs: it starts OUT/bin/NAME
#                  through CDI's loader with --library-path OUT/lib, so that
#                  CDI's binary runs on the C library it was built for, while
#                  the programs it starts (qemu-img, nbdkit, from Debian's
#                  packages) run on Debian's, untouched (no LD_LIBRARY_PATH
#                  is set). A statically linked binary is started directly.
# The launchers refer to /usr/libexec/cdi (LIBEXEC overrides it, for tests).
#
# Required programs: cdi-importer and cdi-source-update-poller; the others
# (openstack-populator, ovirt-populator) are prepared when CDI_ROOT has them.
# Exit 1 with a message when a required one is missing or a library cannot
# be found in CDI_ROOT.
set -eu

if [ $# -ne 2 ]; then
  echo "usage: $0 CDI_ROOT OUT" >&2
  exit 2
fi
root=$1
out=$2
libexec=${LIBEXEC:-/usr/libexec/cdi}
required="cdi-importer cdi-source-update-poller"
optional="openstack-populator ovirt-populator"
# A path inside CDI_ROOT with its symbolic links followed inside CDI_ROOT
# (an absolute link target is CDI_ROOT's, never this machine's); "" when it
# does not exist there.
in_root() {
  path=$1
  hops=0
  while [ -L "$root$path" ] && [ $hops -lt 40 ]; do
    target=$(readlink "$root$path")
    case $target in
      /*) path=$target ;;
      *) path=$(dirname "$path")/$target ;;
    esac
    hops=$((hops + 1))
  done
  [ -e "$root$path" ] && echo "$root$path" || echo ""
}

# CDI's libraries, each resolved inside CDI_ROOT, as links in one directory
# that CDI's loader searches (so that links CDI_ROOT makes absolute do not
# lead to this machine's files).
staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT
for dir in /usr/lib64 /lib64 /usr/lib /lib /usr/lib/x86_64-linux-gnu /usr/lib/aarch64-linux-gnu \
           /usr/lib/s390x-linux-gnu; do
  resolved=$(in_root "$dir")
  [ -n "$resolved" ] && [ -d "$resolved" ] || continue
  for file in "$resolved"/*.so*; do
    [ -e "$file" ] || [ -L "$file" ] || continue
    name=$(basename "$file")
    [ -e "$staging/$name" ] && continue
    target=$(in_root "${file#"$root"}")
    [ -n "$target" ] && [ -f "$target" ] && ln -s "$target" "$staging/$name"
  done
done
library_path=$staging

# CDI's dynamic loader: the file, resolved inside CDI_ROOT.
loader=
for candidate in /lib64/ld-linux-x86-64.so.2 /lib/ld-linux-aarch64.so.1 /lib/ld64.so.1 \
                 /usr/lib64/ld-linux-x86-64.so.2; do
  loader=$(in_root "$candidate")
  [ -n "$loader" ] && break
done

mkdir -p "$out/bin" "$out/lib"
prepare() {
  name=$1
  binary=$root/usr/bin/$name
  cp -L "$binary" "$out/bin/$name"
  chmod 0755 "$out/bin/$name"
  # --verify: 0 for a dynamically linked program (--list would crash on a static one).
  if [ -n "$loader" ] && "$loader" --verify "$binary" >/dev/null 2>&1 &&
     listing=$("$loader" --library-path "$library_path" --list "$binary" 2>/dev/null); then
    if echo "$listing" | grep -q 'not found'; then
      echo "$0: $name needs libraries that CDI's image lacks:" >&2
      echo "$listing" | grep 'not found' >&2
      exit 1
    fi
    # "libnbd.so.0 => STAGING/libnbd.so.0 (0x...)"; the loader's
    # own line names this machine's path, and CDI's loader is copied below.
    echo "$listing" | awk '/=> \// && $1 !~ /^\// { print $1, $3 }' |
      while read -r soname path; do
        case $path in
          "$staging"/*) ;;
          *) echo "$0: $name loads $soname from $path, outside CDI's image" >&2; exit 1 ;;
        esac
        cp -L "$path" "$out/lib/$soname"
      done
    loader_name=$(echo "$listing" | awk '/^[[:space:]]*\/[^ ]+ \(0x/ { n = split($1, p, "/"); print p[n] }')
    loader_name=${loader_name:-$(basename "$loader")}
    cp "$loader" "$out/lib/$loader_name"
    cat >"$out/$name" <<EOF
#!/bin/sh
# CDI's $name on the C library of CDI's image ($libexec/lib), not Debian's.
exec $libexec/lib/$loader_name --library-path $libexec/lib --argv0 "\$0" $libexec/bin/$name "\$@"
EOF
    echo "$name: dynamically linked; its libraries: $(ls "$out/lib" | tr '\n' ' ')"
  else
    cat >"$out/$name" <<EOF
#!/bin/sh
# CDI's $name, statically linked.
exec $libexec/bin/$name "\$@"
EOF
    echo "$name: statically linked"
  fi
  chmod 0755 "$out/$name"
}

for name in $required; do
  if [ ! -f "$root/usr/bin/$name" ]; then
    echo "$0: CDI's image has no /usr/bin/$name: is CDI_IMPORTER_IMAGE CDI's importer image?" >&2
    exit 1
  fi
  prepare "$name"
done
for name in $optional; do
  if [ -f "$root/usr/bin/$name" ]; then
    prepare "$name"
  else
    echo "$name: not in CDI's image, left out"
  fi
done
