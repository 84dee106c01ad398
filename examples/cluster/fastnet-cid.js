/**
 * nginx stream (njs) handlers that route fastnet UDP datagrams by the server id in their connection
 * ID (docs/protocol.md §3, §8.1), without any state of their own.
 *
 *   datagram byte 0      flags
 *   datagram byte 1      CID config octet: 0x0b (config 0, 11 more CID bytes)
 *   datagram bytes 2..   server id, $fastnet_sid_len bytes (the processes' `serverId` option)
 *
 * `preread` reads the first datagram of each nginx UDP session (one per client address:port), sets
 * $fastnet_sid to the server id in lowercase hex, and lets the session go on when the `map` in
 * nginx.conf names a backend for it ($fastnet_backend). Anything else (too short, another config
 * octet, an unknown server id) is refused: nginx ends that session and forwards nothing.
 *
 * A client that moves (new port, new IP) is a new nginx session, so its first datagram from the new
 * address is routed by its CID again: the same server id, the same process.
 */

/** Config octet of a fastnet connection ID (config rotation 0, length 11). */
var CONFIG_OCTET = 0x0b;

function preread(s) {
  s.on("upstream", function (data) {
    var len = Number(s.variables.fastnet_sid_len);
    if (!(len >= 1 && len <= 3) || data.length < 2 + len || data[1] !== CONFIG_OCTET) {
      s.deny();
      return;
    }
    var hex = "";
    for (var i = 0; i < len; i++) hex += (data[2 + i] < 16 ? "0" : "") + data[2 + i].toString(16);
    s.variables.fastnet_sid = hex;
    if (!s.variables.fastnet_backend) {
      s.deny();
      return;
    }
    s.done();
  });
}

export default { preread };
