#!/usr/bin/env bash
# ctest `overlay_launchers`: scripts/cdi-overlay-launchers.sh on a stand-in
# for CDI's image root (CentOS's layout: /lib64 a link to usr/lib64, the C
# library and loader there, absolute links inside), made from this machine's
# C library, `cat` as a dynamically linked program and our static
# cdi-containerimage-server as a statically linked one. Checks that the
# launchers start each program on the libraries copied from that root, with
# the arguments given, and that a root without CDI's importer is refused.
#
#   test/image/overlay_launchers_test.sh SOURCE_DIR BIN_DIR
set -euo pipefail
source_dir=$1
bin_dir=$2
script=$source_dir/scripts/cdi-overlay-launchers.sh
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

root=$work/cdi-root
mkdir -p "$root/usr/lib64" "$root/usr/bin"
ln -s usr/lib64 "$root/lib64"
libc=$(ldd /usr/bin/cat | awk '/libc.so.6/ { print $3 }')
loader=$(ldd /usr/bin/cat | awk '/ld-linux/ { print $1 }')
cp -L "$libc" "$root/usr/lib64/libc.so.6.real"
ln -s /usr/lib64/libc.so.6.real "$root/usr/lib64/libc.so.6"  # absolute, inside the root
cp -L "$loader" "$root/usr/lib64/$(basename "$loader")"
cp /usr/bin/cat "$root/usr/bin/cdi-importer"
cp /usr/bin/cat "$root/usr/bin/cdi-source-update-poller"
cp "$bin_dir/cdi-containerimage-server" "$root/usr/bin/openstack-populator"

out=$work/libexec-cdi
LIBEXEC=$out "$script" "$root" "$out" >"$work/log" || { cat "$work/log" >&2; fail "the script failed"; }
cat "$work/log"
grep -q 'ovirt-populator: not in CDI'"'"'s image, left out' "$work/log" || fail "ovirt-populator not reported"

# A dynamically linked program runs on the root's C library, through its loader.
echo "a line of a file" >"$work/file"
[ "$("$out/cdi-importer" "$work/file")" = "a line of a file" ] || fail "arguments not passed on"
maps=$("$out/cdi-importer" /proc/self/maps)
grep -q "$out/lib/libc.so.6" <<<"$maps" || fail "libc.so.6 not from $out/lib:"$'\n'"$maps"
grep -q "$out/lib/$(basename "$loader")" <<<"$maps" || fail "the loader is not $out/lib's:"$'\n'"$maps"
if grep -q "$libc" <<<"$maps"; then fail "this machine's $libc is loaded:"$'\n'"$maps"; fi
# ...and what it starts does not inherit that: no LD_LIBRARY_PATH in its environment.
if grep -q 'LD_LIBRARY_PATH' <("$out/cdi-importer" /proc/self/environ | tr '\0' '\n'); then
  fail "the launcher sets LD_LIBRARY_PATH"
fi
[ "$("$out/cdi-source-update-poller" "$work/file")" = "a line of a file" ] || fail "poller launcher"

# A statically linked program is started directly.
grep -q 'statically linked' "$out/openstack-populator" || fail "openstack-populator launcher"
[ "$("$out/openstack-populator" -version)" = "cdi-containerimage-server $(sed -n 's/^project(CdiImporter VERSION \([0-9.]*\).*/\1/p' "$source_dir/CMakeLists.txt")" ] ||
  fail "the static program did not run"

# A root that is not CDI's importer image is refused by name.
rm "$root/usr/bin/cdi-importer"
if "$script" "$root" "$work/again" 2>"$work/err"; then fail "a root without cdi-importer passed"; fi
grep -q "CDI's image has no /usr/bin/cdi-importer" "$work/err" || fail "message: $(cat "$work/err")"
echo "overlay_launchers: passed"
