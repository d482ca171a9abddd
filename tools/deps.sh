# tools/deps.sh - the Debian packages tkm needs, and installing the missing ones.
# Sourced by tools/quickstart and tools/test; not a command of its own.

# What building and running tkmd needs.
tkm_build_packages=(build-essential cmake pkg-config libnng-dev libcbor-dev libsodium-dev
	libsqlite3-dev libp11-kit-dev libconfig-dev libcsv-dev softhsm2 openssl)

# What the test suite needs on top: the fuzzer's compiler and runtime, the
# lint tools, pkcs11-tool for inspecting HSM objects, python3 for JSON checks.
tkm_test_packages=("${tkm_build_packages[@]}" clang libclang-rt-14-dev cppcheck clang-format
	opensc python3)

# tkm_install_missing PKG...: apt-get install the packages that are not
# installed, as root or through sudo; apt-get update runs only when something
# is missing. Prints what it does; returns non-zero when it cannot install.
tkm_install_missing() {
	local missing=() p
	for p in "$@"; do
		if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
			missing+=("$p")
		fi
	done
	if [ "${#missing[@]}" -eq 0 ]; then
		printf '==> packages: all present\n'
		return 0
	fi
	local sudo=()
	if [ "$(id -u)" -ne 0 ]; then
		if ! command -v sudo >/dev/null 2>&1; then
			printf 'missing packages: %s; not root and no sudo: install them and run again\n' \
				"${missing[*]}" >&2
			return 1
		fi
		sudo=(sudo)
	fi
	printf '==> installing: %s\n' "${missing[*]}"
	"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
		"${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
			--no-install-recommends "${missing[@]}"
}
