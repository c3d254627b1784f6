"""Hostile clients against a live herald (usage: python3 bench/hostile/slow_and_strange.py target/debug/herald):
15,000 made-up HTTP methods against RSS and /metrics, a slowloris connection, 1,000 half-open connections."""
import os, socket, subprocess, sys, tempfile, time, base64, threading, concurrent.futures, urllib.request

BIN = sys.argv[1]
port = 18000 + os.getpid() % 1000
data = tempfile.mkdtemp()
env = dict(os.environ, HERALD_DATA_DIR=data, HERALD_LISTEN=f"127.0.0.1:{port}", HERALD_ADMIN_PASSWORD="probe-password-1",
           HERALD_MAIL_DELIVERY="false", HERALD_LOG="warn")
proc = subprocess.Popen([BIN, "serve"], env=env, stderr=subprocess.DEVNULL)
auth = "Basic " + base64.b64encode(b"admin:probe-password-1").decode()

def rss():
    for line in open(f"/proc/{proc.pid}/status"):
        if line.startswith("VmRSS"):
            return int(line.split()[1]) // 1024

def get(path, headers=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()

for _ in range(200):
    try:
        if get("/livez")[0] == 200: break
    except Exception: time.sleep(0.1)
get("/api/v1/whoami", {"Authorization": auth})
before = rss(); metrics_before = len(get("/metrics", {"Authorization": auth})[1])
s = socket.create_connection(("127.0.0.1", port))
for i in range(15000):
    s.sendall(f"M{i:05d} /livez HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    buf = b""
    while b"\r\n\r\n" not in buf: buf += s.recv(4096)
    head, _, rest = buf.partition(b"\r\n\r\n")
    length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
    while len(rest) < length: rest += s.recv(4096)
s.close()
after = rss(); metrics_after = len(get("/metrics", {"Authorization": auth})[1])
print(f"[1] 15,000 made-up methods: RSS {before} MB -> {after} MB; /metrics {metrics_before} -> {metrics_after} bytes")

# [3] slowloris: one header byte every 2 s; and 1,000 half-open connections
slow = socket.create_connection(("127.0.0.1", port)); slow.sendall(b"GET /livez HTTP/1.1\r\nHost: x\r\nX-a: ")
t0 = time.time(); closed_at = None
slow.settimeout(2)
while time.time() - t0 < 60:
    try:
        slow.sendall(b"a")
        d = slow.recv(100)
        if d == b"": closed_at = time.time() - t0; break
    except socket.timeout: continue
    except OSError: closed_at = time.time() - t0; break
print(f"[3] slowloris connection closed by the server after {closed_at and round(closed_at,1)} s")
half = []
for i in range(1000):
    c = socket.create_connection(("127.0.0.1", port)); c.sendall(b"GET /livez HTTP/1.1\r\n"); half.append(c)
time.sleep(12)  # the header timeout is 10 s
closed = 0
for c in half:
    c.settimeout(0.01)
    try:
        if c.recv(100) == b"": closed += 1
    except socket.timeout: pass
    except OSError: closed += 1
print(f"[3] of 1,000 half-open connections, {closed} were closed by the server after 12 s; /livez now {get('/livez')[0]}")
proc.terminate(); proc.wait()
