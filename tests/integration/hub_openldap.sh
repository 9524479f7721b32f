#!/bin/bash
# The hub end to end against the shared slapd: tests/hub_backend.sh.
. "$ROOT/tests/hub_backend.sh" openldap
