#!/usr/bin/env python3
"""smtp_burst.py: the campaign software of the policyd lab tests (tests/policyd/lab_test.sh).

Submits recipients to an SMTP server in messages of --per-message recipients each, from a given
source address, and prints one line per recipient with the server's reply to its RCPT TO:
    RCPT <address> <code> <text>
then one line per message: QUEUED <queue id> <accepted> or NOTQUEUED <reason>.
Exit status 0 when every session completed (whatever the replies), 1 on a connection failure.
Standard library only.
"""
import argparse
import smtplib
import sys


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--server", default="127.0.0.1")
    p.add_argument("--port", type=int, default=25)
    p.add_argument("--source", default=None, help="local address to connect from")
    p.add_argument("--sender", required=True)
    p.add_argument("--per-message", type=int, default=100)
    p.add_argument("--tag", default="burst")
    p.add_argument("recipients", help="file with one recipient per line ('-' for stdin)")
    a = p.parse_args()
    src = sys.stdin if a.recipients == "-" else open(a.recipients, encoding="ascii")
    rcpts = [line.strip() for line in src if line.strip()]
    failed = False
    for n, start in enumerate(range(0, len(rcpts), a.per_message)):
        batch = rcpts[start:start + a.per_message]
        try:
            s = smtplib.SMTP(a.server, a.port, local_hostname="campaigns.lab.example",
                             source_address=(a.source, 0) if a.source else None, timeout=20)
            s.ehlo()
            code, text = s.mail(a.sender)
            if code != 250:
                print(f"NOTQUEUED mail-from {code} {text.decode(errors='replace')}")
                s.quit()
                continue
            accepted = 0
            for r in batch:
                code, text = s.rcpt(r)
                print(f"RCPT {r} {code} {text.decode(errors='replace')}")
                accepted += code == 250
            if accepted == 0:
                print("NOTQUEUED no-recipient-accepted")
                s.rset()
                s.quit()
                continue
            body = (f"From: <{a.sender}>\r\nTo: <undisclosed-recipients:;>\r\n"
                    f"Subject: lab policyd {a.tag} {n}\r\n"
                    f"Message-Id: <{a.tag}-{n}@campaigns.lab.example>\r\n\r\nhello\r\n")
            code, text = s.data(body.encode())
            reply = text.decode(errors="replace")
            qid = reply.rsplit(" ", 1)[-1] if code == 250 and "queued as" in reply else ""
            print(f"QUEUED {qid} {accepted}" if code == 250 else f"NOTQUEUED data {code} {reply}")
            s.quit()
        except (OSError, smtplib.SMTPException) as e:
            print(f"ERROR {e}")
            failed = True
            break  # the server is in trouble: say so now rather than time out 20 more times
        sys.stdout.flush()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
