# Shell helpers to serve a directory with Debian's nginx on 127.0.0.1, for the
# demo and the benchmark. Source this file; call nginx_start DIR, then nginx_stop.
# Sets NGINX_PORT and NGINX_URL.

nginx_free_port() {
  python3 - <<'PY'
import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])
s.close()
PY
}

# nginx_start ROOT_DIR [RATE]: serves ROOT_DIR over plain HTTP; RATE (e.g. 50m)
# limits each response's speed.
nginx_start() {
  local root rate
  root=$(cd "$1" && pwd)
  rate=${2:-0}
  NGINX_DIR=$(mktemp -d "${TMPDIR:-/tmp}/cdi-nginx-XXXXXX")
  NGINX_PORT=$(nginx_free_port)
  cat > "$NGINX_DIR/nginx.conf" <<CONF
daemon off;
master_process off;
worker_processes 1;
pid $NGINX_DIR/nginx.pid;
error_log $NGINX_DIR/error.log warn;
events { worker_connections 64; }
http {
  access_log $NGINX_DIR/access.log;
  client_body_temp_path $NGINX_DIR/body;
  proxy_temp_path $NGINX_DIR/proxy;
  fastcgi_temp_path $NGINX_DIR/fastcgi;
  uwsgi_temp_path $NGINX_DIR/uwsgi;
  scgi_temp_path $NGINX_DIR/scgi;
  types { }
  default_type application/octet-stream;
  sendfile on;
  tcp_nopush on;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    root $root;
    limit_rate $rate;
  }
}
CONF
  nginx -c "$NGINX_DIR/nginx.conf" -p "$NGINX_DIR" &
  NGINX_PID=$!
  for _ in $(seq 1 100); do
    if curl -s -o /dev/null "http://127.0.0.1:$NGINX_PORT/"; then break; fi
    sleep 0.05
  done
  NGINX_URL="http://127.0.0.1:$NGINX_PORT"
}

nginx_stop() {
  if [ -n "${NGINX_PID:-}" ]; then
    kill "$NGINX_PID" 2>/dev/null || true
    wait "$NGINX_PID" 2>/dev/null || true
    NGINX_PID=
  fi
  if [ -n "${NGINX_DIR:-}" ]; then rm -rf "$NGINX_DIR"; NGINX_DIR=; fi
}
