#!/bin/bash
# The hub end to end against Active Directory (the Samba AD DC): tests/hub_backend.sh.
. "$ROOT/tests/hub_backend.sh" ad
