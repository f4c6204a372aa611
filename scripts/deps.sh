# Debian packages, installed only where missing: sourced by scripts/test.sh (the test command) and scripts/run.sh
# (the run command), so both set a machine up the same way.
#
#   need_packages build            a C compiler and pkg-config (bundled SQLite, the -sys crates)
#   need_packages desktop          WebKitGTK and friends, for the tray app (Tauri 2)
#   need_packages test             Node, Python with venv, Chromium, the X tools of the desktop smoke test, and
#                                  PostgreSQL (the suite's second pass and the scale-out tests run a throwaway
#                                  cluster, scripts/pg.sh)
#
# It runs apt-get as root, or through sudo for anyone else.

# The packages of one group that are not installed yet.
_missing_packages() {
  case "$1" in
    build)
      command -v cc >/dev/null 2>&1 || echo build-essential
      _not_installed pkg-config
      ;;
    desktop)
      _not_installed libwebkit2gtk-4.1-dev libayatana-appindicator3-dev librsvg2-dev libxdo-dev pkg-config file
      ;;
    test)
      command -v node >/dev/null 2>&1 || echo nodejs
      command -v npm >/dev/null 2>&1 || echo npm
      command -v python3 >/dev/null 2>&1 || echo python3
      python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || echo python3-venv
      [ -x /usr/bin/chromium ] || echo chromium
      _not_installed xvfb xauth dbus-x11 imagemagick x11-utils xdotool
      compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || echo postgresql
      ;;
    *)
      echo "deps.sh: no package group named $1" >&2
      return 1
      ;;
  esac
}

_not_installed() {
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || echo "$pkg"
  done
}

need_packages() {
  local missing=() group pkg
  for group in "$@"; do
    while read -r pkg; do
      [ -n "$pkg" ] && [[ " ${missing[*]} " != *" $pkg "* ]] && missing+=("$pkg")
    done < <(_missing_packages "$group")
  done
  [ ${#missing[@]} -gt 0 ] || return 0
  local sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || {
      echo "missing Debian packages: ${missing[*]}; install them as root (apt-get install ${missing[*]})" >&2
      return 1
    }
    sudo=(sudo)
  fi
  printf '\n== apt-get install %s\n' "${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}
