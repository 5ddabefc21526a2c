-- miltertest, second phase of miltertest.sh: opendkim.conf names a KeyTable that does not
-- exist. rampart-milter cannot tell whether a stream message would leave signed, so it must take
-- the safe action (on_error = tempfail) for stream mail, and leave unpinned mail alone.
local sock = os.getenv("RAMPART_MILTER_SOCKET")
local failures = 0
local function check(ok, what)
  mt.echo((ok and "ok:   " or "FAIL: ") .. what)
  if not ok then failures = failures + 1 end
end
local function run(port, client, from)
  local conn = mt.connect(sock, 40, 0.25)
  mt.macro(conn, SMFIC_CONNECT, "{daemon_port}", port, "{client_addr}", client)
  assert(mt.conninfo(conn, "client.example", client) == nil)
  mt.macro(conn, SMFIC_MAIL, "i", "5B2C3D4E")
  assert(mt.mailfrom(conn, from) == nil)
  assert(mt.rcptto(conn, "<buyer@example.org>") == nil)
  assert(mt.header(conn, "From", from) == nil)
  assert(mt.eoh(conn) == nil)
  assert(mt.bodystring(conn, "hi\r\n") == nil)
  assert(mt.eom(conn) == nil)
  local reply = mt.getreply(conn)
  mt.disconnect(conn)
  return reply
end
check(run("25", "172.18.0.5", "<news@send.example.net>") == SMFIR_REPLYCODE,
  "stream message with an unreadable OpenDKIM KeyTable is refused (tempfail)")
check(run("587", "192.0.2.1", "<a@example.com>") == SMFIR_CONTINUE, "unpinned message is not affected")
if failures > 0 then error(failures .. " checks failed") end
