# shellcheck shell=bash
# Debian packages cordon needs, and install-if-missing. Source it, then call
# deps_ensure [build|run|deb|all]  (default all).

# clang and libclang-rt-14-dev (libFuzzer) build the fuzz targets (tests/fuzz);
# clang-format-14, cppcheck and shellcheck are the checks before the build.
# python3-pytest, python3-paho-mqtt and python3-psycopg2 drive the integration
# tests (the simulator, cordon-sim, is C and needs only libpaho-mqtt); libfaketime
# sets cordond's wall clock back and forward in tests/integration/test_clock.py.
# libcurl sends cordon-notify's messages; python3-aiosmtpd is the SMTP server of its tests.
# npm fetches the console page's one dependency (uPlot, pinned by web/package-lock.json;
# web/build.sh): any npm on PATH will do, else Debian's package `npm` is added to
# the build set. chromium, chromium-driver and python3-selenium run the page's
# tests in a real browser (tests/integration/test_web_browser.py, suite
# 'browser'); fonts-noto-cjk lets its screenshots show the Chinese page's words.
# ejabberd (mod_mqtt) is the two-node clustered broker of tests/integration/test_ejabberd.py and
# test_cluster.py; python3-xxhash gives those tests a site's shard (cluster_shard_of()).
# bash-completion gives meson its completionsdir (pkg-config) and the completion test its
# helpers; mandoc lints the manual pages (tests/man/check.py).
# prometheus (promtool) and python3-yaml check contrib/'s Prometheus rules and the
# dashboard's PromQL (tests/integration/test_dashboards.py).
DEPS_BUILD=(gcc meson ninja-build pkg-config libpaho-mqtt-dev libpq-dev libjansson-dev
            libinih-dev libsystemd-dev libmicrohttpd-dev libxxhash-dev libcmocka-dev libssl-dev
            libcurl4-openssl-dev libsodium-dev bash-completion
            clang libclang-rt-14-dev clang-format-14 cppcheck shellcheck)
# dpkg-dev, debhelper and lintian build and check the Debian packages
# (scripts/package-check, debian/); build-essential is what dpkg-buildpackage
# checks for besides debian/control's Build-Depends. No fakeroot: debian/control
# says Rules-Requires-Root: no. mmdebstrap makes the clean Debian 12 that
# scripts/package-clean installs them on.
DEPS_DEB=(build-essential dpkg-dev debhelper lintian mmdebstrap)
DEPS_RUN=(mosquitto mosquitto-clients postgresql tzdata python3-pytest python3-paho-mqtt
          python3-psycopg2 openssl systemd libfaketime
          python3-aiosmtpd chromium chromium-driver python3-selenium fonts-noto-cjk ejabberd
          python3-xxhash mandoc prometheus python3-yaml)

# deps_missing PKG... : print the packages that are not installed, one a line.
deps_missing() {
    local p
    for p in "$@"; do
        [[ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null)" == "install ok installed" ]] || echo "$p"
    done
}

# deps_ensure [build|run|deb|all]: install what is missing (as root), or print
# the command to do it and return 1.
deps_ensure() {
    local -a want missing
    set -- "${1:-all}"
    case "$1" in
        build) want=("${DEPS_BUILD[@]}") ;;
        run)   want=("${DEPS_RUN[@]}") ;;
        deb)   want=("${DEPS_BUILD[@]}" "${DEPS_DEB[@]}") ;;
        all)   want=("${DEPS_BUILD[@]}" "${DEPS_RUN[@]}" "${DEPS_DEB[@]}") ;;
        *)     echo "deps_ensure: unknown set '$1'" >&2; return 2 ;;
    esac
    if [[ $1 != run ]] && ! command -v npm >/dev/null 2>&1; then
        want+=(npm)
    fi
    mapfile -t missing < <(deps_missing "${want[@]}")
    ((${#missing[@]} == 0)) && return 0
    if ((EUID != 0)); then
        echo "missing Debian packages; install them with:" >&2
        echo "sudo apt-get install -y --no-install-recommends ${missing[*]}" >&2
        return 1
    fi
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
}
