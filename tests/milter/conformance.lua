-- miltertest conformance for rampart-milter: one connection per decision, each checked against
-- the reply or end-of-message actions the milter must request. Driven by miltertest.sh, which
-- starts the milter on RAMPART_MILTER_SOCKET with rules.toml and an OpenDKIM config whose
-- InternalHosts covers 127.0.0.1 and 172.18.0.0/16 (not 198.51.100.0/24).
local sock = os.getenv("RAMPART_MILTER_SOCKET")
local failures = 0
local function check(ok, what)
  if ok then
    mt.echo("ok:   " .. what)
  else
    mt.echo("FAIL: " .. what)
    failures = failures + 1
  end
end

-- Opens a connection as Postfix would with rampart's milter_connect_macros.
local function open(port, client)
  local conn = mt.connect(sock, 40, 0.25)
  assert(conn, "cannot connect to " .. tostring(sock))
  mt.macro(conn, SMFIC_CONNECT, "{daemon_port}", port, "{client_addr}", client, "{daemon_name}", "smtpd")
  assert(mt.conninfo(conn, "client.example", client) == nil)
  check(mt.getreply(conn) == SMFIR_CONTINUE, "connect from " .. client .. " port " .. port)
  return conn
end

local function message(conn, from, rcpts, headers, body)
  mt.macro(conn, SMFIC_MAIL, "i", "4F1A2B3C")
  assert(mt.mailfrom(conn, from) == nil)
  check(mt.getreply(conn) == SMFIR_CONTINUE, "MAIL FROM " .. from)
  for _, r in ipairs(rcpts) do
    assert(mt.rcptto(conn, r) == nil)
  end
  for _, h in ipairs(headers) do
    assert(mt.header(conn, h[1], h[2]) == nil)
  end
  assert(mt.eoh(conn) == nil)
  assert(mt.bodystring(conn, body or "hello\r\n") == nil)
  assert(mt.eom(conn) == nil)
end

local signed = "v=1; a=rsa-sha256; c=relaxed/relaxed; d=send.example.net; s=lab; h=from; bh=x; b=y"

-- 1. RCPT: an excluded domain is rejected; a clean recipient continues.
local c = open("25", "172.18.0.5")
mt.macro(c, SMFIC_MAIL, "i", "4F1A2B3C")
assert(mt.mailfrom(c, "<news@send.example.net>") == nil)
assert(mt.rcptto(c, "<someone@aol.com>") == nil)
check(mt.getreply(c) == SMFIR_REPLYCODE, "RCPT to an excluded domain gets a reply code (reject)")
assert(mt.rcptto(c, "<buyer@example.org>") == nil)
check(mt.getreply(c) == SMFIR_CONTINUE, "RCPT to a clean recipient continues")
mt.disconnect(c)

-- 2. A clean, signed message in stream bulk: pinned, forged pin header deleted, accepted.
c = open("25", "172.18.0.5")
message(c, "<news@send.example.net>", {"<buyer@example.org>"},
  {{"X-Rampart-Stream", "institutional transport=hcout1"}, {"From", "News <news@send.example.net>"},
   {"Message-ID", "<1@send.example.net>"}, {"DKIM-Signature", signed}})
check(mt.getreply(c) == SMFIR_CONTINUE, "clean signed message continues")
check(mt.eom_check(c, MT_HDRINSERT, "X-Rampart-Stream", "bulk transport=out05"), "X-Rampart-Stream: bulk transport=out05 inserted")
check(mt.eom_check(c, MT_HDRDELETE, "X-Rampart-Stream"), "client-supplied X-Rampart-Stream deleted")
check(not mt.eom_check(c, MT_QUARANTINE), "not quarantined")
mt.disconnect(c)

-- 3. Hold and discard recipients.
c = open("25", "172.18.0.5")
message(c, "<news@send.example.net>", {"<x@gmail.com>", "<gone@example.com>", "<buyer@example.org>"},
  {{"From", "news@send.example.net"}, {"DKIM-Signature", signed}})
check(mt.getreply(c) == SMFIR_CONTINUE, "message with hold and discard recipients continues")
check(mt.eom_check(c, MT_QUARANTINE), "held recipient quarantines the message")
check(mt.eom_check(c, MT_RCPTDELETE, "<gone@example.com>"), "suppressed recipient deleted")
mt.disconnect(c)

-- 4. From outside the stream's domains is rejected (incident 9).
c = open("25", "172.18.0.5")
message(c, "<news@send.example.net>", {"<buyer@example.org>"},
  {{"From", "ceo@example.com"}, {"DKIM-Signature", signed}})
check(mt.getreply(c) == SMFIR_REPLYCODE, "From outside from_domains is refused")
mt.disconnect(c)

-- 5. Unsigned from a client OpenDKIM does not trust (incident 5): tempfail with the reason.
c = open("2526", "198.51.100.7")
message(c, "<x@send.example.org>", {"<buyer@example.org>"}, {{"From", "x@send.example.org"}})
check(mt.getreply(c) == SMFIR_REPLYCODE, "unsigned message from outside InternalHosts is refused")
mt.disconnect(c)

-- 6. Hygiene: warn on bulk (header added), refuse on institutional.
c = open("25", "172.18.0.5")
message(c, "<news@send.example.net>", {"<buyer@example.org>"},
  {{"From", "news@send.example.net"}, {"Message-ID", "<x@localhost.localdomain>"}, {"DKIM-Signature", signed}})
check(mt.getreply(c) == SMFIR_CONTINUE, "hygiene=warn continues")
check(mt.eom_check(c, MT_HDRINSERT, "X-Rampart-Warning", "message-id-localhost"), "X-Rampart-Warning added")
mt.disconnect(c)
c = open("2526", "127.0.0.1")
message(c, "<x@send.example.org>", {"<buyer@example.org>"},
  {{"From", "x@send.example.org"}, {"Content-Type", "text/html"},
   {"DKIM-Signature", "v=1; d=send.example.org; s=s1; b=y"}}, "<p>hi</p>\r\n")
check(mt.getreply(c) == SMFIR_REPLYCODE, "hygiene=refuse refuses an HTML-only message")
mt.disconnect(c)

-- 7. Mail in no stream is accepted unpinned (on_no_stream = accept).
c = open("587", "192.0.2.1")
message(c, "<a@example.com>", {"<b@example.org>"}, {{"From", "a@example.com"}})
check(mt.getreply(c) == SMFIR_CONTINUE, "unpinned mail continues")
check(mt.eom_check(c, MT_HDRINSERT, "X-Rampart-Stream", "-"), "X-Rampart-Stream: - marks it unpinned")
mt.disconnect(c)

-- 8. Postfix configured without {daemon_port}: refuse to guess the stream (451 4.3.5).
c = mt.connect(sock, 40, 0.25)
mt.macro(c, SMFIC_CONNECT, "{client_addr}", "172.18.0.5")
assert(mt.conninfo(c, "client.example", "172.18.0.5") == nil)
assert(mt.mailfrom(c, "<news@send.example.net>") == nil)
check(mt.getreply(c) == SMFIR_REPLYCODE, "MAIL without {daemon_port} gets a reply code (tempfail)")
mt.disconnect(c)

if failures > 0 then
  error(failures .. " conformance checks failed")
end
mt.echo("conformance: all checks passed")
