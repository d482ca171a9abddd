#!/bin/sh
# run.sh BUILD_DIR SOURCE_DIR CC VERSION [FLAGS] - the install test.
#
# Installs the build into a temporary prefix, checks the installed files, then
# builds tests/install/consumer outside the tree with find_package(tkm) and
# with pkg-config, each linked shared and static, and runs the four programs.
# FLAGS (for example -fsanitize=address,undefined) go to every compile and link.
set -eu

if [ $# -lt 4 ]; then
	echo "usage: $0 BUILD_DIR SOURCE_DIR CC VERSION [FLAGS]" >&2
	exit 2
fi
build=$1
src=$2
cc=$3
version=$4
flags=${5-}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/tkm-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

fail() {
	echo "install test: FAIL: $*" >&2
	exit 1
}

# Run a program and check that it prints "tkm VERSION: ...".
check_run() {
	name=$1
	shift
	out=$("$@") || fail "$name exited with $?"
	case $out in
	"tkm $version: "*) echo "install test: $name: $out" ;;
	*) fail "$name printed '$out', want 'tkm $version: ...'" ;;
	esac
}

prefix=$tmp/prefix
cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1 ||
	{ cat "$tmp/install.log" >&2; fail "cmake --install"; }

pc=$(find "$prefix" -name tkm.pc -path '*/pkgconfig/*' | head -n 1)
[ -n "$pc" ] || fail "no tkm.pc installed"
libdir=$(dirname "$(dirname "$pc")")
for f in bin/tkmctl include/tkm/client.h include/tkm/error.h; do
	[ -f "$prefix/$f" ] || fail "$f not installed"
done
for f in libtkm.a libtkm.so libtkm.so.0 "libtkm.so.$version" cmake/tkm/tkmConfig.cmake \
	cmake/tkm/tkmConfigVersion.cmake cmake/tkm/tkmTargets.cmake; do
	[ -e "$libdir/$f" ] || fail "$libdir/$f not installed"
done
for f in tkm_cbor.h tkm_wire.h; do
	[ -z "$(find "$prefix" -name "$f")" ] || fail "internal header $f installed"
done

# The shared library exports the public API and nothing else.
extra=$(nm -D --defined-only "$libdir/libtkm.so.0" | awk '$2 == "T" || $2 == "D" || $2 == "B" { print $3 }' |
	grep -v '^tkm_' || true)
[ -z "$extra" ] || fail "libtkm.so exports non-API symbols: $extra"

out=$("$prefix/bin/tkmctl" --version) || fail "installed tkmctl --version"
[ "$out" = "tkmctl $version (libtkm $version)" ] || fail "tkmctl --version printed '$out'"

# find_package(tkm), from a copy of the consumer outside the source tree.
cp -R "$src/tests/install/consumer" "$tmp/consumer"
cmake -S "$tmp/consumer" -B "$tmp/cmake-build" -DCMAKE_PREFIX_PATH="$prefix" \
	-DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF -DCMAKE_C_COMPILER="$cc" \
	-DCMAKE_C_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="$flags" >"$tmp/cmake.log" 2>&1 ||
	{ cat "$tmp/cmake.log" >&2; fail "configuring the find_package consumer"; }
cmake --build "$tmp/cmake-build" >"$tmp/build.log" 2>&1 ||
	{ cat "$tmp/build.log" >&2; fail "building the find_package consumer"; }
check_run "find_package shared" "$tmp/cmake-build/consumer_shared"
check_run "find_package static" "$tmp/cmake-build/consumer_static"
ldd "$tmp/cmake-build/consumer_shared" | grep -q "$libdir/libtkm.so.0" ||
	fail "find_package consumer does not use the installed libtkm.so.0"

# pkg-config, with nothing but PKG_CONFIG_PATH pointing at the prefix.
PKG_CONFIG_PATH=$libdir/pkgconfig
export PKG_CONFIG_PATH
got=$(pkg-config --modversion tkm) || fail "pkg-config does not find tkm"
[ "$got" = "$version" ] || fail "pkg-config --modversion tkm printed '$got'"
# shellcheck disable=SC2046,SC2086 # word splitting of the flags is intended
"$cc" $flags -o "$tmp/pc_shared" "$tmp/consumer/main.c" $(pkg-config --cflags --libs tkm) ||
	fail "building the pkg-config consumer (shared)"
# shellcheck disable=SC2046,SC2086
"$cc" $flags -o "$tmp/pc_static" "$tmp/consumer/main.c" \
	$(pkg-config --static --cflags --libs tkm | sed 's/-ltkm\b/-l:libtkm.a/') ||
	fail "building the pkg-config consumer (static)"
LD_LIBRARY_PATH=$libdir check_run "pkg-config shared" "$tmp/pc_shared"
check_run "pkg-config static" "$tmp/pc_static"
if ldd "$tmp/pc_static" | grep -q libtkm; then
	fail "pkg-config static consumer links libtkm.so"
fi

echo "install test: ok"
