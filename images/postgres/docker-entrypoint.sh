#!/usr/bin/env bash
# Entrypoint compatible with the official postgres image's environment.
# Never `set -x` here and never echo POSTGRES_PASSWORD.
set -Eeuo pipefail

msg() { printf '%s entrypoint: %s\n' "$(date -u +'%Y-%m-%d %H:%M:%S UTC')" "$*"; }
fatal() { msg "error: $*" >&2; exit 1; }

# file_env VAR: VAR may come from VAR_FILE (the file's content) instead.
file_env() {
  local var=$1 fvar=${1}_FILE
  if [[ -n ${!var:-} && -n ${!fvar:-} ]]; then
    fatal "both $var and $fvar are set (they are exclusive)"
  fi
  if [[ -n ${!fvar:-} ]]; then
    [[ -r ${!fvar} ]] || fatal "$fvar names a file that cannot be read"
    printf -v "$var" '%s' "$(<"${!fvar}")"
    export "$var"
  fi
}

# `docker run IMAGE -c foo=bar` => postgres -c foo=bar
if [[ ${1:-} == -* ]]; then
  set -- postgres "$@"
fi

if [[ ${1:-} == postgres && $(id -u) == 0 ]]; then
  mkdir -p "$PGDATA" /var/run/postgresql
  chown postgres:postgres "$PGDATA" /var/run/postgresql
  chmod 700 "$PGDATA"
  chmod 3777 /var/run/postgresql
  # Re-run this script as postgres (setpriv execs: postgres stays PID 1 and
  # receives the STOPSIGNAL directly).
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" "$@"
fi

if [[ ${1:-} == postgres ]]; then
  file_env POSTGRES_PASSWORD
  export POSTGRES_USER=${POSTGRES_USER:-postgres}
  export POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
  auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}

  if [[ ! -s $PGDATA/PG_VERSION ]]; then
    if [[ -z ${POSTGRES_PASSWORD:-} && $auth != trust ]]; then
      fatal "database is uninitialized and no superuser password is set: set POSTGRES_PASSWORD (or POSTGRES_PASSWORD_FILE), or POSTGRES_HOST_AUTH_METHOD=trust"
    fi
    msg "initialising a new cluster in $PGDATA (user \"$POSTGRES_USER\", database \"$POSTGRES_DB\")"
    initdb_args=(-D "$PGDATA" --username="$POSTGRES_USER" --encoding=UTF8 --locale=C.UTF-8
      --auth-local=trust --auth-host="$auth")
    # shellcheck disable=SC2206
    extra=(${POSTGRES_INITDB_ARGS:-})
    if [[ -n ${POSTGRES_PASSWORD:-} ]]; then
      initdb "${initdb_args[@]}" --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD") "${extra[@]}" >/dev/null
    else
      initdb "${initdb_args[@]}" "${extra[@]}" >/dev/null
    fi
    {
      echo
      echo "# docker image defaults"
      echo "listen_addresses = '*'"
      echo "password_encryption = scram-sha-256"
    } >>"$PGDATA/postgresql.conf"
    {
      echo
      echo "# docker networks (password required unless POSTGRES_HOST_AUTH_METHOD says otherwise)"
      echo "host all all all $auth"
    } >>"$PGDATA/pg_hba.conf"

    # Temporary server on the unix socket only, for the database and init scripts.
    pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w -t 60 -l /tmp/pg-init.log start >/dev/null ||
      { cat /tmp/pg-init.log >&2; fatal "temporary server did not start"; }
    psql_cmd=(psql -v ON_ERROR_STOP=1 -X -q --username "$POSTGRES_USER" --no-password --dbname postgres)
    if [[ $POSTGRES_DB != postgres ]]; then
      exists=$("${psql_cmd[@]}" -tA --set db="$POSTGRES_DB" <<<"SELECT 1 FROM pg_database WHERE datname = :'db';")
      if [[ $exists != 1 ]]; then
        "${psql_cmd[@]}" --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
      fi
    fi
    shopt -s nullglob
    for f in /docker-entrypoint-initdb.d/*; do
      case $f in
        *.sh) msg "running $f"; if [[ -x $f ]]; then "$f"; else . "$f"; fi ;;
        *.sql) msg "running $f"; "${psql_cmd[@]}" --dbname "$POSTGRES_DB" -f "$f" ;;
        *.sql.gz) msg "running $f"; gzip -dc "$f" | "${psql_cmd[@]}" --dbname "$POSTGRES_DB" ;;
        *) msg "ignoring $f" ;;
      esac
    done
    shopt -u nullglob
    pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
    rm -f /tmp/pg-init.log
    msg "init complete; starting PostgreSQL"
  else
    msg "PostgreSQL database directory appears to contain a database; skipping initialization"
  fi
  unset POSTGRES_PASSWORD
fi

exec "$@"
