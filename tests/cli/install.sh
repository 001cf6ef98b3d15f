# sluice installed as a C project: `cmake --install` into a DESTDIR puts
# every file in place; a program built against the installed header and
# library through pkg-config, linked shared and static, ingests through
# the public API; the man page renders without a warning; the bash
# completion completes; and the Debian package cpack builds installs
# (as root: dpkg -i, run, dpkg -r; otherwise it is unpacked and run).
. "$(dirname "$0")/lib.sh"

for tool in cmake cpack pkg-config cc readelf nm man groff dpkg-deb \
    dpkg-shlibdeps file; do
    command -v "$tool" >/dev/null ||
        skip "$tool is not installed (scripts/setup.sh package)"
done

cache=$BUILD_DIR/CMakeCache.txt
[ -f "$cache" ] || skip "no CMake build at $BUILD_DIR"
LIBDIR=$(sed -n 's/^CMAKE_INSTALL_LIBDIR:PATH=//p' "$cache")
LIBDIR=${LIBDIR:-lib}
# A sanitized build's library needs its runtime in what links it.
SAN=()
if grep -q '^SLUICE_SANITIZE:BOOL=ON' "$cache"; then
    SAN=(-fsanitize=address,undefined)
fi
PROGRAM=$SOURCE_DIR/tests/install/use_sluice.c
VERSION=$("$SLUICE" --version | cut -d' ' -f2)
DEST=$WORK/dest
P=$DEST/usr/local

case_ "cmake --install into a DESTDIR: every file"
run env DESTDIR="$DEST" cmake --install "$BUILD_DIR" --prefix /usr/local
assert_rc 0
for f in bin/sluice "$LIBDIR/libsluice.a" "$LIBDIR/libsluice.so" \
    include/sluice/sluice.h "$LIBDIR/pkgconfig/sluice.pc" \
    share/man/man1/sluice.1 share/bash-completion/completions/sluice; do
    [ -f "$P/$f" ] || fail "$f is not installed"
done
run "$P/bin/sluice" --version
assert_eq "$out" "sluice $VERSION"
soname=$(readelf -d "$P/$LIBDIR/libsluice.so" |
    sed -n 's/.*SONAME.*\[\(.*\)\]/\1/p')
assert_has "$soname" "libsluice.so.${VERSION%.*}"
[ -f "$P/$LIBDIR/$soname" ] || fail "$soname is not installed"
# The shared library exports the public API and nothing else.
exported=$(nm -D --defined-only "$P/$LIBDIR/libsluice.so" | awk '{print $3}')
assert_has "$exported" sluice_queue_open
assert_eq "$(printf '%s\n' "$exported" | grep -v '^sluice_')" ""

case_ "pkg-config: the installed sluice.pc"
export PKG_CONFIG_PATH=$P/$LIBDIR/pkgconfig PKG_CONFIG_SYSROOT_DIR=$DEST
run pkg-config --modversion sluice
assert_eq "$out" "$VERSION"
run pkg-config --cflags sluice
assert_has "$out" "-I$P/include"
cflags=$out
run pkg-config --libs sluice
libs=$(echo $out)
assert_eq "$libs" "-L$P/$LIBDIR -lsluice"
run pkg-config --print-requires-private sluice
assert_eq "$(echo $out)" "libcurl sqlite3 yajl libcrypto libidn2 hiredis libxml-2.0 libprotobuf-c"
requires=$out
libs_private=$(sed -n 's/^Libs.private: //p' "$P/$LIBDIR/pkgconfig/sluice.pc")
assert_eq "$libs_private" "-pthread -lm"

case_ "a program on the public API, linked with the shared library"
run cc "${SAN[@]}" -Wall -Wextra -Werror -o use_shared "$PROGRAM" $cflags $libs
assert_rc 0
assert_has "$(readelf -d use_shared)" "[$soname]"
run env LD_LIBRARY_PATH="$P/$LIBDIR" ./use_shared shared.db
assert_rc 0
assert_has "$out" "sluice $VERSION"
assert_has "$out" "added 2, rejected 1, pending 2, total 2"
run "$P/bin/sluice" status --db shared.db --json
assert_has "$out" '"pending":2,'

case_ "the same program, linked with the static library"
# libsluice.a, and what sluice.pc says it needs (Requires.private,
# Libs.private); `pkg-config --static` would add libcurl's own private
# libraries, which Debian's libcurl4-openssl-dev does not install.
run cc "${SAN[@]}" -Wall -Wextra -Werror -o use_static "$PROGRAM" $cflags \
    "$(pkg-config --variable=libdir sluice)/libsluice.a" \
    $(pkg-config --libs $requires) $libs_private
assert_rc 0
assert_lacks "$(readelf -d use_static)" libsluice
run ./use_static static.db
assert_rc 0
assert_has "$out" "added 2, rejected 1, pending 2, total 2"

case_ "the man page renders without a warning"
page=$P/share/man/man1/sluice.1
run env LC_ALL=C.UTF-8 MANROFFSEQ='' MANWIDTH=80 man --warnings -l "$page"
assert_rc 0
assert_eq "$err" ""
for section in NAME SYNOPSIS DESCRIPTION COMMANDS "EXIT STATUS" \
    ENVIRONMENT FILES "SEE ALSO"; do
    printf '%s\n' "$out" | grep -qx "$section" || fail "no $section section"
done
assert_has "$out" "sluice dlq replay [--db FILE] [--class CLASS] (--all | --id"
assert_eq "$(printf '%s\n' "$out" | awk 'length($0) > 80' | head -3)" ""
run groff -man -ww -Tutf8 -z "$page"
assert_rc 0
assert_eq "$err" ""

case_ "the bash completion loads and completes"
run bash -c '
    . "$1" || exit 1
    complete -p sluice
    comp() {
        COMP_WORDS=("$@")
        COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
        COMPREPLY=()
        _sluice
        echo "${COMPREPLY[*]}"
    }
    comp sluice ru
    comp sluice run --max-c
    comp sluice ingest --format l' _ \
    "$P/share/bash-completion/completions/sluice"
assert_rc 0
assert_eq "$out" "$(printf '%s\n' "complete -F _sluice sluice" run \
    --max-concurrency lines)"

case_ "the Debian package: cpack builds it, with its metadata"
run cpack -G DEB --config "$BUILD_DIR/CPackConfig.cmake" -B "$WORK/pkg"
assert_rc 0
deb=$(ls "$WORK"/pkg/*.deb 2>/dev/null | head -1)
[ -n "$deb" ] || { fail "cpack made no .deb"; finish; }
run dpkg-deb -f "$deb" Package Version Architecture Maintainer Depends \
    Description
assert_rc 0
assert_has "$out" "Package: sluice"
assert_has "$out" "Version: $VERSION"
assert_has "$out" "Architecture: $(dpkg --print-architecture)"
assert_has "$out" "Maintainer: "
for dep in libc6 libcurl4 libsqlite3-0 libyajl2 libssl3; do
    assert_has "$out" "$dep ("
done
run dpkg-deb -c "$deb"
for f in ./usr/bin/sluice "./usr/$LIBDIR/libsluice.so.$VERSION" \
    "./usr/$LIBDIR/libsluice.a" ./usr/include/sluice/sluice.h \
    "./usr/$LIBDIR/pkgconfig/sluice.pc" ./usr/share/man/man1/sluice.1 \
    ./usr/share/bash-completion/completions/sluice; do
    assert_has "$out" " $f"
done

if [ "$(id -u)" = 0 ]; then
    case_ "the Debian package installs with dpkg -i, runs, and is removed"
    if dpkg-query -W -f='${Status}' sluice 2>/dev/null |
        grep -q 'ok installed' || [ -e /usr/bin/sluice ]; then
        skip "a sluice is installed on this machine already; not replacing it"
    fi
    trap 'dpkg -P sluice >/dev/null 2>&1; stop_origins; stop_s3rvers;
          rm -rf "$WORK"' EXIT
    run dpkg -i "$deb"
    assert_rc 0
    run /usr/bin/sluice --version
    assert_eq "$out" "sluice $VERSION"
    # Found by the system's pkg-config and loader (ldconfig ran).
    run env -u PKG_CONFIG_PATH -u PKG_CONFIG_SYSROOT_DIR \
        pkg-config --cflags --libs sluice
    assert_rc 0
    run cc "${SAN[@]}" -o use_system "$PROGRAM" $out
    assert_rc 0
    run ./use_system system.db
    assert_rc 0
    assert_has "$out" "added 2, rejected 1, pending 2, total 2"
    run man -w sluice
    assert_eq "$out" /usr/share/man/man1/sluice.1
    run dpkg -r sluice
    assert_rc 0
    [ ! -e /usr/bin/sluice ] || fail "dpkg -r left /usr/bin/sluice"
    [ ! -e "/usr/$LIBDIR/libsluice.so.$VERSION" ] ||
        fail "dpkg -r left the library"
    run dpkg -P sluice
    assert_rc 0
    case $(dpkg-query -W -f='${Status}' sluice 2>/dev/null) in
    "" | "unknown ok not-installed") ;;
    *) fail "dpkg -P left sluice known to dpkg" ;;
    esac
else
    case_ "the Debian package unpacks and its binary runs (not root)"
    run dpkg-deb -x "$deb" unpacked
    assert_rc 0
    run unpacked/usr/bin/sluice --version
    assert_eq "$out" "sluice $VERSION"
fi

finish
