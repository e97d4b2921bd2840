#!/usr/bin/env python3
"""Golden-file tests of the configuration (as OpenBGPD does): for each
tests/golden/NAME.conf, `cordond --check-config -c tests/golden/NAME.conf`
must print exactly tests/golden/NAME.out (stdout and stderr, then
"exit N"). Run from the repository root: run.py CORDOND [--update]."""

import difflib
import glob
import subprocess
import sys


def main():
    cordond, update = sys.argv[1], "--update" in sys.argv
    failed = 0
    cases = sorted(glob.glob("tests/golden/*.conf"))
    for conf in cases:
        p = subprocess.run([cordond, "--check-config", "-c", conf], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
        got = p.stdout + "exit %d\n" % p.returncode
        want_path = conf[:-5] + ".out"
        if update:
            with open(want_path, "w") as f:
                f.write(got)
            continue
        with open(want_path) as f:
            want = f.read()
        if got != want:
            failed += 1
            sys.stdout.writelines(difflib.unified_diff(want.splitlines(True), got.splitlines(True),
                                                       want_path, "cordond --check-config"))
    print("%d golden configs, %d differ" % (len(cases), failed))
    return 1 if failed or not cases else 0


if __name__ == "__main__":
    sys.exit(main())
