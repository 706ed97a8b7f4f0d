#!/bin/bash
# Run once by the postgres image's entrypoint on an empty data directory
# (/docker-entrypoint-initdb.d): a role and a database for Keycloak and for
# llm-api, each with the password from its secret file. psql reads the
# passwords itself (\set with a backquoted command), so they never appear on
# a command line.
set -euo pipefail
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres <<'SQL'
\set kc_pw `cat /run/secrets/keycloak_db_password`
\set llm_pw `cat /run/secrets/llm_api_db_password`
CREATE ROLE keycloak LOGIN PASSWORD :'kc_pw';
CREATE DATABASE keycloak OWNER keycloak;
CREATE ROLE llmapi LOGIN PASSWORD :'llm_pw';
CREATE DATABASE llmapi OWNER llmapi;
REVOKE ALL ON DATABASE keycloak FROM PUBLIC;
REVOKE ALL ON DATABASE llmapi FROM PUBLIC;
SQL
