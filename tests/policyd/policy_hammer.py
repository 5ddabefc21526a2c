#!/usr/bin/env python3
"""policy_hammer.py: concurrent Postfix policy clients for the fleet test.

Sends REQUESTS policy requests (Postfix 3.7 attributes, protocol_state=RCPT) to each given
endpoint over CONNECTIONS persistent connections per endpoint, all endpoints at once, one
request in flight per connection as Postfix does. Prints, per endpoint, `ENDPOINT action count`
lines (action = first word of the reply), then `TOTAL action count`, then `FIRST action reply`
with the first full reply seen for each action. Exit 1 on any protocol or
connection error. Standard library only.
"""
import argparse
import collections
import socket
import sys
import threading


def request(i: int, rcpt: str, port: int, client: str) -> bytes:
    attrs = {
        "request": "smtpd_access_policy", "protocol_state": "RCPT", "protocol_name": "ESMTP",
        "client_address": client, "client_name": "campaigns.lab.example",
        "reverse_client_name": "campaigns.lab.example", "helo_name": "campaigns.lab.example",
        "sender": "news@send.example.net", "recipient": rcpt.replace("{i}", str(i)),
        "recipient_count": "0", "queue_id": "", "instance": f"fleet.{i}", "size": "0",
        "server_address": "127.0.0.1", "server_port": str(port),
        "sasl_method": "", "sasl_username": "", "policy_context": "",
    }
    return ("".join(f"{k}={v}\n" for k, v in attrs.items()) + "\n").encode()


first = {}


def worker(endpoint, n, start, args, counts, errors, lock):
    host, port = endpoint.rsplit(":", 1)
    try:
        s = socket.create_connection((host, int(port)), timeout=30)
        buf = b""
        for i in range(start, start + n):
            s.sendall(request(i, args.recipient, args.server_port, args.client))
            while b"\n\n" not in buf:
                chunk = s.recv(4096)
                if not chunk:
                    raise ConnectionError("closed by the server")
                buf += chunk
            reply, buf = buf.split(b"\n\n", 1)
            if not reply.startswith(b"action="):
                raise ValueError(f"malformed reply {reply!r}")
            text = reply[len(b"action="):].decode(errors="replace")
            word = text.split(" ", 1)[0]
            with lock:
                counts[endpoint][word] += 1
                first.setdefault(word, text)
        s.close()
    except (OSError, ValueError) as e:
        with lock:
            errors.append(f"{endpoint}: {e}")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--requests", type=int, default=600, help="per endpoint")
    p.add_argument("--connections", type=int, default=4, help="per endpoint")
    p.add_argument("--recipient", default="r{i}@contoso.example")
    p.add_argument("--server-port", type=int, default=25)
    p.add_argument("--client", default="192.0.2.25")
    p.add_argument("endpoints", nargs="+", help="HOST:PORT")
    a = p.parse_args()
    counts = {e: collections.Counter() for e in a.endpoints}
    errors, lock, threads = [], threading.Lock(), []
    per = a.requests // a.connections
    for e_no, e in enumerate(a.endpoints):
        for c in range(a.connections):
            start = (e_no * a.connections + c) * per
            threads.append(threading.Thread(target=worker,
                                            args=(e, per, start, a, counts, errors, lock)))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = collections.Counter()
    for e in a.endpoints:
        for word, n in sorted(counts[e].items()):
            print(f"{e} {word} {n}")
        total.update(counts[e])
    for word, n in sorted(total.items()):
        print(f"TOTAL {word} {n}")
    for word, text in sorted(first.items()):
        print(f"FIRST {word} {text}")
    for err in errors:
        print(f"ERROR {err}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
