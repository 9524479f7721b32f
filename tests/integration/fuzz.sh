#!/bin/bash
# The fuzz harnesses as part of the suite: each runs for FUZZ_S seconds (5 by
# default) on its seed corpus, so a crash one of them finds, or a corpus input
# that crashes again, fails the suite.  Needs build-fuzz/ (make fuzz-build;
# make check builds it); without it, says so and checks nothing.
source "$ROOT/tests/lib.sh"

if [ ! -d "$ROOT/build-fuzz/fuzz" ]; then
  echo "SKIP fuzz: no build-fuzz/fuzz; make fuzz-build builds the harnesses"
  finish
  exit
fi
"$ROOT/tests/fuzz/run.sh" build-fuzz "${FUZZ_S:-5}"
finish
