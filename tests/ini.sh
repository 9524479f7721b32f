# The one writer of agent.ini files for the test scripts (sourced by
# tests/lib.sh, and by tests/demo.sh and tests/bench.sh, which run outside the
# suite).  A script says each key once, as SECTION.KEY=VALUE; shared presets
# (SLAPD_LDAP below) are arrays of such arguments that a later argument
# overrides, so a script states only what differs from the preset.

# The suite, the demo and the benchmark run the agent as root without
# [agent] user on purpose; a real install never sets this (the agent refuses
# root otherwise, see docs/config.md).  tests/integration/privdrop.sh unsets it.
export DIRBRIDGE_ALLOW_ROOT=1

# write_ini FILE ARG...: writes FILE from the arguments, in order:
#   SECTION.KEY=VALUE   sets KEY in [SECTION]; a later one for the same key
#                       replaces the value where the key first stood;
#   SECTION.KEY?=VALUE  the same, but an empty VALUE leaves the key out (and
#                       drops an earlier value), for optional settings;
#   -SECTION.KEY        drops the key.
# Sections come out in the order they are first named, a blank line between.
write_ini() {
  local f=$1 a id name val; shift
  local -a order=() sections=()
  local -A vals=() seen=() secseen=()
  for a in "$@"; do
    case $a in
      -*.*) unset "vals[${a#-}]"; continue ;;
      *.*=*) ;;
      *) echo "write_ini: '$a' is not SECTION.KEY=VALUE" >&2; return 2 ;;
    esac
    name=${a%%=*} val=${a#*=}
    if [ "${name%\?}" != "$name" ]; then
      name=${name%\?}
      [ -n "$val" ] || { unset "vals[$name]"; continue; }
    fi
    [ -n "${seen[$name]+x}" ] || { order+=("$name"); seen[$name]=1; }
    [ -n "${secseen[${name%%.*}]+x}" ] || { sections+=("${name%%.*}"); secseen[${name%%.*}]=1; }
    vals[$name]=$val
  done
  local s first=1
  {
    for s in "${sections[@]}"; do
      if [ -z "$first" ]; then echo; fi; first=
      echo "[$s]"
      for id in "${order[@]}"; do
        if [ "${id%%.*}" = "$s" ] && [ -n "${vals[$id]+x}" ]; then printf '%s = %s\n' "${id#*.}" "${vals[$id]}"; fi
      done
    done
  } >"$f"
}

# SLAPD_LDAP: the [ldap] section for the suite's shared slapd (tests/servers/
# slapd.sh): StartTLS, the service account whose password slapd_bind_password
# writes to $T/bind.password, the openldap schema.
SLAPD_LDAP=(
  "ldap.url=ldap://127.0.0.1:${SLAPD_PORT:-}"
  ldap.starttls=true
  "ldap.ca_file=${SLAPD_DIR:-}/tls/ca.crt"
  ldap.bind_dn=cn=dirbridge-svc,ou=services,dc=example,dc=test
  "ldap.bind_password_file=${T:-}/bind.password"
  ldap.base_dn=dc=example,dc=test
  ldap.type=openldap
  "ldap.user_filter=(&(objectClass=inetOrgPerson)(uid={username}))"
)
# slapd_bind_password: the service account's password file SLAPD_LDAP names.
slapd_bind_password() { printf '%s\n' 'Svc-Passw0rd!' >"$T/bind.password"; chmod 600 "$T/bind.password"; }
