#!/usr/bin/env bash
# The README's demo command: on a fresh Debian 12 machine, as root, installs the dependencies,
# builds rampart, then runs the product on the embedded SQLite default:
#   1. a fresh store, the shipped default rules plus the example site rules, what the store holds;
#   2. a private Postfix with OpenDKIM, rampart-milter and rampart-policyd in a network namespace
#      (the test lab), and a small campaign through it (scripts/demo-campaign.sh).
# Everything it writes lives under $RAMPART_DEMO_DIR (default /tmp/rampart-demo) and the lab's
# temp dir; the system's Postfix, OpenDKIM and /etc are never touched.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-deps.sh
echo "==> building (preset ci: optimised; the demo also needs the lab's fake MX and syslog tools)"
cmake --preset ci >/dev/null
cmake --build --preset ci -j "$(nproc)" --target rampart_cli rampart-milter rampart-policyd rampart-lab-mx rampart-lab-syslog >/dev/null

demo=${RAMPART_DEMO_DIR:-/tmp/rampart-demo}
rm -rf "$demo"
mkdir -p "$demo"
bin=build/ci/sidecar/rampart
cat >"$demo/rampart.toml" <<TOML
# rampart demo configuration: the store is a SQLite file beside this one.
[store]
url = "sqlite://$demo/rampart.db"
TOML
r() { echo "\$ rampart $*" >&2; "$bin" --config "$demo/rampart.toml" "$@"; }

rules=(packaging/rules/*.toml packaging/rules/rules.toml.example)
echo "==> rampart on a fresh SQLite store in $demo"
r --check-config
r rules check "${rules[@]}"
r db migrate
r rules apply "${rules[@]}"
echo
r rules list --kind stream
echo
r rules list --kind ramp
echo
r rules list --kind cap
echo
r rules list --kind exclusion
echo
r db status
echo
echo "==> a bad rules file is refused (exit 78) and changes nothing:"
printf '[[stream]]\nname = "bulk"\nports = [25]\nport = 2526\n' >"$demo/bad.toml"
set +e
r rules apply "$demo/bad.toml"
echo "exit status $?"
set -e
r db status | grep rules_version
echo
echo
echo "==> a campaign through a private Postfix with OpenDKIM, rampart-milter and rampart-policyd"
./scripts/demo-campaign.sh "$bin" build/ci/milter/rampart-milter build/ci/policyd/rampart-policyd \
  build/ci/tests/lab/rampart-lab-mx \
  build/ci/tests/lab/rampart-lab-syslog
echo
echo "==> done. The first store is $demo/rampart.db; export it with"
echo "    $bin --config $demo/rampart.toml rules export --format json"
