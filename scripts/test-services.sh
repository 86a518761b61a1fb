#!/usr/bin/env bash
# Makes sure what the test suite talks to is there: PostgreSQL 15 and Redis 7 on
# 127.0.0.1, Debian's chromium for the browser test, docker-compose to validate
# the fleet file, a Java runtime (for the v.Nu HTML checker) and SpamAssassin for
# the email-quality tests. Starts or installs what is missing; fails loudly otherwise.
set -euo pipefail

have_apt_packages=""
need_package() { command -v "$1" >/dev/null 2>&1 || have_apt_packages="$have_apt_packages $2"; }
need_package chromium chromium
need_package docker-compose docker-compose
need_package java default-jre-headless
need_package spamassassin spamassassin
if [ -n "$have_apt_packages" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "missing:$have_apt_packages; install them with apt-get (needs root)" >&2
    exit 1
  fi
  echo "installing Debian packages:$have_apt_packages" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $have_apt_packages >/dev/null
fi

if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n 1)" main start
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting Redis" >&2
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi

for _ in $(seq 1 50); do
  pg_isready -q -h 127.0.0.1 -p 5432 && redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && exit 0
  sleep 0.2
done
echo "PostgreSQL or Redis did not come up on 127.0.0.1 (5432, 6379)" >&2
exit 1
