#!/usr/bin/env python3
"""Checks the alerting rules docs/operations.md suggests: promtool parses them (check rules)
and they fire on the series of tests/metrics/alerts_test.yml as that file expects (test rules).

    check_alerts.py <promtool> <docs/operations.md> <alerts_test.yml>
"""
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile


def main():
    promtool, doc, rules_test = sys.argv[1:4]
    blocks = re.findall(r"```yaml\n(.*?)```", pathlib.Path(doc).read_text(encoding="utf-8"), re.S)
    if len(blocks) != 1:
        print(f"{doc}: expected one yaml block (the alerting rules), found {len(blocks)}")
        return 1
    with tempfile.TemporaryDirectory() as work:
        # alerts_test.yml names the rules file credkit-alerts.yml, beside it.
        pathlib.Path(work, "credkit-alerts.yml").write_text(blocks[0], encoding="utf-8")
        shutil.copy(rules_test, pathlib.Path(work, "alerts_test.yml"))
        for command in (["check", "rules", "credkit-alerts.yml"], ["test", "rules", "alerts_test.yml"]):
            run = subprocess.run([promtool, *command], cwd=work, capture_output=True, text=True, timeout=60)
            print(run.stdout + run.stderr)
            if run.returncode != 0:
                print(f"promtool {' '.join(command)} failed ({run.returncode})")
                return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
