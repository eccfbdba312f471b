-- Pktgen-DPDK script for benchmarking xroute on real NICs (docs/benchmarking.md).
--
-- Topology: pktgen port TX_PORT -> xroute's port A ... xroute's port B -> pktgen port RX_PORT.
-- The router must forward the destinations below out of port B towards pktgen: load the full
-- table with every route via a next hop on port B's link, plus a default route the same way, so
-- that every destination is forwarded and looked up in the table (the more specific route wins
-- where the table has one). Pktgen answers the router's ARP for that next hop on RX_PORT if
-- that port is given the next hop's address (pktgen.set_ipaddr, below).
--
--   pktgen -l 2-6 -n 4 -a 0000:17:00.0 -a 0000:17:00.1 -- -P -T -m "[3:4].0, [5:6].1" -f xroute.lua
--
-- Set the constants below first (ROUTER_MAC at least). MODE "64": 64-byte frames in range mode,
-- many flows: sources walk FLOWS addresses of 198.18.0.0/15 and UDP source ports, destinations
-- walk the IPv4 unicast space one /24 at a time (1.0.0.1, 1.0.1.1, ... 223.255.255.1), so that
-- consecutive packets hit different table entries. MODE "imix": the simple IMIX, 64, 594 and
-- 1518-byte frames in the ratio 7:4:1, as pktgen's sequence mode: 12 fixed packets sent in
-- turn, each to its own destination (IMIX_DSTS, addresses inside table prefixes), so few flows.
-- Sizes are frames with the FCS, as in RFC 2544 and pktgen.
--
-- Then SEARCH runs a bounded RFC 2544 throughput search: trials of TRIAL_MS at a rate in percent
-- of line rate, a binary search for the highest rate that loses at most LOSS_PCT percent, at
-- most MAX_TRIALS trials, then a confirmation trial; results in xroute-rfc2544.txt. With
-- SEARCH false the script only configures: start and stop by hand (start 0 / stop 0).
-- Written against Pktgen-DPDK's Lua API (pktgen.range.*, pktgen.seqTable, pktgen.portStats) as
-- its own test and rfc2544 scripts use it; not run in xroute's CI (it needs two DPDK ports).

package.path = package.path .. ";?.lua;test/?.lua;app/?.lua;../?.lua"
require "Pktgen"

local TX_PORT = "0"                      -- pktgen port wired to xroute's port A
local RX_PORT = "1"                      -- pktgen port wired to xroute's port B
local ROUTER_MAC = "00:00:00:00:00:00"   -- MAC of xroute's port A (ip link show <port A>)
local RX_ADDR = "198.51.100.2/24"        -- RX_PORT's address: the next hop of the routes on port B
local MODE = "64"                        -- "64" or "imix"
local FLOWS = 65536                      -- source addresses in range mode (at most 131072)
local SEARCH = true
local TRIAL_MS = 10000                   -- RFC 2544 asks for trials of at least 60 s for the result
local CONFIRM_MS = 60000
local MAX_TRIALS = 10
local LOSS_PCT = 0.0                     -- RFC 2544: no loss at all; 0.1 is common in practice
-- IMIX destinations: one host in each of twelve prefixes of the real table (set your own).
local IMIX_DSTS = { "1.0.0.1", "8.8.8.8", "23.1.0.1", "41.0.0.1", "58.0.0.1", "77.0.0.1",
                    "91.0.0.1", "103.0.0.1", "142.250.0.1", "185.0.0.1", "203.0.113.1", "217.0.0.1" }

local function setup_64()
    pktgen.set_proto(TX_PORT, "udp")
    pktgen.range.dst_mac(TX_PORT, "start", ROUTER_MAC)
    -- Destinations: one per /24 across the unicast space, wrapping at the end.
    pktgen.range.dst_ip(TX_PORT, "start", "1.0.0.1")
    pktgen.range.dst_ip(TX_PORT, "inc", "0.0.1.0")
    pktgen.range.dst_ip(TX_PORT, "min", "1.0.0.1")
    pktgen.range.dst_ip(TX_PORT, "max", "223.255.255.1")
    -- Sources: FLOWS addresses of the benchmarking range 198.18.0.0/15 (RFC 2544 appendix C).
    local last = 0x00000 + FLOWS - 1
    pktgen.range.src_ip(TX_PORT, "start", "198.18.0.0")
    pktgen.range.src_ip(TX_PORT, "inc", "0.0.0.1")
    pktgen.range.src_ip(TX_PORT, "min", "198.18.0.0")
    pktgen.range.src_ip(TX_PORT, "max", string.format("198.%d.%d.%d", 18 + (last >> 16), (last >> 8) & 255, last & 255))
    pktgen.range.src_port(TX_PORT, "start", 1024)
    pktgen.range.src_port(TX_PORT, "inc", 1)
    pktgen.range.src_port(TX_PORT, "min", 1024)
    pktgen.range.src_port(TX_PORT, "max", 65535)
    pktgen.range.dst_port(TX_PORT, "start", 9)
    pktgen.range.dst_port(TX_PORT, "inc", 0)
    pktgen.range.dst_port(TX_PORT, "min", 9)
    pktgen.range.dst_port(TX_PORT, "max", 9)
    pktgen.range.ttl(TX_PORT, "start", 64)
    pktgen.range.ttl(TX_PORT, "inc", 0)
    pktgen.range.ttl(TX_PORT, "min", 64)
    pktgen.range.ttl(TX_PORT, "max", 64)
    pktgen.range.pkt_size(TX_PORT, "start", 64)
    pktgen.range.pkt_size(TX_PORT, "inc", 0)
    pktgen.range.pkt_size(TX_PORT, "min", 64)
    pktgen.range.pkt_size(TX_PORT, "max", 64)
    pktgen.set_range(TX_PORT, "on")
end

local function setup_imix()
    -- Seven 64-byte, four 594-byte and one 1518-byte packet, sent in turn.
    local sizes = { 64, 64, 594, 64, 64, 594, 64, 1518, 64, 594, 64, 594 }
    for i, size in ipairs(sizes) do
        pktgen.seqTable(i - 1, TX_PORT, {
            ["eth_dst_addr"] = ROUTER_MAC,
            ["ip_dst_addr"] = IMIX_DSTS[i],
            ["ip_src_addr"] = string.format("198.18.0.%d/15", i),
            ["sport"] = 1024 + i,
            ["dport"] = 9,
            ["ethType"] = "ipv4",
            ["ipProto"] = "udp",
            ["vlanid"] = 1,
            ["pktSize"] = size,
        })
    end
    pktgen.set(TX_PORT, "seqCnt", #sizes)
end

-- One trial: rate in percent of line rate for ms milliseconds; returns frames sent and received.
local function trial(rate, ms)
    pktgen.clr()
    pktgen.set(TX_PORT, "rate", rate)
    pktgen.start(TX_PORT)
    pktgen.delay(ms)
    pktgen.stop(TX_PORT)
    pktgen.delay(1000)  -- frames still in the router's rings arrive
    local tx = pktgen.portStats(TX_PORT, "port")[tonumber(TX_PORT)].opackets
    local rx = pktgen.portStats(RX_PORT, "port")[tonumber(RX_PORT)].ipackets
    return tx, rx
end

local function passed(tx, rx)
    return tx > 0 and (tx - rx) * 100 <= LOSS_PCT * tx
end

local function search(out)
    local lo, hi, rate = 0, 100, 100
    for n = 1, MAX_TRIALS do
        local tx, rx = trial(rate, TRIAL_MS)
        local ok = passed(tx, rx)
        local line = string.format("trial %d: rate %.2f%%, sent %d, received %d, loss %.4f%%: %s",
            n, rate, tx, rx, tx > 0 and 100 * (tx - rx) / tx or 0, ok and "pass" or "fail")
        print(line); out:write(line .. "\n")
        if ok then lo = rate else hi = rate end
        if ok and rate == 100 then break end   -- line rate without loss: nothing above to find
        if hi - lo <= 0.5 then break end       -- within half a percent of line rate
        rate = (lo + hi) / 2
    end
    if lo == 0 then
        out:write("no rate passed\n"); print("no rate passed")
        return
    end
    local tx, rx = trial(lo, CONFIRM_MS)
    local line = string.format("throughput %.2f%% of line rate (%s for %d s: sent %d, received %d)",
        lo, passed(tx, rx) and "confirmed" or "NOT confirmed", CONFIRM_MS // 1000, tx, rx)
    print(line); out:write(line .. "\n")
end

pktgen.set_ipaddr(RX_PORT, "src", RX_ADDR)
pktgen.set(TX_PORT, "count", 0)  -- continuous
if MODE == "imix" then setup_imix() else setup_64() end
if SEARCH then
    local out = io.open("xroute-rfc2544.txt", "w")
    out:write("xroute RFC 2544 throughput, mode " .. MODE .. "\n")
    search(out)
    out:close()
end
