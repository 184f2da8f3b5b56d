#!/bin/sh
# One-shot schema set-up for Temporal on PostgreSQL (service temporal-schema in
# docker-compose.temporal.yml; runs in temporalio/admin-tools, busybox sh).
# Creates the two databases if missing, then brings both schemas to the version
# shipped in this admin-tools image. Safe to re-run: `create` accepts an existing
# database, `setup-schema -v 0.0` keeps a newer version, `update-schema` only
# applies missing versions.
# Env: POSTGRES_SEEDS, DB_PORT, POSTGRES_USER, SQL_PASSWORD (read by
# temporal-sql-tool), DBNAME, VISIBILITY_DBNAME.
set -eu

: "${POSTGRES_SEEDS:?}" "${POSTGRES_USER:?}" "${SQL_PASSWORD:?}"
DB_PORT=${DB_PORT:-5432}
DBNAME=${DBNAME:-temporal}
VISIBILITY_DBNAME=${VISIBILITY_DBNAME:-temporal_visibility}
SCHEMA_ROOT=${SCHEMA_ROOT:-/etc/temporal/schema/postgresql/v12}

sql_tool() {
  temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" "$@"
}

# The healthcheck says Postgres is up; still allow for a slow first start.
attempt=1
until sql_tool --db "$DBNAME" create; do
  if [ "$attempt" -ge 30 ]; then
    echo "temporal-schema: PostgreSQL at $POSTGRES_SEEDS:$DB_PORT not usable after $attempt attempts" >&2
    exit 1
  fi
  echo "temporal-schema: waiting for PostgreSQL ($attempt)"
  attempt=$((attempt + 1))
  sleep 2
done

sql_tool --db "$DBNAME" setup-schema -v 0.0
sql_tool --db "$DBNAME" update-schema -d "$SCHEMA_ROOT/temporal/versioned"

sql_tool --db "$VISIBILITY_DBNAME" create
sql_tool --db "$VISIBILITY_DBNAME" setup-schema -v 0.0
sql_tool --db "$VISIBILITY_DBNAME" update-schema -d "$SCHEMA_ROOT/visibility/versioned"

echo "temporal-schema: $DBNAME and $VISIBILITY_DBNAME are up to date"
