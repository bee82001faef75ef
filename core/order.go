package core

import (
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"sync"
	"unicode/utf16"

	"github.com/producerd/producerd/plugins/sdk"
	"github.com/producerd/producerd/remoting"
)

// ErrOrderedQueueFailed means a keyed send failed on its key's queue and, to keep the
// key's order, was not sent to another queue (OrderingStrict). The message may or may
// not be stored; resending it is safe for order (the worst case is a duplicate in place).
var ErrOrderedQueueFailed = errors.New("core: keyed send failed on its queue; not moved to another queue to keep per-key order (retryable)")

// Ordering says what a keyed send (a message with a ShardingKey) may do when the queue
// its key hashes to fails.
type Ordering int

const (
	// OrderingStrict (the default) keeps per-key order: a keyed send goes only to its
	// key's queue. It is retried on that same queue only when the failed attempt cannot
	// have been stored (the connection could not be opened, or the broker refused it as
	// busy); otherwise it fails with ErrOrderedQueueFailed, and the caller may resend.
	OrderingStrict Ordering = iota
	// OrderingRelaxed sends the first attempt to the key's queue and lets retries go
	// wherever the strategy picks, so availability wins over per-key order.
	OrderingRelaxed
)

// KeyHash is the function that maps a sharding key to a queue of the topic's ordered
// publish queue list.
type KeyHash int

const (
	// KeyHashJava (the default) is the Java client's SelectMessageQueueByHash:
	// abs(key.hashCode() % n) over the publish queues sorted by broker name, where
	// hashCode is java.lang.String.hashCode over the key's UTF-16 code units.
	KeyHashJava KeyHash = iota
	// KeyHashFNV is rocketmq-client-go's hash selector: FNV-1a (32 bit) of the key's
	// bytes modulo n, over the queue list as that client builds it: the route's queue
	// data in the NameServer's order, passed through its sort.Slice with the comparator
	// `i-j >= 0` (which reverses lists of up to 12 brokers), writable queue data with a
	// master only.
	KeyHashFNV
)

// JavaStringHashCode returns java.lang.String.hashCode of s: s[0]*31^(n-1) + ... + s[n-1]
// over the UTF-16 code units, in int32 arithmetic. Invalid UTF-8 bytes count as U+FFFD,
// as Java's decoder replaces them.
func JavaStringHashCode(s string) int32 {
	var h int32
	for _, r := range s {
		if r >= 0x10000 {
			hi, lo := utf16.EncodeRune(r)
			h = 31*h + hi
			h = 31*h + lo
			continue
		}
		h = 31*h + r
	}
	return h
}

// JavaHashIndex is the index SelectMessageQueueByHash picks among n queues for key:
// hashCode % n, made non-negative.
func JavaHashIndex(key string, n int) int {
	v := int(JavaStringHashCode(key) % int32(n))
	if v < 0 {
		v = -v
	}
	return v
}

// FNVHashIndex is the index rocketmq-client-go's hash selector picks among n queues for
// key (on a 64-bit platform, where its int conversion of the hash is never negative).
func FNVHashIndex(key string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(key))
	return int(h.Sum32() % uint32(n))
}

// orderState is a producer's bookkeeping of keyed sends: the queue count each topic had
// when it last saw a keyed send (to report changes), and the client-go queue list per
// route version when KeyHashFNV is on.
type orderState struct {
	mu     sync.Mutex
	counts map[string]int
	fnv    map[string]fnvQueues
}

type fnvQueues struct {
	version uint64
	queues  []sdk.Queue
}

// keyedQueue returns the queue of a keyed message: ok is false when pr has no sharding
// key, or when a relaxed producer retries (then the strategy decides).
func (p *Producer) keyedQueue(pi *publishInfo, pr *prepared, attempt int) (sdk.Queue, bool) {
	if pr.info.ShardingKey == "" || len(pi.queues) == 0 {
		return sdk.Queue{}, false
	}
	if attempt > 0 && p.cfg.Ordering == OrderingRelaxed {
		return sdk.Queue{}, false
	}
	queues := pi.queues
	if p.cfg.KeyHash == KeyHashFNV {
		queues = p.order.clientGoQueues(pi)
	}
	p.order.noteCount(p, pr.topic, len(queues))
	if p.cfg.KeyHash == KeyHashFNV {
		return queues[FNVHashIndex(pr.info.ShardingKey, len(queues))], true
	}
	return queues[JavaHashIndex(pr.info.ShardingKey, len(queues))], true
}

// noteCount reports a change of a topic's queue count between two keyed sends: every
// key hashes anew over the new count, so most keys move to another queue (as in Java).
func (o *orderState) noteCount(p *Producer, topic string, n int) {
	o.mu.Lock()
	if o.counts == nil {
		o.counts = make(map[string]int)
	}
	old, seen := o.counts[topic]
	o.counts[topic] = n
	o.mu.Unlock()
	if !seen || old == n {
		return
	}
	p.client.log.Warn("queue count changed for a topic with keyed sends; keys now hash to other queues, so per-key order across the change is not guaranteed",
		"group", p.cfg.Group, "topic", topic, "old_queues", old, "new_queues", n)
	if h := p.cfg.Hooks.OnKeyedQueueCountChange; h != nil {
		h(topic, old, n)
	}
}

// forget drops a topic's bookkeeping (Producer.ForgetTopic), so it does not grow with
// every topic ever sent to.
// counts is keyed by the bare topic, fnv by the wire one.
func (o *orderState) forget(bare, wire string) {
	o.mu.Lock()
	delete(o.counts, bare)
	delete(o.fnv, wire)
	o.mu.Unlock()
}

// clientGoQueues is the publish queue list as rocketmq-client-go builds it (see
// KeyHashFNV), cached per route version.
func (o *orderState) clientGoQueues(pi *publishInfo) []sdk.Queue {
	if pi.ordered || pi.route == nil {
		return pi.queues
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if c, ok := o.fnv[pi.topic]; ok && c.version == pi.version {
		return c.queues
	}
	var queues []sdk.Queue
	qds := slices.Clone(pi.route.QueueDatas)
	// client-go's own call, comparator included: it compares indices, not names, so the
	// result is what Go's sort makes of it (a reversal up to 12 entries).
	sort.Slice(qds, func(i, j int) bool { return i-j >= 0 })
	for _, qd := range qds {
		if qd.Perm&PermWrite == 0 {
			continue
		}
		if bd := pi.route.broker(qd.BrokerName); bd == nil || bd.masterAddr() == "" {
			continue
		}
		for i := range qd.WriteQueueNums {
			queues = append(queues, sdk.Queue{Broker: qd.BrokerName, ID: int32(i)})
		}
	}
	if len(queues) == 0 {
		queues = pi.queues
	}
	if o.fnv == nil {
		o.fnv = make(map[string]fnvQueues)
	}
	o.fnv[pi.topic] = fnvQueues{version: pi.version, queues: queues}
	return queues
}

// keyedRetry decides, after attempt on q failed with err, whether a keyed send may try
// again. Strict ordering allows another attempt (on the same queue) only when the failed
// one cannot have been stored, and final wraps err with ErrOrderedQueueFailed. Unkeyed and relaxed sends are left to the caller's rules.
func (p *Producer) keyedRetry(pr *prepared, q sdk.Queue, err error) (retry bool, final error) {
	if pr.half { // a stored half message must not be stored again elsewhere (transaction.go)
		return notStored(err), err
	}
	if pr.info.ShardingKey == "" || p.cfg.Ordering == OrderingRelaxed {
		return true, err
	}
	return notStored(err), fmt.Errorf("%w: %s/%d: %w", ErrOrderedQueueFailed, q.Broker, q.ID, err)
}

// notStored reports whether a failed attempt certainly did not store the message.
func notStored(err error) bool {
	if errors.Is(err, remoting.ErrConnect) || errors.Is(err, remoting.ErrSend) ||
		errors.Is(err, remoting.ErrTooManyRequests) || errors.Is(err, ErrBrokerNotFound) {
		return true
	}
	var re *remoting.Error
	return errors.As(err, &re) && re.Code == remoting.SystemBusy
}

// batchShardingKey is the sharding key of a batch: the key all its messages share (the
// batch then goes to that key's queue), or "" when none has one. A batch mixing keys is
// refused: one queue cannot keep the order of several keys that hash elsewhere.
func batchShardingKey(msgs []*Message) (string, error) {
	key := msgs[0].ShardingKey
	for i, m := range msgs {
		if m.ShardingKey != key {
			return "", invalid("batch.sharding-key", "batch message %d has sharding key %q, message 0 has %q; a batch goes to one key's queue", i, m.ShardingKey, key)
		}
	}
	return key, nil
}
