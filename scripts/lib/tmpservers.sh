# shellcheck shell=bash disable=SC2034  # sets variables for the caller
# A private Mosquitto and a private PostgreSQL in a directory, for scripts/demo
# and friends (the same setup as tests/integration/harness.py). Source it, then:
#   tmp_broker_start DIR     sets BROKER_PORT BROKER_PID     (log: DIR/mosquitto.log)
#   tmp_pg_start DIR         sets PG_PORT PG_PID PG_CONNINFO (log: DIR/postgres.log)
#   tmp_servers_stop         stops whatever was started (safe to call twice, e.g. from a trap)
# DIR must exist; PostgreSQL runs as `postgres` when we are root.

PG_BIN=${PG_BIN:-$(printf '%s\n' /usr/lib/postgresql/*/bin | sort -V | tail -n1)}
BROKER_PID='' PG_PID=''

# port_busy PORT: true if something accepts connections on 127.0.0.1:PORT.
port_busy() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# free_port: print a port on 127.0.0.1 nobody listens on, below Linux's
# ephemeral range (32768-60999), where another program's outgoing connection
# can hold a port that accepts nothing, which port_busy cannot see; and below
# 20000, where the Python tests' servers take theirs (harness.free_port), so
# scripts/demo run by test_demo.py cannot meet them. A bind can still lose a
# race: the starters below try again on another port.
free_port() {
    local p
    while :; do
        p=$((10000 + RANDOM % 10000))
        port_busy "$p" || { echo "$p"; return; }
    done
}

# wait_up PID WHAT CMD...: retry CMD for up to 60 s while PID lives; 2 when
# PID died first (a lost port, most often).
wait_up() {
    local pid=$1 what=$2 i; shift 2
    for ((i = 0; i < 600; i++)); do
        "$@" && return 0
        kill -0 "$pid" 2>/dev/null || return 2
        sleep 0.1
    done
    echo "timed out waiting for $what" >&2
    return 1
}

# wait_for WHAT CMD...: retry CMD for up to 60 s.
wait_for() {
    local what=$1 i; shift
    for ((i = 0; i < 600; i++)); do
        "$@" && return 0
        sleep 0.1
    done
    echo "timed out waiting for $what" >&2
    return 1
}

tmp_broker_start() {
    local dir=$1 try rc
    for try in 1 2 3; do
        BROKER_PORT=${BROKER_PORT:-$(free_port)}
        cat > "$dir/mosquitto.conf" <<CONF
listener $BROKER_PORT 127.0.0.1
allow_anonymous true
user $(id -un)
persistence true
persistence_location $dir/
max_queued_messages 0
max_inflight_messages 1000
log_dest file $dir/mosquitto.log
CONF
        mosquitto -c "$dir/mosquitto.conf" 2>>"$dir/mosquitto.stderr" &
        BROKER_PID=$!
        wait_up "$BROKER_PID" "mosquitto on port $BROKER_PORT" port_busy "$BROKER_PORT"
        rc=$?
        ((rc == 2)) || return "$rc"
        echo "mosquitto could not start on port $BROKER_PORT (attempt $try): trying another" >&2
        BROKER_PORT='' BROKER_PID=''
    done
    return 1
}

tmp_pg_start() {
    local dir=$1 as=()
    PG_PORT=${PG_PORT:-$(free_port)}
    if ((EUID == 0)); then
        chown postgres: "$dir"
        as=(setpriv --reuid=postgres --regid=postgres --init-groups --)
    fi
    if [[ ! -d $dir/data ]]; then
        LC_ALL=C "${as[@]}" "$PG_BIN/initdb" -D "$dir/data" -A trust --nosync -U cordon -E UTF8 \
            --locale=C >"$dir/initdb.log" 2>&1 || { cat "$dir/initdb.log" >&2; return 1; }
        cat >> "$dir/data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$dir'
CONF
    fi
    local try rc
    for try in 1 2 3; do
        # setpriv execs: PG_PID is the postmaster itself
        (cd "$dir" && exec "${as[@]}" "$PG_BIN/postgres" -D "$dir/data" -p "$PG_PORT" \
            >>"$dir/postgres.log" 2>&1) &
        PG_PID=$!
        wait_up "$PG_PID" "PostgreSQL on port $PG_PORT" \
            "$PG_BIN/pg_isready" -q -h "$dir" -p "$PG_PORT"
        rc=$?
        ((rc == 0)) && break
        ((rc == 2)) || return 1
        echo "PostgreSQL could not start on port $PG_PORT (attempt $try): trying another" >&2
        PG_PID='' PG_PORT=$(free_port)
    done
    ((rc == 0)) || return 1
    "$PG_BIN/psql" -qAt -h "$dir" -p "$PG_PORT" -U cordon -d postgres \
        -c "SELECT 1 FROM pg_database WHERE datname = 'cordon'" | grep -q 1 ||
        "$PG_BIN/createdb" -h "$dir" -p "$PG_PORT" -U cordon cordon
    PG_CONNINFO="host=$dir port=$PG_PORT dbname=cordon user=cordon"
}

tmp_servers_stop() {
    # mosquitto saves its persistence file on SIGTERM; SIGINT is PostgreSQL's fast shutdown
    [[ -n $BROKER_PID ]] && kill -TERM "$BROKER_PID" 2>/dev/null
    [[ -n $PG_PID ]] && kill -INT "$PG_PID" 2>/dev/null
    local pid
    for pid in $BROKER_PID $PG_PID; do
        wait "$pid" 2>/dev/null || true
    done
    BROKER_PID='' PG_PID=''
}
