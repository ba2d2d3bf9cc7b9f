#!/usr/bin/env bash
# Local backing services for SkyWatch Portal: PostgreSQL 15, Redis, Elasticsearch.
#
# Usage: scripts/services.sh start|stop|env|status
#        scripts/services.sh start-pg|stop-pg|start-redis|stop-redis|start-es|stop-es
#
#   start   install what is missing, start everything, wait until each service
#           answers, then print the env lines:  eval "$(scripts/services.sh start)"
#   stop    stop everything (harmless when already stopped)
#   env     print the export lines only
#   status  one line per service (up/down); exit 0 if all are up, 3 otherwise
#   start-X / stop-X   one service only, waiting until it is up / down
#                      (for fault injection in soak tests)
#
# A 3-node Elasticsearch cluster for tests, beside the single node (which it never touches):
#   cluster-start      start the missing nodes (from stopped: with empty data dirs, a new cluster),
#                      wait until the cluster is green with 3 nodes, print its env line:
#                      eval "$(scripts/services.sh cluster-start)"   (already up: says so)
#   cluster-stop       stop every node of the cluster (harmless when already stopped)
#   cluster-status     one line per node and one for the cluster's health; exit 0 if green with 3 nodes
#   cluster-env        print its export line (ELASTICSEARCH_URL=<the three node URLs, comma-separated>)
#   cluster-node-stop N / cluster-node-start N
#                      stop node N (1-3) / start it again with its data and wait until it has rejoined
#
# Only the `export` lines go to stdout; all progress goes to stderr.
# Needs root (apt-get, runuser). Services run without systemd.
#
# Environment:
#   SKYWATCH_CACHE    cache dir: Redis dir, Elasticsearch install and data, lock (default: <repo>/.cache)
#   SKYWATCH_PG_CLUSTER, SKYWATCH_PG_PORT     PostgreSQL 15 cluster and port (default main, 5432)
#   SKYWATCH_REDIS_PORT                       Redis port (default 6379)
#   SKYWATCH_ES_PORT, SKYWATCH_ES_TRANSPORT_PORT
#                     Elasticsearch HTTP and transport ports (default 9200 and ES's own 9300-9399)
#                     With its own cache dir and these ports a second, independent instance set
#                     runs beside the default one (the soak test's: see soak/instances.py).
#   ES_VERSION        Elasticsearch version (default 8.19.7)
#   ES_JAVA_OPTS      JVM options for Elasticsearch (default -Xms512m -Xmx1g)
#   ES_START_TIMEOUT  seconds to wait for Elasticsearch (default 120)
#   SKYWATCH_ES_CLUSTER_PORT, SKYWATCH_ES_CLUSTER_TRANSPORT_PORT
#                     the cluster's first HTTP and transport ports (default 9221 and 9321: nodes on
#                     9221-9223 and 9321-9323; 9210-9211 and 9310-9311 are the soak's instance sets)
#   ES_CLUSTER_JAVA_OPTS  JVM options of each cluster node (default -Xms256m -Xmx256m)
#   ES_CLUSTER_START_TIMEOUT  seconds to wait for the cluster to turn green (default 300)
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
REPO_DIR=$(cd "$SCRIPT_DIR/.." && pwd -P)
CACHE_DIR=${SKYWATCH_CACHE:-$REPO_DIR/.cache}

PG_VERSION=15
PG_CLUSTER=${SKYWATCH_PG_CLUSTER:-main}
PG_HOST=127.0.0.1
PG_PORT=${SKYWATCH_PG_PORT:-5432}
PG_LOG=/var/log/postgresql/postgresql-$PG_VERSION-$PG_CLUSTER.log
DB_NAME=skywatch
DB_USER=skywatch
DB_PASSWORD=skywatch

REDIS_HOST=127.0.0.1
REDIS_PORT=${SKYWATCH_REDIS_PORT:-6379}
REDIS_DIR=$CACHE_DIR/redis

ES_VERSION=${ES_VERSION:-8.19.7}
ES_HOST=127.0.0.1
ES_PORT=${SKYWATCH_ES_PORT:-9200}
ES_TRANSPORT_PORT=${SKYWATCH_ES_TRANSPORT_PORT:-}
ES_USER=skywatch-es
ES_JAVA_OPTS=${ES_JAVA_OPTS:--Xms512m -Xmx1g}
ES_START_TIMEOUT=${ES_START_TIMEOUT:-120}
ES_ARTIFACT=org.elasticsearch.distribution.integ-test-zip:elasticsearch:$ES_VERSION:zip
M2_REPO=${M2_REPO:-$HOME/.m2/repository}
ES_ZIP=$M2_REPO/org/elasticsearch/distribution/integ-test-zip/elasticsearch/$ES_VERSION/elasticsearch-$ES_VERSION.zip
ES_URL=http://$ES_HOST:$ES_PORT

ES_CLUSTER_NODES=3
ES_CLUSTER_PORT=${SKYWATCH_ES_CLUSTER_PORT:-9221}
ES_CLUSTER_TRANSPORT_PORT=${SKYWATCH_ES_CLUSTER_TRANSPORT_PORT:-9321}
ES_CLUSTER_JAVA_OPTS=${ES_CLUSTER_JAVA_OPTS:--Xms256m -Xmx256m}
ES_CLUSTER_START_TIMEOUT=${ES_CLUSTER_START_TIMEOUT:-300}
ES_CLUSTER_NAME=skywatch-test-cluster

# ---------------------------------------------------------------- helpers ---

log() { printf '[services] %s\n' "$*" >&2; }

die() {
    printf '[services] ERROR: %s\n' "$*" >&2
    exit 1
}

# Show the end of a log file (to stderr) when a service fails to come up.
show_log_tail() {
    local file=$1
    if [[ -r $file ]]; then
        printf '[services] ---- last 40 lines of %s ----\n' "$file" >&2
        tail -n 40 "$file" >&2 || true
        printf '[services] ---- end of %s ----\n' "$file" >&2
    else
        log "(no log file at $file)"
    fi
}

# wait_until SECONDS CMD...: poll CMD every 0.5 s until it succeeds or time runs out.
wait_until() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.5
    done
}

APT_UPDATED=0
apt_install() {
    # A fresh machine has empty package lists: update once per run, before the first install.
    if ((APT_UPDATED == 0)); then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 3>&- 9>&-
        APT_UPDATED=1
    fi
    log "apt-get install $*"
    # fds 3/9 closed: a package's postinst may start a daemon (see main()).
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2 3>&- 9>&-
}

need_root() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (needs apt-get, runuser, useradd)"
}

# Serialize start/stop so two callers (e.g. parallel CI steps) don't race.
take_lock() {
    mkdir -p "$CACHE_DIR"
    exec 9>"$CACHE_DIR/.services.lock"
    flock -w 300 9 || die "another services.sh holds $CACHE_DIR/.services.lock"
}

print_env() {
    echo "export DATABASE_URL=postgres://$DB_USER:$DB_PASSWORD@$PG_HOST:$PG_PORT/$DB_NAME"
    echo "export CELERY_BROKER_URL=redis://$REDIS_HOST:$REDIS_PORT/0"
    echo "export ELASTICSEARCH_URL=$ES_URL"
}

# ------------------------------------------------------------- PostgreSQL ---

pg_is_ready() { pg_isready -q -h "$PG_HOST" -p "$PG_PORT" -t 2 2>/dev/null; }
pg_is_down() { ! pg_is_ready; }

# Admin SQL over the Unix socket with peer auth as the postgres superuser.
# (cd / so psql doesn't warn about a cwd the postgres user cannot read.)
pg_admin_psql() {
    (cd / && runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$PG_PORT" "$@")
}

pg_install() {
    # postgresql-hll: the HyperLogLog sketches of unique users (apps/metrics).
    if command -v pg_ctlcluster >/dev/null && [[ -x /usr/lib/postgresql/$PG_VERSION/bin/postgres ]] \
        && [[ -f /usr/share/postgresql/$PG_VERSION/extension/hll.control ]]; then
        return
    fi
    # Debian's policy-rc.d (if any) keeps the package from starting it; we start it below.
    apt_install postgresql "postgresql-$PG_VERSION" "postgresql-$PG_VERSION-hll"
}

pg_cluster_exists() {
    pg_lsclusters -h 2>/dev/null | awk -v v="$PG_VERSION" -v c="$PG_CLUSTER" '$1 == v && $2 == c {f = 1} END {exit !f}'
}

pg_cluster_running() { pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" status >/dev/null 2>&1; }

pg_ensure_cluster() {
    if ! pg_cluster_exists; then
        log "creating PostgreSQL cluster $PG_VERSION/$PG_CLUSTER"
        pg_createcluster "$PG_VERSION" "$PG_CLUSTER" --port "$PG_PORT" >&2
    fi
    # Pin address and port even if the cluster was created some other way.
    # port stays in postgresql.conf (Debian's tools read it from there);
    # listen_addresses goes into a conf.d drop-in (Debian's postgresql.conf has
    # include_dir 'conf.d'), rewritten only when its content changes.
    local conf_dir=/etc/postgresql/$PG_VERSION/$PG_CLUSTER changed=0
    if [[ $(pg_conftool -s "$PG_VERSION" "$PG_CLUSTER" show port 2>/dev/null || true) != "$PG_PORT" ]]; then
        pg_conftool "$PG_VERSION" "$PG_CLUSTER" set port "$PG_PORT"
        changed=1
    fi
    local dropin=$conf_dir/conf.d/skywatch.conf
    local want="# written by skywatch scripts/services.sh
listen_addresses = '$PG_HOST'"
    if [[ ! -f $dropin || $(<"$dropin") != "$want" ]]; then
        mkdir -p "$conf_dir/conf.d"
        printf '%s\n' "$want" >"$dropin"
        changed=1
    fi
    if ((changed)) && pg_cluster_running; then
        log "restarting PostgreSQL to apply port/listen_addresses"
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" restart >&2 3>&- 9>&-
    fi
}

pg_ensure_role_and_db() {
    # ALTER on every run keeps the password/attributes right if someone changed them.
    pg_admin_psql -d postgres <<SQL
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
  ELSE
    ALTER ROLE $DB_USER LOGIN CREATEDB PASSWORD '$DB_PASSWORD';
  END IF;
END
\$\$;
-- The benchmarks start each timed side from a settled state (bench/partitions.py): CHECKPOINT first.
SET client_min_messages = warning;
GRANT pg_checkpoint TO $DB_USER;
-- The soak and the bench recreate their databases with DROP DATABASE ... WITH (FORCE). On PostgreSQL 15
-- that also ends any autovacuum worker in the database, and an autovacuum worker has no role: only a
-- member of pg_signal_backend may end it (without this, the drop fails whenever autovacuum is at work there).
GRANT pg_signal_backend TO $DB_USER;
SQL
    # The hll extension needs a superuser to create: made in template1, every database created later
    # (the test and bench databases too) has it, and the migration finds it in place.
    pg_admin_psql -d template1 -c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS hll"
    if [[ $(pg_admin_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'") != 1 ]]; then
        log "creating database $DB_NAME"
        pg_admin_psql -d postgres -c "CREATE DATABASE $DB_NAME OWNER $DB_USER"
    fi
    pg_admin_psql -d "$DB_NAME" -c "SET client_min_messages = warning; CREATE EXTENSION IF NOT EXISTS hll"
}

start_pg() {
    pg_install
    pg_ensure_cluster
    if pg_cluster_running; then
        log "PostgreSQL $PG_VERSION/$PG_CLUSTER already running"
    else
        log "starting PostgreSQL $PG_VERSION/$PG_CLUSTER"
        if ! pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" start >&2 3>&- 9>&-; then
            show_log_tail "$PG_LOG"
            die "pg_ctlcluster $PG_VERSION $PG_CLUSTER start failed"
        fi
    fi
    if ! wait_until 60 pg_is_ready; then
        show_log_tail "$PG_LOG"
        die "PostgreSQL did not answer on $PG_HOST:$PG_PORT within 60 s"
    fi
    pg_ensure_role_and_db
    log "PostgreSQL up on $PG_HOST:$PG_PORT (database $DB_NAME, role $DB_USER)"
}

stop_pg() {
    if command -v pg_ctlcluster >/dev/null && pg_cluster_exists && pg_cluster_running; then
        log "stopping PostgreSQL $PG_VERSION/$PG_CLUSTER"
        pg_ctlcluster "$PG_VERSION" "$PG_CLUSTER" stop -m fast >&2
    fi
    wait_until 60 pg_is_down || die "PostgreSQL still answers on $PG_HOST:$PG_PORT"
    log "PostgreSQL down"
}

# ------------------------------------------------------------------ Redis ---

redis_is_up() { [[ $(redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }
redis_is_down() { ! redis_is_up; }

start_redis() {
    if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
        apt_install redis-server redis-tools
    fi
    if redis_is_up; then
        log "Redis already answers on $REDIS_HOST:$REDIS_PORT"
        return
    fi
    mkdir -p "$REDIS_DIR"
    log "starting Redis on $REDIS_HOST:$REDIS_PORT (dir $REDIS_DIR)"
    # No systemd here: run it daemonized ourselves. Dev only: no persistence.
    if ! redis-server --daemonize yes --bind "$REDIS_HOST" --port "$REDIS_PORT" \
        --dir "$REDIS_DIR" --pidfile "$REDIS_DIR/redis.pid" --logfile "$REDIS_DIR/redis.log" \
        --save "" --appendonly no >&2 3>&- 9>&-; then
        show_log_tail "$REDIS_DIR/redis.log"
        die "redis-server failed to start"
    fi
    if ! wait_until 30 redis_is_up; then
        show_log_tail "$REDIS_DIR/redis.log"
        die "Redis did not answer PONG on $REDIS_HOST:$REDIS_PORT within 30 s"
    fi
    log "Redis up on $REDIS_HOST:$REDIS_PORT"
}

stop_redis() {
    if command -v redis-cli >/dev/null && redis_is_up; then
        log "stopping Redis"
        # The connection drops as the server exits, so redis-cli may report an error.
        redis-cli -h "$REDIS_HOST" -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
    fi
    wait_until 30 redis_is_down || die "Redis still answers on $REDIS_HOST:$REDIS_PORT"
    log "Redis down"
}

# ---------------------------------------------------------- Elasticsearch ---

es_ensure_user() {
    id -u "$ES_USER" >/dev/null 2>&1 && return
    log "creating system user $ES_USER"
    useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$ES_USER"
}

# Decide where the ES install, data and logs live (sets ES_BASE and derived paths).
# Normally <cache>/elasticsearch. But ES refuses to run as root, and the repo may
# be cloned somewhere the $ES_USER cannot reach (e.g. under /root, mode 700); then
# use a per-checkout dir under /var/tmp instead.
ES_FALLBACK=0
es_paths() {
    ES_BASE=$CACHE_DIR/elasticsearch
    if id -u "$ES_USER" >/dev/null 2>&1 && [[ -d $CACHE_DIR ]] &&
        ! runuser -u "$ES_USER" -- test -x "$CACHE_DIR" 2>/dev/null; then
        local hash
        hash=$(printf '%s' "$CACHE_DIR" | sha256sum | cut -c1-12)
        ES_BASE=/var/tmp/skywatch-es/$hash
        ES_FALLBACK=1
    fi
    ES_HOME=$ES_BASE/elasticsearch-$ES_VERSION   # unpacked zip, owned by root, read-only for ES
    ES_STATE=$ES_BASE/node-$ES_VERSION           # owned by $ES_USER; per version (no downgrades of data)
    ES_CONF=$ES_STATE/config
    ES_DATA=$ES_STATE/data
    ES_LOGS=$ES_STATE/logs
    ES_TMP=$ES_STATE/tmp
    ES_PIDFILE=$ES_BASE/elasticsearch.pid
    ES_CONSOLE=$ES_STATE/console.log             # launcher output (startup errors land here)
    ES_LOG=$ES_LOGS/skywatch-dev.log             # <cluster.name>.log
}

es_java_home() {
    [[ -x /usr/bin/java ]] || apt_install openjdk-17-jre-headless
    local java
    java=$(readlink -f /usr/bin/java)
    echo "${java%/bin/java}"
}

es_fetch_zip() {
    [[ -f $ES_ZIP ]] && return
    command -v mvn >/dev/null || apt_install maven
    log "fetching $ES_ARTIFACT with mvn"
    mvn -B -q -Dstyle.color=never dependency:get -Dartifact="$ES_ARTIFACT" -Dtransitive=false \
        -Dmaven.repo.local="$M2_REPO" >&2 || die "mvn dependency:get $ES_ARTIFACT failed"
    [[ -f $ES_ZIP ]] || die "mvn did not produce $ES_ZIP"
}

es_unpack() {
    [[ -x $ES_HOME/bin/elasticsearch ]] && return
    es_fetch_zip
    command -v unzip >/dev/null || apt_install unzip
    log "unpacking Elasticsearch $ES_VERSION into $ES_HOME"
    mkdir -p "$ES_BASE"
    # Unpack beside, then rename: an interrupted unzip never looks installed.
    local tmp=$ES_BASE/.unpack.$$
    rm -rf "$tmp"
    unzip -q "$ES_ZIP" -d "$tmp"
    [[ -x $tmp/elasticsearch-$ES_VERSION/bin/elasticsearch ]] || die "unexpected layout in $ES_ZIP"
    rm -rf "$ES_HOME"
    mv "$tmp/elasticsearch-$ES_VERSION" "$ES_HOME"
    rm -rf "$tmp"
    chown -R root:root "$ES_HOME"
    chmod -R go+rX,go-w "$ES_HOME"
}

# Fresh config dir on every start: the distribution's defaults + our
# elasticsearch.yml. A separate ES_PATH_CONF keeps the unpacked home pristine
# (ES itself rewrites its config on first start when security auto-configures).
es_write_config() {
    rm -rf "$ES_CONF"
    mkdir -p "$ES_CONF" "$ES_DATA" "$ES_LOGS" "$ES_TMP"
    cp -a "$ES_HOME/config/." "$ES_CONF/"
    cp "$SCRIPT_DIR/es/elasticsearch.yml" "$ES_CONF/elasticsearch.yml"
    if [[ -n $ES_TRANSPORT_PORT ]]; then
        # A second instance set on this machine: a transport port of its own, so it never binds the
        # default node's port range (discovery.type single-node keeps it from joining that node).
        printf '\n# written by services.sh (SKYWATCH_ES_TRANSPORT_PORT)\ntransport.port: %s\n' \
            "$ES_TRANSPORT_PORT" >>"$ES_CONF/elasticsearch.yml"
    fi
    if [[ -d $SCRIPT_DIR/es/jvm.options.d ]]; then
        cp "$SCRIPT_DIR"/es/jvm.options.d/*.options "$ES_CONF/jvm.options.d/" 2>/dev/null || true
    fi
    chown -R "$ES_USER:" "$ES_CONF"
    # Data/logs are written by ES; fix ownership only when it's wrong (avoid a
    # recursive chown over a big data dir on every start).
    # ES_BASE itself only non-recursively: the unpacked home inside stays root's.
    [[ $(stat -c %U "$ES_BASE") == "$ES_USER" ]] || chown "$ES_USER:" "$ES_BASE"
    chmod 755 "$ES_BASE"
    local d
    for d in "$ES_STATE" "$ES_DATA" "$ES_LOGS" "$ES_TMP"; do
        [[ $(stat -c %U "$d") == "$ES_USER" ]] || chown -R "$ES_USER:" "$d"
    done
    if ((ES_FALLBACK)); then
        chmod 755 /var/tmp/skywatch-es
    fi
}

# True while process $1 exists and is not a zombie (exited, waiting to be reaped).
proc_alive() {
    local stat
    stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
    [[ ${stat##*) } != Z* ]]
}

# Print the pid of our running Elasticsearch (from the pidfile), or fail.
es_pid() {
    local pid
    [[ -f $ES_PIDFILE ]] || return 1
    pid=$(<"$ES_PIDFILE")
    [[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid" || return 1
    # Guard against a recycled pid: it must be a java process of $ES_USER.
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == java ]] || return 1
    [[ $(stat -c %U "/proc/$pid" 2>/dev/null) == "$ES_USER" ]] || return 1
    echo "$pid"
}

es_is_up() {
    curl -sf -m 5 "$ES_URL/_cluster/health?wait_for_status=yellow&timeout=1s" 2>/dev/null |
        grep -Eq '"status":"(green|yellow)"'
}

# ES deletes its pidfile early in shutdown, so wait on the pid itself.
es_is_gone() { ! proc_alive "$1" && ! es_is_up; }

es_check_max_map_count() {
    local count
    count=$(cat /proc/sys/vm/max_map_count 2>/dev/null || echo 0)
    if ((count < 262144)); then
        # Only a warning for a single node on loopback (bootstrap checks are not enforced).
        log "note: vm.max_map_count=$count (< 262144); fine for a loopback single-node dev ES"
    fi
}

start_es() {
    es_ensure_user
    mkdir -p "$CACHE_DIR"
    es_paths
    if ((ES_FALLBACK)); then
        log "note: $CACHE_DIR is not reachable by user $ES_USER; Elasticsearch lives in $ES_BASE instead"
    fi
    if es_is_up; then
        if es_pid >/dev/null; then
            log "Elasticsearch already up on $ES_URL (pid $(es_pid))"
        else
            log "something already answers as Elasticsearch on $ES_URL (not started from $ES_BASE); leaving it"
        fi
        return
    fi
    if ! es_pid >/dev/null; then
        es_unpack
        es_write_config
        es_check_max_map_count
        local java_home
        java_home=$(es_java_home)
        log "starting Elasticsearch $ES_VERSION as $ES_USER (home $ES_HOME, data $ES_DATA, logs $ES_LOGS)"
        rm -f "$ES_PIDFILE"
        # -d returns once the node has started (or failed). The timeout guards a
        # hung launcher; the health poll below is the real readiness check.
        # ulimit: ES warns below 65535 open files; best effort (some sandboxes
        # cap the hard limit, e.g. at 20000, which is still plenty for dev).
        if ! (
            cd "$ES_STATE"
            ulimit -n 65535 2>/dev/null || true
            exec timeout "$ES_START_TIMEOUT" runuser -u "$ES_USER" -- env \
                ES_JAVA_HOME="$java_home" ES_JAVA_OPTS="$ES_JAVA_OPTS" \
                ES_PATH_CONF="$ES_CONF" ES_TMPDIR="$ES_TMP" \
                SKYWATCH_ES_PORT="$ES_PORT" SKYWATCH_ES_DATA="$ES_DATA" SKYWATCH_ES_LOGS="$ES_LOGS" \
                "$ES_HOME/bin/elasticsearch" -d -p "$ES_PIDFILE" >"$ES_CONSOLE" 2>&1 3>&- 9>&-
        ); then
            show_log_tail "$ES_CONSOLE"
            show_log_tail "$ES_LOG"
            die "Elasticsearch failed to start (launcher output above: $ES_CONSOLE)"
        fi
    else
        log "Elasticsearch process $(es_pid) is running; waiting for it to answer"
    fi
    if ! wait_until "$ES_START_TIMEOUT" es_is_up; then
        show_log_tail "$ES_CONSOLE"
        show_log_tail "$ES_LOG"
        die "Elasticsearch did not reach yellow on $ES_URL within $ES_START_TIMEOUT s"
    fi
    log "Elasticsearch up on $ES_URL (pid $(es_pid || echo '?'))"
}

stop_es() {
    es_paths
    local pid
    if pid=$(es_pid); then
        log "stopping Elasticsearch (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_until 60 es_is_gone "$pid"; then
            log "Elasticsearch did not stop within 60 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            wait_until 10 es_is_gone "$pid" || die "could not stop Elasticsearch (pid $pid)"
        fi
    elif es_is_up; then
        die "something answers on $ES_URL but no Elasticsearch pid in $ES_PIDFILE; not stopping it"
    fi
    rm -f "$ES_PIDFILE"
    log "Elasticsearch down"
}

# ------------------------------------------------- Elasticsearch cluster ---
# Three nodes on loopback for the cluster tests (tests/traces/test_cluster.py): real discovery, real
# replicas, a node that can be stopped. They reuse the single node's unpacked distribution and user; their
# config, data, logs and pidfiles live in <ES_BASE>/cluster-<version>/node-N.

take_cluster_lock() {
    mkdir -p "$CACHE_DIR"
    # A lock of its own: a slow cluster start never holds up the single node's start/stop (fault tests).
    exec 8>"$CACHE_DIR/.cluster.lock"
    # Long enough for a start that another caller began (node launch + green wait, each up to the timeout).
    flock -w $((ES_CLUSTER_START_TIMEOUT * 2 + 60)) 8 || die "another services.sh holds $CACHE_DIR/.cluster.lock"
}

cluster_paths() {
    es_paths
    CLUSTER_BASE=$ES_BASE/cluster-$ES_VERSION
}

node_check_number() {
    [[ $1 =~ ^[0-9]+$ ]] && (($1 >= 1 && $1 <= ES_CLUSTER_NODES)) ||
        die "no cluster node '$1' (nodes are 1 to $ES_CLUSTER_NODES)"
}

node_dir() { echo "$CLUSTER_BASE/node-$1"; }
node_name() { echo "skywatch-cluster-node-$1"; }
node_port() { echo $((ES_CLUSTER_PORT + $1 - 1)); }
node_transport_port() { echo $((ES_CLUSTER_TRANSPORT_PORT + $1 - 1)); }
node_url() { echo "http://$ES_HOST:$(node_port "$1")"; }
node_log() { echo "$(node_dir "$1")/logs/$ES_CLUSTER_NAME.log"; }

cluster_urls() {
    local n urls=()
    for ((n = 1; n <= ES_CLUSTER_NODES; n++)); do urls+=("$(node_url "$n")"); done
    (IFS=,; echo "${urls[*]}")
}

cluster_print_env() { echo "export ELASTICSEARCH_URL=$(cluster_urls)"; }

# Print the pid of cluster node $1 (from its pidfile), or fail; same guards as es_pid.
node_pid() {
    local pid pidfile
    pidfile=$(node_dir "$1")/elasticsearch.pid
    [[ -f $pidfile ]] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] && proc_alive "$pid" || return 1
    [[ $(cat "/proc/$pid/comm" 2>/dev/null) == java ]] || return 1
    [[ $(stat -c %U "/proc/$pid" 2>/dev/null) == "$ES_USER" ]] || return 1
    echo "$pid"
}

# True when node $1's HTTP port gives any answer (a node without an elected master still answers).
node_answers() { curl -s -m 3 -o /dev/null "$(node_url "$1")/" 2>/dev/null; }

node_is_gone() { ! proc_alive "$1" && ! node_answers "$2"; }

# Print the cluster health JSON as the first answering node sees it (waiting up to 1 s for $1), or fail.
cluster_health() {
    local n wait=${1:-}
    for ((n = 1; n <= ES_CLUSTER_NODES; n++)); do
        node_answers "$n" || continue
        curl -s -m 5 "$(node_url "$n")/_cluster/health?timeout=1s$wait" 2>/dev/null && return 0
    done
    return 1
}

cluster_is_green() {
    cluster_health "&wait_for_status=green&wait_for_nodes=$ES_CLUSTER_NODES" |
        grep -q '"status":"green".*"timed_out":false\|"timed_out":false.*"status":"green"'
}

# True when node $1 is part of a cluster of all the nodes (whatever its shards are doing).
node_has_joined() {
    curl -s -m 5 "$(node_url "$1")/_cluster/health?timeout=1s&local=true&wait_for_nodes=$ES_CLUSTER_NODES" \
        2>/dev/null | grep -q '"timed_out":false'
}

cluster_show_logs() {
    local n
    for ((n = 1; n <= ES_CLUSTER_NODES; n++)); do
        show_log_tail "$(node_dir "$n")/console.log"
        show_log_tail "$(node_log "$n")"
    done
}

# Fresh config dir for node $1 (the distribution's defaults + scripts/es/cluster.yml); data kept.
node_write_config() {
    local dir conf
    dir=$(node_dir "$1")
    conf=$dir/config
    rm -rf "$conf"
    mkdir -p "$conf" "$dir/data" "$dir/logs" "$dir/tmp"
    cp -a "$ES_HOME/config/." "$conf/"
    cp "$SCRIPT_DIR/es/cluster.yml" "$conf/elasticsearch.yml"
    chown -R "$ES_USER:" "$dir"
}

# Start node $1 in the background of this shell (the launcher returns once the node runs or failed).
node_launch() {
    local n=$1 dir java_home seeds masters i
    dir=$(node_dir "$n")
    java_home=$(es_java_home)
    seeds=() masters=()
    for ((i = 1; i <= ES_CLUSTER_NODES; i++)); do
        seeds+=("$ES_HOST:$(node_transport_port "$i")")
        masters+=("$(node_name "$i")")
    done
    log "starting cluster node $n ($(node_url "$n"), transport $(node_transport_port "$n"), data $dir/data)"
    rm -f "$dir/elasticsearch.pid"
    (
        cd "$dir"
        ulimit -n 65535 2>/dev/null || true
        exec timeout "$ES_CLUSTER_START_TIMEOUT" runuser -u "$ES_USER" -- env \
            ES_JAVA_HOME="$java_home" ES_JAVA_OPTS="$ES_CLUSTER_JAVA_OPTS" \
            ES_PATH_CONF="$dir/config" ES_TMPDIR="$dir/tmp" \
            SKYWATCH_ES_NODE_NAME="$(node_name "$n")" \
            SKYWATCH_ES_PORT="$(node_port "$n")" SKYWATCH_ES_TRANSPORT_PORT="$(node_transport_port "$n")" \
            SKYWATCH_ES_SEED_HOSTS="$(IFS=,; echo "${seeds[*]}")" \
            SKYWATCH_ES_INITIAL_MASTERS="$(IFS=,; echo "${masters[*]}")" \
            SKYWATCH_ES_DATA="$dir/data" SKYWATCH_ES_LOGS="$dir/logs" \
            "$ES_HOME/bin/elasticsearch" -d -p "$dir/elasticsearch.pid" >"$dir/console.log" 2>&1 3>&- 8>&- 9>&-
    ) &
}

# The unpacked distribution and a base dir the ES user can traverse, as the single node's start leaves them.
cluster_ensure_install() {
    es_ensure_user
    mkdir -p "$CACHE_DIR"
    cluster_paths
    if [[ ! -x $ES_HOME/bin/elasticsearch ]]; then
        # Unpacking is the single node's business too: do it under its lock.
        take_lock
        es_unpack
        exec 9>&-
    fi
    chmod 755 "$ES_BASE"
    if ((ES_FALLBACK)); then
        chmod 755 /var/tmp/skywatch-es
    fi
    mkdir -p "$CLUSTER_BASE"
    chown "$ES_USER:" "$CLUSTER_BASE"
}

cluster_start() {
    cluster_ensure_install
    if cluster_is_green; then
        log "Elasticsearch cluster already up and green on $(cluster_urls)"
        return
    fi
    local n running=0 missing=() launchers=() failed=0
    for ((n = 1; n <= ES_CLUSTER_NODES; n++)); do
        if node_pid "$n" >/dev/null; then running=$((running + 1)); else missing+=("$n"); fi
    done
    if ((running == 0)); then
        # A cluster for tests: from stopped it starts empty, so it always forms anew (initial_master_nodes)
        # and no test meets indices an earlier run left.
        log "new Elasticsearch cluster: clearing the nodes' data dirs under $CLUSTER_BASE"
        rm -rf "$CLUSTER_BASE"/node-*/data
    else
        log "$running of $ES_CLUSTER_NODES cluster nodes already running; starting the others"
    fi
    es_check_max_map_count
    for n in "${missing[@]}"; do
        node_write_config "$n"
        node_launch "$n"
        launchers+=($!)
    done
    # The nodes start together: the first to start waits for the others to elect a master.
    for n in "${launchers[@]}"; do wait "$n" || failed=1; done
    if ((failed)); then
        cluster_show_logs
        die "an Elasticsearch cluster node failed to start (launcher output above)"
    fi
    if ! wait_until "$ES_CLUSTER_START_TIMEOUT" cluster_is_green; then
        cluster_show_logs
        log "last health: $(cluster_health || echo 'no node answers')"
        die "the Elasticsearch cluster did not turn green with $ES_CLUSTER_NODES nodes within $ES_CLUSTER_START_TIMEOUT s"
    fi
    log "Elasticsearch cluster green with $ES_CLUSTER_NODES nodes on $(cluster_urls) (${SECONDS}s)"
}

# Stop node $1 and wait until its process is gone (SIGKILL after 60 s).
node_stop() {
    local n=$1 pid
    if pid=$(node_pid "$n"); then
        log "stopping cluster node $n (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
        if ! wait_until 60 node_is_gone "$pid" "$n"; then
            log "cluster node $n did not stop within 60 s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
            wait_until 10 node_is_gone "$pid" "$n" || die "could not stop cluster node $n (pid $pid)"
        fi
    elif node_answers "$n"; then
        die "something answers on $(node_url "$n") but no Elasticsearch pid in $(node_dir "$n"); not stopping it"
    fi
    rm -f "$(node_dir "$n")/elasticsearch.pid"
}

cluster_stop() {
    cluster_paths
    local n pid
    # Signal every node first, then wait: one after the other, each stop would wait out a re-election.
    for ((n = 1; n <= ES_CLUSTER_NODES; n++)); do
        if pid=$(node_pid "$n"); then kill -TERM "$pid" 2>/dev/null || true; fi
    done
    for ((n = 1; n <= ES_CLUSTER_NODES; n++)); do node_stop "$n"; done
    log "Elasticsearch cluster down"
}

cluster_node_stop() {
    node_check_number "$1"
    cluster_paths
    node_stop "$1"
    log "cluster node $1 down"
}

cluster_node_start() {
    node_check_number "$1"
    cluster_ensure_install
    local n=$1
    if node_pid "$n" >/dev/null; then
        log "cluster node $n already running (pid $(node_pid "$n"))"
    else
        [[ -d $(node_dir "$n")/data ]] || die "cluster node $n has no data dir: start the cluster with cluster-start"
        node_write_config "$n"
        node_launch "$n"
        if ! wait $!; then
            show_log_tail "$(node_dir "$n")/console.log"
            show_log_tail "$(node_log "$n")"
            die "cluster node $n failed to start"
        fi
    fi
    if ! wait_until "$ES_CLUSTER_START_TIMEOUT" node_has_joined "$n"; then
        show_log_tail "$(node_log "$n")"
        die "cluster node $n did not rejoin the cluster within $ES_CLUSTER_START_TIMEOUT s"
    fi
    log "cluster node $n up and in the cluster ($(node_url "$n"))"
}

cluster_status() {
    cluster_paths
    local n pid health status nodes
    for ((n = 1; n <= ES_CLUSTER_NODES; n++)); do
        if pid=$(node_pid "$n") && node_answers "$n"; then
            echo "cluster node $n: up ($(node_url "$n"), pid $pid)"
        else
            echo "cluster node $n: down ($(node_url "$n"))"
        fi
    done
    if health=$(cluster_health); then
        status=$(grep -o '"status":"[a-z]*"' <<<"$health" | cut -d'"' -f4)
        nodes=$(grep -o '"number_of_nodes":[0-9]*' <<<"$health" | cut -d: -f2)
        echo "cluster: ${status:-unknown} (${nodes:-?} nodes)"
    else
        echo "cluster: down"
    fi
    cluster_is_green || return 3
}

# ------------------------------------------------------------------- main ---

status_line() {
    local name=$1 addr=$2
    shift 2
    if "$@"; then echo "$name: up ($addr)"; else echo "$name: down ($addr)"; fi
}

status() {
    local rc=0
    status_line postgresql "$PG_HOST:$PG_PORT" pg_is_ready
    status_line redis "$REDIS_HOST:$REDIS_PORT" redis_is_up
    status_line elasticsearch "$ES_URL" es_is_up
    pg_is_ready && redis_is_up && es_is_up || rc=3
    return $rc
}

usage() {
    sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2
    exit 2
}

main() {
    local cmd=${1:-}
    case $cmd in
        env) print_env; return ;;
        status) status; return ;;
        cluster-env) cluster_print_env; return ;;
        cluster-status) cluster_status; return ;;
        start | stop | start-* | stop-*) ;;
        cluster-start | cluster-stop | cluster-node-stop | cluster-node-start) ;;
        *) usage ;;
    esac
    need_root
    # From here on stdout carries only the export lines: everything else
    # (apt, mvn, psql chatter) goes to stderr; fd 3 is the real stdout.
    # Daemons are started with fds 3 and 9 closed: if they inherited them,
    # $(services.sh start) would never see EOF and the lock would stay held.
    exec 3>&1 1>&2
    case $cmd in
        cluster-*)
            take_cluster_lock
            case $cmd in
                cluster-start)
                    cluster_start
                    cluster_print_env >&3
                    ;;
                cluster-stop) cluster_stop ;;
                cluster-node-stop) cluster_node_stop "${2:-}" ;;
                cluster-node-start) cluster_node_start "${2:-}" ;;
            esac
            return
            ;;
    esac
    take_lock
    case $cmd in
        start)
            start_pg
            start_redis
            start_es
            log "all services up (${SECONDS}s)"
            print_env >&3
            ;;
        stop)
            stop_es
            stop_redis
            stop_pg
            ;;
        start-pg) start_pg ;;
        stop-pg) stop_pg ;;
        start-redis) start_redis ;;
        stop-redis) stop_redis ;;
        start-es) start_es ;;
        stop-es) stop_es ;;
        *) usage ;;
    esac
}

main "$@"
