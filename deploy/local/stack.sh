#!/usr/bin/env bash
# Local infrastructure for development, tests and CI: one Kafka broker (KRaft, no
# ZooKeeper) and one PostgreSQL cluster, both owned by this checkout, no Docker.
#
#   deploy/local/stack.sh install                 fetch what is missing (Kafka jars via mvn,
#                                                 PostgreSQL via apt); fast when present
#   deploy/local/stack.sh start [kafka|postgres]  start (default: both) and wait until READY
#   deploy/local/stack.sh stop  [kafka|postgres]  clean stop; ok when not running
#   deploy/local/stack.sh kill9 [kafka|postgres]  SIGKILL (crash simulation for chaos tests)
#   deploy/local/stack.sh status                  running/stopped per component
#   deploy/local/stack.sh reset                   stop both and delete their data (keeps jars)
#   deploy/local/stack.sh env                     print `export ...` lines: eval "$(... env)"
#
# Runtime state lives under CC_LOCAL_DIR (default <repo>/.local). See README.md here.
set -euo pipefail

SCRIPT_DIR=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd -P)
REPO_ROOT=$(cd -- "$SCRIPT_DIR/../.." && pwd -P)

LOCAL_DIR=${CC_LOCAL_DIR:-$REPO_ROOT/.local}
case $LOCAL_DIR in
    /*) ;;
    *) LOCAL_DIR=$REPO_ROOT/$LOCAL_DIR ;;   # a relative CC_LOCAL_DIR is relative to the repo
esac
LOCAL_DIR=${LOCAL_DIR%/}

KAFKA_PORT=${CC_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${CC_KAFKA_CONTROLLER_PORT:-19093}
PG_PORT=${CC_PG_PORT:-55432}

PG_USER=contactcenter
PG_PASSWORD=contactcenter
SERVICES=(intake router sla feedback console)   # one database per service, same names

KAFKA_START_TIMEOUT=${CC_KAFKA_START_TIMEOUT:-90}   # seconds, readiness probe deadline
PG_START_TIMEOUT=${CC_PG_START_TIMEOUT:-60}
STOP_TIMEOUT=${CC_STOP_TIMEOUT:-30}                 # SIGTERM grace before SIGKILL
KAFKA_HEAP_OPTS=${CC_KAFKA_HEAP_OPTS:--Xms128m -Xmx384m}
PYTHON=${CC_PYTHON:-$REPO_ROOT/.venv/bin/python}

# --- Kafka layout -------------------------------------------------------------------
KAFKA_SRC=$SCRIPT_DIR/kafka
KAFKA_POM=$KAFKA_SRC/pom.xml
KAFKA_TEMPLATE=$KAFKA_SRC/server.properties.in
KAFKA_LOG4J=$KAFKA_SRC/log4j.properties
KAFKA_DIR=$LOCAL_DIR/kafka
KAFKA_LIBS=$KAFKA_DIR/libs
KAFKA_STAMP=$KAFKA_LIBS/.installed          # inside libs/: replaced together with the jars
KAFKA_DATA=$KAFKA_DIR/data
KAFKA_PROPS=$KAFKA_DIR/server.properties
KAFKA_LOG=$KAFKA_DIR/kafka.log
KAFKA_PID=$KAFKA_DIR/kafka.pid

# --- PostgreSQL layout --------------------------------------------------------------
# $LOCAL_DIR/pg is either a real directory or, when the postgres user cannot reach
# $LOCAL_DIR (repo under /root, mode 700), a symlink to $PG_EXTERNAL_ROOT/<hash>/pg.
PG_LINK=$LOCAL_DIR/pg
PG_EXTERNAL_ROOT=${CC_PG_EXTERNAL_ROOT:-/var/lib/contactcenter}
PG_OS_USER=postgres
PG_BASE=''      # resolved by pg_resolve: real directory behind $PG_LINK
PG_DATA=''
PG_LOG=''
PG_SOCKDIR=''
PG_BIN=''

APT_UPDATED=0

# --- helpers --------------------------------------------------------------------------
say() { printf 'stack: %s\n' "$*" >&2; }
warn() { printf 'stack: WARNING: %s\n' "$*" >&2; }
die() { printf 'stack: ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,13p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

is_root() { [[ $EUID -eq 0 ]]; }

port_open() {   # port_open PORT: something accepts TCP connections on 127.0.0.1:PORT
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

proc_cmdline() {   # NUL-separated cmdline of PID as one line, empty if gone/zombie
    { tr '\0' ' ' <"/proc/$1/cmdline"; } 2>/dev/null || true
}

proc_alive() { [[ -n "$(proc_cmdline "$1")" ]]; }

proc_ppid() {   # parent pid of PID (field 4 of /proc/PID/stat)
    local stat
    stat=$({ cat "/proc/$1/stat"; } 2>/dev/null) || return 0
    stat=${stat##*) }
    # shellcheck disable=SC2086  # split on purpose
    set -- $stat
    echo "$2"
}

wait_reaped() {   # wait_reaped PID SECONDS: until PID has left /proc (zombie reaped too)
    local i
    for ((i = 0; i < $2 * 10; i++)); do
        [[ -e /proc/$1 ]] || return 0
        sleep 0.1
    done
    [[ ! -e /proc/$1 ]]
}

proc_pgid() {   # process group id of PID (field 5 of /proc/PID/stat, after "(comm)")
    local stat
    stat=$({ cat "/proc/$1/stat"; } 2>/dev/null) || return 1
    stat=${stat##*) }
    # shellcheck disable=SC2086  # split on purpose
    set -- $stat
    echo "$3"
}

show_log_tail() {   # show_log_tail FILE [LINES]
    local file=$1 lines=${2:-40}
    if [[ -r $file ]]; then
        printf -- '----- last %s lines of %s -----\n' "$lines" "$file" >&2
        tail -n "$lines" "$file" >&2 || true
        printf -- '-----\n' >&2
    else
        printf 'stack: (no log at %s)\n' "$file" >&2
    fi
}

apt_install() {
    is_root || die "need root to apt-get install $*; install it yourself and retry"
    if [[ $APT_UPDATED -eq 0 ]]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
        APT_UPDATED=1
    fi
    say "apt-get install -y $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >&2
}

take_lock() {   # serialise concurrent stack.sh runs on the same local dir
    # The daemons are started with fd 9 closed (see start_kafka, as_pg): a daemon that
    # inherited it would hold the lock for its whole life.
    mkdir -p "$LOCAL_DIR"
    exec 9>"$LOCAL_DIR/.stack.lock"
    if ! flock -w 300 9; then
        die "another stack.sh holds $LOCAL_DIR/.stack.lock for more than 300 s"
    fi
}

# ======================================================================================
# Kafka
# ======================================================================================
java_bin() {
    if [[ -n ${JAVA_HOME:-} && -x $JAVA_HOME/bin/java ]]; then
        echo "$JAVA_HOME/bin/java"
    else
        echo java
    fi
}

kafka_pom_hash() { sha256sum "$KAFKA_POM" | cut -d' ' -f1; }

kafka_installed() {
    [[ -f $KAFKA_STAMP ]] || return 1
    [[ "$(cat "$KAFKA_STAMP")" == "pom-sha256=$(kafka_pom_hash)" ]] || return 1
    compgen -G "$KAFKA_LIBS/kafka_2.13-*.jar" >/dev/null
}

install_kafka() {
    if kafka_installed; then
        say "kafka: jars up to date in $KAFKA_LIBS"
        return 0
    fi
    if ! command -v "$(java_bin)" >/dev/null || ! command -v mvn >/dev/null; then
        apt_install default-jre-headless maven
    fi
    mkdir -p "$KAFKA_DIR"
    say "kafka: resolving jars with Maven (pom changed or first install)"
    local tmp mvn_log=$KAFKA_DIR/mvn.log
    # Copy into a fresh directory and swap it in: copying over an existing libs/ would
    # leave the jars of older versions next to the new ones on the classpath.
    tmp=$(mktemp -d "$KAFKA_DIR/libs.tmp.XXXXXX")
    chmod 755 "$tmp"
    if ! mvn -q -B -ntp -f "$KAFKA_POM" dependency:copy-dependencies \
            -DoutputDirectory="$tmp" -DincludeScope=runtime >"$mvn_log" 2>&1; then
        rm -rf "$tmp"
        show_log_tail "$mvn_log" 30
        die "kafka: mvn dependency:copy-dependencies failed (full log: $mvn_log)"
    fi
    compgen -G "$tmp/kafka_2.13-*.jar" >/dev/null || {
        rm -rf "$tmp"
        die "kafka: mvn ran but no kafka_2.13 jar was copied"
    }
    echo "pom-sha256=$(kafka_pom_hash)" >"$tmp/.installed"
    rm -rf "$KAFKA_LIBS.old"
    if [[ -e $KAFKA_LIBS ]]; then mv "$KAFKA_LIBS" "$KAFKA_LIBS.old"; fi
    mv "$tmp" "$KAFKA_LIBS"
    rm -rf "$KAFKA_LIBS.old"
    say "kafka: $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars in $KAFKA_LIBS"
    if kafka_pid >/dev/null; then
        warn "kafka is running on the previous jars; restart it (stop kafka; start kafka)"
    fi
}

kafka_is_ours() {   # PID is the broker of THIS local dir (not another checkout's)
    local cmd
    cmd=$(proc_cmdline "$1")
    [[ $cmd == *" kafka.Kafka $KAFKA_PROPS "* ]]
}

kafka_pid() {   # prints the broker pid, or fails; drops a stale pid file
    local pid d
    if [[ -f $KAFKA_PID ]]; then
        pid=$(tr -dc '0-9' <"$KAFKA_PID")
        if [[ -n $pid ]] && kafka_is_ours "$pid"; then
            echo "$pid"
            return 0
        fi
        rm -f "$KAFKA_PID"
    fi
    # No (valid) pid file: find a broker started with our exact server.properties.
    for d in /proc/[0-9]*; do
        pid=${d#/proc/}
        if kafka_is_ours "$pid"; then
            [[ -d $KAFKA_DIR ]] && echo "$pid" >"$KAFKA_PID"
            echo "$pid"
            return 0
        fi
    done
    return 1
}

sed_escape() { printf '%s' "$1" | sed -e 's/[\/&|\\]/\\&/g'; }

kafka_render_config() {
    mkdir -p "$KAFKA_DATA"
    sed -e "s|@KAFKA_PORT@|$KAFKA_PORT|g" \
        -e "s|@CONTROLLER_PORT@|$KAFKA_CONTROLLER_PORT|g" \
        -e "s|@DATA_DIR@|$(sed_escape "$KAFKA_DATA")|g" \
        "$KAFKA_TEMPLATE" >"$KAFKA_PROPS.tmp"
    mv "$KAFKA_PROPS.tmp" "$KAFKA_PROPS"
}

kafka_jvm_common() {   # JVM flags shared by the broker and the storage tool
    # Logging: slf4j -> reload4j configured by log4j.properties; the few log4j2-API
    # calls in Kafka 4 go to log4j-api's SimpleLogger instead of a "no provider" error.
    KAFKA_JVM=("$(java_bin)" -Djava.awt.headless=true -XX:-UsePerfData
        "-Dlog4j.configuration=file:$KAFKA_LOG4J"
        -Dlog4j2.loggerContextFactory=org.apache.logging.log4j.simple.SimpleLoggerContextFactory
        -cp "$KAFKA_LIBS/*")
}

kafka_new_cluster_id() {   # base64url of 16 random bytes, 22 chars, like Uuid.randomUuid()
    local id
    while :; do
        id=$(head -c16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')
        [[ $id == -* ]] || break   # Kafka never hands out ids starting with '-'
    done
    echo "$id"
}

kafka_format_once() {
    if [[ -f $KAFKA_DATA/meta.properties ]]; then
        return 0
    fi
    local cid
    cid=$(kafka_new_cluster_id)
    say "kafka: formatting $KAFKA_DATA (cluster id $cid, kept in meta.properties)"
    kafka_jvm_common
    if ! "${KAFKA_JVM[@]}" kafka.tools.StorageTool format -t "$cid" -c "$KAFKA_PROPS" \
            >>"$KAFKA_LOG" 2>&1; then
        show_log_tail "$KAFKA_LOG" 20
        die "kafka: storage format failed"
    fi
}

check_python() {
    [[ -x $PYTHON ]] || command -v "$PYTHON" >/dev/null 2>&1 || die \
        "no Python for the Kafka readiness probe at $PYTHON; create the repo venv (.venv) or set CC_PYTHON"
    "$PYTHON" -c 'import aiokafka' 2>/dev/null || die \
        "$PYTHON cannot import aiokafka (needed by deploy/local/kafka_ready.py); install it or set CC_PYTHON"
}

start_kafka() {
    local t0 pid i
    t0=$(now)
    check_python
    install_kafka
    if pid=$(kafka_pid); then
        say "kafka: already running (pid $pid), checking readiness"
    else
        local p
        for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
            if port_open "$p"; then
                die "kafka: port $p on 127.0.0.1 is taken by another process (set CC_KAFKA_PORT / CC_KAFKA_CONTROLLER_PORT)"
            fi
        done
        kafka_render_config
        # Keep the log from growing forever across many test runs.
        if [[ -f $KAFKA_LOG ]] && (($(stat -c %s "$KAFKA_LOG") > 50 * 1024 * 1024)); then
            mv -f "$KAFKA_LOG" "$KAFKA_LOG.1"
        fi
        kafka_format_once
        printf '===== stack.sh start %s =====\n' "$(date -u +%FT%TZ)" >>"$KAFKA_LOG"
        rm -f "$KAFKA_PID"
        # setsid: own session and process group, no controlling terminal (no SIGHUP when
        # the calling shell goes away). The inner bash writes its own pid, then execs
        # java, so the pid file holds the JVM's pid.
        kafka_jvm_common
        local heap
        read -r -a heap <<<"$KAFKA_HEAP_OPTS"
        # shellcheck disable=SC2016
        setsid bash -c 'echo $$ >"$0"; exec "$@"' "$KAFKA_PID" \
            "${KAFKA_JVM[@]}" "${heap[@]}" -XX:+UseSerialGC -XX:+ExitOnOutOfMemoryError \
            kafka.Kafka "$KAFKA_PROPS" \
            </dev/null >>"$KAFKA_LOG" 2>&1 9>&- &
        for ((i = 0; i < 100; i++)); do
            [[ -s $KAFKA_PID ]] && break
            sleep 0.05
        done
        pid=$({ tr -dc '0-9' <"$KAFKA_PID"; } 2>/dev/null || true)
        [[ -n $pid ]] || die "kafka: the broker process did not start"
        say "kafka: started pid $pid (log $KAFKA_LOG)"
    fi
    local rc=0
    "$PYTHON" "$SCRIPT_DIR/kafka_ready.py" --bootstrap "127.0.0.1:$KAFKA_PORT" \
        --timeout "$KAFKA_START_TIMEOUT" --pid "$pid" --quiet >&2 || rc=$?
    if [[ $rc -ne 0 ]]; then
        show_log_tail "$KAFKA_LOG" 40
        if proc_alive "$pid"; then
            die "kafka: not ready within ${KAFKA_START_TIMEOUT}s (pid $pid still running; 'stack.sh stop kafka' to stop it)"
        fi
        rm -f "$KAFKA_PID"
        die "kafka: broker exited during start"
    fi
    say "kafka: READY on 127.0.0.1:$KAFKA_PORT ($(since "$t0")s)"
}

wait_gone() {   # wait_gone PID SECONDS CHECK_FN: true once CHECK_FN PID fails
    local pid=$1 secs=$2 check=$3 i
    for ((i = 0; i < secs * 10; i++)); do
        "$check" "$pid" || return 0
        sleep 0.1
    done
    ! "$check" "$pid"
}

stop_kafka() {
    local pid t0
    if ! pid=$(kafka_pid); then
        rm -f "$KAFKA_PID"
        say "kafka: not running"
        return 0
    fi
    t0=$(now)
    say "kafka: stopping pid $pid (SIGTERM, up to ${STOP_TIMEOUT}s)"
    kill -TERM "$pid" 2>/dev/null || true
    if ! wait_gone "$pid" "$STOP_TIMEOUT" kafka_is_ours; then
        warn "kafka: pid $pid still running ${STOP_TIMEOUT}s after SIGTERM; sending SIGKILL (unclean shutdown, log recovery on next start)"
        kill -KILL "$pid" 2>/dev/null || true
        if ! wait_gone "$pid" 10 kafka_is_ours; then
            die "kafka: pid $pid survived SIGKILL; giving up"
        fi
    fi
    rm -f "$KAFKA_PID"
    say "kafka: stopped ($(since "$t0")s)"
}

kill9_kafka() {
    local pid
    if ! pid=$(kafka_pid); then
        say "kafka: not running"
        return 0
    fi
    say "kafka: SIGKILL pid $pid"
    kill -KILL "$pid" 2>/dev/null || true
    wait_gone "$pid" 10 kafka_is_ours || die "kafka: pid $pid survived SIGKILL"
    wait_reaped "$pid" 5 || true
    rm -f "$KAFKA_PID"
}

status_kafka() {
    local pid
    if pid=$(kafka_pid); then
        echo "kafka:    running (pid $pid, 127.0.0.1:$KAFKA_PORT)"
    else
        echo "kafka:    stopped"
    fi
}

reset_kafka() {
    rm -rf "$KAFKA_DATA" "$KAFKA_PROPS" "$KAFKA_LOG" "$KAFKA_LOG.1" "$KAFKA_PID" \
        "$KAFKA_DIR/mvn.log"
    rm -rf "$KAFKA_DIR"/libs.tmp.* "$KAFKA_LIBS.old"
}

# ======================================================================================
# PostgreSQL
# ======================================================================================
as_pg() {   # run a command as the postgres OS user (postgres refuses to run as root)
    # 9>&-: the postmaster must not inherit (and so hold forever) the stack.sh lock.
    if is_root; then
        (cd / && runuser -u "$PG_OS_USER" -- "$@") 9>&-
    else
        (cd / && "$@") 9>&-
    fi
}

pg_find_bin() {   # sets PG_BIN; prefers the version the data dir was created with
    local ver=''
    if [[ -n ${CC_PG_BINDIR:-} ]]; then
        PG_BIN=$CC_PG_BINDIR
    else
        [[ -n $PG_DATA && -f $PG_DATA/PG_VERSION ]] && ver=$(<"$PG_DATA/PG_VERSION")
        if [[ -n $ver && -x /usr/lib/postgresql/$ver/bin/initdb ]]; then
            PG_BIN=/usr/lib/postgresql/$ver/bin
        else
            PG_BIN=$(printf '%s\n' /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)
            PG_BIN=${PG_BIN%/initdb}
        fi
    fi
    [[ -x $PG_BIN/initdb && -x $PG_BIN/pg_ctl ]]
}

install_pg() {
    if pg_find_bin; then
        say "postgres: found $PG_BIN"
        return 0
    fi
    apt_install postgresql
    pg_find_bin || die "postgres: apt-get install postgresql did not provide /usr/lib/postgresql/*/bin/initdb"
    say "postgres: installed $PG_BIN"
}

pg_external_base() {   # where the data lives when postgres cannot reach $LOCAL_DIR
    local key
    key=$(printf '%s' "$LOCAL_DIR" | sha256sum | cut -c1-12)
    echo "$PG_EXTERNAL_ROOT/$key/pg"
}

pg_set_paths() {
    PG_DATA=$PG_BASE/data
    PG_LOG=$PG_BASE/postgres.log
    # Unix socket paths are limited to 107 bytes; fall back to /tmp for deep checkouts.
    if ((${#PG_BASE} + ${#PG_PORT} + 12 < 100)); then
        PG_SOCKDIR=$PG_BASE
    else
        PG_SOCKDIR=/tmp
    fi
}

pg_resolve() {   # find an existing layout; fails if there is none yet
    if [[ -L $PG_LINK ]]; then
        PG_BASE=$(readlink "$PG_LINK")
    elif [[ -d $PG_LINK ]]; then
        PG_BASE=$PG_LINK
    else
        return 1
    fi
    pg_set_paths
}

pg_gc_external() {   # drop external data dirs whose checkout no longer links to them
    local dir origin pid
    [[ -d $PG_EXTERNAL_ROOT ]] || return 0
    for dir in "$PG_EXTERNAL_ROOT"/*/; do
        dir=${dir%/}
        [[ -f $dir/origin ]] || continue
        origin=$(<"$dir/origin")
        [[ "$(readlink "$origin/pg" 2>/dev/null)" == "$dir/pg" ]] && continue
        if [[ -f $dir/pg/data/postmaster.pid ]]; then
            pid=$(head -n1 "$dir/pg/data/postmaster.pid" | tr -dc '0-9')
            [[ -n $pid ]] && [[ "$(proc_cmdline "$pid")" == *" -D $dir/pg/data "* ]] && continue
        fi
        say "postgres: removing orphaned data dir $dir (its checkout $origin is gone or reset)"
        rm -rf "$dir"
    done
}

pg_prepare_layout() {   # create $LOCAL_DIR/pg (or the external dir + symlink) if needed
    local external=0
    mkdir -p "$LOCAL_DIR"
    if [[ -L $PG_LINK ]]; then
        PG_BASE=$(readlink "$PG_LINK")
        external=1
    elif [[ -d $PG_LINK ]]; then
        PG_BASE=$PG_LINK
    elif ! is_root || as_pg test -x "$LOCAL_DIR"; then
        PG_BASE=$PG_LINK
    else
        # TRAP: the checkout is under a directory the postgres user cannot traverse
        # (e.g. /root, mode 700). Keep the cluster outside and link to it.
        pg_gc_external
        PG_BASE=$(pg_external_base)
        external=1
        say "postgres: user '$PG_OS_USER' cannot reach $LOCAL_DIR; data goes to $PG_BASE (symlinked from $PG_LINK)"
    fi
    if [[ $external -eq 1 ]]; then
        mkdir -p "$PG_EXTERNAL_ROOT"
        chmod 755 "$PG_EXTERNAL_ROOT"
        mkdir -p "$(dirname "$PG_BASE")"
        chmod 755 "$(dirname "$PG_BASE")"
        printf '%s\n' "$LOCAL_DIR" >"$(dirname "$PG_BASE")/origin"
        ln -sfn "$PG_BASE" "$PG_LINK"
    fi
    mkdir -p "$PG_BASE"
    if is_root; then
        chown "$PG_OS_USER:$PG_OS_USER" "$PG_BASE"
        chmod 750 "$PG_BASE"
        as_pg test -w "$PG_BASE" -a -x "$PG_BASE" || die \
            "postgres: user '$PG_OS_USER' cannot use $PG_BASE (checkout moved under a private directory? 'stack.sh reset' relocates it)"
    fi
    pg_set_paths
}

pg_locale() {
    if locale -a 2>/dev/null | grep -qiE '^c\.utf-?8$'; then echo C.UTF-8; else echo C; fi
}

pg_initdb_once() {
    if [[ -f $PG_DATA/PG_VERSION ]]; then
        return 0
    fi
    rm -rf "$PG_DATA"   # leftovers of an interrupted initdb
    local loc
    loc=$(pg_locale)
    say "postgres: initdb $PG_DATA (UTF8, locale $loc)"
    if ! as_pg "$PG_BIN/initdb" -D "$PG_DATA" -U postgres -E UTF8 --locale="$loc" \
            --auth-local=trust --auth-host=scram-sha-256 >"$PG_BASE/initdb.log" 2>&1; then
        show_log_tail "$PG_BASE/initdb.log" 30
        die "postgres: initdb failed"
    fi
    echo "include_if_exists = 'contactcenter.conf'   # written by deploy/local/stack.sh" \
        | as_pg tee -a "$PG_DATA/postgresql.conf" >/dev/null
}

pg_write_conf() {   # regenerated on every start so port changes apply
    as_pg tee "$PG_DATA/contactcenter.conf" >/dev/null <<EOF
# Written by deploy/local/stack.sh on every start: edit the script, not this file.
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKDIR'
max_connections = 300
shared_buffers = 256MB
# Durability stays on: tests check what survives a crash (stack.sh kill9 postgres).
fsync = on
synchronous_commit = on
full_page_writes = on
# Write-heavy services (intake's group commits, every outbox): fewer checkpoints means fewer
# full-page images in the WAL after each one, and lz4 shrinks those that remain.
max_wal_size = 4GB
checkpoint_timeout = 15min
wal_compression = lz4
# Log to stderr, which pg_ctl -l sends to $PG_LOG.
logging_collector = off
log_destination = 'stderr'
log_line_prefix = '%m [%p] %q%u@%d '
log_timezone = 'UTC'
timezone = 'UTC'
EOF
}

pg_pid() {   # postmaster pid if the cluster is running
    [[ -n $PG_DATA && -f $PG_DATA/postmaster.pid ]] || return 1
    local pid
    pid=$(head -n1 "$PG_DATA/postmaster.pid" | tr -dc '0-9')
    [[ -n $pid ]] || return 1
    [[ "$(proc_cmdline "$pid")" == *" -D $PG_DATA "* ]] || return 1
    echo "$pid"
}

pg_psql_admin() {   # psql as the postgres superuser over the unix socket (trust)
    as_pg "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -h "$PG_SOCKDIR" -p "$PG_PORT" \
        -U postgres -d postgres "$@"
}

pg_bootstrap() {   # role + databases, idempotent
    local dbs
    dbs=$(printf "'%s'," "${SERVICES[@]}")
    dbs=${dbs%,}
    pg_psql_admin -f - <<EOF
DO \$\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$PG_USER') THEN
    CREATE ROLE $PG_USER LOGIN SUPERUSER PASSWORD '$PG_PASSWORD';
  ELSIF NOT EXISTS (SELECT FROM pg_roles
                    WHERE rolname = '$PG_USER' AND rolcanlogin AND rolsuper) THEN
    ALTER ROLE $PG_USER LOGIN SUPERUSER PASSWORD '$PG_PASSWORD';
  END IF;
END
\$\$;
SELECT format('CREATE DATABASE %I OWNER $PG_USER', d)
  FROM unnest(ARRAY[$dbs]) AS d
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = d)
\gexec
EOF
}

pg_check_ready() {   # pg_isready + a real query as the app role over TCP
    local deadline=$((SECONDS + PG_START_TIMEOUT)) out
    until "$PG_BIN/pg_isready" -q -h 127.0.0.1 -p "$PG_PORT" -t 2; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
    pg_bootstrap || return 1
    until out=$(PGPASSWORD=$PG_PASSWORD PGCONNECT_TIMEOUT=3 "$PG_BIN/psql" -X -At \
            -h 127.0.0.1 -p "$PG_PORT" -U "$PG_USER" -d "${SERVICES[0]}" \
            -c 'SELECT 1' 2>/dev/null) && [[ $out == 1 ]]; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

start_pg() {
    local t0 pid
    t0=$(now)
    install_pg
    pg_prepare_layout
    pg_find_bin || die "postgres: no server binaries for $PG_DATA"
    if pid=$(pg_pid); then
        say "postgres: already running (pid $pid), checking readiness"
    else
        if port_open "$PG_PORT"; then
            die "postgres: port $PG_PORT on 127.0.0.1 is taken by another process (set CC_PG_PORT)"
        fi
        pg_initdb_once
        pg_write_conf
        # After a crash the old postmaster may still be an unreaped zombie for a moment;
        # PostgreSQL would take its postmaster.pid for a live server.
        if [[ -f $PG_DATA/postmaster.pid ]]; then
            local old
            old=$(head -n1 "$PG_DATA/postmaster.pid" | tr -dc '0-9')
            [[ -n $old ]] && ! proc_alive "$old" && { wait_reaped "$old" 5 || true; }
        fi
        if [[ -f $PG_LOG ]] && (($(stat -c %s "$PG_LOG") > 50 * 1024 * 1024)); then
            as_pg mv -f "$PG_LOG" "$PG_LOG.1"
        fi
        if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_START_TIMEOUT" \
                -s start >&2; then
            show_log_tail "$PG_LOG" 40
            die "postgres: pg_ctl start failed"
        fi
        pid=$(pg_pid) || true
        say "postgres: started pid ${pid:-?} (log $PG_LOG)"
    fi
    if ! pg_check_ready; then
        show_log_tail "$PG_LOG" 40
        die "postgres: not ready within ${PG_START_TIMEOUT}s"
    fi
    say "postgres: READY on 127.0.0.1:$PG_PORT ($(since "$t0")s)"
}

pg_pid_alive() { # for wait_gone
    [[ "$(proc_cmdline "$1")" == *" -D $PG_DATA "* ]]
}

stop_pg() {
    local pid t0
    if ! pg_resolve || ! pid=$(pg_pid); then
        say "postgres: not running"
        return 0
    fi
    pg_find_bin || die "postgres: no pg_ctl found to stop pid $pid"
    t0=$(now)
    # "fast": roll back open transactions, disconnect clients, checkpoint, exit cleanly.
    # ("smart" would wait for every client, e.g. a leaked pool, to disconnect itself.)
    say "postgres: stopping pid $pid (fast shutdown, up to ${STOP_TIMEOUT}s)"
    if ! as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w -t "$STOP_TIMEOUT" -s stop >&2; then
        warn "postgres: not stopped within ${STOP_TIMEOUT}s; immediate shutdown (crash recovery on next start)"
        as_pg "$PG_BIN/pg_ctl" -D "$PG_DATA" -m immediate -w -t 10 -s stop >&2 || true
        if ! wait_gone "$pid" 5 pg_pid_alive; then
            die "postgres: pid $pid does not stop; giving up"
        fi
    fi
    say "postgres: stopped ($(since "$t0")s)"
}

pg_children() {   # pids whose parent is PID (the postmaster's backends and workers)
    local d
    for d in /proc/[0-9]*; do
        [[ "$(proc_ppid "${d#/proc/}")" == "$1" ]] && echo "${d#/proc/}"
    done
    return 0
}

kill9_pg() {
    local pid child children
    if ! pg_resolve || ! pid=$(pg_pid); then
        say "postgres: not running"
        return 0
    fi
    # Every backend/worker is a session leader of its own (PostgreSQL calls setsid() in
    # each child), so a process-group kill would only hit the postmaster, and a stale
    # postmaster.pid whose pid is still a zombie blocks the next start. Freeze the
    # postmaster (no new forks), list its children, SIGKILL all: like a machine crash.
    say "postgres: SIGKILL postmaster $pid and all its children"
    kill -STOP "$pid" 2>/dev/null || true
    children=$(pg_children "$pid")
    for child in $children; do
        if [[ "$(proc_pgid "$child" || true)" == "$child" ]]; then
            kill -KILL -- "-$child" 2>/dev/null || true   # with anything it spawned
        else
            kill -KILL "$child" 2>/dev/null || true
        fi
    done
    kill -KILL "$pid" 2>/dev/null || true
    for child in $pid $children; do
        wait_reaped "$child" 10 || warn "postgres: pid $child not reaped after 10s"
    done
}

status_pg() {
    local pid
    if pg_resolve && pid=$(pg_pid); then
        echo "postgres: running (pid $pid, 127.0.0.1:$PG_PORT)"
    else
        echo "postgres: stopped"
    fi
}

reset_pg() {
    if [[ -L $PG_LINK ]]; then
        local target parent
        target=$(readlink "$PG_LINK")
        parent=$(dirname "$target")
        rm -f "$PG_LINK"
        # Only ever delete our own external dir: <root>/<hash>/pg.
        if [[ $parent == "$PG_EXTERNAL_ROOT"/* ]]; then
            rm -rf "$parent"
        else
            rm -rf "$target"
        fi
    else
        rm -rf "$PG_LINK"
    fi
    is_root && pg_gc_external
    return 0
}

# ======================================================================================
# commands
# ======================================================================================
components() {   # components [kafka|postgres]: validated list
    case ${1:-all} in
        all | both | '') echo "kafka postgres" ;;
        kafka) echo kafka ;;
        postgres | pg) echo postgres ;;
        *) die "unknown component '$1' (kafka|postgres)" ;;
    esac
}

cmd_env() {
    local svc up
    echo "export CC_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
    echo "export CC_PG_HOST=127.0.0.1 CC_PG_PORT=$PG_PORT CC_PG_USER=$PG_USER CC_PG_PASSWORD=$PG_PASSWORD"
    # The same server's Unix socket directory (cheaper than TCP for a client on this machine):
    # postgresql+asyncpg://user:pass@/db?host=$CC_PG_SOCKET_DIR&port=$CC_PG_PORT
    if pg_resolve; then
        echo "export CC_PG_SOCKET_DIR=$PG_SOCKDIR"
    fi
    for svc in "${SERVICES[@]}"; do
        up=${svc^^}
        echo "export ${up}_DATABASE_URL=postgresql+asyncpg://$PG_USER:$PG_PASSWORD@127.0.0.1:$PG_PORT/$svc"
        echo "export ${up}_KAFKA_BOOTSTRAP=127.0.0.1:$KAFKA_PORT"
    done
}

main() {
    local cmd=${1:-} c t0 comps
    [[ $# -gt 0 ]] && shift
    case $cmd in
        install)
            [[ $# -eq 0 ]] || usage
            take_lock
            t0=$(now)
            install_kafka
            install_pg
            say "install done ($(since "$t0")s)"
            ;;
        start)
            [[ $# -le 1 ]] || usage
            comps=$(components "${1:-}")
            take_lock
            for c in $comps; do
                case $c in kafka) start_kafka ;; postgres) start_pg ;; esac
            done
            ;;
        stop)
            [[ $# -le 1 ]] || usage
            comps=$(components "${1:-}")
            take_lock
            for c in $comps; do
                case $c in kafka) stop_kafka ;; postgres) stop_pg ;; esac
            done
            ;;
        kill9)
            [[ $# -le 1 ]] || usage
            comps=$(components "${1:-}")
            take_lock
            for c in $comps; do
                case $c in kafka) kill9_kafka ;; postgres) kill9_pg ;; esac
            done
            ;;
        status)
            [[ $# -eq 0 ]] || usage
            status_kafka
            status_pg
            ;;
        reset)
            [[ $# -eq 0 ]] || usage
            take_lock
            stop_kafka
            stop_pg
            reset_kafka
            reset_pg
            say "reset done: Kafka and PostgreSQL data deleted (jar cache kept in $KAFKA_LIBS)"
            ;;
        env)
            [[ $# -eq 0 ]] || usage
            cmd_env
            ;;
        -h | --help | help) usage ;;
        *) usage ;;
    esac
}

main "$@"
