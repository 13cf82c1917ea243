#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Renders promptshap's SVG figures and HTML report in headless Chromium and
checks them as a reader sees them: no console errors or network requests,
one highlighted element per unit and per target token, hostile text shown as
text, colors that follow the sign of a value, and a usable report for a
100-unit prompt and a 2,000-token target.

It drives Chromium over the DevTools protocol on a loopback WebSocket, with
only the standard library. Exit code 77 (skipped) when chromium is not
installed or, for the model run, when PROMPTSHAP_MODEL is unset.

  --fixtures TEST_VIEWS   check the files test_views writes (no model)
  --cli PROMPTSHAP --examples DIR
                          run the command line on PROMPTSHAP_MODEL and check
                          its output; --screenshots DIR keeps one screenshot
                          of each view there
"""
import argparse
import base64
import json
import math
import os
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

SKIP = 77
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAILED: " + what, file=sys.stderr)


class DevTools:
    """A minimal DevTools protocol client over one WebSocket (RFC 6455)."""

    def __init__(self, port, path):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                   f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        self.sock.sendall(request.encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = self.sock.recv(4096)
            if not chunk:
                raise ConnectionError("DevTools closed the connection during the handshake")
            data += chunk
        head, self.buf = data.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n")[0]:
            raise ConnectionError("DevTools handshake failed: " + head.decode(errors="replace"))
        self.next_id = 0
        self.events = []

    def _send(self, payload, opcode=0x1):
        header = bytearray([0x80 | opcode])
        n = len(payload)
        if n < 126:
            header.append(0x80 | n)
        elif n < 65536:
            header.append(0x80 | 126)
            header += struct.pack(">H", n)
        else:
            header.append(0x80 | 127)
            header += struct.pack(">Q", n)
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes(header) + mask + masked)

    def _read(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("DevTools closed the connection")
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _message(self):
        message = b""
        while True:
            b0, b1 = self._read(2)
            n = b1 & 0x7F
            if n == 126:
                n = struct.unpack(">H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._read(8))[0]
            mask = self._read(4) if b1 & 0x80 else None
            payload = self._read(n)
            if mask:
                payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            opcode = b0 & 0x0F
            if opcode == 0x8:
                raise ConnectionError("DevTools closed the connection")
            if opcode == 0x9:
                self._send(payload, 0xA)
                continue
            message += payload
            if b0 & 0x80:
                return json.loads(message)

    def call(self, method, session=None, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if session:
            msg["sessionId"] = session
        self._send(json.dumps(msg).encode())
        while True:
            reply = self._message()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, name, timeout=60):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for k, e in enumerate(self.events):
                if e.get("method") == name:
                    del self.events[k]
                    return e
            self.events.append(self._message())
        raise TimeoutError("no " + name)


class Browser:
    def __init__(self, chromium, workdir):
        self.profile = tempfile.mkdtemp(prefix="profile-", dir=workdir)
        self.log = open(os.path.join(workdir, "chromium.log"), "w")
        self.proc = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             "--disable-quic", "--user-data-dir=" + self.profile, "--remote-debugging-port=0",
             "--window-size=1280,900", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=self.log)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 60
        while not (os.path.exists(port_file) and len(open(port_file).read().split()) >= 2):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("chromium did not start; see " + self.log.name)
            time.sleep(0.1)
        port, path = open(port_file).read().split()[:2]
        self.cdp = DevTools(int(port), path)

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Page:
    """One tab: loads a file and records errors, dialogs and requests."""

    def __init__(self, browser, path, width=1280, height=900):
        self.cdp = browser.cdp
        target = self.cdp.call("Target.createTarget", url="about:blank")["targetId"]
        self.target = target
        self.session = self.cdp.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(domain + ".enable")
        self.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1, mobile=False)
        self.url = "file://" + os.path.abspath(path)
        self.cdp.events.clear()
        start = time.time()
        self.call("Page.navigate", url=self.url)
        self.cdp.wait_event("Page.loadEventFired")
        self.load_seconds = time.time() - start

    def call(self, method, **params):
        return self.cdp.call(method, self.session, **params)

    def js(self, expression):
        reply = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in reply:
            raise RuntimeError(f"{expression}: {reply['exceptionDetails']}")
        return reply["result"].get("value")

    def problems(self):
        """Console errors, exceptions, dialogs and requests that leave the file."""
        out = []
        for e in self.cdp.events:
            if e.get("sessionId") != self.session:
                continue
            m, p = e.get("method"), e.get("params", {})
            if m == "Runtime.exceptionThrown":
                out.append("exception: " + json.dumps(p["exceptionDetails"])[:300])
            elif m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert", "warning"):
                out.append("console: " + json.dumps(p.get("args"))[:300])
            elif m == "Log.entryAdded" and p["entry"].get("level") in ("error", "warning"):
                out.append("log: " + p["entry"].get("text", "")[:300])
            elif m == "Page.javascriptDialogOpening":
                out.append("dialog: " + p.get("message", ""))
            elif m == "Network.requestWillBeSent" and p["request"]["url"] != self.url:
                out.append("request: " + p["request"]["url"][:200])
        return out

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))
        return path

    def hover(self, selector, click=False):
        box = self.js(f"(function () {{ var e = document.querySelector({json.dumps(selector)});"
                      "e.scrollIntoView({block: 'center'}); var b = e.getBoundingClientRect();"
                      "return [b.left + b.width / 2, b.top + b.height / 2]; })()")
        self.call("Input.dispatchMouseEvent", type="mouseMoved", x=box[0], y=box[1])
        if click:
            for kind in ("mousePressed", "mouseReleased"):
                self.call("Input.dispatchMouseEvent", type=kind, x=box[0], y=box[1], button="left", clickCount=1)

    def close(self):
        self.cdp.call("Target.closeTarget", targetId=self.target)


def rgb(css):
    """'rgb(1, 2, 3)' -> (1, 2, 3)."""
    return tuple(int(float(x)) for x in css[css.index("(") + 1:css.index(")")].split(",")[:3])


def hue_sign(color):
    """+1 for the orange side (red over blue), -1 for the blue side, 0 for neutral."""
    r, _, b = color
    if r > b:
        return 1
    if b > r:
        return -1
    return 0


def sign_ok(value, vmax, color):
    """A clearly non-zero value has the hue of its sign."""
    if value is None or abs(value) < 0.02 * vmax:
        return True
    return hue_sign(color) == (1 if value > 0 else -1)


# the page-side reads, as JavaScript expressions
UNIT_COLORS = ("Array.from(document.querySelectorAll('#prompt .unit')).map(function (e) {"
               " return [Number(e.dataset.value), getComputedStyle(e).backgroundColor]; })")
TOKEN_COLORS = ("Array.from(document.querySelectorAll('#target .tok')).map(function (e) {"
                " return getComputedStyle(e).backgroundColor; })")
SVG_CELLS = ("Array.from(document.querySelectorAll('rect.cell')).map(function (e) {"
             " return [Number(e.getAttribute('data-value') || e.parentNode.getAttribute('data-value')),"
             " getComputedStyle(e).fill]; })")


def check_svg(browser, path, shots=None, what=""):
    page = Page(browser, path)
    root = page.js("[document.documentElement.namespaceURI, document.documentElement.localName,"
                   " document.getElementsByTagName('parsererror').length, document.getElementsByTagName('script').length,"
                   " Number(document.documentElement.getAttribute('width')),"
                   " Number(document.documentElement.getAttribute('height'))]")
    check(root[0] == "http://www.w3.org/2000/svg" and root[1] == "svg", f"{what}: {path} is not an SVG document")
    check(root[2] == 0, f"{what}: {path} has XML errors")
    check(root[3] == 0, f"{what}: {path} contains a script element")
    check(not page.problems(), f"{what}: {path} has console errors or requests: {page.problems()}")
    cells = page.js(SVG_CELLS)
    # the scale's end, from the color bar's label: a matrix panel uses the whole matrix's
    vmax = abs(float(page.js("document.querySelectorAll('.color-bar text')[2].textContent")))
    bad = [(v, c) for v, c in cells if not sign_ok(v, vmax, rgb(c))]
    check(not bad, f"{what}: {path}: colors that do not follow the sign: {bad[:3]}")
    if shots:
        page.call("Emulation.setDeviceMetricsOverride", width=int(min(root[4], 1600)),
                  height=int(min(root[5], 1400)), deviceScaleFactor=1, mobile=False)
        page.screenshot(shots)
    page.close()
    return cells, page


def check_report(browser, path, expect, shot=None, what=""):
    """Checks an HTML report against expect: the units, tokens, sentences and matrix of its run."""
    page = Page(browser, path)
    check(page.js("document.body.getAttribute('data-ready')") == "1", f"{what}: the report's script did not finish")
    check(not page.problems(), f"{what}: console errors or requests: {page.problems()}")
    n_units, n_tokens = len(expect["units"]), len(expect["tokens"])
    check(page.js("document.querySelectorAll('#prompt .unit').length") == n_units,
          f"{what}: highlighted units differ from the run's {n_units}")
    check(page.js("document.querySelectorAll('#target .tok').length") == n_tokens,
          f"{what}: highlighted tokens differ from the run's {n_tokens}")
    check(page.js("document.getElementById('prompt').textContent") == expect["prompt"],
          f"{what}: the prompt does not read as its text")
    check(page.js("document.scripts.length") == 2, f"{what}: the page has more than its own two scripts")
    if expect.get("sentences") is not None:
        check(page.js("document.querySelectorAll('#sentences tr.sentence').length") == len(expect["sentences"]),
              f"{what}: sentence rows differ from the run's")
    check(page.js("document.querySelectorAll('#matrix canvas').length") == 2, f"{what}: the matrix was not drawn")

    # the prompt's colors follow the units' signs
    units = page.js(UNIT_COLORS)
    vmax = max([abs(v) for v, _ in units] + [1e-300])
    bad = [(v, c) for v, c in units if not sign_ok(v, vmax, rgb(c))]
    check(not bad, f"{what}: unit colors that do not follow the sign: {bad[:3]}")

    # hovering a unit colors the target by that unit's row; a click keeps it
    m = expect["matrix"]
    row_max = max(abs(x) for row in m for x in row if x is not None) or 1
    k = max(range(n_units), key=lambda i: sum(abs(x) for x in m[i]))
    page.hover(f"#prompt .unit[data-i='{k}']", click=True)
    page.call("Input.dispatchMouseEvent", type="mouseMoved", x=2, y=2)
    check(page.js("document.getElementById('target-by').textContent").startswith(f"unit {k} "),
          f"{what}: the target is not colored by the selected unit {k}")
    colors = [rgb(c) for c in page.js(TOKEN_COLORS)]
    bad = [t for t in range(n_tokens) if not sign_ok(m[k][t], row_max, colors[t])]
    check(not bad, f"{what}: token colors that do not follow unit {k}'s values at tokens {bad[:5]}")
    flipped = [t for t in range(n_tokens) if abs(m[k][t]) > 0.05 * row_max]
    check(len({hue_sign(colors[t]) for t in flipped}) == 2 or len(flipped) < 2 or
          len({m[k][t] > 0 for t in flipped}) == 1, f"{what}: tokens of both signs share one hue")
    if shot:
        page.js("window.scrollTo(0, 0)")
        page.screenshot(shot)
    check(not page.problems(), f"{what}: console errors after interaction: {page.problems()}")
    page.close()
    return page


def expect_from_json(path):
    d = json.load(open(path))
    return {"prompt": d["prompt"], "units": d["units"], "tokens": d["target_tokens"], "matrix": d["matrix"],
            "sentences": d.get("sentences")}


def find_chromium():
    for name in (os.environ.get("PROMPTSHAP_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


# a prompt with markup, quotes, emoji, right-to-left text and a 300-character word
LONG_WORD = "".join(chr(ord("a") + k % 26) for k in range(300))
HOSTILE = ("<script>alert(1)</script> <b>bold</b> \"double\" 'single' a&b \U0001F600 "
           "\u05e9\u05dc\u05d5\u05dd " + LONG_WORD)


def run_fixtures(browser, test_views, work):
    fixtures = os.path.join(work, "fixtures")
    os.mkdir(fixtures)
    rc = subprocess.run([test_views, fixtures], stdout=subprocess.DEVNULL).returncode
    check(rc == 0, "test_views failed while writing the fixtures")

    # hostile text renders as text
    page = Page(browser, os.path.join(fixtures, "hostile.html"))
    check(not page.problems(), f"hostile report: console errors, dialogs or requests: {page.problems()}")
    check(page.js("document.querySelectorAll('#prompt b, #target b, #units b').length") == 0,
          "hostile report: markup in the prompt became elements")
    check(page.js("document.scripts.length") == 2, "hostile report: a script in the prompt became an element")
    check(page.js("document.querySelector('#prompt .unit').textContent") == "<script>alert(1)</script>",
          "hostile report: the first unit does not read as its text")
    page.close()
    for name in ("hostile-units.svg", "hostile-matrix-1.svg", "hostile-sentences-sum.svg"):
        check_svg(browser, os.path.join(fixtures, name), what="hostile")
    page = Page(browser, os.path.join(fixtures, "hostile-units.svg"))
    titles = page.js("Array.from(document.querySelectorAll('g.unit title')).map(function (t) { return t.textContent; })")
    labels = page.js("Array.from(document.querySelectorAll('g.unit text:first-of-type')).map(function (t) {"
                     " return t.firstChild.textContent; })")
    check(LONG_WORD in titles, "hostile strip: the long word is not whole in its hover title")
    check(any(lab.endswith("\u2026") and LONG_WORD.startswith(lab[:-1]) for lab in labels),
          "hostile strip: the long word's label is not cut with an ellipsis")
    check("<script>alert(1)</script>" in titles, "hostile strip: the markup does not read as text")
    page.close()

    # a value's color flips when its sign flips
    plus = Page(browser, os.path.join(fixtures, "flip-plus.html"))
    minus = Page(browser, os.path.join(fixtures, "flip-minus.html"))
    for a, b in ((UNIT_COLORS, None), (TOKEN_COLORS, None)):
        pa, pb = plus.js(a), minus.js(a)
        ca = [rgb(x[1] if isinstance(x, list) else x) for x in pa]
        cb = [rgb(x[1] if isinstance(x, list) else x) for x in pb]
        check(len(ca) == len(cb) and all(hue_sign(x) == -hue_sign(y) for x, y in zip(ca, cb) if hue_sign(x)),
              "flipped signs: a color kept its hue")
        check(any(hue_sign(x) for x in ca), "flipped signs: no colored element to compare")
    plus.close()
    minus.close()
    sa, _ = check_svg(browser, os.path.join(fixtures, "flip-plus-units.svg"), what="flip")
    sb, _ = check_svg(browser, os.path.join(fixtures, "flip-minus-units.svg"), what="flip")
    check(all(hue_sign(rgb(x[1])) == -hue_sign(rgb(y[1])) for x, y in zip(sa, sb)),
          "flipped signs: an SVG cell kept its hue")

    # a 100-unit prompt and a 2,000-token target
    page = Page(browser, os.path.join(fixtures, "big.html"))
    check(page.load_seconds < 10, f"big report: loading took {page.load_seconds:.1f} s")
    check(page.js("document.querySelectorAll('#prompt .unit').length") == 100, "big report: not 100 units")
    check(page.js("document.querySelectorAll('#target .tok').length") == 2000, "big report: not 2000 tokens")
    check(not page.problems(), f"big report: console errors: {page.problems()}")
    ms = page.js("(function () { var t0 = performance.now();"
                 " document.querySelectorAll('#prompt .unit')[42].dispatchEvent(new MouseEvent('mouseenter'));"
                 " getComputedStyle(document.querySelector('#target .tok')).backgroundColor;"
                 " return performance.now() - t0; })()")
    check(ms < 500, f"big report: recoloring 2,000 tokens took {ms:.0f} ms")
    page.close()


def run_cli(browser, cli, examples, work, shots):
    model = os.environ.get("PROMPTSHAP_MODEL")
    if not model:
        print("PROMPTSHAP_MODEL is not set: skipping", file=sys.stderr)
        return SKIP
    case = os.path.join(examples, "cases", "deep-learning-short")
    out = os.path.join(work, "run")
    os.mkdir(out)
    cmd = [cli, "explain", "-m", model, "-f", os.path.join(case, "prompt.txt"), "--target-file",
           os.path.join(case, "target.txt"), "--interactions", "-q", "--json", out + "/run.json",
           "--svg", out + "/run", "--html", out + "/run.html", "--csv", out + "/run.csv"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    check(proc.returncode == 0, f"explain with views failed: {proc.stderr}")
    if proc.returncode != 0:
        return 1
    expect = expect_from_json(out + "/run.json")
    n_units, n_tokens = len(expect["units"]), len(expect["tokens"])
    keep = (lambda name: os.path.join(shots, name)) if shots else (lambda name: os.path.join(out, name))

    check_report(browser, out + "/run.html", expect, keep("view-report.png"), "report")
    cells, _ = check_svg(browser, out + "/run-units.svg", keep("view-units.png"), "strip")
    check(len(cells) == n_units, "strip: one box per unit")
    panels = sorted(f for f in os.listdir(out) if f.startswith("run-matrix-"))
    check(len(panels) == math.ceil(n_tokens / 40), f"matrix: {len(panels)} panels for {n_tokens} tokens")
    total = 0
    for k, name in enumerate(panels):
        cells, _ = check_svg(browser, os.path.join(out, name), keep("view-matrix.png") if k == 0 else None, "matrix")
        check(len(cells) <= 40 * n_units, f"matrix: {name} has more than 40 tokens")
        total += len(cells)
    check(total == n_units * n_tokens, "matrix: the panels do not cover every unit and token")
    for agg in ("sum", "sum-abs", "mean-abs"):
        cells, _ = check_svg(browser, f"{out}/run-sentences-{agg}.svg",
                             keep("view-sentences.png") if agg == "sum" else None, "sentences")
        check(len(cells) == n_units * len(expect["sentences"]), f"sentences {agg}: one cell per unit and sentence")
    if os.path.exists(out + "/run-interactions.svg"):
        cells, _ = check_svg(browser, out + "/run-interactions.svg", keep("view-interactions.png"), "interactions")
        check(len(cells) == n_units * n_units, "interactions: one cell per pair of units")
    else:
        check(False, "--interactions wrote no interaction figure")
    rows = open(out + "/run.csv", newline="").read().split("\r\n")
    check(rows[0] == "unit,unit_start,unit_end,token_index,token_text,value", "csv: header")
    check(not [f for f in os.listdir(out) if ".tmp" in f or f.count(".") > 1], "a temporary file was left behind")

    # a hostile prompt on the real model
    cmd = [cli, "explain", "-m", model, "-p", HOSTILE, "--target", "Once upon a time there was a cat.", "-q",
           "--json", out + "/hostile.json", "--svg", out + "/hostile", "--html", out + "/hostile.html"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    check(proc.returncode == 0, f"explain of the hostile prompt failed: {proc.stderr}")
    if proc.returncode == 0:
        expect = expect_from_json(out + "/hostile.json")
        check(len(expect["units"]) == 8, "hostile: 8 words expected")
        check_report(browser, out + "/hostile.html", expect, what="hostile report")
        check_svg(browser, out + "/hostile-units.svg", what="hostile strip")
        check_svg(browser, out + "/hostile-matrix-1.svg", what="hostile matrix")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures")
    ap.add_argument("--cli")
    ap.add_argument("--examples")
    ap.add_argument("--screenshots")
    args = ap.parse_args()
    chromium = find_chromium()
    if not chromium:
        print("chromium is not installed: skipping", file=sys.stderr)
        return SKIP
    if args.cli and not os.environ.get("PROMPTSHAP_MODEL"):
        print("PROMPTSHAP_MODEL is not set: skipping", file=sys.stderr)
        return SKIP
    work = tempfile.mkdtemp(prefix="promptshap-browser-")
    browser = Browser(chromium, work)
    try:
        if args.fixtures:
            run_fixtures(browser, args.fixtures, work)
        if args.cli:
            run_cli(browser, args.cli, args.examples, work, args.screenshots)
    finally:
        browser.close()
        if not failures:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print("files kept in " + work, file=sys.stderr)
    print(f"{'FAILED' if failures else 'passed'}: {len(failures)} failed checks")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
