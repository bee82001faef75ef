package core

import (
	"encoding/binary"
	"encoding/hex"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// uniqIDGenerator produces UNIQ_KEY values with the Java MessageClientIDSetter layout
// (spec §4.8), so that RocketMQ tools can extract the IP and time from them:
//
//	IP (4 or 16 bytes) | PID low 16 bits | random int32 | ms since month start (int32) | counter (int16)
//
// rendered as uppercase hex. The fixed prefix is computed once.
type uniqIDGenerator struct {
	prefix []byte // hex of IP, PID and the random "classloader" int
	ctr    atomic.Uint32

	mu         sync.Mutex
	monthStart atomic.Int64 // unix ms of the current month start (local time)
	nextMonth  atomic.Int64
}

var uniqIDs = newUniqIDGenerator(localIP())

func newUniqIDGenerator(ip net.IP) *uniqIDGenerator {
	var raw []byte
	if v4 := ip.To4(); v4 != nil {
		raw = append(raw, v4...)
	} else if len(ip) == net.IPv6len {
		raw = append(raw, ip...)
	} else {
		raw = binary.BigEndian.AppendUint32(raw, uint32(time.Now().UnixNano()))
	}
	raw = binary.BigEndian.AppendUint16(raw, uint16(os.Getpid()))
	raw = binary.BigEndian.AppendUint32(raw, rand.Uint32())
	prefix := make([]byte, hex.EncodedLen(len(raw)))
	hex.Encode(prefix, raw)
	toUpperHex(prefix)
	g := &uniqIDGenerator{prefix: prefix}
	g.setMonth(time.Now())
	return g
}

func (g *uniqIDGenerator) setMonth(now time.Time) {
	y, m, _ := now.Date()
	start := time.Date(y, m, 1, 0, 0, 0, 0, now.Location())
	g.monthStart.Store(start.UnixMilli())
	g.nextMonth.Store(start.AddDate(0, 1, 0).UnixMilli())
}

// next returns a new 32-hex (IPv4) or 56-hex (IPv6) id.
func (g *uniqIDGenerator) next() string {
	var buf [56]byte
	return string(g.appendNext(buf[:0]))
}

// size is the length of every id: len(prefix) + 12.
func (g *uniqIDGenerator) size() int { return len(g.prefix) + 12 }

// appendNext appends a new id to dst.
func (g *uniqIDGenerator) appendNext(dst []byte) []byte {
	now := time.Now()
	ms := now.UnixMilli()
	if ms >= g.nextMonth.Load() {
		g.mu.Lock()
		if ms >= g.nextMonth.Load() {
			g.setMonth(now)
		}
		g.mu.Unlock()
	}
	diff := ms - g.monthStart.Load()
	if diff < 0 && diff > -1_000_000 { // a small clock step back
		diff = 0
	}
	var tail [6]byte
	binary.BigEndian.PutUint32(tail[:4], uint32(diff))
	binary.BigEndian.PutUint16(tail[4:], uint16(g.ctr.Add(1)-1))
	dst = append(dst, g.prefix...)
	at := len(dst)
	dst = hex.AppendEncode(dst, tail[:])
	toUpperHex(dst[at:])
	return dst
}

func toUpperHex(b []byte) {
	for i, c := range b {
		if c >= 'a' && c <= 'f' {
			b[i] = c - 'a' + 'A'
		}
	}
}

// localIP picks the address the Java client would: the first public IPv4 or IPv6,
// else a private non-loopback IPv4, else nil (the generator then uses time bytes).
func localIP() net.IP {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var private net.IP
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() || ipn.IP.IsUnspecified() {
			continue
		}
		ip := ipn.IP
		if !ip.IsPrivate() {
			return ip
		}
		if private == nil && ip.To4() != nil {
			private = ip
		}
	}
	return private
}
