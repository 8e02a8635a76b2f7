#!/usr/bin/python3
"""Drives headless Chromium through ringserve's upload page over the DevTools protocol.

usage: upload.py URL TOKEN FILE [THROTTLE_BYTES_PER_SEC]

Opens URL (an upload directory's listing), types TOKEN, selects FILE in the page's file
input as a person would, and waits for the page to report the upload done or failed. The
upload is throttled in the browser so that the test driving this can cut the server off
midway. Prints each state change of the page's upload ("uploading", "retrying", "done"),
one per line, and exits 0 once "done" (1 on "failed" or after 120 s).
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

import websocket


def main():
    url, token, path = sys.argv[1], sys.argv[2], os.path.abspath(sys.argv[3])
    throttle = int(sys.argv[4]) if len(sys.argv) > 4 else 0
    profile = tempfile.mkdtemp(prefix="ringserve-chromium-")
    browser = subprocess.Popen(
        ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-dev-shm-usage", "--remote-debugging-port=0",
         "--user-data-dir=" + profile, "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        return drive(browser, url, token, path, throttle)
    finally:
        browser.kill()
        browser.wait()
        shutil.rmtree(profile, ignore_errors=True)


def drive(browser, url, token, path, throttle):
    port = None
    for line in browser.stderr:
        m = re.search(r"DevTools listening on ws://127\.0\.0\.1:(\d+)/", line)
        if m:
            port = m.group(1)
            break
    if port is None:
        print("chromium did not start", file=sys.stderr)
        return 1
    targets = json.load(urllib.request.urlopen(f"http://127.0.0.1:{port}/json"))
    page = next(t for t in targets if t["type"] == "page")
    ws = websocket.create_connection(page["webSocketDebuggerUrl"], timeout=30)
    ids = iter(range(1, 1 << 30))

    def call(method, **params):
        i = next(ids)
        ws.send(json.dumps({"id": i, "method": method, "params": params}))
        while True:
            msg = json.loads(ws.recv())
            if msg.get("id") == i:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})

    def js(expr):
        r = call("Runtime.evaluate", expression=expr, returnByValue=True)
        return r.get("result", {}).get("value")

    call("Page.enable")
    call("Network.enable")
    if throttle:
        call("Network.emulateNetworkConditions", offline=False, latency=0,
             downloadThroughput=-1, uploadThroughput=throttle)
    call("Page.navigate", url=url)
    deadline = time.time() + 30
    while js("document.readyState") != "complete" or not js("!!document.getElementById('up-files')"):
        if time.time() > deadline:
            print("no upload form on the page", file=sys.stderr)
            return 1
        time.sleep(0.1)
    js(f"var t = document.getElementById('up-token'); t.value = {json.dumps(token)};"
       "t.dispatchEvent(new Event('input'));")
    doc = call("DOM.getDocument")
    node = call("DOM.querySelector", nodeId=doc["root"]["nodeId"], selector="#up-files")
    call("DOM.setFileInputFiles", files=[path], nodeId=node["nodeId"])
    last = None
    deadline = time.time() + 120
    while time.time() < deadline:
        state = js("(document.querySelector('#up-list li') || {dataset: {}}).dataset.state || ''")
        if state != last and state:
            print(state, flush=True)
            last = state
        if state == "done":
            return 0
        if state == "failed":
            print(js("document.querySelector('#up-list li').textContent"), file=sys.stderr)
            return 1
        time.sleep(0.05)
    print("timed out in state " + str(last), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
