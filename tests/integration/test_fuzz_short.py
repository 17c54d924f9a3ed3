"""test_fuzz_short.py - a short pass of each libFuzzer target (tests/fuzz/) as part of
`make test`: builds them with clang into BUILD/fuzz/ (the Makefile's fuzz rules) and
runs each for FUZZ_SHORT_SECONDS (default 10) through tests/fuzz/run.sh, from the seed
corpus plus whatever earlier runs found. Any crash, sanitizer report, leak, hang or
broken invariant fails the test and names the input that reproduces it.

Each target is one test, reported as `skip - NAME: why` only when clang cannot link a
libFuzzer program here."""

import os
import shutil
import subprocess
import tempfile

import harness as h
from harness import check, test

SECS = int(os.environ.get("FUZZ_SHORT_SECONDS", "10"))


def libfuzzer_missing():
    """None if clang links -fsanitize=fuzzer here, else why not."""
    cc = shutil.which("clang")
    if cc is None:
        return "clang is not installed (scripts/deps.sh installs clang)"
    d = tempfile.mkdtemp(prefix="ev-fuzzcheck-")
    try:
        src = os.path.join(d, "t.c")
        with open(src, "w") as f:
            f.write("#include <stddef.h>\n#include <stdint.h>\n"
                    "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n);\n"
                    "int LLVMFuzzerTestOneInput(const uint8_t *d, size_t n)"
                    " { return 0; }\n")
        p = subprocess.run([cc, "-fsanitize=fuzzer", "-o", os.path.join(d, "t"), src],
                           capture_output=True, timeout=60)
        if p.returncode != 0:
            return ("clang cannot link libFuzzer (install libclang-rt-14-dev): %s"
                    % p.stderr.decode(errors="replace").strip().splitlines()[-1:])
    finally:
        shutil.rmtree(d, ignore_errors=True)
    return None


def build(target):
    rel = os.path.relpath(h.BUILD, h.ROOT)
    out = os.path.join(rel, "fuzz", target)
    p = subprocess.run(["make", "-s", "BUILD=" + rel, out], cwd=h.ROOT,
                       capture_output=True, timeout=300)
    check(p.returncode == 0, "make %s failed:\n%s" % (out, (p.stdout + p.stderr).decode(
        errors="replace")[-3000:]))


_missing = []


def run(target):
    if not _missing:
        _missing.append(libfuzzer_missing())
    if _missing[0]:
        h.skip(_missing[0])
    build("fuzz_" + target)
    p = subprocess.run([os.path.join(h.ROOT, "tests", "fuzz", "run.sh"), h.BUILD, str(SECS),
                        target], cwd=h.ROOT, capture_output=True, timeout=SECS + 120)
    text = (p.stdout + p.stderr).decode(errors="replace")
    for line in text.strip().splitlines():
        print("#   " + line)
    check(p.returncode == 0, "fuzz_%s found a failure:\n%s" % (target, text[-3000:]))


@test
def fuzz_http_short():
    run("http")


@test
def fuzz_config_short():
    run("config")


@test
def fuzz_wire_short():
    run("wire")


if __name__ == "__main__":
    h.main()
