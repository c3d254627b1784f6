"""Password guessing against a live herald (usage: python3 bench/hostile/guessing.py target/debug/herald):
200 concurrent wrong passwords from one address, then the right one, cached and in a burst of 60."""
import os, subprocess, sys, tempfile, time, base64, concurrent.futures, urllib.request
BIN=sys.argv[1]; port=19000+os.getpid()%1000; data=tempfile.mkdtemp()
env=dict(os.environ,HERALD_DATA_DIR=data,HERALD_LISTEN=f"127.0.0.1:{port}",HERALD_ADMIN_PASSWORD="probe-password-1",HERALD_MAIL_DELIVERY="false",HERALD_LOG="warn")
proc=subprocess.Popen([BIN,"serve"],env=env,stderr=subprocess.DEVNULL)
def call(user,pw,path="/api/v1/whoami"):
    h={"Authorization":"Basic "+base64.b64encode(f"{user}:{pw}".encode()).decode()}
    try:
        with urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{port}{path}",headers=h),timeout=60) as r: return r.status
    except urllib.error.HTTPError as e: return e.code
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/livez",timeout=1); break
    except Exception: time.sleep(0.1)
print("right password before:", call("admin","probe-password-1"))
with concurrent.futures.ThreadPoolExecutor(200) as ex:
    r=list(ex.map(lambda i: call("admin",f"wrong{i}"), range(200)))
print("burst of 200 wrong passwords:", {s:r.count(s) for s in set(r)})
print("right password (cached) after the burst:", call("admin","probe-password-1"))
with concurrent.futures.ThreadPoolExecutor(60) as ex:
    r=list(ex.map(lambda i: call("admin","probe-password-1"), range(60)))
print("60 concurrent right passwords after:", {s:r.count(s) for s in set(r)})
proc.terminate(); proc.wait()
