package main

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/producerd/producerd/api/producerdpb"
)

// TestAttackConcurrentGRPC: 48 concurrent unary sends on one connection (review defect
// 1), of 8 MB (over max_message_size: refused at gRPC's length prefix, max_grpc_message_size
// has no base64 factor) and of 4 MB (legitimate: each is charged to the in-flight bytes as
// soon as gRPC received it, before it is copied or decoded, so those over the budget
// cost only gRPC's receive buffer). Bound: start-up + 3 × max_inflight_bytes + 64 MiB, plus
// for the legitimate sends what gRPC buffers before the daemon can charge a request: two
// messages being received per connection (recvPerConn × max_grpc_message_size) and the
// other calls' 256 KiB flow-control windows.
func TestAttackConcurrentGRPC(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	for _, tc := range []struct {
		name     string
		size     int
		buffered int64
	}{{"refused 8 MB", 8_000_000, 0}, {"legit 4 MB", 4_000_000, 2*(4<<20+4<<20/8+64<<10) + 48*256<<10}} {
		t.Run(tc.name, func(t *testing.T) {
			c := attackCluster(t)
			a := startAttackDaemon(t, c.NameServerAddr())
			cc, err := grpc.NewClient(a.grpc, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(64<<20)))
			if err != nil {
				t.Fatal(err)
			}
			defer cc.Close()
			ic := producerdpb.NewIngressClient(cc)
			body := make([]byte, tc.size)
			var wg sync.WaitGroup
			var mu sync.Mutex
			codes := map[string]int{}
			for range 48 {
				wg.Go(func() {
					ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					defer cancel()
					_, err := ic.Send(ctx, &producerdpb.SendRequest{Message: &producerdpb.Message{Topic: "TopicTest", Body: body}})
					mu.Lock()
					codes[status.Code(err).String()]++
					mu.Unlock()
				})
			}
			wg.Wait()
			t.Logf("answers %v", codes)
			a.checkExtra(fmt.Sprintf("48 concurrent %d-byte gRPC sends", tc.size), tc.buffered)
		})
	}
}

// checkExtra is check with extra bytes added to the bound.
func (a *attackDaemon) checkExtra(what string, extra int64) {
	peak := a.rss("VmHWM")
	bound := a.baseline + attackFactor*attackInflightBytes + attackSlack + extra
	a.t.Logf("%s: peak RSS %d MiB (after start-up %d MiB; bound %d MiB)", what, peak>>20, a.baseline>>20, bound>>20)
	if a.assert && peak > bound {
		a.t.Errorf("%s: peak RSS %d MiB over the bound %d MiB", what, peak>>20, bound>>20)
	}
}
