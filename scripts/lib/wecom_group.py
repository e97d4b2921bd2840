#!/usr/bin/python3
"""scripts/demo's stand-in for a WeCom group: a local HTTP server that takes
what a WeCom group robot takes (POST /cgi-bin/webhook/send?key=KEY, text or
markdown, as documented for 企业微信群机器人) and prints each message the way
the group would show it, one after the other, to stdout; it answers as the
robot does ({"errcode":0,"errmsg":"ok"}, or 93000 for another key).

usage: wecom_group.py PORTFILE KEY   (listens on a free port of 127.0.0.1 and
writes it to PORTFILE once listening)
"""

import datetime
import http.server
import json
import re
import sys
import urllib.parse


def shown(msgtype, content):
    """What the group shows of a markdown message: no markup, the
    critical items marked."""
    if msgtype != "markdown":
        return content
    text = re.sub(r'<font color="warning">(.*?)</font>', r"❗\1", content, flags=re.S)
    text = re.sub(r"<[^>]+>", "", text)
    text = text.replace("**", "")
    return re.sub(r"\n{3,}", "\n\n", text)


class Robot(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, body):
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        url = urllib.parse.urlparse(self.path)
        key = urllib.parse.parse_qs(url.query).get("key", [""])[0]
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if url.path != "/cgi-bin/webhook/send" or key != KEY:
            self.answer({"errcode": 93000, "errmsg": "invalid webhook url"})
            return
        try:
            msg = json.loads(body)
            kind = msg["msgtype"]
            content = msg[kind]["content"]
        except (ValueError, KeyError, TypeError):
            self.answer({"errcode": 40035, "errmsg": "invalid parameter"})
            return
        now = datetime.datetime.now().strftime("%H:%M:%S")
        print("──── 社区工作者群 · cordon 机器人 · %s" % now)
        print(shown(kind, content))
        print(flush=True)
        self.answer({"errcode": 0, "errmsg": "ok"})


if __name__ == "__main__":
    PORTFILE, KEY = sys.argv[1], sys.argv[2]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Robot)
    with open(PORTFILE + ".tmp", "w") as f:
        f.write(str(server.server_address[1]))
    import os
    os.replace(PORTFILE + ".tmp", PORTFILE)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
