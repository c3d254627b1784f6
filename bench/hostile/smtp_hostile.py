"""Hostile clients against a live herald's SMTP listener (usage: python3 bench/hostile/smtp_hostile.py
target/debug/herald). Starts `herald serve` on free ports with its own data dir, delivery off, short
timeouts, 127.0.0.2 as a trusted network (127.0.0.1 is loopback: AUTH without TLS) and a STARTTLS
certificate made with openssl, then attacks it: (a) 1,000 half-open connections, (b) slowloris in a
command and in DATA, (c) 100,000 garbage lines and 1 MB lines, (d) STARTTLS injection and pipelining,
(e) 200 wrong passwords, (f) RCPT flood, huge MAIL FROM parameters, NUL bytes, (g) DATA far above the
size limit and many big messages at once (the memory budget). After each: VmRSS, sessions_active back
to 0, the herald_smtp_* series and /metrics size, the process alive and a fresh session served.
Prints a table; exits 1 on a finding. Python 3 standard library only."""
import base64, concurrent.futures, os, random, re, resource, socket, subprocess, sys, tempfile, threading, time
import http.client

BIN = sys.argv[1]
HOST, TRUSTED = "127.0.0.1", "127.0.0.2"
COMMAND_TIMEOUT, DATA_TIMEOUT, MAX_RCPT, MAX_SIZE, DATA_MEMORY = 5, 5, 500, 10 << 20, 64 << 20
ADMIN_PASSWORD = "probe-password-1"
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


data = tempfile.mkdtemp()
http_port, smtp_port = free_port(), free_port()
cert, key = os.path.join(data, "cert.pem"), os.path.join(data, "key.pem")
tls = subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
                      "-keyout", key, "-out", cert], capture_output=True).returncode == 0
env = dict(os.environ, HERALD_DATA_DIR=data, HERALD_LISTEN=f"{HOST}:{http_port}", HERALD_SMTP_LISTEN=f"{HOST}:{smtp_port}",
           HERALD_ADMIN_PASSWORD=ADMIN_PASSWORD, HERALD_MAIL_DELIVERY="false", HERALD_LOG="warn",
           HERALD_SMTP_COMMAND_TIMEOUT=f"{COMMAND_TIMEOUT}s", HERALD_SMTP_DATA_TIMEOUT=f"{DATA_TIMEOUT}s",
           HERALD_SMTP_TRUSTED_NETWORKS=TRUSTED, HERALD_SMTP_MAX_RECIPIENTS=str(MAX_RCPT),
           HERALD_MAIL_MAX_SIZE=str(MAX_SIZE), HERALD_SMTP_DATA_MEMORY=str(DATA_MEMORY),
           # (a) holds 1,000 sessions from one address to test the global slots and the idle timeout; the
           # per-address limit (default 50, tests/it/smtp_submission/refusals.rs) would refuse most at once.
           HERALD_SMTP_MAX_CONNECTIONS_PER_CLIENT="1000000")
if tls:
    env.update(HERALD_SMTP_TLS_CERT=cert, HERALD_SMTP_TLS_KEY=key)
proc = subprocess.Popen([BIN, "serve"], env=env, stderr=subprocess.DEVNULL)
AUTH = "Basic " + base64.b64encode(f"admin:{ADMIN_PASSWORD}".encode()).decode()
rows, findings = [], []


def rss_mb():
    try:
        for line in open(f"/proc/{proc.pid}/status"):
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None


def metrics():
    # From 127.0.0.3: the password guessing of (e) from 127.0.0.1 locks that address out of HTTP too
    # (the same throttle), as it should.
    conn = http.client.HTTPConnection(HOST, http_port, timeout=30, source_address=("127.0.0.3", 0))
    try:
        conn.request("GET", "/metrics", headers={"Authorization": AUTH})
        response = conn.getresponse()
        body = response.read().decode()
        if response.status != 200:
            raise OSError(f"/metrics answered {response.status}")
        return body
    finally:
        conn.close()


def metric(text, series):
    for line in text.splitlines():
        if line.startswith(series + " "):
            return float(line.split()[-1])
    return None


def smtp_series(text):
    return sorted(l.rsplit(" ", 1)[0] for l in text.splitlines() if l.startswith("herald_smtp_"))


def connect(src=None, timeout=30):
    return socket.create_connection((HOST, smtp_port), timeout=timeout, source_address=(src, 0) if src else None)


class Client:
    def __init__(self, src=None, greet=True, timeout=30):
        self.s, self.buf = connect(src, timeout), b""
        self.greeting = self.reply() if greet else None

    def reply(self):
        """One complete reply as text, or None when the server closed."""
        while True:
            lines = self.buf.split(b"\r\n")
            for i, line in enumerate(lines[:-1]):
                if len(line) < 4 or line[3:4] == b" ":
                    text = b"\r\n".join(lines[:i + 1]).decode(errors="replace")
                    self.buf = b"\r\n".join(lines[i + 1:])
                    return text
            try:
                chunk = self.s.recv(65536)
            except OSError:
                return None
            if not chunk:
                return None
            self.buf += chunk

    def cmd(self, line):
        self.s.sendall(line if isinstance(line, bytes) else (line + "\r\n").encode())
        return self.reply()

    def closed(self):
        """Reads to the end; true when the server closed the connection."""
        try:
            while self.s.recv(65536):
                pass
            return True
        except socket.timeout:
            return False
        except OSError:
            return True

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def code(reply):
    """`250 2.0.0`, or `250` alone for a reply of several lines (EHLO), or `closed`."""
    reply = reply or "closed"
    return reply[:3] if reply[3:4] == "-" else reply[:9]


def start_data(src=TRUSTED):
    c = Client(src)
    for line in ("EHLO hostile.example", "MAIL FROM:<app@example.com>", "RCPT TO:<dev@example.com>", "DATA"):
        reply = c.cmd(line)
    assert reply and reply.startswith("354"), reply
    return c


def wait_idle(deadline=30):
    until = time.time() + deadline
    while time.time() < until:
        if metric(metrics(), "herald_smtp_sessions_active") == 0:
            return True
        time.sleep(0.2)
    return False


def fresh_session():
    try:
        c = Client(HOST, timeout=10)
        ok = c.greeting.startswith("220 ") and c.cmd("EHLO fresh.example").startswith("250") and c.cmd("QUIT").startswith("221")
        c.close()
        return ok
    except (OSError, AttributeError):
        return False


def step(name, tried, measured, expected_ok, rss_peak=None, rss_limit=None):
    """Checks what every attack must leave behind and records a row."""
    alive = proc.poll() is None
    idle = alive and wait_idle()
    text = metrics() if alive else ""
    series = smtp_series(text)
    rss = rss_mb()
    fresh = alive and fresh_session()
    problems = [p for p, bad in [("died", not alive), ("sessions_active != 0", not idle), ("fresh session refused", not fresh),
                                 ("unexpected replies", not expected_ok), ("new herald_smtp_ series", series != BASE_SERIES),
                                 (f"RSS {rss:.0f} MB over {rss_limit} MB", rss_limit is not None and rss is not None and rss > rss_limit),
                                 (f"RSS peak {rss_peak} MB over {rss_limit} MB", rss_limit is not None and (rss_peak or 0) > rss_limit)]
                if bad]
    findings.extend(f"({name[0]}) {p}" for p in problems)
    rows.append((name, tried, measured, f"{rss:.0f}" if rss else "-", f"{rss_peak:.0f}" if rss_peak else "-",
                 "0" if idle else "NOT 0", len(text), "yes" if fresh else "NO", "; ".join(problems) or "ok"))


class Peak:
    """Samples VmRSS every 50 ms while a step runs."""
    def __enter__(self):
        self.peak, self.stop = rss_mb() or 0, False
        self.t = threading.Thread(target=self.run, daemon=True)
        self.t.start()
        return self

    def run(self):
        while not self.stop:
            self.peak = max(self.peak, rss_mb() or 0)
            time.sleep(0.05)

    def __exit__(self, *exc):
        self.stop = True
        self.t.join()


for _ in range(300):
    try:
        metrics()
        break
    except OSError:
        time.sleep(0.1)
BASE_SERIES = smtp_series(metrics())
BASE_RSS = rss_mb()
LIMIT = BASE_RSS + 64  # RSS a step may leave behind
print(f"herald pid {proc.pid}: HTTP {http_port}, SMTP {smtp_port}, STARTTLS {'on' if tls else 'off (no openssl)'}; "
      f"RSS at start {BASE_RSS:.0f} MB; timeouts {COMMAND_TIMEOUT}s/{DATA_TIMEOUT}s; data memory {DATA_MEMORY >> 20} MiB", flush=True)

# (a) 1,000 half-open connections that never speak.
with Peak() as p:
    t0 = time.time()
    half = [connect(HOST) for _ in range(1000)]
    during = Client(TRUSTED, timeout=10).greeting
    for s in half:
        s.settimeout(COMMAND_TIMEOUT + 10)
    timed_out = 0
    for s in half:
        got = b""
        try:
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except OSError:
            pass
        timed_out += b"421 4.4.2" in got
        s.close()
    took = time.time() - t0
step("a 1,000 half-open connections", "1,000 connections from 127.0.0.1, silent",
     f"{timed_out} got 421 4.4.2 and close within {took:.1f} s; a 1,001st client got {code(during)}",
     timed_out == 1000, p.peak, LIMIT)

# (b) slowloris: one byte every 2 s inside a command line, and inside DATA.
def trickle(c, payload, limit):
    t0 = time.time()
    c.s.settimeout(2)
    for byte in payload:
        if time.time() - t0 > limit:
            return None, time.time() - t0
        try:
            c.s.sendall(bytes([byte]))
            got = c.s.recv(4096)
            if got:
                return got.decode(errors="replace").strip(), time.time() - t0
        except socket.timeout:
            continue
        except OSError:
            return "reset", time.time() - t0
    return None, time.time() - t0

with Peak() as p:
    c = Client(HOST)
    cmd_reply, cmd_after = trickle(c, b"EHLO slow.example.com and then some more text to trickle" * 4, 60)
    cmd_closed = c.closed()
    c = start_data()
    data_reply, data_after = trickle(c, b"Subject: slow\r\n\r\n" + b"x" * 200, 60)
    data_closed = c.closed()
step("b slowloris", f"1 byte / 2 s in a command line and in DATA (timeouts {COMMAND_TIMEOUT} s)",
     f"command: {code(cmd_reply)} after {cmd_after:.1f} s, closed {cmd_closed}; DATA: {code(data_reply)} after "
     f"{data_after:.1f} s, closed {data_closed}",
     all(r and r.startswith("421 4.4.2") for r in (cmd_reply, data_reply)) and cmd_closed and data_closed
     and cmd_after < COMMAND_TIMEOUT + 5 and data_after < DATA_TIMEOUT + 5, p.peak, LIMIT)

# (c) 100,000 random garbage lines (20 per session: the error limit closes each), and 1 MB lines.
rng = random.Random(5321)
def garbage_session(seed):
    r = random.Random(seed)
    lines = [bytes(r.randrange(256) for _ in range(r.randrange(1, 300))).replace(b"\r", b"").replace(b"\n", b"") for _ in range(20)]
    try:
        c = Client(HOST)
        c.s.sendall(b"\r\n".join(lines) + b"\r\n")
        replies = c.s.recv(1 << 16)
        c.closed()
        c.close()
        return replies[:3]
    except OSError:
        return b"reset"

with Peak() as p:
    t0 = time.time()
    with concurrent.futures.ThreadPoolExecutor(32) as pool:
        first = list(pool.map(garbage_session, range(5000)))
    garbage_took = time.time() - t0
    answered = sum(1 for f in first if f[:1] in (b"5", b"2"))

    def long_line(in_data):
        c = start_data() if in_data else Client(HOST)
        c.s.sendall(b"A" * (1 << 20))
        reply = c.cmd(b"\r\n.\r\n" if in_data else b"\r\n")
        c.close()
        return code(reply)
    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        long_cmd = set(pool.map(long_line, [False] * 20))
        long_data = set(pool.map(long_line, [True] * 20))
step("c garbage and long lines", "100,000 random lines (5,000 sessions x 20); 20 x 1 MB command line, 20 x 1 MB DATA line",
     f"{answered}/5000 sessions answered, {garbage_took:.1f} s; 1 MB command: {sorted(long_cmd)}; 1 MB DATA line: {sorted(long_data)}",
     answered == 5000 and long_cmd == {"500 5.5.2"} and long_data == {"550 5.6.0"}, p.peak, LIMIT)

# (d) STARTTLS injection (CVE-2011-0411) and pipelining where it is not allowed.
with Peak() as p:
    results = {}
    if tls:
        c = Client(HOST)
        c.cmd("EHLO inject.example")
        results["STARTTLS+RSET"] = code(c.cmd(b"STARTTLS\r\nRSET\r\n"))
        c.close()
    for attempt in range(5):
        c = Client(HOST, greet=False)
        c.s.sendall(b"EHLO early.example\r\nMAIL FROM:<a@example.com>\r\n")
        results["before greeting"] = code(c.reply())
        c.close()
        if results["before greeting"].startswith("554"):
            break
    c = Client(HOST)
    results["EHLO+MAIL"] = code(c.cmd(b"EHLO pipe.example\r\nMAIL FROM:<a@example.com>\r\n"))
    c.close()
    c = start_data()
    c.s.sendall(b"Subject: x\r\n\r\nbody\r\n.\r\nMAIL FROM:<b@example.com>\r\nRCPT TO:<c@example.com>\r\n")
    results["pipelined after dot"] = "/".join(code(c.reply())[:3] for _ in range(3))
    c.close()
expected = {"STARTTLS+RSET": "554 5.5.0", "before greeting": "554 5.5.1", "EHLO+MAIL": "554 5.5.0", "pipelined after dot": "250/250/250"}
step("d injection and pipelining", "STARTTLS\\r\\nRSET in one packet; commands before the greeting; after EHLO; after the dot (allowed)",
     "; ".join(f"{k}: {v}" for k, v in results.items()), all(results[k] == v for k, v in expected.items() if k in results), p.peak, LIMIT)

# (e) AUTH brute force: 200 wrong passwords from 127.0.0.1.
with Peak() as p:
    before = metrics()
    counts, closes, tried = {}, 0, 0
    while tried < 200:
        c = Client(HOST)
        c.cmd("EHLO guess.example")
        for _ in range(10):  # HERALD_SMTP_MAX_ERRORS
            reply = c.cmd("AUTH PLAIN " + base64.b64encode(f"\0admin\0wrong-{tried}".encode()).decode())
            tried += 1
            counts[code(reply)] = counts.get(code(reply), 0) + 1
        last = c.reply()
        closes += bool(last and last.startswith("421 4.7.0") and c.closed())
        c.close()
    after = metrics()
    grew = metric(after, "herald_smtp_auth_failures_total") - metric(before, "herald_smtp_auth_failures_total")
step("e AUTH brute force", "200 wrong passwords for admin, AUTH PLAIN",
     f"replies {dict(sorted(counts.items()))}; sessions closed by the error limit: {closes}; auth_failures +{grew:.0f}",
     counts.get("454 4.7.0", 0) > 0 and closes > 0 and grew >= 190, p.peak, LIMIT)

# (f) RCPT flood, huge MAIL FROM parameters, NUL bytes.
with Peak() as p:
    c = Client(TRUSTED)
    c.cmd("EHLO flood.example")
    c.cmd("MAIL FROM:<app@example.com>")
    rcpt = {}
    for batch in range(50):
        c.s.sendall(b"".join(f"RCPT TO:<u{batch}-{i}-{rng.random()}@example.com>\r\n".encode() for i in range(100)))
        for _ in range(100):
            r = code(c.reply())[:3]
            rcpt[r] = rcpt.get(r, 0) + 1
    c.cmd("RSET")
    odd = {
        "MAIL FROM + 100 KB parameter": code(c.cmd("MAIL FROM:<app@example.com> X-HUGE=" + "y" * 100_000)),
        "MAIL FROM SIZE=10^30": code(c.cmd("MAIL FROM:<app@example.com> SIZE=" + "9" * 30)),
        "NUL in address": code(c.cmd(b"MAIL FROM:<a\x00b@example.com>\r\n")),
        "NUL in EHLO": code(c.cmd(b"EHLO \x00\x00\x00\r\n")),
        "NUL only": code(c.cmd(b"\x00\x00\x00\x00\r\n")),
        "still serves": code(c.cmd("NOOP")),
    }
    c.close()
step("f RCPT flood, parameters, NUL", f"5,000 unique RCPT TO (max {MAX_RCPT}); 100 KB MAIL parameter; SIZE=10^30; NUL bytes",
     f"RCPT {dict(sorted(rcpt.items()))}; " + "; ".join(f"{k}: {v}" for k, v in odd.items()),
     rcpt == {"250": MAX_RCPT, "452": 5000 - MAX_RCPT} and odd["still serves"] == "250 2.0.0"
     and odd["MAIL FROM + 100 KB parameter"] == "500 5.5.2", p.peak, LIMIT)

# (g) DATA far above the size limit, and many big messages at once against the memory budget.
def big(size, lines=True):
    c = start_data()
    line = b"z" * 998 + b"\r\n"
    sent = 0
    while sent < size:
        c.s.sendall(line * 64)
        sent += len(line) * 64
    reply = c.cmd(b".\r\n")
    c.close()
    return code(reply)

with Peak() as p:
    oversized = [big(100 << 20)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        oversized += list(pool.map(big, [50 << 20] * 4))
step("g DATA above the size limit", f"1 x 100 MB, then 4 x 50 MB at once (limit {MAX_SIZE >> 20} MiB), trusted",
     f"replies {sorted(set(oversized))}", set(oversized) == {"552 5.3.4"}, p.peak, BASE_RSS + DATA_MEMORY / (1 << 20) + 64)

with Peak() as p:
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        many = list(pool.map(big, [9 << 20] * 16))
    tally = {r: many.count(r) for r in sorted(set(many))}
    mem = metric(metrics(), 'herald_smtp_rejections_total{reason="memory"}')
step("g many big messages at once", f"16 x 9 MiB at once, budget {DATA_MEMORY >> 20} MiB",
     f"replies {tally}; rejections{{reason=memory}} {'absent' if mem is None else int(mem)}",
     set(many) <= {"250 2.0.0", "452 4.3.1"} and "250 2.0.0" in many, p.peak, BASE_RSS + DATA_MEMORY / (1 << 20) * 2 + 64)

proc.terminate()
proc.wait()
print()
head = ("attack", "tried", "measured", "RSS MB", "peak MB", "active", "/metrics B", "fresh", "verdict")
print(" | ".join(head))
for row in rows:
    print(" | ".join(str(x) for x in row))
print()
print(f"findings: {len(findings)}" + "".join(f"\n  - {f}" for f in findings))
sys.exit(1 if findings else 0)
